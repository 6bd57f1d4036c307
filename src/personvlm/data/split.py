"""Train/val/test splits that keep near-duplicate crops on one side.

MSP60K crops of one person come from consecutive frames and share a file-name prefix
(``part16_20231212032312_03697_003.jpg`` and ``..._03697_004.jpg``). Splitting rows at random
would put near-identical images in train and test and inflate every reported number, so rows
are grouped by that prefix and whole groups are assigned to a split.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

_FRAME_SUFFIX = re.compile(r"_\d+$")

T = TypeVar("T")


def group_key(image: str | Path) -> str:
    """The near-duplicate group of an image: its file stem without the trailing ``_NNN`` frame number."""
    return _FRAME_SUFFIX.sub("", Path(image).stem)


def split_groups(items: Sequence[T], fractions: Mapping[str, float], seed: int = 0,
                 key: str = "image") -> dict[str, list[T]]:
    """Assign whole groups to splits so each split gets about ``fractions[name]`` of the rows.

    ``items`` are objects with an ``image`` attribute (e.g. ``Record``) or the paths themselves.
    Deterministic for a given seed and set of groups (order of ``items`` does not matter for
    which group lands where; items keep their input order inside a split).
    """
    if not fractions:
        raise ValueError("fractions must name at least one split")
    if any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(group_key(getattr(item, key, item)), []).append(i)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    names = list(fractions)
    targets = {n: fractions[n] * len(items) for n in names}
    filled = dict.fromkeys(names, 0)
    assignment: dict[int, str] = {}
    for g in order:
        # Greedy: give the group to the split furthest below its target (ties: first named).
        name = max(names, key=lambda n: (targets[n] - filled[n]) / (targets[n] or 1) if targets[n] else -1e9)
        filled[name] += len(groups[g])
        for i in groups[g]:
            assignment[i] = name
    return {n: [items[i] for i in range(len(items)) if assignment[i] == n] for n in names}
