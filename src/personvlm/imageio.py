"""Decode whatever a caller hands us (path, bytes, PIL image, array) into an RGB PIL image,
or fail with an ``ImageError`` that says which input and why.

One place for this so the CLI, the evaluator, the HTTP API and the queue workers all accept
and reject exactly the same inputs: content is sniffed (never trusted from a file name or a
declared type), decompression bombs, empty images and blank ones (a single flat colour: a covered
lens, a dead feed) are refused, and grayscale, palette, RGBA and 16-bit images are converted
instead of crashing the model.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# A person crop is small; anything over this many pixels is refused before decoding.
DEFAULT_MAX_PIXELS = 40_000_000
# A crop whose every channel spans at most this many levels is one flat colour (JPEG leaves a
# level or two of ringing on flat areas). The model has no "no person" answer and describes such a
# crop as confidently as a person (a black one as a man in a black gown, sandals, sitting), so it is
# refused as blank instead: a per-image error the caller sees, not a made-up description.
BLANK_MAX_SPREAD = 2

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray


class ImageError(ValueError):
    """An input that cannot be used as an image; ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _to_rgb(img: Image.Image, source: str) -> Image.Image:
    if img.width == 0 or img.height == 0:
        raise ImageError(source, f"image is empty ({img.width}x{img.height})")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of letting PIL clip everything to white.
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        img = Image.fromarray((arr / hi * 255.0).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (128, 128, 128))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = img.convert("RGB")
    if max(hi - lo for lo, hi in rgb.getextrema()) <= BLANK_MAX_SPREAD:
        raise ImageError(source, f"image is blank (one flat colour, {rgb.width}x{rgb.height}): nothing to describe")
    return rgb


def decode_bytes(data: bytes, source: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes (JPEG, PNG, ...), sniffing the format from the content."""
    if not data:
        raise ImageError(source, "no bytes (empty file or upload)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise ImageError(source, f"image is too large ({img.width}x{img.height} > {max_pixels} pixels)")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(source, f"refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(source, "not an image (content is not a format Pillow can read)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(source, f"corrupt or truncated image: {exc}") from None
    return _to_rgb(img, source)


def load_image(src: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return ``src`` as an RGB ``PIL.Image`` or raise ``ImageError`` naming it."""
    if isinstance(src, Image.Image):
        return _to_rgb(src, "<PIL image>")
    if isinstance(src, np.ndarray):
        if src.ndim not in (2, 3) or src.size == 0:
            raise ImageError("<array>", f"expected an HxW or HxWxC array, got shape {src.shape}")
        arr = src
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255 if arr.max() > 1.0 else 1.0)
            arr = (arr * (255.0 if arr.max() <= 1.0 else 1.0)).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return _to_rgb(Image.fromarray(arr), "<array>")
    if isinstance(src, bytes | bytearray | memoryview):
        return decode_bytes(bytes(src), max_pixels=max_pixels)
    path = Path(src)
    if not path.exists():
        raise ImageError(str(path), "file not found")
    if not path.is_file():
        raise ImageError(str(path), "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return decode_bytes(data, source=str(path), max_pixels=max_pixels)
