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
    if not 0.0 <= float(p) <= 1.0:
        raise DataError(f"random_hflip: p must be in [0, 1], got {p}")
    b = images.shape[0]
    u = torch.rand(b, generator=generator, device=generator.device)
    flip = (u < p).to(images.device).view(b, *([1] * (images.dim() - 1)))
    return torch.where(flip, images.flip(-1), images)
