"""Gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks of gated layers.

Layer: v' = gate(V * v + cond_v),  h' = h + W_res * gate(H * h + L * down_shift(V * v) + cond_h),
gate(a, b) = tanh(a) * sigmoid(b), with conditioning ``cond`` = class embedding + 1x1 projection of
the spatial map. The first layer uses mask A on the horizontal stack (the current sub-pixel is never
seen) and has no residual; later layers use mask B.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..heads import create_head
from ..nn import (
    ConditioningBias,
    GroupedPointwise,
    HorizontalConv,
    VerticalConv,
    down_shift,
    feature_groups,
    gate,
    gate_groups,
)
from .autoregressive import AutoregressiveModel, Trunk


class GatedLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size, in_groups, n_groups, first, num_classes, spatial_channels, dropout):
        super().__init__()
        self.first = first
        groups = feature_groups(channels, n_groups)
        ggroups = gate_groups(channels, n_groups)
        self.v_conv = VerticalConv(in_channels, 2 * channels, kernel_size)
        self.h_conv = HorizontalConv(in_channels, 2 * channels, kernel_size, in_groups, ggroups, include_own=not first)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = GroupedPointwise(channels, channels, groups, groups)
        self.cond = ConditioningBias(4 * channels, num_classes, spatial_channels)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, v, h, y, spatial):
        v_pre = self.v_conv(v)
        h_pre = self.h_conv(h) + self.v_to_h(down_shift(v_pre))
        cond = self.cond(y, spatial, v.shape[-2:])
        if torch.is_tensor(cond):
            cv, ch = cond.chunk(2, dim=1)
            v_pre = v_pre + cv
            h_pre = h_pre + ch
        v_new = gate(v_pre)
        h_new = self.h_out(self.dropout(gate(h_pre)))
        if not self.first:
            h_new = h + h_new
        return v_new, h_new


class GatedPixelCNNTrunk(Trunk):
    channel_masked = True
    row_causal = True

    def __init__(self, image_channels, channels=64, n_layers=8, kernel_size=3, first_kernel_size=7,
                 num_classes=None, spatial_channels=0, dropout=0.0):
        super().__init__()
        self.out_channels = channels
        self.register_buffer("out_groups", feature_groups(channels, image_channels), persistent=False)
        layers = [GatedLayer(image_channels, channels, first_kernel_size, torch.arange(image_channels),
                             image_channels, True, num_classes, spatial_channels, dropout)]
        for _ in range(n_layers - 1):
            layers.append(GatedLayer(channels, channels, kernel_size, feature_groups(channels, image_channels),
                                     image_channels, False, num_classes, spatial_channels, dropout))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, y=None, spatial=None):
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y, spatial)
        return h


def build_gated_pixelcnn(image_shape, num_levels, num_classes=None, channels=64, n_layers=8, kernel_size=3,
                         first_kernel_size=7, out_hidden=None, dropout=0.0, spatial_channels=0,
                         head="categorical", head_options=None) -> AutoregressiveModel:
    c = image_shape[0]
    trunk = GatedPixelCNNTrunk(c, channels, n_layers, kernel_size, first_kernel_size, num_classes,
                               spatial_channels, dropout)
    head_module = create_head(head, num_levels, c, **(head_options or {}))
    return AutoregressiveModel(trunk, head_module, image_shape, num_levels, num_classes, spatial_channels, out_hidden)
