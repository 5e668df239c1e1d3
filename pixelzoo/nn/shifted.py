"""Shifted convolutions of PixelCNN++ (Salimans et al. 2017): causality by padding, not by masks.

Two kinds of receptive field, for the two streams of the PixelCNN++ trunk:

* *down-shifted* (``DownShiftedConv2d``, kernel (kh, kw), kw odd): output ``(i, j)`` reads input rows
  ``i-kh+1 .. i`` and columns ``j-(kw-1)/2 .. j+(kw-1)/2``, the "above" stream;
* *down-right-shifted* (``DownRightShiftedConv2d``, kernel (kh, kw)): output ``(i, j)`` reads input
  rows ``i-kh+1 .. i`` and columns ``j-kw+1 .. j``, the "above and to the left" stream.

Neither sees anything below or (for the second) to the right of the output, so a stream that is
causal stays causal; ``down_shift`` / ``right_shift`` then move a stream one row down / one column
right to exclude the current pixel itself. With ``stride`` 2 they downsample: low-resolution
position ``(I, J)`` reads what high-resolution position ``(2I, 2J)`` may read. The transposed
versions upsample by 2 and write low-resolution position ``(I, J)`` only to high-resolution rows
``2I, 2I+1`` (and columns ``>= 2J`` for the down-right version), which keeps the same invariants.

These layers are causal in which *pixels* they read, but the strided ones are not row-croppable:
feeding only the first rows changes how the stride aligns, so trunks built from them are not
``row_causal``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every column right by one (column 0 becomes zeros)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of ``[x, -x]`` along channels (doubles the channel count), the PixelCNN++ nonlinearity."""
    return F.elu(torch.cat([x, -x], dim=1))


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class DownShiftedConv2d(nn.Conv2d):
    """Output ``(i, j)`` reads rows ``i-kh+1 .. i``, columns ``j-(kw-1)/2 .. j+(kw-1)/2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 3), stride=1):
        kh, kw = _pair(kernel_size)
        if kw % 2 == 0:
            raise ValueError(f"the width of a down-shifted kernel must be odd, got {kw}")
        super().__init__(in_channels, out_channels, (kh, kw), stride=_pair(stride))
        self.pad = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class DownRightShiftedConv2d(nn.Conv2d):
    """Output ``(i, j)`` reads rows ``i-kh+1 .. i``, columns ``j-kw+1 .. j``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 2), stride=1):
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), stride=_pair(stride))
        self.pad = (kw - 1, 0, kh - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class DownShiftedConvTranspose2d(nn.ConvTranspose2d):
    """Upsampling by ``stride``: input ``(I, J)`` reaches output rows ``sI .. sI+kh-1`` and columns
    ``sJ-(kw-1)/2 .. sJ+(kw-1)/2``; the output is cropped to (s*H, s*W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 3), stride=2):
        kh, kw = _pair(kernel_size)
        sh, sw = _pair(stride)
        if kw % 2 == 0:
            raise ValueError(f"the width of a down-shifted kernel must be odd, got {kw}")
        super().__init__(in_channels, out_channels, (kh, kw), stride=(sh, sw))
        self.left = (kw - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = super().forward(x)
        return out[:, :, : h * self.stride[0], self.left : self.left + w * self.stride[1]]


class DownRightShiftedConvTranspose2d(nn.ConvTranspose2d):
    """Upsampling by ``stride``: input ``(I, J)`` reaches output rows ``sI .. sI+kh-1`` and columns
    ``sJ .. sJ+kw-1``; the output is cropped to (s*H, s*W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 2), stride=2):
        super().__init__(in_channels, out_channels, _pair(kernel_size), stride=_pair(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = super().forward(x)
        return out[:, :, : h * self.stride[0], : w * self.stride[1]]
