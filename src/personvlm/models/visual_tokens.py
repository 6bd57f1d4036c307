"""Visual tokens: the encoder's spatial feature map cut into a grid of cells, each projected to the
decoder width and tagged with a learned 2-D position.

Cells, not one pooled vector: the upper-body colour lives in the top rows and the trousers in the
bottom rows, and the decoder's cross-attention (and each attribute head) can look at the right cells.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
        pos = (self.row + self.col).flatten(0, 1)  # [rows*cols, width]
        return self.norm(self.drop(self.project(cells) + pos))

