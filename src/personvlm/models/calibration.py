"""Calibrate the per-attribute ``unknown`` thresholds of a trained model on labelled validation data.

The heads always have a best guess; ``unknown`` is the decision not to say it. That decision is
taken per attribute because attributes differ in difficulty (gender is easy, shoe colour is not),
and on held-out labelled data because a model is over-confident on its own training rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from personvlm.data.msp60k import Record
from personvlm.describer import Describer
from personvlm.imageio import load_image
from personvlm.models.heads import calibrate_thresholds
from personvlm.schema import NAMES, UNKNOWN, AttributeValue, PersonDescription


@dataclass(frozen=True)
class AttributeCalibration:
    """What a threshold does to one attribute on the calibration rows."""

    n: int  # rows labelled (not unknown) for this attribute
    accuracy: float  # with no threshold (always answering)
    threshold: float
    coverage: float  # share of rows answered at the threshold
    answered_accuracy: float  # accuracy on the answered rows


def head_answers(describer: Describer, records: Sequence[Record], batch_size: int = 32,
                 ) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
    """Per attribute, the heads' confidence and whether their answer matched the label, for every
    row whose label is known. Thresholds are switched off while collecting."""
    config = describer.model.config
    saved = (config.unknown_thresholds, config.default_unknown_threshold)
    config.unknown_thresholds, config.default_unknown_threshold = {}, 0.0
    truths = labelled_truths(records)
    confidence: dict[str, list[float]] = {name: [] for name in NAMES}
    correct: dict[str, list[bool]] = {name: [] for name in NAMES}
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("calibration rows", total=len(records))
            for start in range(0, len(records), batch_size):
                chunk = records[start:start + batch_size]
                described = describer.describe([load_image(r.image) for r in chunk])
                for labels, desc in zip(truths[start:start + batch_size], described, strict=True):
                    _collect(labels, desc.attributes.items(), confidence, correct)
                progress.advance(task, len(chunk))
    finally:
        config.unknown_thresholds, config.default_unknown_threshold = saved
    return confidence, correct


def labelled_truths(records: Sequence[Record]) -> list[PersonDescription]:
    """Each record's labels, checked before any image is described: a row without any is an
    error naming it (nothing could be scored)."""
    truths = []
    for record in records:
        labels = record.labels()
        if labels is None:
            raise ValueError(f"{record.image} (line {record.line}): no labels (needs 'attributes' or 'one_hot')")
        truths.append(labels)
    return truths


def _collect(labels: PersonDescription, answers: Iterable[tuple[str, AttributeValue]],
             confidence: dict[str, list[float]], correct: dict[str, list[bool]]) -> None:
    for name, answer in answers:
        truth = labels.value(name)
        if truth != UNKNOWN:
            confidence[name].append(answer.confidence)
            correct[name].append(answer.value == truth)


def calibrate(describer: Describer, records: Sequence[Record], target_accuracy: float = 0.9,
              batch_size: int = 32) -> dict[str, AttributeCalibration]:
    """Thresholds (lowest reaching ``target_accuracy`` on answered rows) and their effect, per attribute."""
    confidence, correct = head_answers(describer, records, batch_size)
    labelled = [name for name in NAMES if confidence[name]]
    conf = {name: np.asarray(confidence[name]) for name in labelled}
    ok = {name: np.asarray(correct[name], dtype=bool) for name in labelled}
    thresholds = calibrate_thresholds(conf, ok, target_accuracy)
    out: dict[str, AttributeCalibration] = {}
    for name in labelled:
        answered = conf[name] >= thresholds[name]
        out[name] = AttributeCalibration(
            n=len(ok[name]), accuracy=float(ok[name].mean()), threshold=thresholds[name],
            coverage=float(answered.mean()),
            answered_accuracy=float(ok[name][answered].mean()) if answered.any() else float("nan"),
        )
    return out
