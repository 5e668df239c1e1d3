"""PixelSNAIL-style trunk (Chen et al. 2017), as used for the priors of VQ-VAE-2 (Razavi et al. 2019):
gated residual blocks of causal convolutions, interspersed with causal multi-head self-attention,
followed by a stack of 1x1 residual blocks.

Causality without a blind spot comes from two streams, as in the Gated PixelCNN:

* the *vertical* stream ``v`` (``VerticalConv``) at row ``i`` sees input rows ``<= i``; it is only
  ever read after ``down_shift``, i.e. as rows ``< i``;
* the *horizontal* stream ``h`` at ``(i, j)`` sees pixels strictly before ``(i, j)`` in raster order
  (and, per colour group, the earlier colour channels of the pixel): ``HorizontalConv`` over columns
  ``<= j`` of the same row, mask A in the input layer, mask B after it, plus ``down_shift(v)``.

Block ``b`` (``F`` = channels, ``gate(a, b) = tanh(a) sigmoid(b)``, ``cond`` = class embedding +
1x1 projection of the spatial map, a per-layer bias)::

    v <- v + drop(gate(Vconv(elu(Vconv(elu(v)))) + cond_v))
    h <- h + drop(gate(Hconv(elu(Hconv(elu(h)) + 1x1(elu(down_shift(v))))) + cond_h))

and after every ``attention_every`` blocks ``h <- h + Attention(elu(h))``. The output stack is
``out_res_blocks`` of ``h <- h + 1x1(elu(1x1(elu(h))))``.

Attention: the features ``h`` at ``p`` see only inputs before ``p``, so for one colour channel the
attention may include ``p`` itself (mask ``k <= q``). With several colour channels, ``h`` at ``p``
holds colour groups that already see some channels of pixel ``p`` and attention would mix them; the
attention then uses the strict mask ``k < q`` with queries from the previous position, so its output
depends only on earlier pixels and every colour group may read it.

Every layer pads only on the top and left and the attention's position code depends only on the
absolute (row, column), so the trunk is row-causal: the first ``r`` input rows give exactly the first
``r`` output rows.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ....registry import register_model
from ....errors import ConfigError
from ....nn import (
    ConditioningBias,
    GroupedPointwise,
    HorizontalConv,
    VerticalConv,
    down_shift,
    feature_groups,
    gate,
    gate_groups,
)
from ....nn.attention import CausalSelfAttention2d
from ....nn.conditioning import conditioning_out_groups
from ..model import AutoregressiveModel, build_autoregressive
from ..trunks import Trunk, register_trunk
from .stepper import SnailStepper


class GatedResidualBlock(nn.Module):
    """One two-stream gated residual block (see the module docstring)."""

    def __init__(self, channels, kernel_size, n_groups, num_classes, spatial_channels, dropout, spatial_groups=None):
        super().__init__()
        fg = feature_groups(channels, n_groups)
        gg = gate_groups(channels, n_groups)
        self.v_conv1 = VerticalConv(channels, channels, kernel_size)
        self.v_conv2 = VerticalConv(channels, 2 * channels, kernel_size)
        self.h_conv1 = HorizontalConv(channels, channels, kernel_size, fg, fg, include_own=True)
        self.v_to_h = nn.Conv2d(channels, channels, 1)
        self.h_conv2 = HorizontalConv(channels, 2 * channels, kernel_size, fg, gg, include_own=True)
        self.cond = ConditioningBias(4 * channels, num_classes, spatial_channels, spatial_groups,
                                     None if spatial_groups is None else conditioning_out_groups(channels, n_groups))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, v, h, y, spatial):
        cond = self.cond(y, spatial, v.shape[-2:])
        cv, ch = cond.chunk(2, dim=1) if torch.is_tensor(cond) else (0.0, 0.0)
        t = self.v_conv2(F.elu(self.v_conv1(F.elu(v)))) + cv
        v = v + self.dropout(gate(t))
        t = self.h_conv1(F.elu(h)) + self.v_to_h(F.elu(down_shift(v)))
        t = self.h_conv2(F.elu(t)) + ch
        h = h + self.dropout(gate(t))
        return v, h


class OutputResidualBlock(nn.Module):
    """h + 1x1(elu(1x1(elu(h)))) with colour-group masks."""

    def __init__(self, channels, n_groups):
        super().__init__()
        fg = feature_groups(channels, n_groups)
        self.conv1 = GroupedPointwise(channels, channels, fg, fg)
        self.conv2 = GroupedPointwise(channels, channels, fg, fg)

    def forward(self, h):
        return h + self.conv2(F.elu(self.conv1(F.elu(h))))


@register_trunk("pixelsnail")
class PixelSNAILTrunk(Trunk):
    """Gated residual blocks + causal self-attention + 1x1 residual output stack.

    Args:
        image_channels: colour channels C of the modelled map (1 for VQ code maps).
        channels: feature channels F (a multiple of C).
        n_blocks: gated residual blocks.
        kernel_size: odd width of the causal convolutions (the input layer uses it too).
        attention_every: an attention layer after every this many blocks (0: no attention).
        heads, key_channels, value_channels: attention shape (key/value channels default to F).
        dropout: dropout on each block's residual branch.
        attention_dropout: dropout on the attention probabilities (default ``dropout``).
        out_res_blocks: 1x1 residual blocks on top.
        num_classes, spatial_channels: conditioning, as a bias in every gated block.
        spatial_groups: colour group of each spatial channel for channel-masked conditioning (see
            ``ConditioningBias``); None: every group sees the whole map.
    """

    channel_masked = True
    row_causal = True
    causal_spatial = True

    def __init__(self, image_channels=1, channels=64, n_blocks=4, kernel_size=3, attention_every=2, heads=2,
                 key_channels=None, value_channels=None, dropout=0.0, attention_dropout=None, out_res_blocks=2,
                 num_classes=None, spatial_channels=0, spatial_groups=None):
        super().__init__()
        c = int(image_channels)
        if channels % c:
            raise ConfigError(f"channels ({channels}) must be a multiple of the image channels ({c})")
        if n_blocks < 1:
            raise ConfigError(f"n_blocks must be >= 1, got {n_blocks}")
        if attention_every < 0:
            raise ConfigError(f"attention_every must be >= 0, got {attention_every}")
        key_channels = key_channels or channels
        value_channels = value_channels or channels
        if attention_every and (key_channels % heads or value_channels % heads):
            raise ConfigError(
                f"attention key_channels ({key_channels}) and value_channels ({value_channels}) must be "
                f"multiples of heads ({heads})"
            )
        self.out_channels = channels
        self.register_buffer("out_groups", feature_groups(channels, c), persistent=False)
        fg = feature_groups(channels, c)
        self.in_v = VerticalConv(c, channels, kernel_size)
        self.in_h = HorizontalConv(c, channels, kernel_size, torch.arange(c), fg, include_own=False)
        self.in_v_to_h = nn.Conv2d(channels, channels, 1)
        self.blocks = nn.ModuleList(
            GatedResidualBlock(channels, kernel_size, c, num_classes, spatial_channels, dropout, spatial_groups)
            for _ in range(n_blocks)
        )
        attn_dropout = dropout if attention_dropout is None else attention_dropout
        self.attention = nn.ModuleDict()
        if attention_every:
            for b in range(n_blocks):
                if (b + 1) % attention_every == 0:
                    self.attention[str(b)] = CausalSelfAttention2d(
                        channels, key_channels, value_channels, heads, attn_dropout, include_self=(c == 1)
                    )
        self.out_stack = nn.Sequential(*(OutputResidualBlock(channels, c) for _ in range(out_res_blocks)))

    def input_features(self, x):
        """What the two input layers read at each position: the scaled image itself (position-wise;
        a subclass may embed it, e.g. VQ-VAE-2's ``CodeSNAILTrunk``)."""
        return x

    def forward(self, x, y=None, spatial=None):
        x = self.input_features(x)
        v = self.in_v(x)
        h = self.in_h(x) + self.in_v_to_h(down_shift(v))
        for b, block in enumerate(self.blocks):
            v, h = block(v, h, y, spatial)
            if str(b) in self.attention:
                h = h + self.attention[str(b)](F.elu(h))
        return self.out_stack(h)

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None):
        """Per-layer caches (Ramachandran et al. 2017): ``pixelzoo.models.autoregressive.pixelsnail.stepper.SnailStepper``."""
        image_input = type(self).input_features is PixelSNAILTrunk.input_features  # not an embedding
        return SnailStepper(model, n, y, spatial, inputs, image_input=image_input)


@register_model("pixelsnail")
def build_pixelsnail(image_shape, num_levels, num_classes=None, channels=64, n_blocks=4, kernel_size=3,
                     attention_every=2, heads=2, key_channels=None, value_channels=None, dropout=0.0,
                     attention_dropout=None, out_res_blocks=2, spatial_channels=0, out_hidden=None,
                     head="categorical", head_options=None) -> AutoregressiveModel:
    """A PixelSNAIL-style autoregressive model, e.g. the prior over a VQ code map of ``num_levels``
    codes (``image_shape = (1, H, W)``); also works on colour images (channel-masked), and with any
    head (``head="quantile"``: tau through every block, as PixelIQN on this trunk)."""
    return build_autoregressive("pixelsnail", image_shape, num_levels, num_classes, head=head,
                                head_options=head_options, out_hidden=out_hidden, spatial_channels=spatial_channels,
                                channels=channels, n_blocks=n_blocks, kernel_size=kernel_size,
                                attention_every=attention_every, heads=heads, key_channels=key_channels,
                                value_channels=value_channels, dropout=dropout, attention_dropout=attention_dropout,
                                out_res_blocks=out_res_blocks)
