"""Cheap random choices from short lists.

numpy's ``Generator.choice`` converts its list argument to an array on every call (tens of
microseconds); the renderer makes dozens of such choices per crop, so these plain versions
keep the per-image budget for drawing. Both consume the generator deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """A uniform choice."""
    return options[int(rng.integers(len(options)))]


def weighted(rng: np.random.Generator, options: Sequence[T], weights: Sequence[float]) -> T:
    """A choice with the given (not necessarily normalised) weights."""
    r = rng.random() * sum(weights)
    for option, w in zip(options, weights, strict=True):
        r -= w
        if r < 0:
            return option
    return options[-1]
