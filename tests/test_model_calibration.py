"""``personvlm model calibrate``: per-attribute unknown thresholds from labelled validation data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.msp60k import load_jsonl
from personvlm.describer import Describer
from personvlm.models.calibration import calibrate
from personvlm.models.config import ModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LABELS = [{"gender": "male", "upper_color": "red"}, {"gender": "female", "upper_color": "blue"},
          {"gender": "male"}, {"gender": "female", "upper_color": "red"}, {"gender": "male", "upper_color": "black"},
          {"gender": "female"}]


@pytest.fixture
def labelled(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    rows = []
    for i, attrs in enumerate(LABELS):
        Image.fromarray(rng.integers(0, 256, (100, 40, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.jpg")
        rows.append({"image": f"images/{i}.jpg", "answer": "A person.", "attributes": attrs})
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path / "val.jsonl"


def _balanced_model(tmp_path: Path) -> Path:
    """A tiny model directory trained-with-head_balance in all but its weights: priors from LABELS."""
    from personvlm.schema import PersonDescription
    from personvlm.training.dataset import value_priors

    model = tmp_path / "model"
    Describer.tiny(seed=0).save_pretrained(model)
    config = json.loads((model / "config.json").read_text())
    config["head_balance"] = 1.0
    config["head_priors"] = value_priors([PersonDescription.from_values(a) for a in LABELS])
    (model / "config.json").write_text(json.dumps(config))
    return model


def test_thresholds_only_for_labelled_attributes_and_reach_the_target(labelled):
    result = calibrate(Describer.tiny(seed=0), load_jsonl(labelled), target_accuracy=0.75, batch_size=4)
    assert set(result) == {"gender", "upper_color"}
    assert result["gender"].n == 6 and result["upper_color"].n == 4
    for cal in result.values():
        assert 0.0 <= cal.coverage <= 1.0
        if cal.threshold == 0.0:
            assert cal.accuracy >= 0.75 and cal.coverage == 1.0
        elif cal.answered_accuracy >= 0.75:  # reachable: the lowest threshold that reaches it
            assert cal.coverage < 1.0


def test_calibrate_command_writes_config_and_describe_uses_it(tmp_path, labelled):
    model = tmp_path / "model"
    Describer.tiny(seed=0).save_pretrained(model)
    runner = CliRunner()
    dry = runner.invoke(app, ["model", "calibrate", str(model), str(labelled), "--target-accuracy", "1.0", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "gender" in dry.stdout and ModelConfig.load(model / "config.json").unknown_thresholds == {}
    result = runner.invoke(app, ["model", "calibrate", str(model), str(labelled), "--target-accuracy", "1.0"])
    assert result.exit_code == 0, result.output
    thresholds = ModelConfig.load(model / "config.json").unknown_thresholds
    assert set(thresholds) <= {"gender", "upper_color"} and all(0 < t <= 1 for t in thresholds.values())
    loaded = Describer.from_pretrained(model)
    assert loaded.config.unknown_thresholds == thresholds


def test_calibrate_reports_bad_data_with_lines(tmp_path):
    model = tmp_path / "model"
    Describer.tiny(seed=0).save_pretrained(model)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "missing.jpg", "answer": "A person."}\n{not json\n')
    result = CliRunner().invoke(app, ["model", "calibrate", str(model), str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:1" in result.stderr and "bad.jsonl:2" in result.stderr


def test_rows_without_labels_are_named(tmp_path, labelled):
    model = tmp_path / "model"
    Describer.tiny(seed=0).save_pretrained(model)
    unlabelled = labelled.parent / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"image": "images/0.jpg", "answer": "A person."}) + "\n")
    result = CliRunner().invoke(app, ["model", "calibrate", str(model), str(unlabelled)])
    assert result.exit_code == 1 and "line 1" in result.stderr and "no labels" in result.stderr


def test_calibrate_stores_a_prior_correction_and_refuses_one_with_nothing_to_undo(tmp_path, labelled):
    plain = tmp_path / "plain"
    Describer.tiny(seed=0).save_pretrained(plain)
    runner = CliRunner()
    refused = runner.invoke(app, ["model", "calibrate", str(plain), str(labelled), "--prior-correction", "0.5"])
    assert refused.exit_code == 1 and "without head_balance" in refused.stderr
    model = _balanced_model(tmp_path)
    result = runner.invoke(app, ["model", "calibrate", str(model), str(labelled), "--prior-correction", "0.5"])
    assert result.exit_code == 0, result.output
    saved = ModelConfig.load(model / "config.json")
    assert saved.prior_correction == 0.5 and Describer.from_pretrained(model).model.answer_offsets is not None


def test_each_answer_rule_scores_what_describing_with_it_would(tmp_path, labelled):
    # One encoding, answers re-decided per rule, must give the evaluation's own mA and accuracy of
    # describing the rows with that rule and no thresholds; the model keeps its own rule after.
    from personvlm.evaluation.attributes import description_metrics
    from personvlm.imageio import load_image
    from personvlm.models.answer_rules import score_rules

    model = _balanced_model(tmp_path)
    records = load_jsonl(labelled)
    truths = [r.labels() for r in records]
    describer = Describer.from_pretrained(model)
    describer.model.set_prior_correction(0.5)
    scores = score_rules(describer, records, [0.0, 1.0], batch_size=4)
    assert [s.prior_correction for s in scores] == [0.0, 1.0]
    assert describer.model.config.prior_correction == 0.5
    for score in scores:
        fresh = Describer.from_pretrained(model)
        fresh.model.set_prior_correction(score.prior_correction)
        preds = fresh.describe([load_image(r.image) for r in records])
        metrics = description_metrics(preds, truths)
        accuracy = [row["accuracy"] for row in metrics["per_attribute"] if row["labelled"]]
        assert score.mA == pytest.approx(metrics["mA"]) and score.mean_accuracy == pytest.approx(np.mean(accuracy))


def test_answer_rules_command(tmp_path, labelled):
    model = _balanced_model(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["model", "answer-rules", str(model), str(labelled), "--prior-corrections", "0,1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["n"] == len(LABELS) and [r["prior_correction"] for r in figures["rules"]] == [0.0, 1.0]
    assert all(0.0 <= r["mA"] <= 1.0 and 0.0 <= r["mean_accuracy"] <= 1.0 for r in figures["rules"])
    out_of_range = runner.invoke(app, ["model", "answer-rules", str(model), str(labelled), "--prior-corrections", "0,2"])
    assert out_of_range.exit_code == 2 and "[0, 1]" in out_of_range.stderr
    not_numbers = runner.invoke(app, ["model", "answer-rules", str(model), str(labelled), "--prior-corrections", "a,b"])
    assert not_numbers.exit_code == 2 and "expected numbers" in not_numbers.stderr
    plain = tmp_path / "plain"
    Describer.tiny(seed=0).save_pretrained(plain)
    refused = runner.invoke(app, ["model", "answer-rules", str(plain), str(labelled), "--prior-corrections", "0.5"])
    assert refused.exit_code == 1 and "without head_balance" in refused.stderr
    missing = runner.invoke(app, ["model", "answer-rules", str(model), str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "nope.jsonl" in missing.stderr


def _rule_metrics(describer: Describer, logits: dict, records, value: float,
                  overrides: dict[str, float] | None = None) -> dict:
    """The evaluation's figures of answering ``logits`` under one rule, rule set on the model anew."""
    from personvlm.evaluation.attributes import description_metrics
    from personvlm.models.heads import decide
    from personvlm.schema import PersonDescription

    describer.model.set_prior_correction(value, overrides)
    preds = [PersonDescription(row) for row in decide(describer.model.prior_corrected(logits), {})]
    return description_metrics(preds, [r.labels() for r in records])


