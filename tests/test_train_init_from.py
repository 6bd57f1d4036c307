"""``train.init_from``: a run that starts from a model directory's weights and vocabulary (fine-tuning)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from personvlm.models.checkpoint import load_checkpoint
from personvlm.training.config import TrainConfig
from personvlm.training.trainer import Trainer, TrainingError
from training_data import make_dataset, tiny_config, trained_tiny_model


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny model directory to start from."""
    return trained_tiny_model(tmp_path_factory.mktemp("start"))


def _max_diff(a: Path, b: Path) -> float:
    """Largest weight difference (parameters only: BatchNorm statistics move even at lr 0)."""
    wa, wb = (dict(load_checkpoint(d)[0].named_parameters()) for d in (a, b))
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def test_run_starts_from_the_given_weights_and_keeps_their_vocabulary(tmp_path: Path, start: Path) -> None:
    # Other data (another seed, so other captions) and a learning rate too small to move anything:
    # the run's model must then be the start model, and its vocabulary the start's, not one built anew.
    data = make_dataset(tmp_path / "data", n=24, seed=5)
    tiny = {"epochs": 1, "lr": 1e-12, "encoder_lr": 1e-12}
    cfg = TrainConfig.load(tiny_config(tmp_path / "ft.yaml", data, train={**tiny, "init_from": str(start)}))
    Trainer(cfg, tmp_path / "ft").run()
    assert (tmp_path / "ft" / "vocab.json").read_text() == (start / "vocab.json").read_text()
    assert _max_diff(start, tmp_path / "ft") < 1e-6

    fresh = TrainConfig.load(tiny_config(tmp_path / "fresh.yaml", data, train=tiny))
    Trainer(fresh, tmp_path / "fresh").run()
    assert _max_diff(start, tmp_path / "fresh") > 1e-3  # without init_from the weights are new


def test_init_from_errors_name_the_setting(tmp_path: Path, start: Path) -> None:
    data = make_dataset(tmp_path / "data", n=24, seed=5)
    missing = TrainConfig.load(tiny_config(tmp_path / "a.yaml", data, train={"init_from": str(tmp_path / "nope")}))
    with pytest.raises(TrainingError, match="train.init_from: .*model directory not found"):
        Trainer(missing, tmp_path / "a").run()
    wider = TrainConfig.load(tiny_config(tmp_path / "b.yaml", data, model={"width": 48},
                                         train={"init_from": str(start)}))
    with pytest.raises(TrainingError, match="train.init_from: .*do not fit this config's model section"):
        Trainer(wider, tmp_path / "b").run()
