"""Named colours to believable RGB shades.

Each schema colour is a band in HSV, not one RGB value: a model that only ever sees pure
(255, 0, 0) for "red" fails on a maroon jacket. The bands follow what a captioner would call
the colour in a real camera frame: "black" clothing is a dark gray, "white" is a light gray,
navy is still "blue", and bands do not overlap so the name stays right.
"""

from __future__ import annotations

import colorsys

import numpy as np

RGB = tuple[int, int, int]

# name: (hue range in degrees, saturation range, value range)
_BANDS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "black": ((0, 360), (0.0, 0.25), (0.02, 0.22)),  # real black coats measure V 0.00..0.18
    "white": ((0, 360), (0.0, 0.07), (0.80, 0.98)),
    "gray": ((0, 360), (0.0, 0.12), (0.32, 0.68)),
    "red": ((-10, 8), (0.60, 0.95), (0.50, 0.92)),
    "orange": ((18, 32), (0.70, 1.0), (0.80, 1.0)),
    "yellow": ((46, 58), (0.60, 0.95), (0.82, 1.0)),
    "green": ((90, 150), (0.40, 0.85), (0.35, 0.80)),
    "blue": ((198, 232), (0.15, 0.85), (0.40, 1.0)),  # pale sky blue (S 0.15, V 1.0 in real crops) to navy
    "purple": ((268, 292), (0.40, 0.75), (0.38, 0.78)),
    "pink": ((322, 348), (0.28, 0.60), (0.85, 1.0)),
    "brown": ((18, 32), (0.45, 0.75), (0.26, 0.50)),
    "beige": ((32, 44), (0.18, 0.35), (0.74, 0.90)),
    # hair colours that are not clothing colours
    # golden to ash: real blonde hair on camera is dull (the real crops' woman: H ~50, S 0.2-0.3,
    # V 0.55-0.75); drawn only golden, her hair was nearest a beige hat
    "blonde": ((38, 52), (0.18, 0.60), (0.55, 0.88)),
}
_HAIR_BANDS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "black": ((0, 360), (0.0, 0.2), (0.05, 0.16)),
    "brown": ((18, 30), (0.45, 0.70), (0.20, 0.40)),
    "gray": ((0, 360), (0.0, 0.06), (0.52, 0.72)),
    "white": ((0, 360), (0.0, 0.05), (0.84, 0.96)),
    "red": ((8, 20), (0.60, 0.85), (0.48, 0.70)),
}


def _from_band(rng: np.random.Generator, band: tuple[tuple[float, float], ...]) -> RGB:
    (h0, h1), (s0, s1), (v0, v1) = band
    h = (rng.uniform(h0, h1) % 360) / 360
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return round(r * 255), round(g * 255), round(b * 255)


def shade(rng: np.random.Generator, name: str) -> RGB:
    """A random RGB shade inside the band of the colour ``name``."""
    return _from_band(rng, _BANDS[name])


def denim_shade(rng: np.random.Generator) -> RGB:
    """Blue denim: less saturated than other blue cloth (worn jeans in real crops measure
    S 0.05..0.45), so jeans look like jeans and not like blue trousers."""
    return _from_band(rng, ((205, 228), (0.12, 0.45), (0.35, 0.78)))


def hair_shade(rng: np.random.Generator, name: str) -> RGB:
    """A hair colour shade; hair bands differ from clothing bands (black hair is darker)."""
    return _from_band(rng, _HAIR_BANDS.get(name) or _BANDS[name])


def skin_tone(rng: np.random.Generator) -> RGB:
    """A skin tone from light to dark (one hue family, varying value)."""
    t = rng.beta(2.5, 2.0)
    light, dark = np.array([236, 196, 170]), np.array([96, 62, 44])
    return tuple(int(c) for c in light * t + dark * (1 - t))  # type: ignore[return-value]


def scale(rgb: RGB, factor: float) -> RGB:
    """Darken (<1) or lighten (>1) a colour, for seams, soles and shaded parts."""
    return tuple(int(min(255, max(0, c * factor))) for c in rgb)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]
