"""One labelled crop: sample an outfit, draw the person in a scene, degrade, and write down
only what the pixels show.

The label is the *visible* description, which is what a model can learn and what a careful
annotator would write: glasses and masks are ``unknown`` from behind, shoes are ``unknown``
when the crop or an occluder cuts the feet off, the lower garment is ``unknown`` under a
graduation gown or a car bonnet, hair under a helmet is ``unknown``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from personvlm.data.synth.colors import shade
from personvlm.data.synth.draws import pick
from personvlm.data.synth.painter import Painter
from personvlm.data.synth.person import draw_person, facing_for
from personvlm.data.synth.sampling import Marginals, sample_outfit
from personvlm.data.synth.scene import background, degrade, ground_shadow, shade_person
from personvlm.schema import NAMES, UNKNOWN, PersonDescription

CANVAS_H = 192
MIN_HEIGHT, MAX_HEIGHT = 48, 256
# Real crops are a detector's box round the person, widened a little (the real crops': 8% a side):
# 0.30-0.70 of their height wide, median 0.42. A whole 1:2 canvas (median 0.50, never below 0.45)
# left the model a margin real crops never have, and real crops bars of padding at the sides
# (``letterbox``) renders never had. A few boxes stay loose, as a hand-drawn one would be.
LOOSE_CROPS = 0.1
BOX_MARGIN = (0.12, 0.32)  # per side, of the person's width: a detector's own slack plus the widening
MIN_BOX = 0.28  # of the crop's height: the real crops' narrowest is 0.30


@dataclass
class Rendered:
    """A rendered crop, its visible label and the scene facts a caption may mention."""

    image: Image.Image
    description: PersonDescription
    scene: dict[str, Any]
    jpeg_quality: int

    def jpeg(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, "JPEG", quality=self.jpeg_quality)
        return buf.getvalue()


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image ``index`` of a run: depends on (seed, index) only, never on
    which worker renders it, so output bytes are the same for any ``--workers``."""
    return np.random.default_rng([seed, index])


def caption_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"personvlm-synth:{seed}:{index}")


def _out_size(rng: np.random.Generator, canvas: tuple[int, int]) -> tuple[int, int]:
    # Real detector crops are 70..230 px tall; lean toward that range, cover 48..256.
    h = int(np.clip(rng.lognormal(np.log(115), 0.35), MIN_HEIGHT, MAX_HEIGHT))
    w = max(16, round(h * canvas[0] / canvas[1] * rng.uniform(0.9, 1.1)))
    return w, h


def render_person(values: Mapping[str, Any] | None = None, seed: int = 0, index: int = 0,
                  marginals: Marginals | None = None) -> Rendered:
    """Render one crop. ``values`` pins attributes (others are sampled from ``marginals``).

    Returns the image, the *visible* description (see the module docstring) and the scene.
    """
    rng = image_rng(seed, index)
    marginals = marginals or default_marginals()
    outfit = sample_outfit(rng, marginals, values)
    view = outfit["orientation"]
    wide = outfit["motion"] in ("riding bicycle", "sitting") and view == "side"
    canvas = (132 if wide else 96, CANVAS_H)
    bg, bg_phrase = background(canvas, rng)

    u = CANVAS_H * rng.uniform(0.8, 0.9)
    if outfit["motion"] == "sitting":
        u *= 1.12
    ground = CANVAS_H * rng.uniform(0.93, 0.99)
    cut_feet = rng.random() < 0.06
    if cut_feet:
        ground = CANVAS_H * rng.uniform(1.04, 1.12)
    cx = canvas[0] * (0.5 + rng.uniform(-0.06, 0.06))
    if "umbrella" in outfit["held"]:
        u *= 0.85  # leave room above the head for the open canopy

    facing = facing_for(view, rng)
    if outfit["motion"] == "riding bicycle" and view == "side":
        u *= 0.85  # the bicycle is longer than the rider is tall: keep both in the crop
        cx -= facing * u * 0.1
    others = rng.random() < 0.2
    neighbour = _draw_neighbour(bg, rng, marginals, canvas, u, ground) if others else None
    painter = Painter(canvas, rng)
    drawn = draw_person(painter, outfit, u, cx, ground, facing)
    person_x = _alpha_columns(painter.layer)
    ground_shadow(bg, cx, min(ground, CANVAS_H - 2), u * 0.16, rng.uniform(0.15, 0.4))
    layer = shade_person(painter.layer, cx, (drawn.bbox[2] - drawn.bbox[0]) / 2, rng)
    bg.paste(layer, (0, 0), layer)

    occluded_from = None
    if rng.random() < 0.08:
        occluded_from = _draw_occluder(bg, rng, ground, u)
    pole = rng.random() < 0.05
    if pole:
        _draw_pole(bg, rng, cx, u)
    bottom_visible = CANVAS_H if occluded_from is None else min(CANVAS_H, occluded_from)

    if rng.random() >= LOOSE_CROPS:
        left, right = detector_box(person_x, neighbour, canvas[0], rng)
        bg = bg.crop((left, 0, right, CANVAS_H))
    out_size = _out_size(rng, bg.size)
    image, camera = degrade(bg, out_size, rng)
    label = visible_label(outfit, drawn.face_visible, drawn.hands_visible, drawn.feet_y, bottom_visible,
                          ground - u, u, out_size[1], "low-resolution" in camera["quality"])
    scene = {
        "quality": camera["quality"],
        "lighting": camera["lighting"],
        "background": bg_phrase,
        "occluded": occluded_from is not None or cut_feet or pole,
        "others": others,
    }
    return Rendered(image, label, scene, camera["jpeg_quality"])


