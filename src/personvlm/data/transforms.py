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


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float ``[3, H, W]`` ImageNet-normalised."""
    arr = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
    arr = (arr - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def preprocess(images: Sequence[Image.Image], size: tuple[int, int] = (256, 128)) -> torch.Tensor:
    """A batch of decoded RGB images -> ``[B, 3, H, W]`` model input."""
    if not images:
        raise ValueError("preprocess needs at least one image")
    return torch.stack([to_tensor(letterbox(img, size)) for img in images])


def denormalise(batch: torch.Tensor) -> torch.Tensor:
    """Inverse of the normalisation, to ``[0, 1]`` (for looking at what the model saw)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=batch.dtype).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=batch.dtype).view(-1, 1, 1)
    return (batch * std + mean).clamp(0, 1)
