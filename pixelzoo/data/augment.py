"""Data augmentation applied by the trainer to a batch (load_dataset never augments)."""

from __future__ import annotations

import torch

from pixelzoo.errors import DataError


def random_hflip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``; return a new tensor.

    ``images`` is (B, ..., W); the last dimension is flipped. Exactly B uniform numbers are drawn
    from ``generator`` (on its own device) whatever ``p`` is, so the result and the generator's
    next state depend only on the generator's state and B.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2:
        raise DataError(f"random_hflip: expected a batch tensor (B, ..., W), got "
                        f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    return apply_hflip(images, hflip_mask(images.shape[0], generator, p))


def hflip_mask(b: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Which of ``b`` images to mirror, (b,) bool: exactly ``b`` uniform numbers from ``generator``."""
    if not 0.0 <= float(p) <= 1.0:
        raise DataError(f"random_hflip: p must be in [0, 1], got {p}")
    return torch.rand(b, generator=generator, device=generator.device) < p


def apply_hflip(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror ``t`` (B, ..., W) left-right where ``mask`` (B,) is True; a new tensor. The images of a
    batch and per-image maps of them (a level of a chain at any resolution) take the same mask."""
    flip = mask.to(t.device).view(t.shape[0], *([1] * (t.dim() - 1)))
    return torch.where(flip, t.flip(-1), t)
