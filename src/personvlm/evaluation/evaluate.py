"""Run a describer over an MSP60K-format dataset and compute every reported figure in one place.

Why one function for all numbers: the README, the model card, ``personvlm evaluate`` and the
demo must agree, and the previous implementation's figures could not be trusted because each
place computed its own. Here:

- attributes are scored twice, from the heads (the structured output) and from the parsed
  compact caption, so a caption that drifts from the structure shows up as a gap;
- abstentions (``unknown``) count as wrong and are reported as coverage;
- natural captions are scored against the dataset's ``answer`` with the COCO toolkit's metrics,
  next to an image-blind baseline (one fixed caption for every image) on the same references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from personvlm.data.msp60k import Record
from personvlm.evaluation.attributes import (
    COLOR_ATTRIBUTES,
    confidence_points,
    confusion_matrix,
    coverage_curve,
    description_metrics,
    reliability,
)
from personvlm.evaluation.captions import caption_metrics, consensus_caption
from personvlm.imageio import ImageError, load_image
from personvlm.schema import NAMES, UNKNOWN, PersonDescription, parse_compact


class DescriberLike(Protocol):
    """What evaluation needs from a model: the public ``Describer`` API, nothing internal."""

    model_version: str

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]: ...


class EvaluationError(ValueError):
    """An input the evaluation cannot use; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    """One evaluated record: what was expected and what the model said in both styles."""

    record: Record
    truth: PersonDescription | None
    predicted: PersonDescription  # heads + compact caption
    natural: str
    parsed: PersonDescription | None  # the compact caption read back; None = did not parse

    @property
    def image(self) -> Path:
        return self.record.image


def describe_records(describer: DescriberLike, records: Sequence[Record], batch_size: int = 32,
                     skip_unreadable: bool = False,
                     on_batch: Callable[[int], None] | None = None) -> tuple[list[Sample], list[str]]:
    """Describe every record's image in both styles, ``batch_size`` images at a time.

    An image that fails to decode raises ``EvaluationError`` naming it and its JSONL line, or with
    ``skip_unreadable`` is listed in the returned skip list (``path:line: reason``) and left out.
    ``on_batch(n)`` is called after each batch with its size (progress bars).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    samples: list[Sample] = []
    skipped: list[str] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        kept, images = [], []
        for rec in chunk:
            try:
                images.append(load_image(rec.image))
                kept.append(rec)
            except ImageError as exc:
                where = f"line {rec.line}: {exc}"
                if not skip_unreadable:
                    raise EvaluationError(f"unreadable image at {where} (use --skip-missing to evaluate the rest)") from None
                skipped.append(where)
        if images:
            compact = describer.describe(images, style="compact")
            natural = describer.describe(images, style="natural")
            for rec, pred, nat in zip(kept, compact, natural, strict=True):
                samples.append(Sample(rec, rec.labels(), pred, nat.caption, parse_compact(pred.caption)))
        if on_batch is not None:
            on_batch(len(chunk))
    return samples, skipped


def _nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: undefined figures (e.g. accuracy of an attribute never labelled) become null."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def compute_metrics(samples: Sequence[Sample], model_version: str = "", skipped: Iterable[str] = ()) -> dict[str, Any]:
    """Every figure of an evaluation as one JSON-ready dict (the content of ``metrics.json``)."""
    if not samples:
        raise EvaluationError("no samples were evaluated (every image was skipped or the dataset is empty)")
    skipped = list(skipped)
    labelled = [s for s in samples if s.truth is not None]
    out: dict[str, Any] = {"model_version": model_version, "n": len(samples), "n_labelled": len(labelled),
                           "skipped": len(skipped), "skipped_items": skipped}
    out["parse_rate"] = sum(s.parsed is not None for s in samples) / len(samples)
    if labelled:
        truths = [s.truth for s in labelled if s.truth is not None]
        heads = description_metrics([s.predicted for s in labelled], truths)
        # an unparsable caption says nothing: every attribute abstains
        caption = description_metrics([s.parsed or PersonDescription() for s in labelled], truths)
        points = confidence_points([s.predicted for s in labelled], truths)
        n_known = sum(t.value(n) != UNKNOWN for t in truths for n in NAMES)
        out.update({
            "mA_heads": heads["mA"], "mA_caption": caption["mA"],
            "instance_heads": heads["instance"], "instance_caption": caption["instance"],
            "per_attribute": _merge_tables(heads["per_attribute"], caption["per_attribute"]),
            "per_label_heads": heads["per_label"],
            "color_confusion": [confusion_matrix([s.predicted for s in labelled], truths, a) for a in COLOR_ATTRIBUTES],
            "reliability": reliability(points),
            "coverage_curve": coverage_curve(points, n_known),
        })
    captioned = [s for s in samples if s.record.answer.strip()]
    if captioned:
        refs = [[s.record.answer] for s in captioned]
        out["captions"] = caption_metrics([s.natural for s in captioned], refs)
        out.update(out["captions"])
        out["n_captioned"] = len(captioned)
    if len(captioned) >= 2:
        base = consensus_caption(refs)
        out["baseline"] = {"name": "image-blind: the most typical reference caption, given for every other image",
                           "caption": base.caption, "source": str(captioned[base.source_item].image),
                           "n": len(captioned) - 1, **base.scores}
    return _nan_to_none(out)


def _merge_tables(heads: list[dict[str, Any]], caption: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per attribute: the heads' figures plus the parsed caption's accuracy and coverage."""
    rows = []
    for h, c in zip(heads, caption, strict=True):
        rows.append({**h, "caption_accuracy": c["accuracy"], "caption_coverage": c["coverage"]})
    return rows

