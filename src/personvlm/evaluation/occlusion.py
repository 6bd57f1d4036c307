"""Which horizontal band of a crop an attribute head's leaning comes from.

Renderer work needs this. When a head trained on renders answers wrong on real crops (real men
read as women), masking one band of each crop at a time with the crop's mean colour, and watching
the head's probability, shows where the misleading evidence lies: the head, the chest, the legs.
That in turn says what the renderer draws wrongly there. Occlusion rather than gradients: one
forward pass per band, any model, and the result reads in plain probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

# images -> one score per image (e.g. a head's probability of one value)
Score = Callable[[Sequence[Image.Image]], np.ndarray]


def mask_band(image: Image.Image, top: float, bottom: float) -> Image.Image:
    """A copy of ``image`` whose rows from ``top`` to ``bottom`` (fractions of the height) are
    filled with the image's mean colour: the band's content is gone, its brightness is not."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    h = pixels.shape[0]
    pixels[round(top * h):round(bottom * h)] = pixels.reshape(-1, 3).mean(axis=0)
    return Image.fromarray(np.round(pixels).astype(np.uint8))


def equal_bands(n: int) -> list[tuple[float, float]]:
    """``n`` bands of equal height, top to bottom."""
    if n < 1:
        raise ValueError(f"need at least one band, got {n}")
    return [(i / n, (i + 1) / n) for i in range(n)]


@dataclass(frozen=True)
class BandEffect:
    """Mean score per group with ``band`` masked (``None``: the crops as they are)."""

    band: tuple[float, float] | None
    means: dict[str, float]


def band_effects(score: Score, groups: Mapping[str, Sequence[Image.Image]],
                 bands: Sequence[tuple[float, float]]) -> list[BandEffect]:
    """The unmasked mean score of each group, then the same with each band masked in turn."""
    def means(edit: Callable[[Image.Image], Image.Image]) -> dict[str, float]:
        return {name: float(np.mean(score([edit(im) for im in images]))) for name, images in groups.items()}

    rows = [BandEffect(None, means(lambda im: im))]
    for top, bottom in bands:
        rows.append(BandEffect((top, bottom), means(lambda im, t=top, b=bottom: mask_band(im, t, b))))
    return rows
