"""The embedding network f_w(X_hat) of an auxiliary-variable PixelCNN (Kolesnikov & Lampert 2017, §3.3).

"Almost identical to the architecture of PixelCNN++ ... we use only one flow of residual blocks and
do not shift the convolutional layers' outputs": a non-causal ResNet over the given view X_hat. One
stream of PixelCNN++-style gated residual blocks (``x + a * sigmoid(b)`` with
``[a, b] = conv(dropout(concat_elu(conv(concat_elu(x)))))``, plain zero-padded "same" convolutions,
so every output sees a square neighbourhood of the input in all directions), with optional
resolution changes between blocks:

* ``down_after``: a stride-2 3x3 convolution after each listed block (0 = before the first block),
* ``up_after``: a stride-2 transposed convolution (exactly doubles H and W) after each listed block,
* ``skips``: after an upsampling, the features stored just before the matching downsampling (same
  shape) are added, as PixelCNN++'s U-Net shortcuts do.

The output resolution is the input's times ``2 ** (len(up_after) - len(down_after))``: 1 for the
Grayscale PixelCNN (f_w at image resolution), 2 for a Pyramid PixelCNN scale (the lower-resolution
level mapped to the higher one; the paper's 15 blocks with a downsampling after block 3 and
upsamplings after blocks 9 and 12). A final ``concat_elu`` + 1x1 convolution gives ``out_channels``,
normalised per image (``GroupNorm`` with one group, learned scale and shift; ``out_norm``). The
normalisation is ours, not the paper's (whose PixelCNN++ code has weight normalisation): without
it, the unnormalised residual stack's output grew to ~1e9 within 50 steps on the Fashion pyramid's
4x4 -> 8x8 scale (Adam, lr 2e-3), saturated the trunk's gates and the conditional ignored X_hat
entirely (the same bits/dim with the true and with shuffled views); with it, that part reached
3.6 bits/dim in 400 steps instead of 5.3.
The input is the integer view, scaled to [-1, 1] like the image models scale theirs
(``from_scaled`` takes the scaled float view, for gradient checks).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import concat_elu


class EmbeddingBlock(nn.Module):
    """PixelCNN++'s gated residual block with unshifted ("same") convolutions."""

    def __init__(self, channels: int, kernel_size: int, dropout: float):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(2 * channels, channels, kernel_size, padding=pad)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, kernel_size, padding=pad)
        with torch.no_grad():  # start close to the identity (PixelCNN++'s init_scale=0.1)
            self.conv2.weight.mul_(0.1)
            self.conv2.bias.zero_()

    def forward(self, x):
        c1 = self.conv1(concat_elu(x))
        a, b = self.conv2(self.dropout(concat_elu(c1))).chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


class EmbeddingNet(nn.Module):
    """f_w: integer view (B, in_channels, h, w) in [0, in_levels) -> (B, out_channels, h*s, w*s),
    s = ``2 ** (len(up_after) - len(down_after))``. See the module docstring."""

    def __init__(self, in_channels: int, in_levels: int, out_channels: int, channels: int = 64, n_blocks: int = 4,
                 down_after=(), up_after=(), kernel_size: int = 3, dropout: float = 0.0, skips: bool = True,
                 out_norm: bool = True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("in_levels", in_levels), ("out_channels", out_channels),
                        ("channels", channels), ("kernel_size", kernel_size)):
            if int(v) != v or v < 1:
                raise ConfigError(f"embedding: {name} must be a positive integer, got {v!r}")
        if int(n_blocks) != n_blocks or n_blocks < 0:
            raise ConfigError(f"embedding: n_blocks must be a non-negative integer, got {n_blocks!r}")
        if kernel_size % 2 == 0:
            raise ConfigError(f"embedding: kernel_size must be odd, got {kernel_size}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"embedding: dropout must lie in [0, 1), got {dropout}")
        down_after, up_after = [int(k) for k in down_after], [int(k) for k in up_after]
        for name, ks in (("down_after", down_after), ("up_after", up_after)):
            bad = [k for k in ks if not 0 <= k <= n_blocks]
            if bad:
                raise ConfigError(f"embedding: {name} entries must lie in 0..n_blocks={n_blocks}, got {bad}")
        self.in_levels = int(in_levels)
        self.scale_exponent = len(up_after) - len(down_after)
        c = int(channels)
        self.inp = nn.Conv2d(in_channels, c, kernel_size, padding=kernel_size // 2)
        # the sequence of layers: ("block", i), ("down", j), ("up", j)
        plan: list[tuple[str, int]] = []
        downs, ups = nn.ModuleList(), nn.ModuleList()
        blocks = nn.ModuleList()
        for k in range(n_blocks + 1):
            for _ in range(down_after.count(k)):
                plan.append(("down", len(downs)))
                downs.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            for _ in range(up_after.count(k)):
                plan.append(("up", len(ups)))
                ups.append(nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1))
            if k < n_blocks:
                plan.append(("block", len(blocks)))
                blocks.append(EmbeddingBlock(c, kernel_size, float(dropout)))
        self.plan = plan
        self.blocks, self.downs, self.ups = blocks, downs, ups
        self.skips = bool(skips)
        self.out = nn.Conv2d(2 * c, out_channels, 1)
        self.out_norm = nn.GroupNorm(1, out_channels) if out_norm else nn.Identity()

    @property
    def scale_factor(self) -> float:
        return 2.0 ** self.scale_exponent

    def scale(self, v: torch.Tensor) -> torch.Tensor:
        return v.float() * (2.0 / max(self.in_levels - 1, 1)) - 1.0

    def from_scaled(self, v: torch.Tensor) -> torch.Tensor:
        h = self.inp(v)
        stack = []
        for kind, i in self.plan:
            if kind == "block":
                h = self.blocks[i](h)
            elif kind == "down":
                if h.shape[-1] % 2 or h.shape[-2] % 2:
                    raise ConfigError(f"embedding: cannot halve a {h.shape[-2]}x{h.shape[-1]} feature map; "
                                      "use fewer down_after entries or larger images")
                stack.append(h)
                h = self.downs[i](h)
            else:
                h = self.ups[i](h)
                if self.skips and stack and stack[-1].shape == h.shape:
                    h = h + stack.pop()
        return self.out_norm(self.out(concat_elu(h)))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.is_floating_point():
            raise ConfigError(f"embedding: expected the integer view in [0, {self.in_levels}), got dtype {v.dtype}")
        return self.from_scaled(self.scale(v))
