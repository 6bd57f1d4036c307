"""Rare-value weighting of the head loss (``ModelConfig.head_balance``): shares, weights, the loss,
the config checks and the trainer writing the training shares into the model's config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from personvlm.models.config import ConfigError, ModelConfig
from personvlm.models.heads import balance_weights, head_losses, prior_offsets
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


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_prior_offsets_undo_the_weighting_a_balanced_loss_learns(strength: float) -> None:
    """A free logit vector fitted with the weighted losses lands ``strength * log-prior`` away from the
    plain fit; adding ``prior_offsets`` gives back the training shares (exclusive and yes/no values)."""
    labels = [_desc(age="adult", bags=())] * 14 + [_desc(age="child", bags=("backpack",))] * 4 + \
             [_desc(age="elderly", bags=())] * 2
    priors = value_priors(labels)
    weights, offsets = balance_weights(priors, strength), prior_offsets(priors, strength)
    ages = torch.tensor([BY_NAME["age"].values.index(d.value("age")) for d in labels])
    bags = torch.tensor([[float(v in d.value("bags")) for v in BY_NAME["bags"].values] for d in labels])
    age_logit = torch.zeros(len(BY_NAME["age"].values), requires_grad=True)
    bag_logit = torch.zeros(len(BY_NAME["bags"].values), requires_grad=True)
    opt = torch.optim.LBFGS([age_logit, bag_logit], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = head_losses({"age": age_logit.expand(len(labels), -1), "bags": bag_logit.expand(len(labels), -1)},
                           {"age": ages, "bags": bags}, weights)
        total = loss["age"] + loss["bags"]
        total.backward()
        return total

    opt.step(closure)
    with torch.no_grad():
        shares = torch.tensor(priors["age"])
        observed = torch.bincount(ages, minlength=len(shares)).float() / len(ages)
        assert not torch.allclose(age_logit.softmax(-1), observed, atol=0.05)  # balanced: not the shares
        torch.testing.assert_close((age_logit + offsets["age"]).softmax(-1), observed, atol=2e-3, rtol=0)
        b = BY_NAME["bags"].values.index("backpack")
        assert torch.sigmoid(bag_logit[b] + offsets["bags"][b]).item() == pytest.approx(4 / 20, abs=2e-3)
        assert torch.sigmoid(bag_logit[b]).item() > 0.3  # the weighted fit over-answers the rare value


def test_prior_correction_shifts_only_the_answers(tmp_path: Path) -> None:
    """``prior_correction`` moves the answer logits by the offsets and leaves the training logits alone;
    at 0 the two are the same; outside [0, 1] it is a config error."""
    priors = value_priors([_desc(glasses="no", bags=())] * 8 + [_desc(glasses="yes", bags=("backpack",))])
    base = {"encoder": "tiny_cnn", "pretrained": False, "image_size": [64, 32], "grid": [2, 1], "width": 32,
            "layers": 1, "heads": 2, "mlp_ratio": 2, "max_len": 16, "vocab_size": 20, "head_balance": 0.5,
            "head_priors": priors}
    torch.manual_seed(0)
    plain = PersonVLM(ModelConfig.from_dict(base)).eval()
    corrected = PersonVLM(ModelConfig.from_dict({**base, "prior_correction": 1.0})).eval()
    corrected.load_state_dict(plain.state_dict())
    visual = torch.randn(3, 2, 32)
    with torch.no_grad():
        raw, same, moved = plain.head_logits(visual), plain.answer_logits(visual), corrected.answer_logits(visual)
        offsets = prior_offsets(priors, 0.5)
        for name, x in raw.items():
            torch.testing.assert_close(same[name], x)
            torch.testing.assert_close(corrected.head_logits(visual)[name], x)
            torch.testing.assert_close(moved[name], x + offsets[name])
    with pytest.raises(ConfigError, match="prior_correction"):
        ModelConfig.from_dict({**base, "prior_correction": 1.5})
    with pytest.raises(ConfigError, match="prior_correction"):
        corrected.set_prior_correction(1.5)
    assert corrected.config.prior_correction == 1.0  # a refused value changes nothing
    with torch.no_grad():
        torch.testing.assert_close(corrected.answer_logits(visual)["glasses"], moved["glasses"])


def test_per_attribute_corrections_override_the_global_one(tmp_path: Path) -> None:
    """``prior_corrections`` gives named attributes their own correction (glasses answered as trained
    while bags follow the priors, and the reverse); they are saved with the config and checked there."""
    priors = value_priors([_desc(glasses="no", bags=())] * 8 + [_desc(glasses="yes", bags=("backpack",))])
    base = {"encoder": "tiny_cnn", "pretrained": False, "image_size": [64, 32], "grid": [2, 1], "width": 32,
            "layers": 1, "heads": 2, "mlp_ratio": 2, "max_len": 16, "vocab_size": 20, "head_balance": 0.5,
            "head_priors": priors}
    torch.manual_seed(0)
    model = PersonVLM(ModelConfig.from_dict({**base, "prior_correction": 1.0,
                                             "prior_corrections": {"glasses": 0.0}})).eval()
    visual = torch.randn(3, 2, 32)
    full = prior_offsets(priors, 0.5)
    with torch.no_grad():
        raw, moved = model.head_logits(visual), model.answer_logits(visual)
        torch.testing.assert_close(moved["glasses"], raw["glasses"])
        torch.testing.assert_close(moved["bags"], raw["bags"] + full["bags"])
        model.set_prior_correction(0.0, {"bags": 0.5})
        moved = model.answer_logits(visual)
        torch.testing.assert_close(moved["glasses"], raw["glasses"])
        torch.testing.assert_close(moved["bags"], raw["bags"] + prior_offsets(priors, 0.25)["bags"])
        model.set_prior_correction(0.0)  # no overrides: every attribute answers as trained
        assert model.answer_offsets is None and model.config.prior_corrections == {}
    model.set_prior_correction(0.0, {"bags": 0.5})
    model.config.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json").correction("bags") == 0.5
    for bad, match in (({"hat": 0.5}, "prior_corrections.hat"), ({"bags": 1.5}, "prior_corrections.bags")):
        with pytest.raises(ConfigError, match=match):
            ModelConfig.from_dict({**base, "prior_corrections": bad})
        with pytest.raises(ConfigError, match=match):
            model.set_prior_correction(1.0, bad)
    assert model.config.prior_corrections == {"bags": 0.5}  # a refused rule changes nothing
    with pytest.raises(ConfigError, match="without head_balance"):
        ModelConfig.from_dict({**base, "head_balance": 0.0, "prior_corrections": {"bags": 0.5}})
