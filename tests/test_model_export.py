"""Shipping a model: float16 export halves the weights file and changes no output that matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.describer import Describer
from personvlm.models.checkpoint import WEIGHTS_FILE, load_checkpoint


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)) for _ in range(3)]


def test_half_export_is_smaller_and_describes_the_same(tmp_path: Path, one_torch_thread: None) -> None:
    full = Describer.tiny(seed=3).save_pretrained(tmp_path / "full")
    (full / "MODEL_CARD.md").write_text("card")
    result = CliRunner().invoke(app, ["model", "export", str(full), str(tmp_path / "half")])
    assert result.exit_code == 0, result.output
    half = tmp_path / "half"
    assert (half / WEIGHTS_FILE).stat().st_size < 0.7 * (full / WEIGHTS_FILE).stat().st_size
    assert (half / "MODEL_CARD.md").read_text() == "card"

    model_full, _ = load_checkpoint(full)
    model_half, _ = load_checkpoint(half)
    for (name, a), b in zip(model_full.state_dict().items(), model_half.state_dict().values(), strict=True):
        assert b.dtype == a.dtype, name  # loaded back as float32
        torch.testing.assert_close(b, a, atol=2e-3, rtol=2e-3, msg=name)

    images = _images()
    a = Describer.from_pretrained(full).describe(images)
    b = Describer.from_pretrained(half).describe(images)
    assert [d.values() for d in a] == [d.values() for d in b]


def test_export_of_a_missing_model_says_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "export", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "model directory not found" in result.output
    assert not (tmp_path / "out").exists()


def test_full_export_keeps_float32(tmp_path: Path, one_torch_thread: None) -> None:
    src = Describer.tiny(seed=1).save_pretrained(tmp_path / "src")
    result = CliRunner().invoke(app, ["model", "export", str(src), str(tmp_path / "dst"), "--full"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dst" / WEIGHTS_FILE).stat().st_size == (src / WEIGHTS_FILE).stat().st_size
