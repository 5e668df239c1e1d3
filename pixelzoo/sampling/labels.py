"""Labels for sampling: one per drawn image, from a class, one label per given item, or none."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def per_image(n_per_image) -> int:
    """``n_per_image`` checked: a positive integer."""
    if isinstance(n_per_image, bool) or int(n_per_image) != n_per_image or n_per_image < 1:
        raise ConfigError(f"n_per_image must be a positive integer, got {n_per_image!r}")
    return int(n_per_image)


def expand_labels(y, count: int, per: int = 1) -> torch.Tensor | None:
    """Labels for ``count`` given items, each drawn ``per`` times (image-major): None stays None; a
    scalar (or a 0-d tensor) labels all ``count * per``; a (count,) tensor is repeated ``per`` times
    each. Anything else is a ConfigError."""
    if y is None:
        return None
    y = torch.as_tensor(y).long()
    if y.dim() == 0:
        return y.expand(count * per).clone()
    if tuple(y.shape) != (count,):
        raise ConfigError(f"labels must be a scalar or a ({count},) tensor, one per given item; got {tuple(y.shape)}")
    return y.repeat_interleave(per) if per > 1 else y
