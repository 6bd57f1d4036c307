"""Reading JSONL files line by line so that every bad line can be reported at once.

Datasets and label files are checked whole before anything runs: a user fixing a file wants the
list of all its problems with their ``file:line``, not one error per attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line: its parsed ``value``, or the ``error`` saying why it is not JSON."""

    where: str  # "file:line", the prefix of every message about this line
    line: int
    value: Any = None
    error: str | None = None


def read_json_lines(path: Path) -> list[JsonLine]:
    """Every non-blank line of ``path`` parsed as JSON (universal newlines, UTF-8).

    Malformed lines come back with ``error`` set instead of raising. A file that is not UTF-8
    raises ``ValueError`` naming it, since no line of it can be trusted.
    """
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        try:
            lines = list(fh)
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            out.append(JsonLine(where, lineno, json.loads(raw)))
        except json.JSONDecodeError as e:
            out.append(JsonLine(where, lineno, error=f"{where}: malformed JSON ({e.msg} at column {e.colno})"))
    return out
