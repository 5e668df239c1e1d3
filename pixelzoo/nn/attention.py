"""Causal multi-head self-attention over a 2-D feature map in raster order (PixelSNAIL, Chen et al.
2017; the top prior of VQ-VAE-2).

Positions are flattened row by row: ``p = i * W + j``. Query position ``q`` attends to key positions
``k <= q`` (``include_self=True``) or ``k < q`` (``include_self=False``).

Which mask is safe depends on what the input features already see. Inside a trunk whose features at
``p`` depend only on image positions strictly before ``p`` (every layer after a first "mask A"
layer), attending to ``p`` itself adds nothing from ``p``'s pixel, so ``k <= q`` keeps the trunk
causal and lets each position use its own features: this is the default. If the input features at
``p`` contain the pixel at ``p`` (for instance the raw image), use ``include_self=False``: keys and
values then come from positions ``k < q`` only, and the query of position ``q`` is computed from the
input at the previous raster position ``q - 1`` (zeros for the first), so the output at ``q`` depends
on inputs strictly before ``q``. The first position attends to nothing and its output is the output
projection's bias.

Position information: a fixed sinusoidal code of the absolute row and column index (periods 4, 8,
16, ... positions) is concatenated to the input of the query, key and value projections. It depends
only on ``(i, j)``, not on the map's size, so the layer works on any H, W and feeding the first rows
of a map gives exactly the first rows of the output (row-causal), which the sampler relies on.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ConfigError


def sinusoidal_positions(height: int, width: int, n_freq: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(4 * n_freq, H, W): sin and cos of ``2 pi i / 2^(f+2)`` and of ``2 pi j / 2^(f+2)``, f < n_freq."""
    periods = 2.0 ** torch.arange(2, n_freq + 2, device=device, dtype=dtype)
    rows = torch.arange(height, device=device, dtype=dtype)[None, :] * (2 * math.pi) / periods[:, None]
    cols = torch.arange(width, device=device, dtype=dtype)[None, :] * (2 * math.pi) / periods[:, None]
    r = torch.cat([rows.sin(), rows.cos()])[:, :, None].expand(-1, height, width)
    c = torch.cat([cols.sin(), cols.cos()])[:, None, :].expand(-1, height, width)
    return torch.cat([r, c])


def raster_mask(n: int, include_self: bool, device=None) -> torch.Tensor:
    """(n, n) bool: True where query ``q`` (row) may attend to key ``k`` (column)."""
    ones = torch.ones(n, n, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=0 if include_self else -1)


class CausalSelfAttention2d(nn.Module):
    """Multi-head self-attention over (B, channels, H, W) in raster order; returns (B, out_channels, H, W).

    Args:
        channels: input channels.
        key_channels: total query/key channels (split over ``heads``).
        value_channels: total value channels (split over ``heads``).
        heads: number of heads.
        dropout: dropout on the attention probabilities (training only).
        include_self: mask ``k <= q`` (True) or ``k < q`` (False); see the module docstring.
        pos_freq: number of frequencies of the positional code per axis (0: none).
        out_channels: output channels (default ``channels``), by a 1x1 projection of the heads.
    """

    def __init__(self, channels: int, key_channels: int, value_channels: int, heads: int = 1,
                 dropout: float = 0.0, include_self: bool = True, pos_freq: int = 4,
                 out_channels: int | None = None):
        super().__init__()
        if key_channels % heads or value_channels % heads:
            raise ConfigError(
                f"key_channels ({key_channels}) and value_channels ({value_channels}) must be multiples of heads ({heads})"
            )
        self.heads = int(heads)
        self.key_channels = int(key_channels)
        self.value_channels = int(value_channels)
        self.include_self = bool(include_self)
        self.pos_freq = int(pos_freq)
        in_ch = channels + 4 * self.pos_freq
        self.query = nn.Conv2d(in_ch, key_channels, 1)
        self.key = nn.Conv2d(in_ch, key_channels, 1)
        self.value = nn.Conv2d(in_ch, value_channels, 1)
        self.out = nn.Conv2d(value_channels, out_channels or channels, 1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def _with_positions(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pos_freq:
            return x
        b, _, h, w = x.shape
        pos = sinusoidal_positions(h, w, self.pos_freq, device=x.device, dtype=x.dtype)
        return torch.cat([x, pos[None].expand(b, -1, -1, -1)], dim=1)

    @staticmethod
    def raster_shift(x: torch.Tensor) -> torch.Tensor:
        """Position ``p`` gets the features of position ``p - 1`` in raster order (zeros at ``p = 0``)."""
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        return torch.cat([flat.new_zeros(b, c, 1), flat[:, :, :-1]], dim=2).view(b, c, h, w)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (B, heads, HW, dv) after attention, probabilities (B, heads, HW, HW)) before the
        output projection; the probabilities are after dropout."""
        b, _, h, w = x.shape
        n, nh = h * w, self.heads
        xp = self._with_positions(x)
        xq = xp if self.include_self else self._with_positions(self.raster_shift(x))
        q = self.query(xq).view(b, nh, -1, n).transpose(2, 3)  # (B, nh, n, dk)
        k = self.key(xp).view(b, nh, -1, n)  # (B, nh, dk, n)
        v = self.value(xp).view(b, nh, -1, n).transpose(2, 3)  # (B, nh, n, dv)
        scores = (q @ k) / math.sqrt(q.shape[-1])
        mask = raster_mask(n, self.include_self, device=x.device)
        if self.include_self:
            probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        else:
            # the first query has no key: let it see itself inside the softmax (so the softmax is
            # defined) and zero its row afterwards, which also zeroes every gradient through it
            safe = mask.clone()
            safe[0, 0] = True
            probs = scores.masked_fill(~safe, float("-inf")).softmax(-1)
            row_has_keys = mask.any(-1).to(probs.dtype)[:, None]
            probs = probs * row_has_keys
        probs = self.dropout(probs)
        return probs @ v, probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        out, _ = self.attention(x)  # (B, nh, n, dv)
        out = out.transpose(2, 3).reshape(b, self.value_channels, h, w)
        return self.out(out)
