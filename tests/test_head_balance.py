"""Rare-value weighting of the head loss (``ModelConfig.head_balance``): shares, weights, the loss,
the config checks and the trainer writing the training shares into the model's config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from personvlm.models.config import ConfigError, ModelConfig
from personvlm.models.heads import balance_weights, head_losses
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import ATTRIBUTES, BY_NAME, UNKNOWN, PersonDescription
from personvlm.training.config import TrainConfig
from personvlm.training.dataset import labels_of, value_priors
from personvlm.training.trainer import Trainer
from training_data import make_dataset, tiny_config


def _desc(**values: object) -> PersonDescription:
    return PersonDescription.from_values(values)


def test_value_priors_count_known_labels_and_never_reach_zero_or_one() -> None:
    labels = [_desc(glasses="yes", bags=("backpack",)), _desc(glasses="no", bags=()), _desc(glasses="no", bags=()),
              _desc(glasses=UNKNOWN, bags=UNKNOWN)]
    priors = value_priors(labels)
    yes, no = BY_NAME["glasses"].values.index("yes"), BY_NAME["glasses"].values.index("no")
    # Add-one smoothing over the 3 known labels: (1 + 1) / 5 and (2 + 1) / 5; the unknown is not counted.
    assert priors["glasses"][yes] == pytest.approx(2 / 5) and priors["glasses"][no] == pytest.approx(3 / 5)
    bags = dict(zip(BY_NAME["bags"].values, priors["bags"], strict=True))
    assert bags["backpack"] == pytest.approx(1 / 3)
    assert bags["suitcase"] == pytest.approx(1e-3)  # never seen: clipped, not 0
    for attr in ATTRIBUTES:
        assert len(priors[attr.name]) == len(attr.values)
        assert all(0 < p < 1 for p in priors[attr.name])
        if not attr.multi:
            assert sum(priors[attr.name]) == pytest.approx(1.0, abs=1e-5)  # shares are rounded to 6 places


def test_balance_weights_raise_rare_values_by_the_strength() -> None:
    priors = value_priors([_desc(glasses="no", bags=())] * 8 + [_desc(glasses="yes", bags=("backpack",))])
    weights = balance_weights(priors, 0.5)
    vals = BY_NAME["glasses"].values
    w = dict(zip(vals, weights["glasses"].tolist(), strict=True))
    p = dict(zip(vals, priors["glasses"], strict=True))
    assert w["yes"] / w["no"] == pytest.approx((p["no"] / p["yes"]) ** 0.5, rel=1e-5)
    b = BY_NAME["bags"].values.index("backpack")
    share = priors["bags"][b]
    assert weights["bags"][b].item() == pytest.approx(((1 - share) / share) ** 0.5, rel=1e-5)
    assert all(torch.allclose(t, torch.ones_like(t)) for t in balance_weights(priors, 0.0).values() if t.ndim)


def test_weighted_loss_pushes_harder_on_the_rare_value() -> None:
    """The same mistake costs more on a rare value: its gradient outweighs the common one's."""
    priors = value_priors([_desc(glasses="no")] * 9 + [_desc(glasses="yes")])
    yes, no = BY_NAME["glasses"].values.index("yes"), BY_NAME["glasses"].values.index("no")
    targets = {"glasses": torch.tensor([yes, no])}

    def grads(weights: dict[str, torch.Tensor] | None) -> torch.Tensor:
        logits = torch.zeros(2, len(BY_NAME["glasses"].values), requires_grad=True)
        head_losses({"glasses": logits}, targets, weights)["glasses"].backward()
        return logits.grad.abs().sum(dim=1)  # per row: how hard the loss pulls it

    plain, weighted = grads(None), grads(balance_weights(priors, 0.5))
    assert plain[0] == pytest.approx(plain[1].item())
    assert weighted[0] > 2 * weighted[1]


def test_config_rejects_bad_balance_settings() -> None:
    with pytest.raises(ConfigError, match="head_balance"):
        ModelConfig(encoder="tiny_cnn", head_balance=-1)
    with pytest.raises(ConfigError, match="head_priors.glasses"):
        ModelConfig(encoder="tiny_cnn", head_priors={"glasses": [0.5]})
    with pytest.raises(ConfigError, match="head_priors.shoe_size"):
        ModelConfig(encoder="tiny_cnn", head_priors={"shoe_size": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="head_balance needs the training share"):
        PersonVLM(ModelConfig(encoder="tiny_cnn", pretrained=False, head_balance=0.5))


def test_trainer_stores_the_training_shares_and_trains_with_them(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=16)
    cfg = TrainConfig.load(tiny_config(tmp_path / "c.yaml", data, model={"head_balance": 0.5},
                                       train={"epochs": 1}))
    Trainer(cfg, tmp_path / "run").run()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    train_records, _ = Trainer(cfg, tmp_path / "unused")._load_records()
    assert saved["head_balance"] == 0.5
    assert saved["head_priors"] == value_priors(labels_of(r) for r in train_records)
    model = PersonVLM(ModelConfig.from_dict(saved), load_weights=False)
    assert model.head_loss_weights is not None
