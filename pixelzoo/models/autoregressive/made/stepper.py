"""The MADE trunk's exact incremental stepper (``pixelzoo.models.autoregressive.made.trunk``).

A hidden unit of reach ``r`` depends only on dimensions ``< r`` of the map (and on inputs that are
fixed for the sample call: the class label, the spatial map, the head's per-position inputs such as
tau), so it is final once dimension ``r - 1`` is drawn. The stepper keeps every layer's units and the
trunk's output features; asked for dimension ``d``, it computes, layer by layer, the units of every
reach from the first not yet computed up to ``d``, and the output features of those dimensions
(catching up over given sub-pixels on the way). Each unit is computed once per sample call: drawing a
batch costs about one forward pass of the trunk. The parameters of the sub-pixel come from the
features of its pixel (groups ``<= c`` are final; later ones are zeros or stale, and the output
layer's channel masks do not read them).
"""

from __future__ import annotations

import torch

from ..steppers import Stepper


class MADEStepper(Stepper):
    def __init__(self, model, n, y=None, spatial=None, inputs=None):
        super().__init__(model, n, y, spatial, inputs)
        trunk = self.trunk = model.trunk
        self.channels, self.height, self.width = trunk.shape
        self.trunk_map = model.trunk_spatial(spatial, **self.inputs)  # fixed for the call
        device, dtype = trunk.hidden_reach.device, trunk.to_features.weight.dtype
        hidden = len(trunk.hidden_reach)
        self.units = [torch.zeros(self.n, hidden, device=device, dtype=dtype) for _ in trunk.layers]
        self.feats = torch.zeros(self.n, trunk.to_features.out_features, device=device, dtype=dtype)
        self.done = 0  # every unit and feature of reach < done is computed

    def params(self, x, i, j, c):
        model, trunk, f = self.model, self.trunk, self.trunk.features
        d = (i * self.width + j) * self.channels + c
        if d >= self.done:
            h = trunk.flat_inputs(model.scale(x), self.trunk_map)
            lo, hi = trunk.units_of_reaches(self.done, d + 1)
            for k, units in enumerate(self.units):
                units[:, lo:hi] = trunk.hidden(k, h, self.y, lo, hi)
                h = units
            self.feats[:, self.done * f:(d + 1) * f] = trunk.to_features.rows(h, self.done * f, (d + 1) * f)
            self.done = d + 1
        pixel = (i * self.width + j) * self.channels * f
        return self.params_from(self.feats[:, pixel:pixel + self.channels * f, None, None], x, i, j, c)
