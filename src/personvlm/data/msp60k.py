"""Reader for MSP60K-format JSONL: one JSON object per line with ``image``, ``answer`` and
optionally ``one_hot`` (58 MSP60K labels), ``attributes`` (full schema) and ``compact``.

Every problem in a file is collected and raised together in one ``DatasetError`` (``file:line:
what``), so a user fixes a broken export in one pass instead of one error per run. Images are
only checked for existence and readability here (cheap, no decoding); they are decoded later,
at use, through ``personvlm.imageio``. A missing image is never replaced by a placeholder: it
is an error, or with ``skip_missing=True`` the row is dropped and counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personvlm.data.jsonl import read_json_lines
from personvlm.schema import ONE_HOT_LEN, PersonDescription, from_one_hot, parse_compact

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Everything wrong with one JSONL file; ``errors`` holds one ``file:line: what`` per problem."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        super().__init__(f"{path}: {len(errors)} problem(s):\n" + "\n".join(errors))


@dataclass(frozen=True)
class Record:
    """One training/evaluation sample; ``line`` is its 1-based line in the JSONL, for messages."""

    image: Path
    answer: str
    one_hot: list[int] | None = None
    attributes: PersonDescription | None = None
    compact: str | None = None
    line: int = 0

    def labels(self) -> PersonDescription | None:
        """The best structured labels this row has: full ``attributes`` if given, else ``one_hot``."""
        if self.attributes is not None:
            return self.attributes
        return from_one_hot(self.one_hot) if self.one_hot is not None else None


@dataclass
class LoadResult:
    """Records that passed validation plus the rows skipped for missing images."""

    path: Path
    records: list[Record]
    skipped_missing: list[str] = field(default_factory=list)

    @property
    def n_with_one_hot(self) -> int:
        return sum(r.one_hot is not None for r in self.records)

    @property
    def n_with_attributes(self) -> int:
        return sum(r.attributes is not None for r in self.records)

    @property
    def n_with_compact(self) -> int:
        return sum(r.compact is not None for r in self.records)


def resolve_image(value: str, image_root: Path) -> Path:
    """Where a row's image lives.

    Relative paths are taken against ``image_root``. Absolute paths are used as they are when
    they exist; otherwise the file name is looked up in ``image_root``, because MSP60K's own
    JSONL carries absolute paths of the authors' machine (``/workspace/data/MSP60k/...``).
    """
    p = Path(value)
    if not p.is_absolute():
        return image_root / p
    if p.exists():
        return p
    return image_root / p.name


def _check_image(path: Path) -> str | None:
    """A reason the image cannot be used, or None. Existence and readability only: no decoding."""
    if not path.exists():
        return f"image not found: {path}"
    if not path.is_file():
        return f"image is not a file: {path}"
    if not os.access(path, os.R_OK):
        return f"image not readable (permissions): {path}"
    if path.stat().st_size == 0:
        return f"image file is empty (0 bytes): {path}"
    return None


def _check_one_hot(value: Any) -> tuple[list[int] | None, str | None]:
    if not isinstance(value, list):
        return None, f"'one_hot' must be a list of {ONE_HOT_LEN} ints (0/1), got {type(value).__name__}"
    if len(value) != ONE_HOT_LEN:
        return None, f"'one_hot' must have {ONE_HOT_LEN} entries, got {len(value)}"
    bad = [i for i, v in enumerate(value) if isinstance(v, bool) or v not in (0, 1)]
    if bad:
        return None, f"'one_hot' entries must be 0 or 1; bad at index {bad[:5]} (e.g. {value[bad[0]]!r})"
    return [int(v) for v in value], None


def _check_attributes(value: Any) -> tuple[PersonDescription | None, str | None]:
    if not isinstance(value, Mapping):
        return None, f"'attributes' must be an object {{name: value}}, got {type(value).__name__}"
    try:
        return PersonDescription.from_dict({"attributes": value}), None
    except (KeyError, ValueError, TypeError) as e:
        return None, f"'attributes' invalid: {e.args[0] if e.args else e}"


def _parse_row(obj: Any, image_root: Path, lineno: int,
               check_images: bool = True) -> tuple[Record | None, list[str], bool]:
    """Validate one decoded JSON value. Returns (record, problems, image_missing)."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"], False
    problems: list[str] = []
    image = obj.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append("'image' must be a non-empty string (path to the crop)")
    answer = obj.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        problems.append("'answer' must be a non-empty string (the caption)")
    one_hot = attributes = compact = None
    if obj.get("one_hot") is not None:
        one_hot, err = _check_one_hot(obj["one_hot"])
        problems += [err] if err else []
    if obj.get("attributes") is not None:
        attributes, err = _check_attributes(obj["attributes"])
        problems += [err] if err else []
    if obj.get("compact") is not None:
        compact = obj["compact"]
        if not isinstance(compact, str) or parse_compact(compact) is None:
            problems.append(f"'compact' is not a caption in the compact grammar: {compact!r:.80}")
            compact = None
    missing = False
    path = None
    if isinstance(image, str) and image.strip():
        path = resolve_image(image, image_root)
        reason = _check_image(path) if check_images else None
        if reason:
            problems.append(reason)
            missing = reason.startswith("image not found")
    if problems:
        return None, problems, missing and len(problems) == 1
    assert path is not None and isinstance(answer, str)
    return Record(path, answer, one_hot, attributes, compact, lineno), [], False


def scan_jsonl(path: str | Path, image_root: str | Path | None = None, skip_missing: bool = False,
               check_images: bool = True) -> LoadResult:
    """Read and validate a whole file; raise ``DatasetError`` with every problem found.

    ``check_images=False`` validates text and labels only, for work on captions without the
    crops (MSP60K's caption files point at the authors' machine).

    ``image_root`` defaults to the JSONL's folder. With ``skip_missing`` rows whose only problem
    is a missing image are dropped and listed in ``skipped_missing`` (other problems still raise).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, [f"{path}: dataset file not found (expected a JSONL file)"])
    root = Path(image_root) if image_root is not None else path.parent
    if image_root is not None and not root.is_dir():
        raise DatasetError(path, [f"{path}: image root {root} is not a directory"])
    errors: list[str] = []
    skipped: list[str] = []
    records: list[Record] = []
    try:
        lines = read_json_lines(path)
    except ValueError as e:
        raise DatasetError(path, [str(e)]) from None
    for line in lines:
        if line.error:
            errors.append(line.error)
            continue
        record, problems, only_missing = _parse_row(line.value, root, line.line, check_images)
        if record is not None:
            records.append(record)
        elif only_missing and skip_missing:
            skipped.append(f"{line.where}: {problems[0]}")
        else:
            errors.extend(f"{line.where}: {p}" for p in problems)
    if errors:
        raise DatasetError(path, errors)
    if not records and not skipped:
        raise DatasetError(path, [f"{path}: no records (the file is empty)"])
    if skipped:
        log.warning("%s: skipped %d row(s) whose image is missing (first: %s)", path, len(skipped), skipped[0])
    return LoadResult(path, records, skipped)


def load_jsonl(path: str | Path, image_root: str | Path | None = None, skip_missing: bool = False,
               check_images: bool = True) -> list[Record]:
    """The validated records of an MSP60K-format JSONL (see ``scan_jsonl`` for the rules)."""
    return scan_jsonl(path, image_root, skip_missing, check_images).records
