"""Layers: causal convolutions, channel-group masks, conditioning."""

from .causal import GroupedPointwise, HorizontalConv, VerticalConv, down_shift
from .conditioning import ConditioningBias, gate
from .masks import feature_groups, gate_groups, group_mask

__all__ = [
    "ConditioningBias",
    "GroupedPointwise",
    "HorizontalConv",
    "VerticalConv",
    "down_shift",
    "feature_groups",
    "gate",
    "gate_groups",
    "group_mask",
]
