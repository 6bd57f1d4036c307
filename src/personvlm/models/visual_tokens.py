"""Visual tokens: the encoder's spatial feature map cut into a grid of cells, each projected to the
decoder width and tagged with a learned 2-D position.

Cells, not one pooled vector: the upper-body colour lives in the top rows and the trousers in the
bottom rows, and the decoder's cross-attention (and each attribute head) can look at the right cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from personvlm.models.encoders import is_coarser, resize_map


class VisualTokens(nn.Module):
    """``[B, C, h, w]`` feature map -> ``[B, rows*cols, width]`` tokens (row-major order)."""

    def __init__(self, in_channels: int, width: int, grid: tuple[int, int], dropout: float = 0.0) -> None:
        super().__init__()
        rows, cols = grid
        self.pool = nn.AdaptiveAvgPool2d((rows, cols))
        self.project = nn.Sequential(
            nn.LayerNorm(in_channels), nn.Linear(in_channels, width), nn.GELU(), nn.Linear(width, width),
        )
        # Factorised 2-D position: a row embedding plus a column embedding per cell.
        self.row = nn.Parameter(torch.randn(rows, 1, width) * 0.02)
        self.col = nn.Parameter(torch.randn(1, cols, width) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, features: Tensor) -> Tensor:
        cells = self.pool(features).flatten(2).transpose(1, 2)  # [B, rows*cols, C]
        return self._finish(self.project(cells))

    def _finish(self, projected: Tensor) -> Tensor:
        pos = (self.row + self.col).flatten(0, 1)  # [rows*cols, width]
        return self.norm(self.drop(projected + pos))

    def from_maps(self, maps: list[Tensor], size: tuple[int, int]) -> Tensor:
        """``self(cat([resize_map(m, size) for m in maps]))`` without building that map.

        Why: in the bundled model 1,600 of the map's 1,752 channels are stride-32 cells repeated 4x
        to fill the 16x8 grid, so the first projection, the largest matrix product of the graph, did
        4x the work on them, after a resize, a concatenation and a transpose of the whole map (ONNX
        Runtime, 2 threads, chunks of 4 crops: median ratio 0.89 of the graph's time over 40 paired
        runs; its non-convolution operators 8-11 -> 4-6 ms per chunk in profiles). LayerNorm then Linear is
        ``rstd * (x @ (gamma * W).T - mean * (gamma * W).sum(1)) + W @ beta + b``, and ``x @ A.T``
        splits over the channel blocks of the concatenation, so a coarse map is projected at its
        own size and its cells repeated afterwards; the mean and variance come from per-block sums.
        The same function to float rounding (a test holds it to 1e-5); used where speed matters
        (the exported graph), while training keeps the plain form.
        """
        if tuple(size) != (self.row.shape[0], self.col.shape[1]):  # the grid pools the map again: no shortcut
            return self(torch.cat([resize_map(m, size) for m in maps], dim=1))
        norm, first = self.project[0], self.project[1]
        scaled = first.weight * norm.weight  # [width, C]: gamma folded into the projection
        blocks = scaled.split([m.shape[1] for m in maps], dim=1)
        per_map = [self._block_sums(m, block, size) for m, block in zip(maps, blocks, strict=True)]
        total = sum(per_map[1:], per_map[0]).flatten(2).transpose(1, 2)  # [B, rows*cols, width + 2]
        channels = scaled.shape[1]
        projected, sum_x, sum_sq = total[..., :-2], total[..., -2:-1], total[..., -1:]
        mean = sum_x / channels
        rstd = torch.rsqrt(sum_sq / channels - mean * mean + norm.eps)
        bias = first.weight @ norm.bias + first.bias
        hidden = rstd * (projected - mean * scaled.sum(1)) + bias
        return self._finish(self.project[3](self.project[2](hidden)))

    @staticmethod
    def _block_sums(feature_map: Tensor, block: Tensor, size: tuple[int, int]) -> Tensor:
        """One map's share, per grid cell: ``[its channels projected by block, their sum, their sum of
        squares]``, ``[B, width + 2, rows, cols]``; computed at the map's own size when it is coarser
        than ``size`` and its cells repeated after (nearest, as ``resize_map`` repeats them). The
        projection is a 1x1 convolution: the map stays in the layout the encoder left it in."""
        coarse = is_coarser(feature_map, size)
        x = feature_map if coarse else resize_map(feature_map, size)
        sums = torch.cat([F.conv2d(x, block[:, :, None, None]), x.sum(1, keepdim=True), (x * x).sum(1, keepdim=True)],
                         dim=1)
        return resize_map(sums, size) if coarse else sums

