"""Gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks of gated layers.

Layer: v' = gate(V * v + cond_v),  h' = h + W_res * gate(H * h + L * down_shift(V * v) + cond_h),
gate(a, b) = tanh(a) * sigmoid(b), with conditioning ``cond`` = class embedding + 1x1 projection of
the spatial map. The first layer uses mask A on the horizontal stack (the current sub-pixel is never
seen) and has no residual; later layers use mask B.

Each layer has its conditioning of its own (as in the paper), or, with ``shared_conditioning``, one
conditioning bias computed once and added in every layer (one class embedding and one projection of
the spatial map for the whole trunk: PixelIQN's cheaper tau path, one tau projection instead of one
per layer).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ....registry import register_model
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
from ....nn.conditioning import conditioning_out_groups
from ..model import AutoregressiveModel, build_autoregressive
from .stepper import GatedStepper
from ..trunks import Trunk, register_trunk


class GatedLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size, in_groups, n_groups, first, num_classes, spatial_channels,
                 dropout, spatial_groups=None):
        super().__init__()
        self.first = first
        groups = feature_groups(channels, n_groups)
        ggroups = gate_groups(channels, n_groups)
        self.v_conv = VerticalConv(in_channels, 2 * channels, kernel_size)
        self.h_conv = HorizontalConv(in_channels, 2 * channels, kernel_size, in_groups, ggroups, include_own=not first)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = GroupedPointwise(channels, channels, groups, groups)
        self.cond = ConditioningBias(4 * channels, num_classes, spatial_channels, spatial_groups,
                                     None if spatial_groups is None else conditioning_out_groups(channels, n_groups))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, v, h, cv, ch):
        """One layer, given its conditioning bias halves (``GatedPixelCNNTrunk.conditioning``)."""
        v_pre, v_new = self.vertical(v, cv)
        return v_new, self.horizontal(h, self.v_to_h(down_shift(v_pre)), ch)

    # The two parts of ``forward``; the incremental stepper (``stepper.py``) takes the trunk's
    # ``conditioning`` per row and folds the weights of these two into its per-layer queues.

    def vertical(self, v, cv):
        """The vertical stack: ``v_pre = V * v`` before conditioning (what ``down_shift`` passes to the
        horizontal stack) and the layer's vertical output ``gate(v_pre + cv)``."""
        v_pre = self.v_conv(v)
        return v_pre, gate(v_pre if cv is None else v_pre + cv)

    def horizontal(self, h, v_in, ch):
        """The horizontal stack, given ``v_in = v_to_h(down_shift(v_pre))`` and ``ch`` at h's positions.
        Position (i, j) reads columns <= j of row i of ``h`` only (``HorizontalConv``, 1x1 convs)."""
        h_pre = self.h_conv(h) + v_in
        if ch is not None:
            h_pre = h_pre + ch
        h_new = self.h_out(self.dropout(gate(h_pre)))
        return h_new if self.first else h + h_new


@register_trunk("gated_pixelcnn")
class GatedPixelCNNTrunk(Trunk):
    channel_masked = True
    row_causal = True
    causal_spatial = True

    def __init__(self, image_channels, channels=64, n_layers=8, kernel_size=3, first_kernel_size=7,
                 num_classes=None, spatial_channels=0, dropout=0.0, spatial_groups=None,
                 shared_conditioning=False):
        super().__init__()
        self.out_channels = channels
        self.register_buffer("out_groups", feature_groups(channels, image_channels), persistent=False)
        #: with ``shared_conditioning``, the one conditioning bias of every layer (the layers have none)
        self.shared_cond = None
        if shared_conditioning and (num_classes or spatial_channels):
            self.shared_cond = ConditioningBias(
                4 * channels, num_classes, spatial_channels, spatial_groups,
                None if spatial_groups is None else conditioning_out_groups(channels, image_channels))
            num_classes, spatial_channels, spatial_groups = None, 0, None
        layers = [GatedLayer(image_channels, channels, first_kernel_size, torch.arange(image_channels),
                             image_channels, True, num_classes, spatial_channels, dropout, spatial_groups)]
        for _ in range(n_layers - 1):
            layers.append(GatedLayer(channels, channels, kernel_size, feature_groups(channels, image_channels),
                                     image_channels, False, num_classes, spatial_channels, dropout, spatial_groups))
        self.layers = nn.ModuleList(layers)

    def conditioning(self, y, spatial, size) -> list:
        """Per layer, its conditioning bias split into the vertical and horizontal halves (cv, ch),
        each (B, 2F, 1, 1) or (B, 2F, *size), or (None, None) without conditioning. Position-wise
        (class embedding + 1x1 projection), so a crop of ``spatial`` gives the same crop of the bias."""
        def halves(cond):
            return cond.chunk(2, dim=1) if torch.is_tensor(cond) else (None, None)

        if self.shared_cond is not None:
            return [halves(self.shared_cond(y, spatial, size))] * len(self.layers)
        return [halves(layer.cond(y, spatial, size)) for layer in self.layers]

    def input_features(self, x):
        """What the first layer reads at each position: the scaled image itself (position-wise; a
        subclass may embed it, e.g. a code map's ``CodeGatedTrunk`` in ``pixelzoo.models.composites.defauw.model``)."""
        return x

    def forward(self, x, y=None, spatial=None):
        v = h = self.input_features(x)
        for layer, (cv, ch) in zip(self.layers, self.conditioning(y, spatial, x.shape[-2:])):
            v, h = layer(v, h, cv, ch)
        return h

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None) -> GatedStepper:
        image_input = type(self).input_features is GatedPixelCNNTrunk.input_features  # not an embedding
        return GatedStepper(model, n, y, spatial, inputs, image_input=image_input)


@register_model("gated_pixelcnn")
def build_gated_pixelcnn(image_shape, num_levels, num_classes=None, channels=64, n_layers=8, kernel_size=3,
                         first_kernel_size=7, out_hidden=None, dropout=0.0, spatial_channels=0,
                         head="categorical", head_options=None) -> AutoregressiveModel:
    """A Gated PixelCNN (``GatedPixelCNNTrunk``) with the categorical head by default."""
    return build_autoregressive("gated_pixelcnn", image_shape, num_levels, num_classes, head=head,
                                head_options=head_options, out_hidden=out_hidden, spatial_channels=spatial_channels,
                                channels=channels, n_layers=n_layers, kernel_size=kernel_size,
                                first_kernel_size=first_kernel_size, dropout=dropout)
