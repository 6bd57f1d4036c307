"""The training loop end to end on a tiny model: outputs, NaN skipping, early stopping, accumulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from personvlm.data.vocab import Vocab
from personvlm.describer import Describer
from personvlm.imageio import load_image
from personvlm.models.checkpoint import load_checkpoint
from personvlm.models.heads import IGNORE_INDEX
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import parse
from personvlm.schema.compact import compact_slots
from personvlm.training import trainer as trainer_mod
from personvlm.training.config import TrainConfig
from personvlm.training.dataset import PersonDataset, collate
from personvlm.training.trainer import Trainer, TrainingError
from training_data import make_dataset, tiny_config


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), n=24)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_a_loadable_model_directory(tmp_path: Path, data: Path) -> None:
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data))
    result = Trainer(cfg, tmp_path / "run", command="personvlm train -c c.yaml").run()
    out = tmp_path / "run"
    assert result["epochs"] == 3 and result["step"] == 3 * 5  # 18 train samples / batch 4 -> 5 steps
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_head_ma", "lr", "skipped_batches", "epoch_seconds"):
        assert all(key in r for r in rows), key
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "personvlm train -c c.yaml" in (out / "MODEL_CARD.md").read_text()
    model, vocab = load_checkpoint(out)
    assert model.config.vocab_size == len(vocab)
    grammar_words = {w for _, table, _ in compact_slots() for phrase in table for w in vocab.tokenize(phrase)}
    assert grammar_words <= set(vocab.itos)  # constrained decoding can spell every compact phrase
    describer = Describer.from_pretrained(out)
    [desc] = describer.describe([load_image(data.parent / "images" / "p000_000.jpg")], style="compact")
    assert parse(desc.caption).values() == desc.values()
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(cfg, out).run()


def test_collate_gives_each_sample_both_styles(data: Path, tmp_path: Path) -> None:
    from personvlm.data.msp60k import load_jsonl

    recs = load_jsonl(data)[:3]
    vocab = Vocab.build([r.answer for r in recs] + [r.compact or "" for r in recs])
    ds = PersonDataset(recs, vocab, (64, 32), 48)
    compact, natural = collate([ds[i] for i in range(3)], vocab.pad_id)
    assert compact["images"].shape == (3, 3, 64, 32) and torch.equal(compact["images"], natural["images"])
    assert compact["input_ids"][0, :2].tolist() == [vocab.bos_id, vocab.style_id("compact")]
    assert natural["input_ids"][0, :2].tolist() == [vocab.bos_id, vocab.style_id("natural")]
    for style, batch in (("compact", compact), ("natural", natural)):  # each style padded to its own longest
        assert batch["input_ids"].shape[1] == max(len(ds[i]["tokens"][style]) for i in range(3)) - 1
    for batch in (compact, natural):
        assert (batch["target_ids"][:, 0] == IGNORE_INDEX).all()  # the given style token is not a target
        shifted, nxt = batch["target_ids"][:, 1:-1], batch["input_ids"][:, 2:]  # target[t] = input[t + 1]
        real = nxt != vocab.pad_id
        assert torch.equal(shifted[real], nxt[real])
    row = compact["target_ids"][0]
    assert vocab.decode(row[row >= 0].tolist()) == recs[0].compact
    assert compact["head_targets"]["upper_color"].shape == (3,)
    assert compact["head_targets"]["bags"][0].tolist() == [0.0] * 7
    assert (compact["head_targets"]["shoes_color"] == IGNORE_INDEX).all()  # unknown -> ignored


def test_nan_batches_are_skipped_and_counted(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = PersonVLM.compute_loss
    calls = {"n": 0}

    def poisoned(self: PersonVLM, batch: dict, visual: torch.Tensor | None = None) -> dict:
        out = real(self, batch, visual)
        if self.training:
            calls["n"] += 1
            if calls["n"] in (3, 13):  # two calls (styles) per step: steps 2 and 7
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(PersonVLM, "compute_loss", poisoned)
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data, train={"epochs": 2}))
    Trainer(cfg, tmp_path / "run").run()
    rows = _rows(tmp_path / "run")
    assert [r["skipped_batches"] for r in rows] == [1, 1]
    model, _ = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stopping_on_validation_loss(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    losses = iter([1.0, 0.5, 0.7, 0.6, 0.4])
    monkeypatch.setattr(trainer_mod, "validate", lambda *a: {"val_loss": next(losses), "val_head_ma": 0.5})
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data, train={"epochs": 5, "patience": 2}))
    result = Trainer(cfg, tmp_path / "run").run()
    assert result["epochs"] == 4 and result["select_on"] == "val_loss" and result["best"] == 0.5


def test_selection_on_head_ma_keeps_the_epoch_with_the_best_heads(tmp_path: Path, data: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """select_on: val_head_ma picks (and early-stops on) the highest heads mA, whatever the loss does."""
    figures = iter([(1.0, 0.60), (0.9, 0.70), (1.2, 0.75), (1.3, 0.74), (1.4, 0.73), (0.1, 0.99)])
    monkeypatch.setattr(trainer_mod, "validate",
                        lambda *a: dict(zip(("val_loss", "val_head_ma"), next(figures), strict=True)))
    saved = []
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda out, model, vocab: saved.append(len(saved)))
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data,
                                       train={"epochs": 6, "patience": 2, "select_on": "val_head_ma"}))
    result = Trainer(cfg, tmp_path / "run").run()
    assert result["epochs"] == 5 and result["best"] == 0.75  # epochs 4, 5 did not beat epoch 3
    assert len(saved) == 3  # the model directory was written at epochs 1, 2 and 3 only
    assert "Best epoch by val_head_ma: 3" in (tmp_path / "run" / "MODEL_CARD.md").read_text()


def test_gradient_accumulation_steps_per_epoch(tmp_path: Path, data: Path) -> None:
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data, train={"epochs": 1, "grad_accum": 2}))
    assert Trainer(cfg, tmp_path / "run").run()["step"] == 3  # 5 batches -> 3 optimiser steps


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, data: Path) -> None:
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data))
    with pytest.raises(TrainingError, match="no checkpoint"):
        Trainer(cfg, tmp_path / "empty", resume=True).run()


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    from personvlm.training.trainer import lr_lambda

    lrs = [lr_lambda(s, warmup=10, total=110, min_ratio=0.1) for s in range(111)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # then only down
    assert lrs[60] == pytest.approx(0.55) and lrs[110] == pytest.approx(0.1)  # cosine midpoint, floor


def test_fine_tuned_encoder_stages_get_their_own_learning_rate() -> None:
    """encoder_lr applies to the trainable encoder stages only; decay only to tensors of 2+ dims;
    every trainable parameter is in exactly one group and no frozen one is in any."""
    from personvlm.models.config import ModelConfig
    from personvlm.training.config import OptimConfig
    from personvlm.training.trainer import param_groups

    model = PersonVLM(ModelConfig(encoder="tiny_cnn", pretrained=False, width=32, layers=1, heads=2,
                                  vocab_size=40, max_len=16, freeze_stages=2))
    groups = param_groups(model, OptimConfig(lr=1e-3, encoder_lr=1e-4, weight_decay=0.05))
    encoder = {id(p) for p in model.encoder.parameters() if p.requires_grad}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    for g in groups:
        in_encoder = {id(p) in encoder for p in g["params"]}
        assert len(in_encoder) == 1
        assert g["lr"] == (1e-4 if in_encoder.pop() else 1e-3)
        assert g["weight_decay"] == (0.05 if g["params"][0].ndim >= 2 else 0.0)
        assert len({p.ndim >= 2 for p in g["params"]}) == 1
    assert {g["lr"] for g in param_groups(model, OptimConfig(lr=1e-3))} == {1e-3}
