"""The drawing surface shared by the person, carried items and vehicles.

A transparent RGBA layer with helpers for limbs and textured garments. Garments are painted
through a mask so a pattern (stripes, check, print, denim, quilting) is clipped to the garment
in one paste; only the covered rectangle is pasted, which keeps a crop's drawing near 1 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from personvlm.data.synth.colors import RGB, mix, scale, shade
from personvlm.data.synth.draws import pick
from personvlm.data.synth.skeleton import Pt


def _stroke(d: ImageDraw.ImageDraw, a: Pt, b: Pt, width: float, fill: Any) -> None:
    """A thick segment with round ends, so limbs meeting at a joint look continuous."""
    d.line([a, b], fill=fill, width=max(1, round(width)))
    r = width / 2
    for x, y in (a, b):
        d.ellipse([x - r, y - r, x + r, y + r], fill=fill)


class Painter:
    """A transparent RGBA layer plus helpers that draw limbs and paint textured garments."""

    def __init__(self, size: tuple[int, int], rng: np.random.Generator) -> None:
        self.size = size
        self.layer = Image.new("RGBA", size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.layer)
        self.rng = rng
        self.item_colors: dict[str, RGB] = {}  # one colour per item, however many parts draw it

    def item_color(self, item: str, names: list[str]) -> RGB:
        """The colour of ``item`` (e.g. the backpack), drawn once from ``names`` and then reused."""
        if item not in self.item_colors:
            self.item_colors[item] = shade(self.rng, pick(self.rng, names))
        return self.item_colors[item]

    def limb(self, a: Pt, b: Pt, width: float, color: RGB) -> None:
        _stroke(self.draw, a, b, width, (*color, 255))

    def ellipse(self, c: Pt, rx: float, ry: float, color: RGB) -> None:
        self.draw.ellipse([c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry], fill=(*color, 255))

    def poly(self, pts: list[Pt], color: RGB) -> None:
        self.draw.polygon(pts, fill=(*color, 255))

    def fabric(self, base: RGB, texture: str, denim: bool = False, quilt: float = 0.0) -> Image.Image:
        """A full-layer image of the garment's cloth: base colour plus its pattern (``quilt``:
        spacing of the seams of a padded coat; drawn here so the mask clips them to the coat)."""
        rng = self.rng
        img = Image.new("RGB", self.size, base)
        if texture == "plain" and not denim and not quilt:
            return self._folds(img)
        d = ImageDraw.Draw(img)
        w, h = self.size
        other = mix(base, (255, 255, 255) if sum(base) < 380 else (20, 20, 20), rng.uniform(0.35, 0.6))
        if texture == "stripes":
            period = int(rng.integers(4, 8))
            for y in range(int(rng.integers(0, period)), h, period):
                d.line([(0, y), (w, y)], fill=other, width=max(1, period // 3))
        elif texture == "check":
            period = int(rng.integers(5, 9))
            for y in range(0, h, period):
                d.line([(0, y), (w, y)], fill=other, width=1)
            for x in range(0, w, period):
                d.line([(x, 0), (x, h)], fill=other, width=1)
        elif texture == "print":
            for _ in range(int(rng.integers(10, 30))):
                x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, 3)
                d.ellipse([x - r, y - r, x + r, y + r], fill=other if rng.random() < 0.6 else scale(base, 0.6))
        if quilt:
            seam = scale(base, 0.7) if sum(base) > 90 else mix(base, (255, 255, 255), 0.2)
            for y in np.arange(rng.uniform(0, quilt), h, quilt):
                d.line([(0, y), (w, y)], fill=seam, width=1)
        if denim:
            for x in range(0, w, 3):
                d.line([(x, 0), (x, h)], fill=scale(base, 1.12), width=1)
        return self._folds(img)

    def _folds(self, cloth: Image.Image) -> Image.Image:
        """Folds and shading on ``cloth``: a smooth random field, stretched downwards (cloth
        hangs), multiplied in, with a little sheen on its crests.

        Real clothes are never flat. Drawn flat, detail on a garment meant "woman" to the model:
        folds like these (gain 0.25) on rendered men raised the shipped model's p(female) from
        0.25 to 0.42, and real men's coats are full of them."""
        w, h = self.size
        coarse = self.rng.normal(0.0, 1.0, (max(2, h // 10), max(2, w // 4))).astype(np.float32)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))[..., None]
        gain, sheen = self.rng.uniform(0.08, 0.22), self.rng.uniform(0.0, 14.0)
        pixels = np.asarray(cloth, dtype=np.float32) * (1 + gain * field) + sheen * np.clip(field, 0, None)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    def paint(self, cloth: Image.Image, shapes: list[tuple[str, Any]]) -> None:
        """Paint ``cloth`` through the union of ``shapes``: ("poly", pts) / ("limb", (a, b, w))."""
        mask = Image.new("L", self.size, 0)
        d = ImageDraw.Draw(mask)
        for kind, arg in shapes:
            if kind == "poly":
                d.polygon(arg, fill=255)
            else:
                _stroke(d, *arg, 255)
        box = mask.getbbox()
        if box:  # paste only the covered rectangle: a full-layer paste costs 10x more
            self.layer.paste(cloth.crop(box), box[:2], mask.crop(box))


def lerp(a: Pt, b: Pt, t: float) -> Pt:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def sorted_box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
