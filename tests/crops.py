"""Small test images that ``personvlm.imageio`` accepts.

A flat single-colour image is refused as blank (``imageio.BLANK_MAX_SPREAD``), so test crops are
a colour with a small mark of its inverse in the bottom-left corner: the colour still dominates
(fakes that read the mean colour see it), and the image is not blank.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def marked(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    """An RGB image of ``colour`` with a mark of its inverse, an eighth of the size each way (at least 1 px)."""
    img = Image.new("RGB", size, colour)
    w, h = max(1, size[0] // 8), max(1, size[1] // 8)
    ImageDraw.Draw(img).rectangle((0, size[1] - h, w - 1, size[1] - 1), fill=tuple(255 - c for c in colour))
    return img


def encoded(size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "JPEG", **options: object) -> bytes:
    """``marked(size, colour)`` encoded as ``fmt``."""
    buf = io.BytesIO()
    marked(size, colour).save(buf, fmt, **options)
    return buf.getvalue()
