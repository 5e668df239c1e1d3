"""Conditioning inputs shared by every trunk: a class embedding (a per-channel bias, the same at
every position) and a spatial map (added through a 1x1 convolution, a bias per position)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .causal import GroupedPointwise
from .masks import gate_groups


class ConditioningBias(nn.Module):
    """Maps (class label, spatial map) to a bias of ``out_channels`` channels per position.

    ``num_classes`` None or 0 disables the class part; ``spatial_channels`` 0 disables the spatial
    part. A spatial map smaller than the feature map is rejected rather than silently resized.

    With ``spatial_groups`` (one colour group per spatial channel) and ``out_groups`` (one per output
    channel) the 1x1 projection is channel-masked: output group ``o`` reads spatial groups ``<= o``
    only. PixelIQN uses it to give the features of colour group ``c`` the quantile targets tau of
    channels ``<= c`` and never those of later channels of the same pixel.
    """

    def __init__(self, out_channels: int, num_classes: int | None, spatial_channels: int,
                 spatial_groups: torch.Tensor | None = None, out_groups: torch.Tensor | None = None):
        super().__init__()
        self.embed = nn.Embedding(num_classes, out_channels) if num_classes else None
        if not spatial_channels:
            self.spatial = None
        elif spatial_groups is None:
            self.spatial = nn.Conv2d(spatial_channels, out_channels, 1)
        else:
            if out_groups is None or len(spatial_groups) != spatial_channels or len(out_groups) != out_channels:
                raise ConfigError("channel-masked spatial conditioning needs one group per spatial channel and "
                                  "one per output channel")
            self.spatial = GroupedPointwise(spatial_channels, out_channels, torch.as_tensor(spatial_groups),
                                            torch.as_tensor(out_groups))

    def forward(self, y: torch.Tensor | None, spatial: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | float:
        bias: torch.Tensor | float = 0.0
        if self.embed is not None and y is not None:
            bias = self.embed(y)[:, :, None, None]
        if self.spatial is not None:
            if spatial is None:
                raise ConfigError("this model was built with spatial conditioning; pass the conditioning map")
            if tuple(spatial.shape[-2:]) != tuple(size):
                raise ConfigError(
                    f"spatial conditioning map is {tuple(spatial.shape[-2:])}, features are {tuple(size)}"
                )
            bias = bias + self.spatial(spatial)
        return bias


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(first half) * sigmoid(second half) along channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def conditioning_out_groups(channels: int, n_groups: int) -> torch.Tensor:
    """Colour groups of a two-stream layer's conditioning bias (vertical 2F channels, then horizontal
    2F): the vertical stream reaches the horizontal one only after ``down_shift`` (earlier rows), so
    it may read every group; the horizontal part keeps the gate's groups."""
    return torch.cat([torch.full((2 * channels,), n_groups - 1), gate_groups(channels, n_groups)])
