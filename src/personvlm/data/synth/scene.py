"""Everything around the person: backgrounds, clutter, lighting and camera degradations.

The target domain is a surveillance camera: a street or square filmed from above (pavement,
grass, road markings, walls with windows), small people, dull winter light, blur, sensor
noise, heavy JPEG. Each effect is drawn from a distribution wide enough that the real crops
fall inside it, and reported in a ``scene`` dict so captions can mention what was rendered.

Speed matters (the whole pipeline runs at > 150 crops/s on two cores), so per-pixel work is
done with lookup tables (``Image.point``), resampling and one precomputed noise field that
each image takes a random window of, never with Python loops over pixels.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from personvlm.data.synth.colors import RGB, mix, scale, shade
from personvlm.data.synth.draws import pick, weighted

_BANK_SIZE = 288  # larger than any crop (<= 256 px tall), so a window always fits
_GRAIN_STD = 32  # grain images store 128 + 32 * N(0, 1)


@cache
def _grain_bank(blur: int, color: bool) -> tuple[Image.Image, ...]:
    """A few fixed grain images (zero mean at 128) per blotch size, made once per process.

    Seeded by constants, so every worker holds the same bank and output bytes do not depend
    on which process renders which index. Per image only a window is cut out and mapped
    through a lookup table, which is ~20x cheaper than drawing fresh noise in numpy.
    """
    rng = np.random.default_rng(1000 + blur * 2 + color)
    channels = 3 if color else 1
    bank = []
    for _ in range(2):
        if blur > 1:
            small = rng.standard_normal((_BANK_SIZE // blur, _BANK_SIZE // blur), dtype=np.float32)
            blotches = Image.fromarray((small * 40 + 128).clip(0, 255).astype(np.uint8))
            up = np.asarray(blotches.resize((_BANK_SIZE, _BANK_SIZE), Image.BILINEAR), np.float32)
            field = (up - 128) / 40 * 0.9 + rng.standard_normal(up.shape, dtype=np.float32) * 0.4
        else:
            field = rng.standard_normal((_BANK_SIZE, _BANK_SIZE, channels), dtype=np.float32).squeeze()
        field /= field.std() or 1.0
        bank.append(Image.fromarray((128 + _GRAIN_STD * field).clip(0, 255).astype(np.uint8)))
    return tuple(bank)


def warm_caches() -> None:
    """Build every grain bank now: called in the parent before forking workers, so they share
    the banks instead of each spending ~0.3 s of CPU building its own."""
    _grain_bank(0, True)
    for blur in (0, 2, 3, 4, 5, 6, 7):
        _grain_bank(blur, False)


def _grain(rng: np.random.Generator, size: tuple[int, int], blur: int = 0, color: bool = False) -> Image.Image:
    """A random window of a bank grain image: "L" (monochrome) or "RGB", 128 = no change."""
    bank = _grain_bank(blur, color)
    img = bank[int(rng.integers(len(bank)))]
    w, h = size
    x, y = int(rng.integers(0, _BANK_SIZE - w)), int(rng.integers(0, _BANK_SIZE - h))
    return img.crop((x, y, x + w, y + h))


def _textured(base: RGB, size: tuple[int, int], rng: np.random.Generator, sigma: float, blur: int = 0) -> Image.Image:
    """A flat colour with grain (asphalt, grass, plaster) of strength ``sigma`` (0..255 units);
    ``blur`` makes the grain blotchy."""
    grain = _grain(rng, size, blur)
    steps = (np.arange(256, dtype=np.float32) - 128) / _GRAIN_STD * sigma
    bands = [grain.point(np.clip(c + steps, 0, 255).astype(np.uint8).tolist()) for c in base]
    return Image.merge("RGB", bands)


def _add_noise(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Sensor noise: colour grain of std ``sigma`` added to ``img`` (C code, no float arrays)."""
    grain = _grain(rng, img.size, color=True)
    lut = np.clip(128 + (np.arange(256) - 128) / _GRAIN_STD * sigma, 0, 255).astype(np.uint8).tolist()
    scaled = grain.point(lut * 3)
    return ImageChops.add(img, scaled, 1.0, -128)


GROUNDS = ("pavement", "grass", "road", "indoor floor", "tiles")


