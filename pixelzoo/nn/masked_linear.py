"""Masked fully-connected layers for MADE (Germain et al. 2015), with connectivity given by *reaches*.

Every unit (an input, a hidden unit, an output) has an integer reach: the first output dimension
allowed to depend on it. A connection from unit ``a`` to unit ``b`` is kept iff
``reach[a] <= reach[b]``, so, composed over layers, output ``d`` (reach ``d``) depends only on inputs
whose reach is ``<= d``. For a flat vector ``v_0 .. v_{D-1}`` modelled in that order, input ``v_i``
has reach ``i + 1`` (outputs after it) and an input given together with dimension ``i`` (a quantile
target tau_i, which output ``i`` itself reads) has reach ``i``. MADE's degrees are these reaches
shifted by one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError


def reach_mask(out_reach: torch.Tensor, in_reach: torch.Tensor) -> torch.Tensor:
    """(out, in) 0/1 float mask: output unit ``o`` reads input unit ``i`` iff ``in_reach[i] <= out_reach[o]``."""
    return (in_reach[None, :] <= out_reach[:, None]).float()


def spread_reaches(units: int, dims: int) -> torch.Tensor:
    """Reaches of ``units`` hidden units spread evenly (sorted, counts differing by at most one) over
    ``0 .. dims - 1``; every reach has a unit when ``units >= dims``."""
    if units < 1 or dims < 1:
        raise ConfigError(f"need at least one unit and one dimension, got {units} units over {dims} dimensions")
    return torch.arange(units) * dims // units


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``reach_mask`` at every call (the
    weight itself is never changed, so masked entries get zero gradient and stay as initialised).
    Initialised as ``nn.Linear`` is, but with each unit's own fan-in (the inputs its mask keeps): a
    unit of low reach reads few inputs, which with the whole layer's fan-in would barely move it from its bias.

    ``rows(h, lo, hi)`` computes output units ``lo .. hi - 1`` only (an incremental sampler computes a
    layer's units a few at a time)."""

    def __init__(self, in_reach: torch.Tensor, out_reach: torch.Tensor):
        super().__init__(len(in_reach), len(out_reach))
        self.register_buffer("mask", reach_mask(torch.as_tensor(out_reach), torch.as_tensor(in_reach)),
                             persistent=False)
        with torch.no_grad():
            bound = self.mask.sum(1, keepdim=True).clamp(min=1).rsqrt()
            self.weight.uniform_(-1.0, 1.0).mul_(bound)
            self.bias.uniform_(-1.0, 1.0).mul_(bound[:, 0])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight * self.mask, self.bias)

    def rows(self, h: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return F.linear(h, self.weight[lo:hi] * self.mask[lo:hi], self.bias[lo:hi])
