"""Causal convolutions of the Gated PixelCNN (van den Oord et al. 2016b), free of the blind spot.

Raster order: row by row, left to right, and within a pixel colour channel 0, 1, ... The
*vertical* stack at row ``i`` sees input rows ``<= i``; it reaches the horizontal stack only after
``down_shift``, so there it stands for rows ``< i``, every column. The *horizontal* stack at
``(i, j)`` sees columns ``< j`` of row ``i`` and, at column ``j``, the colour channels allowed by the
channel groups (see ``masks``). Every output therefore sees the full causal past, with no blind spot.

Each layer pads only on the top and left, so the output at row ``i`` never depends on rows after
``i``: cropping the input to its first rows gives exactly the first rows of the output, which is
what the sampler uses to skip work.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import group_mask


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row down by one (row 0 becomes zeros): row ``i`` then holds what was row ``i-1``."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


class VerticalConv(nn.Conv2d):
    """A (k//2 + 1) x k convolution whose output at row ``i`` covers input rows ``i-k//2 .. i``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, (kernel_size // 2 + 1, kernel_size))
        self.half = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.half, self.half, self.half, 0)))


class HorizontalConv(nn.Conv2d):
    """A 1 x (k//2 + 1) convolution over columns ``j-k//2 .. j`` of the same row, whose weights at
    the current column ``j`` are masked by channel groups (mask A or B)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        in_groups: torch.Tensor,
        out_groups: torch.Tensor,
        include_own: bool,
    ):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, (1, kernel_size // 2 + 1))
        self.half = kernel_size // 2
        mask = torch.ones_like(self.weight)
        mask[:, :, 0, -1] = group_mask(out_groups, in_groups, include_own)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.half, 0, 0, 0))
        return F.conv2d(x, self.weight * self.mask, self.bias)


class GroupedPointwise(nn.Conv2d):
    """A 1x1 convolution in which output group ``o`` reads input groups ``<= o`` only."""

    def __init__(self, in_channels: int, out_channels: int, in_groups: torch.Tensor, out_groups: torch.Tensor):
        super().__init__(in_channels, out_channels, 1)
        mask = group_mask(out_groups, in_groups, include_own=True)[:, :, None, None]
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.mask
        if x.shape[-2:] == (1, 1):  # one position (a sampling step): a matrix product, without conv2d's overhead
            return F.linear(x.flatten(1), weight.flatten(1), self.bias)[:, :, None, None]
        return F.conv2d(x, weight, self.bias)