def visible_label(outfit: Mapping[str, Any], face: bool, hands: bool, feet_y: float, bottom_visible: float,
                  top: float, u: float, out_h: int, low_res: bool) -> PersonDescription:
    """The description of what can be seen: worn attributes minus the hidden ones."""
    v = {k: outfit[k] for k in NAMES}
    if not face:
        v["glasses"] = v["mask"] = UNKNOWN
    if not hands:
        v["gloves"] = UNKNOWN
    if feet_y > bottom_visible:
        v["shoes_type"] = v["shoes_color"] = UNKNOWN
    knee_y = top + u * 0.74
    if knee_y > bottom_visible or v["upper_type"] == "graduation gown":
        v["lower_type"] = v["lower_color"] = UNKNOWN
        if v["upper_type"] == "dress":
            v["lower_type"] = "dress"
            v["lower_color"] = outfit["lower_color"]
    if v["headwear"] == "helmet" or (v["headwear"] != "none" and v["hair_length"] == "bald"):
        v["hair_length"] = v["hair_color"] = UNKNOWN
    # A face a few pixels high does not show glasses either way.
    if low_res or out_h < 64:
        v["glasses"] = UNKNOWN
    return PersonDescription.from_values(v)


def _alpha_columns(layer: Image.Image) -> tuple[int, int]:
    """The first and one past the last column a layer draws on (the whole width when empty)."""
    box = layer.getchannel("A").getbbox()
    return (box[0], box[2]) if box else (0, layer.width)


def detector_box(person: tuple[int, int], neighbour: tuple[int, int] | None, width: int,
                 rng: np.random.Generator) -> tuple[int, int]:
    """Left and right edges of a detector-like box round the ``person`` columns, with a margin of
    ``BOX_MARGIN`` a side, a little off centre, at least ``MIN_BOX`` of the height wide, inside the
    canvas ``width``. A ``neighbour``'s nearest third stays in the box, so a crowded scene still
    shows part of another person."""
    x0, x1 = person
    if neighbour is not None:
        n0, n1 = neighbour
        third = (n1 - n0) / 3
        if n1 <= x0 + third:
            x0 = min(x0, round(n1 - third))
        elif n0 >= x1 - third:
            x1 = max(x1, round(n0 + third))
    span = x1 - x0
    shift = rng.uniform(-0.03, 0.03) * span
    left = x0 - span * rng.uniform(*BOX_MARGIN) + shift
    right = x1 + span * rng.uniform(*BOX_MARGIN) + shift
    short = MIN_BOX * CANVAS_H - (right - left)
    if short > 0:
        left, right = left - short / 2, right + short / 2
    return max(0, round(left)), min(width, round(right))


def _draw_neighbour(bg: Image.Image, rng: np.random.Generator, marginals: Marginals, canvas: tuple[int, int],
                    u: float, ground: float) -> tuple[int, int]:
    """Part of another pedestrian at the crop edge, behind the main person (a crowded scene).

    Returns the columns the neighbour covers, for the crop box to keep part of them."""
    other = sample_outfit(rng, marginals, {"motion": pick(rng, ["walking", "standing"])})
    side = 1 if rng.random() < 0.5 else -1
    cx = canvas[0] * (0.5 + side * rng.uniform(0.4, 0.62))  # far enough to be a neighbour, near enough to show
    painter = Painter(canvas, rng)
    draw_person(painter, other, u * rng.uniform(0.85, 1.05), cx, ground - rng.uniform(0, 12),
                facing_for(other["orientation"], rng))
    bg.paste(painter.layer, (0, 0), painter.layer)
    return _alpha_columns(painter.layer)


def _draw_occluder(bg: Image.Image, rng: np.random.Generator, ground: float, u: float) -> float:
    """Something in front of the lower body (a car bonnet, a bench, a bush, a barrier).

    Returns the y where the occluder starts, i.e. where the visible part of the person ends.
    """
    w, h = bg.size
    d = ImageDraw.Draw(bg)
    top = min(ground - u * rng.uniform(0.05, 0.45), h - 6)
    kind = pick(rng, ["car", "bush", "barrier"])
    if kind == "car":
        col = shade(rng, pick(rng, ["white", "black", "gray", "red", "blue"]))
        d.rounded_rectangle([-10, top, w + 10, h + 10], radius=int(rng.integers(4, 14)), fill=col)
    elif kind == "bush":
        col = shade(rng, "green")
        for _ in range(8):
            x, r = rng.uniform(0, w), rng.uniform(8, 20)
            d.ellipse([x - r, top + rng.uniform(0, 10), x + r, h + r], fill=col)
        top += 4
    else:
        col = shade(rng, pick(rng, ["gray", "yellow", "red", "white"]))
        d.rectangle([0, top, w, h], fill=col)
        d.line([(0, top + 3), (w, top + 3)], fill=(30, 30, 30), width=2)
    return float(top)


def _draw_pole(bg: Image.Image, rng: np.random.Generator, cx: float, u: float) -> None:
    """A thin post or sign pole in front of the person, off the body's centre line (it hides
    a strip, never a whole garment, so the label is unchanged)."""
    side = 1 if rng.random() < 0.5 else -1
    x = cx + side * u * rng.uniform(0.06, 0.14)
    width = u * rng.uniform(0.02, 0.04)
    col = shade(rng, pick(rng, ["gray", "black", "white", "green", "yellow"]))
    ImageDraw.Draw(bg).rectangle([x - width / 2, 0, x + width / 2, bg.height], fill=col)


_DEFAULT: list[Marginals] = []


def default_marginals() -> Marginals:
    """The bundled MSP60K-derived marginals, loaded once per process."""
    if not _DEFAULT:
        _DEFAULT.append(Marginals.load())
    return _DEFAULT[0]