def test_per_attribute_rule_takes_each_attributes_best_allowed_correction(tmp_path, monkeypatch):
    # Five men and a woman, with fixed gender logits: answered by the priors (male 0.85) everyone is a
    # man (accuracy 5/6, label mA 0.5); answered nearly balanced the woman is found and two men are
    # lost (4/6, 0.8). Each choice must be, among the candidates whose accuracy stays within the cap,
    # the one with the highest summed label mA (from scoring each candidate whole), and the rule's
    # figures those of answering by it.
    from personvlm.models.answer_rules import CANDIDATES, choose_per_attribute
    from personvlm.schema import ATTRIBUTES, BY_NAME

    genders = ["male"] * 5 + ["female"]
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, gender in enumerate(genders):
        Image.fromarray(rng.integers(0, 256, (100, 40, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        rows.append({"image": f"images/{i}.png", "answer": "A person.", "attributes": {"gender": gender}})
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = load_jsonl(tmp_path / "val.jsonl")
    model = _balanced_model(tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["head_priors"]["gender"] = [0.85, 0.15] if BY_NAME["gender"].values[0] == "male" else [0.15, 0.85]
    (model / "config.json").write_text(json.dumps(config))
    logits = {a.name: torch.zeros(len(records), len(a.values)) for a in ATTRIBUTES}
    female = BY_NAME["gender"].values.index("female")
    logits["gender"][:, female] = torch.tensor([-3.0, -3.0, 0.55, 0.6, -3.0, 0.5])  # female minus male
    describer = Describer.from_pretrained(model)
    monkeypatch.setattr(describer, "head_logits", lambda images: {k: v[:len(images)] for k, v in logits.items()})
    by_value = {}
    for value in CANDIDATES:
        metrics = _rule_metrics(describer, logits, records, value)
        accuracy = {row["name"]: row["accuracy"] for row in metrics["per_attribute"] if row["labelled"]}
        label_mA = {name: sum(r["mA"] for r in metrics["per_label"] if r["label"].startswith(name + "="))
                    for name in accuracy}
        by_value[value] = (accuracy, label_mA)
    describer.model.set_prior_correction(1.0)
    chosen_by_cap = {}
    for cap in (0.0, 0.2, 1.0):
        rule = choose_per_attribute(describer, records, cap, reference=1.0, batch_size=len(records))
        assert set(rule.attributes) == {"gender"}
        assert describer.model.config.prior_correction == 1.0 and describer.model.config.prior_corrections == {}
        for name, chosen in rule.attributes.items():
            allowed = [v for v in CANDIDATES if by_value[1.0][0][name] - by_value[v][0][name] <= cap + 1e-9]
            best = max(by_value[v][1][name] for v in allowed)
            assert chosen.label_mA == pytest.approx(best)
            assert chosen.correction == max(v for v in allowed if by_value[v][1][name] == pytest.approx(best))
            assert chosen.accuracy == pytest.approx(by_value[chosen.correction][0][name])
        assert rule.score.mA == pytest.approx(_rule_metrics(describer, logits, records, 1.0, rule.corrections)["mA"])
        assert rule.reference_score.mA == pytest.approx(_rule_metrics(describer, logits, records, 1.0)["mA"])
        assert all(v != 1.0 for v in rule.corrections.values())  # only the attributes the rule moves
        describer.model.set_prior_correction(1.0)
        chosen_by_cap[cap] = (rule.corrections, rule.score.mA)
    assert chosen_by_cap[0.0] == ({}, pytest.approx(0.5))  # no accuracy to spend: the priors' answers
    assert chosen_by_cap[0.2] == chosen_by_cap[1.0] == ({"gender": 0.25}, pytest.approx(0.8))
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        choose_per_attribute(describer, records, 1.5)


def test_a_per_attribute_rule_for_a_model_without_head_balance_is_refused_before_encoding(tmp_path, labelled):
    plain = tmp_path / "plain"
    Describer.tiny(seed=0).save_pretrained(plain)
    before = (plain / "config.json").read_text()
    result = CliRunner().invoke(app, ["model", "calibrate", str(plain), str(labelled), "--max-accuracy-drop", "0.02"])
    assert result.exit_code == 1 and "--max-accuracy-drop" in result.stderr and "without head_balance" in result.stderr
    assert "encoding" not in result.stderr and (plain / "config.json").read_text() == before


def test_calibrate_stores_the_per_attribute_rule_and_describe_uses_it(tmp_path, labelled):
    from personvlm.models.answer_rules import choose_per_attribute

    model = _balanced_model(tmp_path)
    expected = choose_per_attribute(Describer.from_pretrained(model), load_jsonl(labelled), 1.0, reference=0.5)
    assert expected.corrections  # this model's answers tie across rules: the larger correction is kept
    runner = CliRunner()
    result = runner.invoke(app, ["model", "calibrate", str(model), str(labelled), "--prior-correction", "0.5",
                                 "--max-accuracy-drop", "1", "--target-accuracy", "0"])
    assert result.exit_code == 0, result.output
    assert "prior_correction per attribute" in result.stdout and "upper_color" in result.stdout
    saved = ModelConfig.load(model / "config.json")
    assert saved.prior_correction == 0.5 and saved.prior_corrections == expected.corrections
    assert Describer.from_pretrained(model).config.prior_corrections == expected.corrections
    # --prior-correction alone sets one rule for every attribute again
    again = runner.invoke(app, ["model", "calibrate", str(model), str(labelled), "--prior-correction", "1"])
    assert again.exit_code == 0, again.output
    assert ModelConfig.load(model / "config.json").prior_corrections == {}
