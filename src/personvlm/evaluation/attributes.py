"""Pedestrian-attribute-recognition metrics on binary label matrices.

Label-based mA is the mean over attributes of (positive recall + negative recall) / 2, the
PAR literature's standard (it is not fooled by always answering the majority class).
Instance metrics (accuracy, precision, recall, F1) are per sample, then averaged.

On ``PersonDescription``s every (attribute, value) pair is one binary label; samples whose
truth is ``unknown`` for an attribute are masked out of that attribute's labels, and a model's
``unknown`` answer is an abstention: counted as a miss in accuracy and mA, and reported as
lost coverage beside them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from personvlm.schema import ATTRIBUTES, BY_NAME, NAMES, UNKNOWN, PersonDescription
from personvlm.schema.description import Value


@dataclass(frozen=True)
class LabelMetrics:
    """Per-attribute counts and recalls for one binary attribute."""

    name: str
    positives: int
    negatives: int
    positive_recall: float
    negative_recall: float
    accuracy: float

    @property
    def ma(self) -> float:
        return (self.positive_recall + self.negative_recall) / 2.0


def _as_bool(a: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"expected an (N, K) label matrix, got shape {arr.shape}")
    return arr.astype(bool)


def per_label(pred: np.ndarray | Sequence[Sequence[int]], true: np.ndarray | Sequence[Sequence[int]],
              names: Sequence[str]) -> list[LabelMetrics]:
    """Recalls per attribute. An attribute with no positives (or no negatives) in ``true`` gets
    recall 1.0 on the empty side, as the PAR toolkits do; callers should flag such rows."""
    p, t = _as_bool(pred), _as_bool(true)
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} != true shape {t.shape}")
    if len(names) != t.shape[1]:
        raise ValueError(f"{len(names)} names for {t.shape[1]} columns")
    out = []
    for k, name in enumerate(names):
        pos, neg = t[:, k], ~t[:, k]
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        pr = float((p[:, k] & pos).sum() / n_pos) if n_pos else 1.0
        nr = float((~p[:, k] & neg).sum() / n_neg) if n_neg else 1.0
        acc = float((p[:, k] == t[:, k]).mean()) if len(t) else 0.0
        out.append(LabelMetrics(name, n_pos, n_neg, pr, nr, acc))
    return out


def label_based_ma(pred: np.ndarray | Sequence[Sequence[int]], true: np.ndarray | Sequence[Sequence[int]],
                   names: Sequence[str] | None = None) -> float:
    """Mean over attributes of (positive recall + negative recall) / 2."""
    t = _as_bool(true)
    rows = per_label(pred, true, names or [str(i) for i in range(t.shape[1])])
    return float(np.mean([r.ma for r in rows])) if rows else 0.0


def instance_metrics(pred: np.ndarray | Sequence[Sequence[int]],
                     true: np.ndarray | Sequence[Sequence[int]]) -> dict[str, float]:
    """Example-based accuracy, precision, recall and F1 (averaged over samples).

    A sample with no predicted positives has precision 0 unless it also has no true positives
    (then 1): an empty prediction for an empty truth is right, not undefined.
    """
    p, t = _as_bool(pred), _as_bool(true)
    inter = (p & t).sum(1).astype(float)
    union = (p | t).sum(1).astype(float)
    n_p, n_t = p.sum(1).astype(float), t.sum(1).astype(float)
    acc = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    prec = np.where(n_p > 0, inter / np.maximum(n_p, 1), np.where(n_t == 0, 1.0, 0.0))
    rec = np.where(n_t > 0, inter / np.maximum(n_t, 1), 1.0)
    mp, mr = float(prec.mean()), float(rec.mean())
    return {
        "accuracy": float(acc.mean()),
        "precision": mp,
        "recall": mr,
        "f1": 2 * mp * mr / (mp + mr) if mp + mr else 0.0,
    }


# --- descriptions: per-attribute accuracy with abstentions, masked mA, colours, calibration --------
def _known(value: Value) -> bool:
    return value != UNKNOWN


@dataclass(frozen=True)
class AttributeScore:
    """How one attribute did over the samples whose ground truth is known.

    ``accuracy`` counts an ``unknown`` answer as wrong; ``selective_accuracy`` is the accuracy
    on the answered samples only; ``coverage`` is the share answered. Reporting all three is
    what keeps abstention honest: it is neither free (dropped) nor a hidden success.
    """

    name: str
    labelled: int
    answered: int
    correct: int
    majority_accuracy: float

    @property
    def abstained(self) -> int:
        return self.labelled - self.answered

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else float("nan")

    @property
    def coverage(self) -> float:
        return self.answered / self.labelled if self.labelled else float("nan")

    @property
    def selective_accuracy(self) -> float:
        return self.correct / self.answered if self.answered else float("nan")

    def to_dict(self) -> dict[str, float | int | str]:
        return {"name": self.name, "labelled": self.labelled, "answered": self.answered,
                "abstained": self.abstained, "correct": self.correct, "accuracy": self.accuracy,
                "coverage": self.coverage, "selective_accuracy": self.selective_accuracy,
                "majority_accuracy": self.majority_accuracy}


def _check_pairs(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription]) -> None:
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions but {len(truths)} ground-truth descriptions")


def attribute_scores(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription],
                     names: Sequence[str] = NAMES) -> list[AttributeScore]:
    """Per-attribute accuracy, coverage and selective accuracy; multi-label values must match as
    sets. ``majority_accuracy`` is what always answering the most common true value would get."""
    _check_pairs(preds, truths)
    out = []
    for name in names:
        pairs = [(p.value(name), t.value(name)) for p, t in zip(preds, truths, strict=True) if _known(t.value(name))]
        majority = Counter(t for _, t in pairs).most_common(1)
        out.append(AttributeScore(
            name=name,
            labelled=len(pairs),
            answered=sum(_known(p) for p, _ in pairs),
            correct=sum(p == t for p, t in pairs),
            majority_accuracy=majority[0][1] / len(pairs) if majority else float("nan"),
        ))
    return out


def schema_labels(names: Sequence[str] = NAMES) -> list[tuple[str, str]]:
    """Every (attribute, value) pair as one binary label, in schema order (``unknown`` excluded)."""
    return [(name, value) for name in names for value in BY_NAME[name].values]


def label_matrices(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription],
                   names: Sequence[str] = NAMES) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Binary (N, K) prediction and truth matrices over ``schema_labels`` plus a mask that is
    False where the truth of that attribute is ``unknown`` (nothing to score there).

    A predicted ``unknown`` sets no bit: it misses every positive, as an abstention should.
    """
    _check_pairs(preds, truths)
    labels = schema_labels(names)

    def has(value: Value, wanted: str) -> bool:
        return wanted in value if isinstance(value, tuple) else value == wanted

    pred = np.array([[has(p.value(a), v) for a, v in labels] for p in preds], dtype=bool).reshape(len(preds), -1)
    true = np.array([[has(t.value(a), v) for a, v in labels] for t in truths], dtype=bool).reshape(len(truths), -1)
    mask = np.array([[_known(t.value(a)) for a, _ in labels] for t in truths], dtype=bool).reshape(len(truths), -1)
    return pred, true, mask, [f"{a}={v}" for a, v in labels]


