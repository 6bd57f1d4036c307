"""Mixed precision on the CPU: bfloat16 where the CPU runs it natively, float32 elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from personvlm.models.checkpoint import load_checkpoint
from personvlm.models.personvlm import PersonVLM
from personvlm.training import precision
from personvlm.training.config import TrainConfig
from personvlm.training.trainer import Trainer
from training_data import make_dataset, tiny_config


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize(("device", "enabled", "native", "expected"), [
    ("cuda", True, False, torch.float16),
    ("cuda", False, True, None),
    ("cpu", True, True, torch.bfloat16),
    ("cpu", True, False, None),  # emulated bfloat16 is slower than float32
    ("cpu", False, True, None),
])
def test_autocast_dtype(monkeypatch: pytest.MonkeyPatch, device: str, enabled: bool, native: bool,
                        expected: torch.dtype | None) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.autocast_dtype(torch.device(device), enabled) is expected


def test_native_bf16_probe_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision.cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not precision.cpu_has_native_bf16()
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a PyTorch without the probes
    assert not precision.cpu_has_native_bf16()


@pytest.mark.parametrize(("native", "amp", "expected"), [(True, True, torch.bfloat16), (False, True, None),
                                                          (True, False, None)])
def test_training_computes_in_the_chosen_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool,
                                                   amp: bool, expected: torch.dtype | None) -> None:
    """The loss is computed under bfloat16 autocast exactly when asked for and native; the model
    still learns and its weights stay float32."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    seen: list[torch.dtype | None] = []
    real = PersonVLM.compute_loss

    def recording(self: PersonVLM, batch: dict, visual: torch.Tensor | None = None) -> dict:
        if self.training:
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return real(self, batch, visual)

    monkeypatch.setattr(PersonVLM, "compute_loss", recording)
    data = make_dataset(tmp_path / "data", n=24)
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data, train={"epochs": 3, "amp": amp}))
    Trainer(cfg, tmp_path / "run").run()
    assert seen and set(seen) == {expected}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    model, _ = load_checkpoint(tmp_path / "run")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
