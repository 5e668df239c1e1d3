"""Image grids as PNG files."""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image

from .io import atomic_write_bytes


def to_uint8(images: torch.Tensor, num_levels: int) -> np.ndarray:
    """Integer levels [0, K) (N, C, H, W) -> uint8 [0, 255] (N, H, W, C), level K-1 mapped to 255."""
    x = images.detach().cpu().double() * (255.0 / (num_levels - 1))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, num_levels: int, ncol: int | None = None, padding: int = 1, min_size: int = 32) -> np.ndarray:
    """Tile images into one (rows * H', cols * W', 3) uint8 array; small images are enlarged by an
    integer factor (nearest neighbour) so each is at least ``min_size`` pixels high."""
    arr = to_uint8(images, num_levels)
    n, h, w, c = arr.shape
    if c == 1:
        arr = np.repeat(arr, 3, axis=3)
    factor = max(1, -(-min_size // h))
    arr = arr.repeat(factor, axis=1).repeat(factor, axis=2)
    h, w = h * factor, w * factor
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = -(-n // ncol)
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3), 255, dtype=np.uint8)
    for k in range(n):
        r, col = divmod(k, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = arr[k]
    return grid


def save_grid(images: torch.Tensor, num_levels: int, path: str | os.PathLike, ncol: int | None = None) -> None:
    """Write ``images`` as a PNG grid, atomically."""
    buf = io.BytesIO()
    Image.fromarray(make_grid(images, num_levels, ncol)).save(buf, format="PNG")
    atomic_write_bytes(buf.getvalue(), path)


def save_levels_grid(levels: list[tuple[torch.Tensor, int]], path: str | os.PathLike) -> None:
    """One row per level, one column per sample (Kolesnikov & Lampert's Fig. 2 and 6): ``levels`` is
    a list of (images (N, C, h, w), num_levels), lowest level first; each is enlarged (nearest
    neighbour) to the largest level's size and shown on its own level grid (gray views as gray)."""
    if not levels:
        raise ValueError("save_levels_grid needs at least one level")
    n = levels[0][0].shape[0]
    size = max(x.shape[-1] for x, _ in levels)
    rows = []
    for x, k in levels:
        if x.shape[0] != n:
            raise ValueError(f"every level needs {n} images, got {x.shape[0]}")
        x = x.detach().cpu().double() * (255.0 / (k - 1))
        factor = size // x.shape[-1]
        x = x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
        rows.append(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)
    save_grid(torch.cat(rows).round().long(), 256, path, ncol=n)
