"""Pinned renders for probing a model: crops whose named attributes are fixed, the rest sampled.

Renderer work asks what a head leans on in renders ("women with short hair: p(female)?") as well as
in real crops (``personvlm data real-probe``); the answer is a mean over many renders that share
the pinned values. Pins use the sampler's own names and values (``sample_outfit``), checked here so
a typo is an error rather than a pin the sampler silently ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from personvlm.data.synth.render import default_marginals, render_person
from personvlm.data.synth.sampling import BINARY, COLOR_ATTRS, EXCLUSIVE, SETS


def legal_pins() -> dict[str, tuple[str, ...]]:
    """Each pinnable attribute and its legal values (set members for bags/held/pose)."""
    m = default_marginals()
    legal: dict[str, tuple[str, ...]] = {name: tuple(m.exclusive[name]) for name in (*EXCLUSIVE, *COLOR_ATTRS)}
    legal.update({name: tuple(m.sets[name]) for name in SETS})
    legal.update({name: ("yes", "no") for name in BINARY})
    legal["hair_length"] = tuple(next(iter(m.hair.values())))
    legal["hair_color"] = tuple(m.hair_color)
    legal["headwear"] = tuple(m.headwear)
    return legal


def parse_pins(pins: Sequence[str]) -> dict[str, Any]:
    """``["gender=female", "bags=backpack+handbag", "held="]`` -> sampler pins; set attributes take
    ``+``-joined members (empty: none). Raises ValueError naming the first bad pin."""
    legal = legal_pins()
    out: dict[str, Any] = {}
    for pin in pins:
        name, sep, value = pin.partition("=")
        if not sep or name not in legal:
            raise ValueError(f"pin {pin!r}: expected NAME=VALUE with NAME one of {sorted(legal)}")
        values = tuple(v for v in value.split("+") if v) if name in SETS else (value,)
        bad = [v for v in values if v not in legal[name]]
        if bad:
            raise ValueError(f"pin {pin!r}: {bad[0]!r} is not a value of {name}; expected one of {legal[name]}")
        out[name] = values if name in SETS else value
    return out


def pinned_renders(pins: dict[str, Any], n: int, seed: int) -> list[Image.Image]:
    """``n`` crops with ``pins`` fixed (the same seed gives the same crops)."""
    return [render_person(pins, seed=seed, index=i).image for i in range(n)]
