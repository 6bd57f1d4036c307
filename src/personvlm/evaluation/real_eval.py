"""Score a describer on hand-labelled real surveillance crops (``../shared/realcrops``).

The labels use a small, coarser vocabulary than our schema (``hat`` yes/no, one ``bag``, one
``holding`` item, ``skirt`` without length), so each model answer is first mapped into it. The
mapping lives here, in one table per field, because it decides what "correct" means on real
pixels and must be read and argued about, not hidden in a scorer loop.

Rules: a label ``unknown`` is not scored; a model ``unknown`` is scored as not correct, and the
share of labelled crops the model answered is reported beside each accuracy as ``coverage``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from personvlm.data.jsonl import read_json_lines
from personvlm.imageio import ImageError, load_image
from personvlm.schema import COLORS, UNKNOWN, PersonDescription
from personvlm.schema.description import Value

# The labelled fields and their legal values (README of the real-crop set), ``unknown`` aside.
FIELDS: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age": ("child", "adult", "elderly"),
    "orientation": ("front", "back", "side"),
    "motion": ("walking", "standing", "running"),
    "hair_length": ("short", "long"),
    "hat": ("yes", "no"),
    "upper_type": ("jacket", "coat", "shirt", "t-shirt", "sweater", "hoodie", "vest", "dress"),
    "upper_sleeve": ("long", "short"),
    "upper_color": COLORS,
    "lower_type": ("trousers", "jeans", "shorts", "skirt", "dress"),
    "lower_color": COLORS,
    "bag": ("none", "backpack", "shoulder bag", "handbag", "plastic bag", "suitcase"),
    "holding": ("phone", "umbrella", "cup", "paper", "none"),
}


def _same(attribute: str, renames: Mapping[str, str] | None = None) -> Callable[[PersonDescription], Value]:
    """Read ``attribute`` and rename the values that have a coarser name in the labels."""
    table = renames or {}
    return lambda d: table.get(str(d.value(attribute)), d.value(attribute))


def _single_item(attribute: str) -> Callable[[PersonDescription], Value]:
    """A set attribute read as the labels' single item: empty set -> "none", one item -> that
    item; two or more items cannot equal one label, so they are kept as a joined string (wrong)."""
    def read(d: PersonDescription) -> Value:
        value = d.value(attribute)
        if value == UNKNOWN:
            return UNKNOWN
        return "none" if not value else " + ".join(value)
    return read


# field -> how our description answers it (``unknown`` passes through everywhere)
MAPPING: dict[str, Callable[[PersonDescription], Value]] = {
    "gender": _same("gender"),
    "age": _same("age"),
    "orientation": _same("orientation"),
    "motion": _same("motion"),
    # a bald head is short hair in a short/long vocabulary
    "hair_length": _same("hair_length", {"bald": "short"}),
    "hat": _same("headwear", {"hat": "yes", "cap": "yes", "helmet": "yes", "none": "no"}),
    # cotton-padded coats are coats; a suit's upper part is a (suit) jacket
    "upper_type": _same("upper_type", {"cotton-padded coat": "coat", "suit": "jacket"}),
    # MSP60K also files sleeveless under short sleeves
    "upper_sleeve": _same("upper_sleeve", {"sleeveless": "short"}),
    "upper_color": _same("upper_color"),
    "lower_type": _same("lower_type", {"long skirt": "skirt", "short skirt": "skirt"}),
    "lower_color": _same("lower_color"),
    "bag": _single_item("bags"),
    "holding": _single_item("held"),
}


class LabelsError(ValueError):
    """Problems in a labels file: every one listed as ``file:line: what``."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{path}: {len(errors)} problem(s):\n" + "\n".join(errors))


# The optional field that names who a crop shows: crops of one person share it, so a probe can
# look at each person separately (several crops of one person are not independent evidence).
PERSON_FIELD = "person_id"


@dataclass(frozen=True)
class LabelledCrop:
    image: Path
    labels: dict[str, str]
    line: int
    person: str = UNKNOWN  # the row's ``person_id`` as text; unknown when the row has none

    def group(self, field: str) -> str:
        """The crop's value of a labels field, or of ``person_id``: what real-probe groups by."""
        return self.person if field == PERSON_FIELD else self.labels[field]


def load_labels(path: str | Path) -> list[LabelledCrop]:
    """Read a real-crop labels JSONL (image paths relative to it), checking every row and image."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(path, [f"{path}: labels file not found (expected a JSONL file)"])
    crops, errors = [], []
    try:
        lines = read_json_lines(path)
    except ValueError as e:
        raise LabelsError(path, [str(e)]) from None
    for line in lines:
        if line.error:
            errors.append(line.error)
            continue
        row, where = line.value, line.where
        if not isinstance(row, dict) or not isinstance(row.get("image"), str):
            errors.append(f"{where}: expected an object with a string 'image' field")
            continue
        image = path.parent / row["image"]
        if not image.is_file():
            errors.append(f"{where}: image not found: {image}")
        labels = {}
        for field, legal in FIELDS.items():
            value = row.get(field, UNKNOWN)
            if value != UNKNOWN and value not in legal:
                errors.append(f"{where}: {field}={value!r} is not one of {(*legal, UNKNOWN)}")
            labels[field] = value
        person = row.get(PERSON_FIELD, UNKNOWN)
        if isinstance(person, bool) or not isinstance(person, int | str):
            errors.append(f"{where}: {PERSON_FIELD}={person!r} is not an integer or a string")
        crops.append(LabelledCrop(image, labels, line.line, str(person)))
    if errors:
        raise LabelsError(path, errors)
    if not crops:
        raise LabelsError(path, [f"{path}: no rows"])
    return crops


@dataclass(frozen=True)
class FieldScore:
    field: str
    labelled: int
    answered: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def coverage(self) -> float | None:
        return self.answered / self.labelled if self.labelled else None


def map_description(desc: PersonDescription) -> dict[str, str]:
    """Our description in the labels' vocabulary, one value per field."""
    return {field: str(read(desc)) for field, read in MAPPING.items()}


def score(answers: Sequence[Mapping[str, str]], crops: Sequence[LabelledCrop]) -> list[FieldScore]:
    """Accuracy and coverage per field; unknown labels skipped, unknown answers not correct."""
    if len(answers) != len(crops):
        raise ValueError(f"{len(answers)} answers for {len(crops)} crops")
    out = []
    for field in FIELDS:
        pairs = [(a[field], c.labels[field]) for a, c in zip(answers, crops, strict=True) if c.labels[field] != UNKNOWN]
        out.append(FieldScore(field, len(pairs), sum(a != UNKNOWN for a, _ in pairs), sum(a == t for a, t in pairs)))
    return out


def evaluate_real(describe: Callable[[Sequence[Image.Image]], list[PersonDescription]],
                  crops: Sequence[LabelledCrop]) -> tuple[list[FieldScore], list[dict[str, str]]]:
    """Describe every crop (decoded through ``personvlm.imageio``) and score the mapped answers."""
    images = []
    for crop in crops:
        try:
            images.append(load_image(crop.image))
        except ImageError as exc:
            raise ImageError(exc.source, f"{exc.reason} (labels line {crop.line})") from None
    answers = [map_description(d) for d in describe(images)]
    return score(answers, crops), answers


def summary_json(scores: Sequence[FieldScore], n: int) -> dict[str, Any]:
    """``{field: accuracy, ..., "coverage": {field: coverage}, "n": crops}`` (the --json line)."""
    out: dict[str, Any] = {s.field: s.accuracy for s in scores}
    out["coverage"] = {s.field: s.coverage for s in scores}
    out["n"] = n
    return out
