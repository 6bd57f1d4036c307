"""Score a model's answer rules (``prior_correction`` values) on labelled data, from one encoding.

A model trained with ``head_balance`` can answer by balanced scores (``prior_correction`` 0, what
label-based mA rewards) or by the training priors (1, what accuracy and real crops reward). Choosing
the shipped rule means seeing both figures for each rule on the same rows; encoding the rows once
and re-deciding the answers per rule makes that a minute's work instead of one evaluation per rule.
Scores are the evaluation's own (``personvlm.evaluation.attributes.description_metrics``) with no
``unknown`` thresholds, because thresholds are fitted per rule (``personvlm model calibrate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from personvlm.data.msp60k import Record
from personvlm.describer import Describer
from personvlm.evaluation.attributes import description_metrics
from personvlm.imageio import load_image
from personvlm.models.calibration import labelled_truths
from personvlm.models.heads import concat_logits, decide
from personvlm.schema import PersonDescription


@dataclass(frozen=True)
class RuleScore:
    """One answer rule's figures over the labelled rows."""

    prior_correction: float
    mA: float  # label-based mA, as ``personvlm evaluate`` reports ``mA_heads``
    mean_accuracy: float  # mean over attributes of the share of labelled rows answered right

    def to_dict(self) -> dict[str, float]:
        return {"prior_correction": self.prior_correction, "mA": self.mA, "mean_accuracy": self.mean_accuracy}


def score_rules(describer: Describer, records: Sequence[Record], corrections: Sequence[float],
                batch_size: int = 32, on_batch: Callable[[int], None] | None = None) -> list[RuleScore]:
    """The figures of each ``prior_correction`` in ``corrections`` on ``records``; the model's own
    rule is restored afterwards."""
    if not records:
        raise ValueError("no rows to score")
    truths = labelled_truths(records)
    parts = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        parts.append(describer.head_logits([load_image(r.image) for r in chunk]))
        if on_batch is not None:
            on_batch(len(chunk))
    raw = concat_logits(parts)
    model = describer.model
    own = model.config.prior_correction
    scores = []
    try:
        for value in corrections:
            model.set_prior_correction(value)
            preds = [PersonDescription(row) for row in decide(model.prior_corrected(raw), {})]
            metrics = description_metrics(preds, truths)
            accuracy = [row["accuracy"] for row in metrics["per_attribute"] if row["labelled"]]
            scores.append(RuleScore(value, float(metrics["mA"]), float(np.mean(accuracy))))
    finally:
        model.set_prior_correction(own)
    return scores
