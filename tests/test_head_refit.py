"""``personvlm model refit-heads``: new attribute heads on a model's visual tokens, the rest kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.msp60k import load_jsonl
from personvlm.data.transforms import preprocess
from personvlm.describer import Describer
from personvlm.imageio import load_image
from personvlm.models.checkpoint import load_checkpoint, model_version
from personvlm.models.config import ConfigError, ModelConfig
from personvlm.models.heads import AttributeHeads
from personvlm.training.head_refit import RefitConfig, refit_heads, stacked_targets
from personvlm.training.trainer import TrainingError
from personvlm.training.validation import confusion_counts, ma_from_counts
from training_data import make_dataset, trained_tiny_model


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for one epoch with balanced heads, an ``unknown`` threshold and a
    per-attribute answer rule."""
    run = trained_tiny_model(tmp_path_factory.mktemp("source"), head_balance=1.0)
    config = json.loads((run / "config.json").read_text())
    config["unknown_thresholds"] = {"gender": 0.9}
    config["prior_corrections"] = {"bags": 0.5}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("refit-data")
    return make_dataset(root / "train", n=96, seed=1), make_dataset(root / "val", n=32, seed=2)


def _refit(source: Path, data: tuple[Path, Path], out: Path, **cfg: object) -> dict[str, object]:
    settings = {"layers": 1, "epochs": 6, "batch_size": 16, "lr": 3e-3, "warmup_steps": 2, "patience": 6, **cfg}
    return refit_heads(source, load_jsonl(data[0]), load_jsonl(data[1]), out, RefitConfig(**settings),  # type: ignore[arg-type]
                       "test", out.parent / "cache", Console(quiet=True))


def _val_ma(model_dir: Path, val: Path) -> float:
    model, _ = load_checkpoint(model_dir)
    records = load_jsonl(val)
    with torch.inference_mode():
        images = preprocess([load_image(r.image) for r in records], model.config.image_size)
        logits = model.eval().head_logits(model.encode_images(images))
    return ma_from_counts(confusion_counts(logits, stacked_targets(records)))


def test_heads_without_blocks_keep_the_earlier_parameter_names() -> None:
    plain = set(AttributeHeads(32, 2).state_dict())
    deep = set(AttributeHeads(32, 2, layers=2).state_dict())
    assert not any(k.startswith(("blocks.", "final_norm.")) for k in plain)  # earlier checkpoints load as they are
    assert plain < deep and all(k.startswith(("blocks.0.", "blocks.1.", "final_norm.")) for k in deep - plain)
    logits = AttributeHeads(32, 2, layers=2)(torch.randn(3, 5, 32))
    assert logits["upper_color"].shape[0] == 3 and logits["bags"].shape[0] == 3
    with pytest.raises(ConfigError, match="head_layers"):
        ModelConfig(head_layers=-1)


def test_refit_trains_only_the_heads_and_learns(tmp_path: Path, source: Path, data: tuple[Path, Path]) -> None:
    best = _refit(source, data, tmp_path / "refit")
    out = tmp_path / "refit"
    for name in ("config.json", "model.safetensors", "vocab.json", "MODEL_CARD.md", "metrics.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    old, _ = load_checkpoint(source)
    new, _ = load_checkpoint(out)
    old_state, new_state = old.state_dict(), new.state_dict()
    kept = [k for k in old_state if not k.startswith("heads.")]
    assert kept and all(torch.equal(old_state[k], new_state[k]) for k in kept)  # encoder, tokens, decoder
    assert any(k.startswith("heads.blocks.0.") for k in new_state)
    assert new.config.head_layers == 1 and new.config.unknown_thresholds == {}  # thresholds were the old heads'
    assert old.config.prior_corrections and new.config.prior_corrections == {}  # so was the answer rule
    assert new.config.head_priors and new.config.head_priors != old.config.head_priors  # the new data's shares
    assert (out / "vocab.json").read_text() == (source / "vocab.json").read_text()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*/*.safetensors"))
    assert len(cached) == 3 and sum(name.endswith("-flip.safetensors") for name in cached) == 1
    assert best["val_loss"] == min(r["val_loss"] for r in rows)
    # The pixels encode the garment colours: new heads on the same tokens must score clearly better.
    assert _val_ma(out, data[1]) > _val_ma(source, data[1]) + 0.05
    assert Describer.from_pretrained(out).describe([load_image(load_jsonl(data[1])[0].image)])[0].caption


def test_refit_stops_early_when_val_loss_stops_falling(tmp_path: Path, source: Path, data: tuple[Path, Path]) -> None:
    # A learning rate too small to move anything: epoch 1 sets the best loss, epoch 2 cannot beat it.
    best = _refit(source, data, tmp_path / "stop", lr=1e-12, patience=1, epochs=5)
    rows = (tmp_path / "stop" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and best["epoch"] == 1


def test_refit_refuses_an_existing_run_and_names_a_bad_image(tmp_path: Path, source: Path,
                                                             data: tuple[Path, Path]) -> None:
    _refit(source, data, tmp_path / "once", epochs=1)
    with pytest.raises(TrainingError, match="already holds a run"):
        _refit(source, data, tmp_path / "once", epochs=1)
    records = load_jsonl(data[0])
    Path(records[3].image).write_bytes(b"not an image")
    try:
        with pytest.raises(TrainingError, match=Path(records[3].image).name):
            _refit(source, data, tmp_path / "bad", epochs=1)
    finally:
        make_dataset(Path(data[0]).parent, n=96, seed=1)  # restore the module's data


def test_refit_cli(tmp_path: Path, source: Path, data: tuple[Path, Path]) -> None:
    runner = CliRunner()
    args = ["model", "refit-heads", str(source), "--data", str(data[0]), "--data", str(data[0]), "--val", str(data[1]),
            "--layers", "0", "--epochs", "1", "--batch-size", "32", "--no-flip", "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "personvlm model calibrate" in result.output
    assert load_checkpoint(tmp_path / "cli")[0].config.head_layers == 0
    card = (tmp_path / "cli" / "MODEL_CARD.md").read_text()
    assert f"trained on {2 * len(load_jsonl(data[0]))} records" in card  # both --data files
    assert f"Source model: {model_version(source)};" in card
    assert len(list((tmp_path / "c").glob("*/*.safetensors"))) == 2  # train and val tokens, no mirrored ones
    missing = runner.invoke(app, [*args[:2], str(tmp_path / "nope"), *args[3:], "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "model directory not found" in missing.output
