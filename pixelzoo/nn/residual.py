"""Residual blocks several families share: the VQ-VAE's residual stack (also AGAVE's VAE, De Fauw's
encoders and decoders, VQ-VAE-2's conditioning stacks), the sub-pixel ResNet (De Fauw's decoders),
and the check of an up/downsampling factor."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError


def log2_factor(factor: int, what: str, minimum: int = 1) -> int:
    """log2 of an up/downsampling ``factor``, a power of 2 at least ``minimum`` (1, 2, 4, ...), else
    ConfigError naming ``what``."""
    k = int(round(math.log2(factor))) if isinstance(factor, int) and factor >= 1 else -1
    if k < 0 or 2**k != factor or factor < minimum:
        raise ConfigError(f"{what}: the factor must be a power of 2 >= {minimum}, got {factor!r}")
    return k


def check_widths(what: str, hidden: int, res_hidden: int, n_blocks: int) -> None:
    if min(hidden, res_hidden) < 1 or n_blocks < 0:
        raise ConfigError(f"{what}: hidden and res_hidden must be >= 1 and n_blocks >= 0, got hidden={hidden}, "
                          f"res_hidden={res_hidden}, n_blocks={n_blocks}")


class ResidualStack(nn.Module):
    """``n`` blocks of ``x + 1x1(relu(3x3(relu(x))))``, then ReLU."""

    def __init__(self, channels: int, res_channels: int, n: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(channels, res_channels, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(res_channels, channels, 1))
            for _ in range(n)
        )

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return F.relu(x)


class SubPixelResNet(nn.Module):
    """``in_channels`` at low resolution -> ``out_channels`` at ``factor`` times the resolution: a 3x3
    convolution to ``hidden * factor^2`` channels and a pixel shuffle (the sub-pixel convolution of
    Shi et al. 2016, at the start), ``n_blocks`` pre-activation residual blocks, ReLU, a 1x1
    convolution. With ``factor`` 1 there is no shuffle."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, hidden: int, res_hidden: int, n_blocks: int,
                 what: str = "sub-pixel ResNet"):
        super().__init__()
        check_widths(what, hidden, res_hidden, n_blocks)
        log2_factor(factor, what)
        self.factor = int(factor)
        self.inp = nn.Conv2d(in_channels, hidden * self.factor**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(self.factor) if self.factor > 1 else nn.Identity()
        self.res = ResidualStack(hidden, res_hidden, n_blocks)
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.res(self.shuffle(self.inp(z))))
