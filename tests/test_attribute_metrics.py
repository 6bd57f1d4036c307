"""Attribute metrics: PAR mA and instance metrics, abstentions, colour confusion, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from personvlm.evaluation.attributes import (
    ConfidencePoint,
    attribute_scores,
    confidence_points,
    confusion_matrix,
    coverage_curve,
    description_metrics,
    instance_metrics,
    label_based_ma,
    label_matrices,
    masked_label_ma,
    per_label,
    reliability,
)
from personvlm.schema import AttributeValue, PersonDescription


def _desc(**values: object) -> PersonDescription:
    return PersonDescription.from_values(values)


def test_label_based_ma_is_mean_of_positive_and_negative_recall() -> None:
    true = [[1, 0], [1, 1], [0, 0], [0, 1]]
    pred = [[1, 0], [0, 1], [0, 1], [0, 1]]
    rows = per_label(pred, true, ["a", "b"])
    assert (rows[0].positive_recall, rows[0].negative_recall) == (0.5, 1.0)
    assert (rows[1].positive_recall, rows[1].negative_recall) == (1.0, 0.5)
    assert label_based_ma(pred, true) == pytest.approx((0.75 + 0.75) / 2)


def test_instance_metrics_by_hand() -> None:
    true = [[1, 1, 0], [0, 0, 0]]
    pred = [[1, 0, 1], [0, 0, 0]]
    m = instance_metrics(pred, true)
    # sample 0: inter 1, union 3, |p| 2, |t| 2; sample 1: empty == empty counts as right
    assert m["accuracy"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["precision"] == pytest.approx((0.5 + 1) / 2)
    assert m["recall"] == pytest.approx((0.5 + 1) / 2)
    assert m["f1"] == pytest.approx(0.75)


def test_abstention_is_counted_wrong_and_reported_as_coverage() -> None:
    truths = [_desc(gender="male"), _desc(gender="female"), _desc(gender="male"), _desc(gender="unknown")]
    preds = [_desc(gender="male"), _desc(gender="unknown"), _desc(gender="female"), _desc(gender="male")]
    score = {s.name: s for s in attribute_scores(preds, truths)}["gender"]
    assert score.labelled == 3  # the unknown truth is not scored
    assert score.answered == 2 and score.abstained == 1
    assert score.correct == 1
    assert score.accuracy == pytest.approx(1 / 3)
    assert score.coverage == pytest.approx(2 / 3)
    assert score.selective_accuracy == pytest.approx(1 / 2)
    assert score.majority_accuracy == pytest.approx(2 / 3)


def test_multi_label_attributes_match_as_sets() -> None:
    truths = [_desc(bags=("backpack", "handbag")), _desc(bags=())]
    preds = [_desc(bags=("handbag", "backpack")), _desc(bags=("backpack",))]
    score = {s.name: s for s in attribute_scores(preds, truths)}["bags"]
    assert (score.labelled, score.correct) == (2, 1)


def test_masked_ma_ignores_unknown_truth_and_unseen_labels() -> None:
    truths = [_desc(gender="male"), _desc(gender="female"), _desc(gender="unknown")]
    preds = [_desc(gender="male"), _desc(gender="male"), _desc(gender="female")]
    pred, true, mask, names = label_matrices(preds, truths, ["gender"])
    assert names == ["gender=male", "gender=female"]
    assert mask[:, 0].tolist() == [True, True, False]
    ma, rows = masked_label_ma(pred, true, mask, names)
    # male: pos recall 1, neg recall 0 -> 0.5; female: pos recall 0, neg recall 1 -> 0.5
    assert ma == pytest.approx(0.5)
    assert [r.name for r in rows] == names


def test_description_metrics_perfect_and_abstaining_model() -> None:
    truths = [_desc(gender="male", upper_color="red"), _desc(gender="female", upper_color="blue")]
    perfect = description_metrics(truths, truths)
    assert perfect["mA"] == pytest.approx(1.0)
    assert perfect["instance"]["f1"] == pytest.approx(1.0)
    silent = description_metrics([PersonDescription()] * 2, truths)
    assert silent["mA"] == pytest.approx(0.5)  # misses every positive, right on every negative
    assert silent["instance"]["recall"] == pytest.approx(0.0)
    gender = next(r for r in silent["per_attribute"] if r["name"] == "gender")
    assert gender["coverage"] == 0.0 and gender["accuracy"] == 0.0


def test_colour_confusion_has_an_unknown_column() -> None:
    truths = [_desc(upper_color="red"), _desc(upper_color="red"), _desc(upper_color="blue"), _desc()]
    preds = [_desc(upper_color="red"), _desc(upper_color="orange"), _desc(), _desc(upper_color="red")]
    cm = confusion_matrix(preds, truths, "upper_color")
    counts = np.array(cm["counts"])
    rows, cols = cm["rows"], cm["columns"]
    assert cols[-1] == "unknown"
    assert counts[rows.index("red"), cols.index("red")] == 1
    assert counts[rows.index("red"), cols.index("orange")] == 1
    assert counts[rows.index("blue"), cols.index("unknown")] == 1
    assert counts.sum() == 3


def test_reliability_and_coverage_curve() -> None:
    truths = [_desc(gender="male")] * 4
    preds = [PersonDescription({"gender": AttributeValue(v, c)})
             for v, c in [("male", 0.95), ("female", 0.55), ("male", 0.65), ("unknown", 0.3)]]
    points = confidence_points(preds, truths, ["gender"])
    assert points == [ConfidencePoint(0.95, True), ConfidencePoint(0.55, False), ConfidencePoint(0.65, True)]
    rel = reliability(points, bins=10)
    assert rel["n"] == 3
    by_low = {round(b["low"], 1): b for b in rel["bins"]}
    assert by_low[0.5]["count"] == 1 and by_low[0.5]["accuracy"] == 0.0
    assert rel["ece"] == pytest.approx((abs(0.95 - 1) + abs(0.55 - 0) + abs(0.65 - 1)) / 3)
    curve = {round(p["threshold"], 2): p for p in coverage_curve(points, labelled=4, thresholds=[0.0, 0.6, 0.9])}
    assert curve[0.0]["coverage"] == pytest.approx(3 / 4) and curve[0.0]["selective_accuracy"] == pytest.approx(2 / 3)
    assert curve[0.6]["coverage"] == pytest.approx(2 / 4) and curve[0.6]["selective_accuracy"] == 1.0
    assert curve[0.9]["accuracy"] == pytest.approx(1 / 4)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1"):
        attribute_scores([PersonDescription()] * 2, [PersonDescription()])
