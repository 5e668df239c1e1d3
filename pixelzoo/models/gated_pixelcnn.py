"""Gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks of gated layers.

Layer: v' = gate(V * v + cond_v),  h' = h + W_res * gate(H * h + L * down_shift(V * v) + cond_h),
gate(a, b) = tanh(a) * sigmoid(b), with conditioning ``cond`` = class embedding + 1x1 projection of
the spatial map. The first layer uses mask A on the horizontal stack (the current sub-pixel is never
seen) and has no residual; later layers use mask B.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import register_model
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
from .autoregressive import AutoregressiveModel, build_autoregressive
from .steppers import Stepper
from .trunks import Trunk, register_trunk


def conditioning_out_groups(channels: int, n_groups: int) -> torch.Tensor:
    """Colour groups of a two-stream layer's conditioning bias (vertical 2F channels, then horizontal
    2F): the vertical stream reaches the horizontal one only after ``down_shift`` (earlier rows), so
    it may read every group; the horizontal part keeps the gate's groups."""
    return torch.cat([torch.full((2 * channels,), n_groups - 1), gate_groups(channels, n_groups)])


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

    def forward(self, v, h, y, spatial):
        cv, ch = self.conditioning(y, spatial, v.shape[-2:])
        v_pre, v_new = self.vertical(v, cv)
        return v_new, self.horizontal(h, self.v_to_h(down_shift(v_pre)), ch)

    # The three parts of ``forward``, also run separately by the row-cached stepper
    # (``GatedPixelCNNTrunk.vertical_row_cache`` / ``horizontal_row``).
    def conditioning(self, y, spatial, size):
        """The conditioning bias split into its vertical and horizontal halves (cv, ch), each
        (B, 2F, 1, 1) or (B, 2F, *size), or (None, None) without conditioning. Position-wise (class
        embedding + 1x1 projection), so a crop of ``spatial`` gives the same crop of the bias."""
        cond = self.cond(y, spatial, size)
        return cond.chunk(2, dim=1) if torch.is_tensor(cond) else (None, None)

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
    row_cache = True

    def __init__(self, image_channels, channels=64, n_layers=8, kernel_size=3, first_kernel_size=7,
                 num_classes=None, spatial_channels=0, dropout=0.0, spatial_groups=None):
        super().__init__()
        self.out_channels = channels
        self.register_buffer("out_groups", feature_groups(channels, image_channels), persistent=False)
        layers = [GatedLayer(image_channels, channels, first_kernel_size, torch.arange(image_channels),
                             image_channels, True, num_classes, spatial_channels, dropout, spatial_groups)]
        for _ in range(n_layers - 1):
            layers.append(GatedLayer(channels, channels, kernel_size, feature_groups(channels, image_channels),
                                     image_channels, False, num_classes, spatial_channels, dropout, spatial_groups))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, y=None, spatial=None):
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y, spatial)
        return h

    # ------------------------------------------------------------------ row-cached evaluation
    # Exact because (1) the vertical stack at row r reads rows <= r only and reaches the horizontal
    # stack only through ``down_shift``, so row i's horizontal stack takes from the vertical one just
    # row i-1 of each layer's ``v_pre``, fixed once rows < i are; (2) the horizontal stack at column j
    # reads columns <= j of its own row only, so feeding columns 0..j gives columns 0..j exactly; (3)
    # the conditioning bias and ``v_to_h`` are position-wise. Both methods run the layer's own
    # ``conditioning`` / ``vertical`` / ``horizontal``, the same code as ``forward``.
    @property
    def vertical_reach(self) -> int:
        """How many rows above its own the vertical stack's output reads, through all layers."""
        return sum(layer.v_conv.half for layer in self.layers)

    def vertical_row_cache(self, x_above, y=None, spatial_above=None, spatial_row=None) -> list:
        """What row i's horizontal stack reads from outside row i, per layer: a pair
        (``v_to_h(down_shift(v_pre))`` at row i, the horizontal conditioning bias ``ch`` at row i or
        None), each (B, 2F, 1, W) (``ch`` (B, 2F, 1, 1) for a class bias alone).

        ``x_above`` (B, C, i, W) is the scaled image's rows 0..i-1 (i may be 0), ``spatial_above`` the
        trunk's spatial map on those rows and ``spatial_row`` (B, S, 1, W) on row i itself. Only the
        last ``vertical_reach + 1`` of those rows are run, which is exact: with h_l each layer's
        ``v_conv.half``, layer l's row i-1 reads image rows from i-1-(h_1+..+h_l) >= i-1-reach on; the
        zero padding above the window reaches layer l's rows only up to start-1+(h_1+..+h_l) < i-1."""
        start = max(0, x_above.shape[-2] - 1 - self.vertical_reach)
        x_above = x_above[..., start:, :]
        if spatial_above is not None:
            spatial_above = spatial_above[..., start:, :]
        b, _, rows, width = x_above.shape
        cache = []
        v = x_above
        for layer in self.layers:
            if rows:
                cv, _ = layer.conditioning(y, spatial_above, (rows, width))
                v_pre, v = layer.vertical(v, cv)
                last = v_pre[..., -1:, :]  # row i-1 of v_pre = row i of down_shift(v_pre)
            else:  # row 0: down_shift feeds zeros
                w = layer.v_to_h.weight
                last = torch.zeros(b, w.shape[1], 1, width, dtype=w.dtype, device=w.device)
            _, ch = layer.conditioning(y, spatial_row, (1, width))
            cache.append((layer.v_to_h(last), ch))
        return cache

    def horizontal_row(self, x_row, cache: list) -> torch.Tensor:
        """Features (B, F, 1, w) of row i, columns 0..w-1, from the scaled image's row i, columns 0..w-1
        (``x_row`` (B, C, 1, w)) and row i's ``vertical_row_cache``: equal to
        ``forward(x)[..., i:i+1, :w]``."""
        w = x_row.shape[-1]
        h = x_row
        for layer, (v_in, ch) in zip(self.layers, cache):
            h = layer.horizontal(h, v_in[..., :w], None if ch is None else ch[..., :w])
        return h

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None) -> "RowCacheStepper":
        return RowCacheStepper(model, n, y, spatial, inputs)


