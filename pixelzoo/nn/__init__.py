"""Layers: causal (masked or shifted) convolutions, channel-group masks, conditioning, diagonal Gaussian
latents (``gaussian``)."""

from .causal import GroupedPointwise, HorizontalConv, VerticalConv, down_shift
from .conditioning import ConditioningBias, gate
from .masks import feature_groups, gate_groups, group_mask
from .shifted import (
    DownRightShiftedConv2d,
    DownRightShiftedConvTranspose2d,
    DownShiftedConv2d,
    DownShiftedConvTranspose2d,
    concat_elu,
    right_shift,
)

__all__ = [
    "ConditioningBias",
    "DownRightShiftedConv2d",
    "DownRightShiftedConvTranspose2d",
    "DownShiftedConv2d",
    "DownShiftedConvTranspose2d",
    "GroupedPointwise",
    "HorizontalConv",
    "VerticalConv",
    "concat_elu",
    "down_shift",
    "feature_groups",
    "gate",
    "gate_groups",
    "group_mask",
    "right_shift",
]