def background(size: tuple[int, int], rng: np.random.Generator) -> tuple[Image.Image, str]:
    """A background and a short phrase for it (for the caption).

    Mostly ground seen from above (the camera looks down, so ground fills the crop), sometimes
    a wall or shop front behind the person, sometimes a plain gradient.
    """
    w, h = size
    kind = pick(rng, ["ground", "ground", "ground", "street", "wall", "gradient"])
    if kind == "gradient":
        top, bottom = _random_surface(rng), _random_surface(rng)
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        column = np.asarray(top, np.float32) * (1 - ramp) + np.asarray(bottom, np.float32) * ramp
        img = Image.fromarray(column.astype(np.uint8)).resize((w, h), Image.NEAREST)
        return _add_noise(img, rng, 4), "a plain backdrop"
    ground = weighted(rng, GROUNDS, [0.45, 0.2, 0.15, 0.1, 0.1])
    img = _ground(ground, size, rng)
    phrase = {"pavement": "a paved area", "grass": "a grassy area", "road": "a street", "indoor floor": "an indoor area",
              "tiles": "a tiled floor"}[ground]
    if kind in ("street", "wall"):
        horizon = int(h * rng.uniform(0.15, 0.6) if kind == "street" else h * rng.uniform(0.6, 0.9))
        wall = _wall((w, horizon), rng)
        img.paste(wall, (0, 0))
        phrase = "a building wall" if kind == "wall" else "a street with buildings"
    _clutter(img, rng)
    return img, phrase


def _random_surface(rng: np.random.Generator) -> RGB:
    return shade(rng, pick(rng, ["gray", "gray", "white", "beige", "brown", "green", "blue", "black"]))


def _ground(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    if kind == "pavement":
        base = tuple(int(v) for v in np.array([150, 150, 148]) * rng.uniform(0.6, 1.15))
        img = _textured(base, size, rng, 9, blur=int(rng.integers(3, 8)))
        d = ImageDraw.Draw(img)
        if rng.random() < 0.5:  # slab joints
            step = int(rng.integers(14, 30))
            off = int(rng.integers(0, step))
            for y in range(off, h, step):
                d.line([(0, y), (w, y + rng.uniform(-4, 4))], fill=scale(base, 0.85), width=1)
    elif kind == "grass":
        base = shade(rng, "green")
        base = mix(base, (70, 90, 40), rng.uniform(0.3, 0.8))
        img = _textured(base, size, rng, 16, blur=2)
    elif kind == "road":
        base = tuple(int(v) for v in np.array([95, 97, 100]) * rng.uniform(0.6, 1.3))
        img = _textured(base, size, rng, 7)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(0, 3))):  # road markings
            col = (220, 190, 40) if rng.random() < 0.5 else (225, 225, 220)
            x0, y0 = rng.uniform(-w, w), rng.uniform(0, h)
            d.line([(x0, y0), (x0 + w * 2, y0 + rng.uniform(-h / 3, h / 3))], fill=col, width=int(rng.integers(2, 5)))
    elif kind == "tiles":
        base = shade(rng, pick(rng, ["gray", "beige", "white", "brown"]))
        img = _textured(base, size, rng, 5)
        d = ImageDraw.Draw(img)
        step = int(rng.integers(8, 20))
        for x in range(0, w, step):
            d.line([(x, 0), (x, h)], fill=scale(base, 0.8), width=1)
        for y in range(0, h, step):
            d.line([(0, y), (w, y)], fill=scale(base, 0.8), width=1)
    else:
        base = shade(rng, pick(rng, ["beige", "brown", "gray", "white"]))
        img = _textured(base, size, rng, 6, blur=4)
    return img