def masked_label_ma(pred: np.ndarray, true: np.ndarray, mask: np.ndarray,
                    names: Sequence[str]) -> tuple[float, list[LabelMetrics]]:
    """Label-based mA over the labels that have both positives and negatives among the masked-in
    samples (a label never seen positive says nothing about recall, so it is left out of the
    mean rather than scored 1.0). Returns the mA and the per-label rows that entered it."""
    rows = []
    for k, name in enumerate(names):
        keep = mask[:, k]
        row = per_label(pred[keep][:, [k]], true[keep][:, [k]], [name])[0]
        if row.positives and row.negatives:
            rows.append(row)
    return (float(np.mean([r.ma for r in rows])) if rows else float("nan")), rows


def description_metrics(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription],
                        names: Sequence[str] = NAMES) -> dict[str, object]:
    """mA, instance metrics (over labelled attributes only) and the per-attribute table."""
    pred, true, mask, labels = label_matrices(preds, truths, names)
    ma, rows = masked_label_ma(pred, true, mask, labels)
    return {
        "mA": ma,
        "mA_labels": len(rows),
        "instance": instance_metrics(pred & mask, true & mask),
        "per_attribute": [s.to_dict() for s in attribute_scores(preds, truths, names)],
        "per_label": [{"label": r.name, "positives": r.positives, "negatives": r.negatives,
                       "positive_recall": r.positive_recall, "negative_recall": r.negative_recall,
                       "mA": r.ma} for r in rows],
    }


