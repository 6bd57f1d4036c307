"""Score a model's answer rules (``prior_correction`` values) on labelled data, from one encoding.

A model trained with ``head_balance`` can answer by balanced scores (``prior_correction`` 0, what
label-based mA rewards) or by the training priors (1, what accuracy and real crops reward). Choosing
the shipped rule means seeing both figures for each rule on the same rows; encoding the rows once
and re-deciding the answers per rule makes that a minute's work instead of one evaluation per rule.
Scores are the evaluation's own (``personvlm.evaluation.attributes.description_metrics``) with no
``unknown`` thresholds, because thresholds are fitted per rule (``personvlm model calibrate``).

One rule for all attributes spends accuracy where it buys little mA (body: a balanced answer calls
many people thin or fat) and leaves recall unspent where it is nearly free (colours, age), so
``choose_per_attribute`` gives each attribute its own correction under a cap on its accuracy loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from personvlm.data.msp60k import Record
from personvlm.describer import Describer
from personvlm.evaluation.attributes import description_metrics
from personvlm.imageio import load_image
from personvlm.models.calibration import labelled_truths
from personvlm.models.heads import concat_logits, decide
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import PersonDescription

CANDIDATES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # per-attribute choices of --max-accuracy-drop


@dataclass(frozen=True)
class RuleScore:
    """One answer rule's figures over the labelled rows."""

    prior_correction: float
    mA: float  # label-based mA, as ``personvlm evaluate`` reports ``mA_heads``
    mean_accuracy: float  # mean over attributes of the share of labelled rows answered right

    def to_dict(self) -> dict[str, float]:
        return {"prior_correction": self.prior_correction, "mA": self.mA, "mean_accuracy": self.mean_accuracy}


def _raw_logits(describer: Describer, records: Sequence[Record], batch_size: int,
                on_batch: Callable[[int], None] | None) -> dict[str, Tensor]:
    """The heads' raw logits of every row, encoded once."""
    if not records:
        raise ValueError("no rows to score")
    parts = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        parts.append(describer.head_logits([load_image(r.image) for r in chunk]))
        if on_batch is not None:
            on_batch(len(chunk))
    return concat_logits(parts)


def _metrics_under(model: PersonVLM, raw: dict[str, Tensor], truths: Sequence[PersonDescription],
                   value: float, per_attribute: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The evaluation's figures of answering ``raw`` by one rule (no thresholds); the model's own
    rule is restored afterwards."""
    own = (model.config.prior_correction, model.config.prior_corrections)
    try:
        model.set_prior_correction(value, per_attribute)
        preds = [PersonDescription(row) for row in decide(model.prior_corrected(raw), {})]
    finally:
        model.set_prior_correction(*own)
    return description_metrics(preds, truths)


def _score(value: float, metrics: dict[str, Any]) -> RuleScore:
    accuracy = [row["accuracy"] for row in metrics["per_attribute"] if row["labelled"]]
    return RuleScore(value, float(metrics["mA"]), float(np.mean(accuracy)))


def score_rules(describer: Describer, records: Sequence[Record], corrections: Sequence[float],
                batch_size: int = 32, on_batch: Callable[[int], None] | None = None) -> list[RuleScore]:
    """The figures of each ``prior_correction`` in ``corrections`` on ``records``; the model's own
    rule is restored afterwards."""
    truths = labelled_truths(records)
    raw = _raw_logits(describer, records, batch_size, on_batch)
    return [_score(value, _metrics_under(describer.model, raw, truths, value)) for value in corrections]


@dataclass(frozen=True)
class AttributeRule:
    """One attribute's chosen correction and what it does on the rows, beside the reference rule's."""

    correction: float
    accuracy: float
    reference_accuracy: float
    label_mA: float  # summed label mA of the attribute's values (its share of the mA's numerator)
    reference_label_mA: float


@dataclass(frozen=True)
class PerAttributeRule:
    """A per-attribute answer rule and its figures on the rows it was chosen on."""

    reference: float  # the global prior_correction the accuracy cap is measured against
    attributes: dict[str, AttributeRule]
    score: RuleScore  # mA and mean accuracy of answering by the chosen rule
    reference_score: RuleScore  # the same for the reference rule alone

    @property
    def corrections(self) -> dict[str, float]:
        """The overrides to store (``ModelConfig.prior_corrections``): attributes the rule moves."""
        return _overrides(self.attributes, self.reference)


def _overrides(attributes: Mapping[str, AttributeRule], reference: float) -> dict[str, float]:
    """Each attribute whose chosen correction is not ``reference``, with that correction."""
    return {name: rule.correction for name, rule in attributes.items() if rule.correction != reference}


def _per_attribute(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Per labelled attribute: accuracy, and the summed label mA of its values."""
    accuracy = {row["name"]: float(row["accuracy"]) for row in metrics["per_attribute"] if row["labelled"]}
    label_mA: dict[str, float] = dict.fromkeys(accuracy, 0.0)
    for row in metrics["per_label"]:
        name = row["label"].split("=", 1)[0]
        if name in label_mA:
            label_mA[name] += float(row["mA"])
    return accuracy, label_mA


def choose_per_attribute(describer: Describer, records: Sequence[Record], max_accuracy_drop: float,
                         reference: float = 1.0, candidates: Sequence[float] = CANDIDATES, batch_size: int = 32,
                         on_batch: Callable[[int], None] | None = None) -> PerAttributeRule:
    """Each attribute's ``prior_correction`` among ``candidates`` that maximises the label mA of its
    values while its accuracy on ``records`` stays within ``max_accuracy_drop`` of its accuracy at
    ``reference`` (ties: the larger correction, the one nearer the priors).

    Label mA and accuracy decompose by attribute (an attribute's answers depend on its own logits and
    correction only), so the choice is made per attribute from one scoring of each candidate and the
    chosen rule is then scored whole. Choose on validation rows, never the test split.
    """
    if not 0.0 <= max_accuracy_drop <= 1.0:
        raise ValueError(f"max_accuracy_drop: expected 0 <= x <= 1, got {max_accuracy_drop}")
    truths = labelled_truths(records)
    raw = _raw_logits(describer, records, batch_size, on_batch)
    model = describer.model
    metrics = {value: _metrics_under(model, raw, truths, value) for value in sorted({*candidates, reference})}
    figures = {value: _per_attribute(m) for value, m in metrics.items()}
    ref_accuracy, ref_label_mA = figures[reference]
    chosen: dict[str, AttributeRule] = {}
    for name in ref_accuracy:
        allowed = [v for v in figures if ref_accuracy[name] - figures[v][0][name] <= max_accuracy_drop + 1e-12]
        best = max(allowed, key=lambda v: (round(figures[v][1][name], 12), v))
        chosen[name] = AttributeRule(best, figures[best][0][name], ref_accuracy[name], figures[best][1][name],
                                     ref_label_mA[name])
    score = _score(reference, _metrics_under(model, raw, truths, reference, _overrides(chosen, reference)))
    return PerAttributeRule(reference, chosen, score, _score(reference, metrics[reference]))
