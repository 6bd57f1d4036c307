"""Score the caption parser on labelled captions: ``parse(answer)`` mapped to MSP60K's one_hot
against the row's ``one_hot``. This measures the parser alone (no model), so it bounds how well
any caption-derived attribute can score, and it is how the parser's rules are checked on real
MSP60K phrasing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personvlm.data.msp60k import Record, load_jsonl
from personvlm.evaluation.attributes import LabelMetrics, instance_metrics, per_label
from personvlm.schema import ONE_HOT_NAMES, parse, to_one_hot

RARE_POSITIVES = 10  # fewer positives than this and an attribute's recall is noise


class ParseEvalError(ValueError):
    """The file cannot be scored (no labelled rows, a bad row range)."""


@dataclass(frozen=True)
class ParseEvalResult:
    """Per-attribute and overall scores of the parser on ``n`` labelled captions."""

    n: int
    rows: list[LabelMetrics]
    instance: dict[str, float]
    unlabelled: int

    @property
    def ma(self) -> float:
        return float(np.mean([r.ma for r in self.rows])) if self.rows else 0.0

    @property
    def rare(self) -> list[str]:
        """Attributes with fewer than ``RARE_POSITIVES`` positives: their recall is noise."""
        return [r.name for r in self.rows if r.positives < RARE_POSITIVES]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mA": self.ma,
            "n": self.n,
            "unlabelled": self.unlabelled,
            "instance": self.instance,
            "rare": self.rare,
            "per_attribute": {
                r.name: {"positives": r.positives, "accuracy": r.accuracy, "positive_recall": r.positive_recall,
                         "negative_recall": r.negative_recall, "mA": r.ma}
                for r in self.rows
            },
        }


def parse_row_range(spec: str | None, total: int) -> slice:
    """``"START:END"`` (Python slice bounds, either may be empty or negative) as a slice.

    Lets a user score a development part and a held-out part of one file without splitting it.
    """
    if not spec:
        return slice(None)
    parts = spec.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ParseEvalError(f"--rows must look like START:END (e.g. 0:2000 or -1000:), got {spec!r}") from None
    if not range(total)[slice(start, end)]:
        raise ParseEvalError(f"--rows {spec} selects no rows of {total}")
    return slice(start, end)


def score(records: Sequence[Record], progress: Callable[[int], None] | None = None) -> ParseEvalResult:
    """Parse every labelled record's caption and score it against its one_hot."""
    labelled = [r for r in records if r.one_hot is not None]
    if not labelled:
        raise ParseEvalError("no row has a 'one_hot' label to score against")
    pred = []
    for r in labelled:
        pred.append(to_one_hot(parse(r.answer)))
        if progress:
            progress(1)
    p, t = np.array(pred), np.array([r.one_hot for r in labelled])
    return ParseEvalResult(len(labelled), per_label(p, t, ONE_HOT_NAMES), instance_metrics(p, t),
                           len(records) - len(labelled))


def evaluate_file(path: Path, rows: str | None = None,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None) -> ParseEvalResult:
    """Load ``path`` (captions and labels; images are not needed) and score the selected rows."""
    records = load_jsonl(path, check_images=False)
    selected = records[parse_row_range(rows, len(records))]
    if on_total:
        on_total(len(selected))
    return score(selected, progress)


def result_table(result: ParseEvalResult, title: str) -> Any:
    """A rich table: one row per MSP60K attribute, rare (noisy) ones marked."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("attribute", "pos", "accuracy", "pos recall", "neg recall", "mA", "note"):
        table.add_column(col, justify="left" if col in ("attribute", "note") else "right")
    for r in result.rows:
        note = f"noise: < {RARE_POSITIVES} positives" if r.positives < RARE_POSITIVES else ""
        style = "dim" if note else ("red" if r.ma < 0.8 else None)
        table.add_row(r.name, str(r.positives), f"{r.accuracy:.3f}", f"{r.positive_recall:.3f}",
                      f"{r.negative_recall:.3f}", f"{r.ma:.3f}", note, style=style)
    return table
