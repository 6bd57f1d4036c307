"""Augmentation never changes a labelled colour's hue; flip mirrors; draws are reproducible."""

from __future__ import annotations

import colorsys

import torch

from personvlm.training.augment import augment
from personvlm.training.config import AugmentConfig


def test_jitter_keeps_every_pixel_hue() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 16, 8, generator=g) * 0.8 + 0.1
    cfg = AugmentConfig(flip=0.0, brightness=0.4, contrast=0.4, saturation=0.3)
    for seed in range(20):
        out = augment(img, cfg, torch.Generator().manual_seed(seed))
        assert not torch.allclose(out, img)
        # Hue is invariant to a*x+b with a>0 per pixel; compare pixel by pixel.
        for a, b in zip(img.permute(1, 2, 0).reshape(-1, 3).tolist(), out.permute(1, 2, 0).reshape(-1, 3).tolist(),
                        strict=True):
            ha = colorsys.rgb_to_hsv(*[x - min(a) for x in a])[0]
            hb = colorsys.rgb_to_hsv(*[x - min(b) for x in b])[0]
            assert abs(ha - hb) < 1e-4 or abs(abs(ha - hb) - 1) < 1e-4


def test_flip_mirrors_and_generator_makes_it_reproducible() -> None:
    img = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)
    cfg = AugmentConfig(flip=1.0, brightness=0.0, contrast=0.0, saturation=0.0)
    assert torch.equal(augment(img, cfg, torch.Generator().manual_seed(1)), img.flip(-1))
    cfg = AugmentConfig()
    a = augment(img, cfg, torch.Generator().manual_seed(5))
    b = augment(img, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
