"""Preprocessing shared by training and inference: fit the crop into (256, 128) and normalise.

The crop is resized keeping its aspect ratio and padded (letterboxed) with the ImageNet mean
colour, which is exactly zero after normalisation: stretching a wide crop to 1:2 would turn a
normal build into a thin one, and that is an attribute we predict. Training and serving must use
this one function so the model never sees a different geometry than it learned on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN_RGB = tuple(round(m * 255) for m in IMAGENET_MEAN)
_MEAN_255 = np.array(IMAGENET_MEAN, dtype=np.float32) * 255
_INV_STD_255 = np.float32(1.0) / (np.array(IMAGENET_STD, dtype=np.float32) * 255)


def letterbox(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize ``image`` to fit ``size`` (H, W) keeping its aspect ratio, centred on a mean-colour canvas."""
    h, w = size
    scale = min(h / image.height, w / image.width)
    nh, nw = max(1, round(image.height * scale)), max(1, round(image.width * scale))
    resized = image.convert("RGB").resize((nw, nh), Image.BILINEAR)
    if (nh, nw) == (h, w):
        return resized
    canvas = Image.new("RGB", (w, h), _MEAN_RGB)
    canvas.paste(resized, ((w - nw) // 2, (h - nh) // 2))
    return canvas


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` ImageNet-normalised.

    One vectorised pass for the whole batch; the result is channels-last in memory (a permuted
    view of the pixel array), which is the layout the CPU encoder runs in, so nothing is copied.
    In NumPy, not PyTorch: PyTorch's OpenMP threads would wake for it and then spin, taking the
    cores from ONNX Runtime's when it runs the model (``models.onnx_visual``). In place on one float
    copy: a batch of 32 is 12.6 MB, and each fresh temporary costs its page faults (22 -> 18 ms for
    32 crops on the 2-core host, the same bits).
    """
    out = pixels.astype(np.float32)
    out -= _MEAN_255
    out *= _INV_STD_255
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> contiguous float ``[3, H, W]`` ImageNet-normalised."""
    return normalise(np.array(image, dtype=np.uint8)[None])[0].contiguous()


def preprocess(images: Sequence[Image.Image], size: tuple[int, int] = (256, 128)) -> torch.Tensor:
    """A batch of decoded RGB images -> ``[B, 3, H, W]`` model input."""
    if not images:
        raise ValueError("preprocess needs at least one image")
    return normalise(np.stack([np.asarray(letterbox(img, size)) for img in images]))
