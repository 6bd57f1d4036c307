"""Splits keep near-duplicate crops (same file-name prefix) together and are deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from personvlm.data.split import group_key, split_groups


def test_group_key_strips_only_the_frame_number() -> None:
    assert group_key("/x/part16_20231212032312_03697_003.jpg") == "part16_20231212032312_03697"
    assert group_key("part15_01629_012.jpg") == "part15_01629"
    assert group_key(Path("images/000123.jpg")) == "000123"


def test_groups_never_cross_splits_and_sizes_follow_fractions() -> None:
    paths = [f"p{g}_{k:03d}.jpg" for g in range(100) for k in range(1 + g % 4)]
    out = split_groups(paths, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    seen: dict[str, str] = {}
    for name, items in out.items():
        for p in items:
            assert seen.setdefault(group_key(p), name) == name
    assert sum(len(v) for v in out.values()) == len(paths)
    assert abs(len(out["train"]) - 0.8 * len(paths)) <= 4
    assert abs(len(out["val"]) - 0.1 * len(paths)) <= 4


def test_deterministic_by_seed_and_independent_of_order() -> None:
    paths = [f"g{g}_{k}.jpg" for g in range(50) for k in range(2)]
    a = split_groups(paths, {"train": 0.7, "val": 0.3}, seed=1)
    b = split_groups(list(reversed(paths)), {"train": 0.7, "val": 0.3}, seed=1)
    assert set(a["val"]) == set(b["val"])
    c = split_groups(paths, {"train": 0.7, "val": 0.3}, seed=2)
    assert set(a["val"]) != set(c["val"])


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        split_groups(["a_1.jpg"], {"train": 0.5, "val": 0.2})
