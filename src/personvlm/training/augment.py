"""Label-safe image augmentation on ``[3, H, W]`` float tensors in [0, 1].

Every label must stay true after augmenting:
- horizontal flip: safe here, because no attribute is left/right specific (orientation is
  front/back/side, not "facing left");
- brightness (multiply), contrast (blend with the mean grey) and a little saturation (blend
  with the pixel's own grey): each is ``a * x + b`` with the same ``a``, ``b`` on all three
  channels of a pixel, which keeps the pixel's hue exactly. Hue jitter is never applied, since
  it would turn a labelled "red jacket" orange.
Values are deliberately not clipped back to [0, 1]: clipping one channel would shift the hue,
and the network's normalisation does not need a closed range.
"""

from __future__ import annotations

import torch
from torch import Tensor

from personvlm.training.config import AugmentConfig

# ITU-R BT.601 luma weights, the usual "grey" of an RGB pixel.
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def augment(image: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Randomly flip and jitter one image; draws come from ``generator`` so runs are reproducible."""
    u = torch.rand(4, generator=generator)
    out = image
    if u[0] < cfg.flip:
        out = out.flip(-1)
    if cfg.brightness:
        out = out * (1.0 + (2 * u[1].item() - 1) * cfg.brightness)
    if cfg.contrast:
        mean_grey = (out * _LUMA).sum(0).mean()
        c = 1.0 + (2 * u[2].item() - 1) * cfg.contrast
        out = (out - mean_grey) * c + mean_grey
    if cfg.saturation:
        grey = (out * _LUMA).sum(0, keepdim=True)
        s = 1.0 + (2 * u[3].item() - 1) * cfg.saturation
        out = (out - grey) * s + grey
    return out
