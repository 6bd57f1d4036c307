"""A training process SIGKILLed mid-epoch and resumed with --resume ends exactly where an
uninterrupted run ends: same steps, same per-epoch losses, bit-identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from personvlm.training.config import TrainConfig
from personvlm.training.trainer import Trainer
from training_data import make_dataset, tiny_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMING = ("epoch_seconds", "steps_per_second", "samples_per_second")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personvlm.cli", *args], env=ENV, capture_output=True, text=True,
                          timeout=120)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", n=24)
    cfg = tiny_config(tmp_path / "c.yaml", data, train={"epochs": 2})
    torch.set_num_threads(1)  # as in the subprocesses (OMP_NUM_THREADS=1): same float operation order
    Trainer(TrainConfig.load(cfg), tmp_path / "full").run()

    # Die by SIGKILL at step 7: after the epoch-1 checkpoint (step 5), in the middle of epoch 2.
    killer = textwrap.dedent(f"""
        import os, signal
        from personvlm.training.config import TrainConfig
        from personvlm.training.trainer import Hooks, Trainer
        def on_step(step):
            if step == 7:
                os.kill(os.getpid(), signal.SIGKILL)
        Trainer(TrainConfig.load({str(cfg)!r}), {str(tmp_path / "killed")!r}, hooks=Hooks(on_step=on_step)).run()
    """)
    killed = subprocess.run([sys.executable, "-c", killer], env=ENV, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert len(_rows(tmp_path / "killed")) == 1  # only epoch 1 finished
    assert (tmp_path / "killed" / "curves.png").is_file()  # the curve is kept current, even for a killed run

    resumed = _cli("train", "--config", str(cfg), "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "at epoch 1, step 5" in resumed.stderr
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
