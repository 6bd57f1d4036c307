"""Pedestrian-attribute-recognition metrics on binary label matrices.

Label-based mA is the mean over attributes of (positive recall + negative recall) / 2, the
PAR literature's standard (it is not fooled by always answering the majority class).
Instance metrics (accuracy, precision, recall, F1) are per sample, then averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
