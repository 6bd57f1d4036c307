"""Every entry point decodes through imageio, so its refusals are the product's refusals."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personvlm.imageio import ImageError, decode_bytes, load_image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width x height pixels, built by hand so no big buffer is allocated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# A pixel value unlike the default 0 of ``Image.new`` in each mode, so the images are not blank.
MARKS = {"L": 255, "RGBA": (255, 255, 255, 255), "P": 255, "I;16": 65535, "LA": (255, 255),
         "CMYK": (255, 255, 255, 255), "1": 1}


@pytest.mark.parametrize("mode", sorted(MARKS))
def test_odd_modes_become_rgb(mode: str) -> None:
    img = Image.new(mode, (8, 16))
    if mode == "P":
        img.putpalette([level for level in range(256) for _ in range(3)])  # a grey ramp: index 255 is white
    img.putpixel((0, 0), MARKS[mode])
    out = load_image(decode_bytes(_png(img)) if mode not in ("CMYK",) else img)
    assert out.mode == "RGB" and out.size == (8, 16)


@pytest.mark.parametrize("mode", sorted(MARKS))
def test_blank_images_are_refused_in_every_mode(mode: str) -> None:
    img = Image.new(mode, (8, 16))
    with pytest.raises(ImageError, match=r"image is blank \(one flat colour, 8x16\): nothing to describe"):
        load_image(decode_bytes(_png(img)) if mode not in ("CMYK",) else img)


def test_a_flat_jpeg_is_blank_but_a_faint_dark_crop_is_not() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 128), (30, 30, 35)).save(buf, "JPEG", quality=75)
    with pytest.raises(ImageError, match="<bytes>: image is blank"):
        decode_bytes(buf.getvalue())
    # A night crop: dark and low in contrast, but with a few levels of real variation (10-15), is kept.
    night = np.random.default_rng(0).integers(10, 16, (128, 64, 3), dtype=np.uint8)
    assert load_image(night).size == (64, 128)


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    arr = np.full((4, 4), 1000, dtype=np.uint16)
    arr[0, 0] = 2000
    out = np.asarray(load_image(Image.fromarray(arr)))
    assert out[0, 0, 0] == 255 and out[1, 1, 0] == 127


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.jpg: file not found"):
        load_image(tmp_path / "nope.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path)


def test_not_an_image_even_with_an_image_name(tmp_path: Path) -> None:
    p = tmp_path / "fake.jpg"
    p.write_text("this is text")
    with pytest.raises(ImageError, match="fake.jpg: not an image"):
        load_image(p)


def test_truncated_jpeg_is_corrupt() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 128), (200, 10, 10)).save(buf, "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_bytes(buf.getvalue()[:300])


def test_empty_input_and_zero_sized_arrays() -> None:
    with pytest.raises(ImageError, match="no bytes"):
        decode_bytes(b"")
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((0, 5, 3), dtype=np.uint8))


def test_zero_sized_png_is_refused() -> None:
    with pytest.raises(ImageError, match="empty|not an image"):
        decode_bytes(_png_header_only(0, 0))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="too large|decompression bomb"):
        decode_bytes(_png_header_only(20000, 20000))
    with pytest.raises(ImageError, match="too large"):
        decode_bytes(_png_header_only(8000, 8000))  # under Pillow's own limit, over ours


def test_float_array_in_unit_range_is_scaled() -> None:
    arr = np.full((4, 2, 3), 0.5, dtype=np.float32)
    arr[3, 1] = 1.0
    out = np.asarray(load_image(arr))
    assert out.dtype == np.uint8 and 126 <= out[0, 0, 0] <= 128 and out[3, 1, 0] == 255
