"""Channel groups and weight masks that keep colour channels of one pixel in order.

A feature map of ``n`` channels in a model of an image with ``G`` colour channels is split into
``G`` contiguous groups: feature group ``g`` at a pixel may depend on that pixel's colour channels
``< g`` only (and on everything at earlier pixels). Group ``g`` is what the distribution of colour
channel ``g`` is computed from. With one colour channel there is one group, which sees nothing of the
current pixel.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def feature_groups(n_features: int, n_groups: int) -> torch.Tensor:
    """Group index of each of ``n_features`` channels: contiguous blocks whose sizes differ by at
    most one (128 features in 3 groups: 43, 43, 42)."""
    if n_features < n_groups:
        raise ConfigError(f"{n_features} feature channels cannot carry {n_groups} colour groups; use at least {n_groups}")
    return torch.arange(n_features) * n_groups // n_features


def gate_groups(n_features: int, n_groups: int) -> torch.Tensor:
    """Groups of the ``2 * n_features`` channels that a gate splits into (tanh half, sigmoid half).

    Both halves carry the same grouping, so ``tanh(a) * sigmoid(b)`` keeps channel ``k`` in the group
    it had.
    """
    g = feature_groups(n_features, n_groups)
    return torch.cat([g, g])


def group_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, include_own: bool) -> torch.Tensor:
    """(out, in) 0/1 mask: output group ``o`` may read input group ``i`` iff ``i < o``
    (``include_own=False``, the first layer's mask "A") or ``i <= o`` (mask "B")."""
    o = out_groups[:, None]
    i = in_groups[None, :]
    allowed = (i <= o) if include_own else (i < o)
    return allowed.float()