COLOR_ATTRIBUTES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.name.endswith("_color"))


def confusion_matrix(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription],
                     name: str) -> dict[str, object]:
    """Counts of (true value, predicted value) for one attribute over samples with a known truth;
    the predicted axis has an ``unknown`` column so abstentions stay visible."""
    _check_pairs(preds, truths)
    values = list(BY_NAME[name].values)
    columns = [*values, UNKNOWN]
    matrix = np.zeros((len(values), len(columns)), dtype=int)
    for p, t in zip(preds, truths, strict=True):
        tv, pv = t.value(name), p.value(name)
        if _known(tv):
            matrix[values.index(tv), columns.index(pv)] += 1
    return {"attribute": name, "rows": values, "columns": columns, "counts": matrix.tolist()}


@dataclass(frozen=True)
class ConfidencePoint:
    """One head answer: its confidence and whether it was right (truth known, answer not unknown)."""

    confidence: float
    correct: bool


def confidence_points(preds: Sequence[PersonDescription], truths: Sequence[PersonDescription],
                      names: Sequence[str] = NAMES) -> list[ConfidencePoint]:
    """Every answered prediction whose truth is known, for calibration and coverage curves."""
    _check_pairs(preds, truths)
    out = []
    for p, t in zip(preds, truths, strict=True):
        for name in names:
            av = p.attributes[name]
            if _known(t.value(name)) and _known(av.value):
                out.append(ConfidencePoint(av.confidence, av.value == t.value(name)))
    return out


def reliability(points: Sequence[ConfidencePoint], bins: int = 10) -> dict[str, object]:
    """Reliability diagram data (per confidence bin: count, mean confidence, accuracy) and the
    expected calibration error: how far the heads' confidences are from their hit rates."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    conf = np.array([p.confidence for p in points], dtype=float)
    hit = np.array([p.correct for p in points], dtype=float)
    rows, ece = [], 0.0
    for i in range(bins):
        upper = conf <= edges[i + 1] if i == bins - 1 else conf < edges[i + 1]
        sel = (conf >= edges[i]) & upper
        n = int(sel.sum())
        rows.append({"low": float(edges[i]), "high": float(edges[i + 1]), "count": n,
                     "confidence": float(conf[sel].mean()) if n else float("nan"),
                     "accuracy": float(hit[sel].mean()) if n else float("nan")})
        if n:
            ece += n / len(points) * abs(float(conf[sel].mean()) - float(hit[sel].mean()))
    return {"bins": rows, "ece": ece if len(points) else float("nan"), "n": len(points)}


def coverage_curve(points: Sequence[ConfidencePoint], labelled: int,
                   thresholds: Sequence[float] = tuple(np.linspace(0.0, 0.95, 20))) -> list[dict[str, float]]:
    """Coverage vs accuracy if the model also abstained below each confidence threshold.

    ``labelled`` is the number of (sample, attribute) pairs with a known truth, the denominator
    of coverage; answers already ``unknown`` are outside ``points`` and so never covered.
    """
    conf = np.array([p.confidence for p in points], dtype=float)
    hit = np.array([p.correct for p in points], dtype=bool)
    out = []
    for th in thresholds:
        keep = conf >= th
        n = int(keep.sum())
        out.append({"threshold": float(th), "coverage": n / labelled if labelled else float("nan"),
                    "selective_accuracy": float(hit[keep].mean()) if n else float("nan"),
                    "accuracy": float(hit[keep].sum()) / labelled if labelled else float("nan")})
    return out
