"""A contact sheet: many crops on one PNG so a person can judge the renderer at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw


def contact_sheet(images: Sequence[Image.Image], labels: Sequence[str] | None = None, cell: tuple[int, int] = (64, 128),
                  columns: int | None = None) -> Image.Image:
    """Tile ``images`` (each fitted into ``cell``) into a grid, optionally with a short label
    under each (wrapped to the cell width), on a neutral gray so dark and light crops both show."""
    n = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(n * 2.5)))
    rows = math.ceil(n / columns)
    text_h = 36 if labels else 0
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
            words, lines, line = labels[i].split(), [], ""
            for word in words:
                if len(line) + len(word) + 1 > cw // 5:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}".strip()
            lines.append(line)
            draw.multiline_text((x, y + ch + 1), "\n".join(lines[:4]), fill=(255, 255, 255), spacing=0)
    return sheet


def write_sheet(images: Sequence[Image.Image], path: Path, labels: Sequence[str] | None = None) -> Path:
    contact_sheet(images, labels).save(path)
    return path