class RowCacheStepper(Stepper):
    """The Gated PixelCNN's incremental stepper (in the spirit of Ramachandran et al. 2017): per row
    ``i`` the vertical stack runs once on the rows above (``vertical_row_cache``, at the row's first
    sub-pixel to sample) and each layer keeps what it passes down to row ``i``; per sub-pixel only the
    horizontal stack runs, on row ``i``, columns ``0..j`` (``horizontal_row``). Both are exact crops of
    the full forward pass, so it gives the full-forward stepper's parameters. The trunk sees the same
    (cropped) inputs: its spatial map ``model.trunk_spatial`` of the cropped ``spatial`` and head inputs;
    ``model.params_from_features`` turns the features at (i, j) into that sub-pixel's parameters."""

    def __init__(self, model, n, y=None, spatial=None, inputs=None):
        super().__init__(model, n, y, spatial, inputs)
        self.trunk: GatedPixelCNNTrunk = model.trunk
        self._row: int | None = None
        self._cache: list | None = None

    def _trunk_spatial(self, rows: slice):
        return self.model.trunk_spatial(self.spatial_rows(rows), **self.inputs_at(rows))

    def params(self, x, i, j, c):
        model = self.model
        if self._row != i:  # once per row, at its first sub-pixel to sample
            above = self._trunk_spatial(slice(0, i)) if i else None  # row 0 has nothing above
            self._cache = self.trunk.vertical_row_cache(model.scale(x[:, :, :i]), self.y, above,
                                                        self._trunk_spatial(slice(i, i + 1)))
            self._row = i
        feats = self.trunk.horizontal_row(model.scale(x[:, :, i : i + 1, : j + 1]), self._cache)[..., j : j + 1]
        at = (slice(i, i + 1), slice(j, j + 1))
        return model.params_from_features(feats, model.scale(x[:, :, at[0], at[1]]),
                                          **self.inputs_at(*at))[:, c, :, 0, 0]


@register_model("gated_pixelcnn")
def build_gated_pixelcnn(image_shape, num_levels, num_classes=None, channels=64, n_layers=8, kernel_size=3,
                         first_kernel_size=7, out_hidden=None, dropout=0.0, spatial_channels=0,
                         head="categorical", head_options=None) -> AutoregressiveModel:
    """A Gated PixelCNN (``GatedPixelCNNTrunk``) with the categorical head by default."""
    return build_autoregressive("gated_pixelcnn", image_shape, num_levels, num_classes, head=head,
                                head_options=head_options, out_hidden=out_hidden, spatial_channels=spatial_channels,
                                channels=channels, n_layers=n_layers, kernel_size=kernel_size,
                                first_kernel_size=first_kernel_size, dropout=dropout)
