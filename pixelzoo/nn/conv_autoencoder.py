"""The convolutional encoder and decoder of one level of the VQ-VAE (van den Oord et al. 2017;
Razavi et al. 2019), also AGAVE's VAE: ``log2(factor)`` stride-2 4x4 convolutions and a residual
stack down; a 3x3 convolution, a residual stack and stride-2 4x4 transposed convolutions up."""

from __future__ import annotations

import torch.nn as nn

from .residual import ResidualStack, log2_factor


def downsampling_convs(in_channels: int, hidden: int, factor: int) -> list[nn.Module]:
    """log2(factor) stride-2 4x4 convolutions (the first to hidden/2 when there are several, as in
    the VQ-VAE encoder), ReLU between, then a 3x3 convolution."""
    k = log2_factor(factor, "each level's downsampling", minimum=2)
    layers: list[nn.Module] = []
    ch = in_channels
    for s in range(k):
        out = hidden // 2 if (s < k - 1 and k > 1) else hidden
        layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.ReLU()]
        ch = out
    layers.append(nn.Conv2d(ch, hidden, 3, padding=1))
    return layers


def upsampling_convs(in_channels: int, hidden: int, out_channels: int, factor: int) -> list[nn.Module]:
    """log2(factor) stride-2 4x4 transposed convolutions: in -> hidden/2 ... -> out, ReLU between."""
    k = log2_factor(factor, "each level's downsampling", minimum=2)
    layers: list[nn.Module] = []
    ch = in_channels
    for s in range(k):
        last = s == k - 1
        out = out_channels if last else max(hidden // 2, 1)
        layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
        if not last:
            layers.append(nn.ReLU())
        ch = out
    return layers


class ConvEncoder(nn.Module):
    """Downsample by ``factor`` then a residual stack: the bottom-up encoder of one level."""

    def __init__(self, in_channels, hidden, res_channels, n_res_blocks, factor):
        super().__init__()
        self.net = nn.Sequential(*downsampling_convs(in_channels, hidden, factor), ResidualStack(hidden, res_channels, n_res_blocks))

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    """3x3 convolution, residual stack, transposed convolutions up by ``factor``."""

    def __init__(self, in_channels, hidden, res_channels, n_res_blocks, out_channels, factor):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            ResidualStack(hidden, res_channels, n_res_blocks),
            *upsampling_convs(hidden, hidden, out_channels, factor),
        )

    def forward(self, x):
        return self.net(x)
