"""A contact sheet: many crops on one PNG so a person can judge the renderer at a glance."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from personvlm.schema import UNKNOWN


def contact_sheet(images: Sequence[Image.Image], labels: Sequence[str] | None = None, cell: tuple[int, int] = (100, 180),
                  columns: int | None = None) -> Image.Image:
    """Tile ``images`` (each fitted into ``cell``) into a grid, optionally with a short label
    (up to 3 lines) under each, on a neutral gray so dark and light crops both show."""
    n = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(n * 2.5)))
    rows = math.ceil(n / columns)
    text_h = 34 if labels else 0
    cw, ch = cell
    pad = 4
    sheet = Image.new("RGB", (columns * (cw + pad) + pad, rows * (ch + text_h + pad) + pad), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        x, y = pad + c * (cw + pad), pad + r * (ch + text_h + pad)
        scale = min(cw / img.width, ch / img.height)
        fitted = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        sheet.paste(fitted, (x + (cw - fitted.width) // 2, y + (ch - fitted.height) // 2))
        if labels:
            draw.multiline_text((x, y + ch + 1), labels[i], fill=(255, 255, 255), spacing=0)
    return sheet


def sheet_label(values: Mapping[str, Any]) -> str:
    """Three short lines a reviewer can check against the pixels: who, top, bottom."""
    def words(*names: str) -> str:
        return " ".join(str(values[n]) for n in names if values.get(n) not in (None, UNKNOWN))

    return "\n".join((words("gender", "age", "orientation"), words("upper_color", "upper_type"),
                      words("lower_color", "lower_type")))


def write_sheet(images: Sequence[Image.Image], path: Path, labels: Sequence[str] | None = None) -> Path:
    contact_sheet(images, labels).save(path)
    return path
