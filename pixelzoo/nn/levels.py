"""Integer-level images: the checks and the scaling every model of levels shares."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..views import has_values


def scale_levels(x: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Integer levels [0, K) -> floats in [-1, 1]."""
    return x.float() * (2.0 / (num_levels - 1)) - 1.0


def unscale_levels(v: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Floats on the [-1, 1] scale -> the nearest of the K levels (long, clipped to [0, K)): a
    continuous map on the data's scale (a VAE's means) shown as an image."""
    k1 = num_levels - 1
    return ((v.float() + 1.0) * (k1 / 2.0)).round().clamp(0, k1).long()


def check_levels(x: torch.Tensor, image_shape: tuple[int, ...], num_levels: int) -> None:
    """Raise ConfigError unless ``x`` is an integer (B, *image_shape) tensor with values in [0, K)."""
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ConfigError(f"expected images of shape (B, {', '.join(map(str, image_shape))}), got {tuple(x.shape)}")
    if x.is_floating_point():
        raise ConfigError(f"images must be integer levels in [0, {num_levels}), got dtype {x.dtype}")
    if has_values(x) and (int(x.min()) < 0 or int(x.max()) >= num_levels):
        raise ConfigError(f"image values must lie in [0, {num_levels}), got [{int(x.min())}, {int(x.max())}]")


def one_hot_levels(x: torch.Tensor, num_levels: int, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Integer levels (B, C, H, W) -> one-hot floats (B, C * K, H, W), channel c's K values together;
    positions where ``keep`` (B, 1, H, W) is False are all zeros (a masked position, unlike level 0)."""
    if x.is_floating_point():
        raise ConfigError(f"one-hot inputs must be integer levels, got dtype {x.dtype}")
    b, c, h, w = x.shape
    out = F.one_hot(x.long(), num_levels).permute(0, 1, 4, 2, 3).reshape(b, c * num_levels, h, w).float()
    return out if keep is None else out * keep.to(out.dtype)