def _wall(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    base = shade(rng, pick(rng, ["gray", "white", "beige", "brown", "red", "gray"]))
    img = _textured(base, size, rng, 6, blur=3)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.6:  # windows / shop front
        ww, wh = rng.uniform(10, 30), rng.uniform(12, 40)
        gap = rng.uniform(6, 20)
        glass = mix(shade(rng, "blue"), (40, 45, 50), rng.uniform(0.3, 0.9))
        y0 = rng.uniform(-wh, h * 0.4)
        x = rng.uniform(-ww, 0)
        while x < w:
            d.rectangle([x, y0, x + ww, y0 + wh], fill=glass, outline=scale(base, 0.6))
            x += ww + gap
    elif rng.random() < 0.5:  # bricks
        for y in range(0, h, 5):
            d.line([(0, y), (w, y)], fill=scale(base, 0.82), width=1)
    return img


def _clutter(img: Image.Image, rng: np.random.Generator) -> None:
    """Street furniture and debris: poles, cones, kerbs, bins, leaves, painted lines."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.poisson(1.5))):
        kind = pick(rng, ["pole", "cone", "kerb", "bin", "spot", "tape"])
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if kind == "pole":
            d.rectangle([x, 0, x + rng.uniform(2, 5), y + h * 0.3], fill=shade(rng, pick(rng, ["gray", "black"])))
        elif kind == "cone":
            s = rng.uniform(6, 14)
            d.polygon([(x, y - s * 1.5), (x - s / 2, y), (x + s / 2, y)], fill=shade(rng, "orange"))
        elif kind == "kerb":
            d.line([(0, y), (w, y + rng.uniform(-20, 20))], fill=shade(rng, pick(rng, ["gray", "white"])),
                   width=int(rng.integers(2, 6)))
        elif kind == "bin":
            s = rng.uniform(10, 22)
            d.rectangle([x, y, x + s, y + s * 1.3], fill=shade(rng, pick(rng, ["green", "black", "gray"])))
        elif kind == "spot":
            s = rng.uniform(3, 12)
            d.ellipse([x, y, x + s * 1.6, y + s], fill=scale(img.getpixel((int(x) % w, int(y) % h)), 0.75))
        else:
            col = (220, 40, 40) if rng.random() < 0.5 else (230, 230, 230)
            d.line([(0, y), (w, y + rng.uniform(-8, 8))], fill=col, width=2)


def shade_person(layer: Image.Image, cx: float, half: float, rng: np.random.Generator) -> Image.Image:
    """Round the flat drawing: a cylinder-like falloff across the body and a light direction.

    A one-row gain profile stretched to the layer and multiplied in (C code, no float arrays).
    """
    w, h = layer.size
    x = (np.arange(w, dtype=np.float32) - cx) / max(half, 1.0)
    profile = np.clip(0.9 - 0.2 * x ** 2 + rng.uniform(-0.2, 0.2) * x, 0.5, 1.0)
    gain = Image.fromarray((profile * 255).astype(np.uint8)[None, :], "L").resize((w, h), Image.NEAREST)
    rgb = ImageChops.multiply(layer.convert("RGB"), Image.merge("RGB", (gain, gain, gain)))
    rgb.putalpha(layer.getchannel("A"))
    return rgb


def ground_shadow(img: Image.Image, cx: float, y: float, rx: float, strength: float) -> None:
    overlay = Image.new("L", img.size, 0)
    ImageDraw.Draw(overlay).ellipse([cx - rx, y - rx * 0.18, cx + rx, y + rx * 0.18], fill=int(255 * strength))
    img.paste((0, 0, 0), (0, 0), overlay.filter(ImageFilter.BoxBlur(2)))


LIGHTING = {
    "normal": ((0.95, 1.05), (1.0, 1.0, 1.0)),
    # Gains stay inside what keeps colour names right: dim gray must not sink into the black
    # band (V <= 0.22), bright gray must not rise into the white band (V >= 0.8).
    "dim": ((0.7, 0.85), (1.0, 1.0, 1.0)),
    "bright": ((1.1, 1.2), (1.0, 1.0, 1.0)),
    # casts strong enough to see, weak enough that a white shirt is not yet "light blue"
    "bluish": ((0.8, 1.0), (0.93, 0.98, 1.07)),
    "yellowish": ((0.9, 1.1), (1.07, 1.02, 0.9)),
    "overexposed": ((1.25, 1.4), (1.0, 1.0, 1.0)),
}


def degrade(img: Image.Image, out_size: tuple[int, int], rng: np.random.Generator) -> tuple[Image.Image, dict[str, Any]]:
    """Apply camera effects and resize to ``out_size``; returns the image and what was applied.

    Order follows a camera: scene light and colour cast, optics blur, sampling at low
    resolution, sensor noise; JPEG comes last when the file is written (quality in the dict).
    """
    quality: list[str] = []
    lighting = weighted(rng, list(LIGHTING), [0.45, 0.18, 0.1, 0.1, 0.1, 0.07])
    (g0, g1), cast = LIGHTING[lighting]
    gain = rng.uniform(g0, g1)
    gamma = rng.uniform(0.85, 1.15)
    jitter = rng.uniform(0.96, 1.04, 3)
    lut: list[int] = []
    base = np.arange(256, dtype=np.float32) / 255.0
    for c in range(3):
        curve = np.clip((base ** gamma) * gain * cast[c] * jitter[c], 0, 1)
        lut.extend((curve * 255).astype(np.uint8).tolist())
    img = img.point(lut)
    if lighting == "overexposed":
        quality.append("overexposed")

    ow, oh = out_size
    r = rng.random()
    if r < 0.25:  # seen from far away: sampled small, blown up
        small_h = int(rng.integers(28, 56))
        small = (max(8, round(small_h * ow / oh)), small_h)
        img = img.resize(small, Image.BILINEAR).resize(out_size, Image.BILINEAR)
        quality.append("low-resolution")
    else:
        img = img.resize(out_size, Image.BILINEAR if oh > img.height else Image.BOX)
    if rng.random() < 0.3:
        radius = rng.uniform(0.6, 1.8) * oh / 128
        img = img.filter(ImageFilter.BoxBlur(radius)) if radius >= 0.5 else img
        if radius > 1.0:
            quality.append("blurry")
    sigma = weighted(rng, [0.0, 2.0, 4.0, 7.0, 11.0], [0.35, 0.3, 0.2, 0.1, 0.05])
    if sigma:
        img = _add_noise(img, rng, sigma)
        if sigma >= 7:
            quality.append("grainy")
    jpeg = weighted(rng, [25, 40, 55, 70, 85, 92], [0.1, 0.15, 0.2, 0.25, 0.2, 0.1])
    return img, {"quality": quality, "lighting": lighting if lighting != "normal" else None, "jpeg_quality": jpeg}
