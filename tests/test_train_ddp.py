"""DDP through torchrun: two CPU processes on gloo train one model, only rank 0 writes files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from personvlm.models.checkpoint import load_checkpoint
from training_data import make_dataset, tiny_config


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.fail("torchrun not found next to the Python interpreter (it ships with torch)")
    data = make_dataset(tmp_path / "d", n=24)
    cfg = tiny_config(tmp_path / "c.yaml", data, train={"epochs": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "personvlm.cli", "train", "--config", str(cfg),
         "--out", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x2:" in proc.stderr  # the run reports two processes
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # one row per epoch: only rank 0 writes
    # 18 training samples over 2 processes -> 9 each -> 3 batches of 4 per process and epoch.
    assert rows[-1]["step"] == 6
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert len(ckpt["rng"]) == 2  # every process's RNG state is kept for an exact resume
    load_checkpoint(tmp_path / "run")
