"""Image grids as PNG files."""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError
from .io import atomic_write_bytes


def to_uint8(images: torch.Tensor, num_levels: int) -> np.ndarray:
    """Integer levels [0, K) (N, C, H, W) -> uint8 [0, 255] (N, H, W, C), level K-1 mapped to 255."""
    x = images.detach().cpu().double() * (255.0 / (num_levels - 1))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


GRID_MIN_WIDTH = 512   # a grid's default scale makes it at least this many pixels wide
GRID_MIN_SIZE = 32     # ... and each image at least this many pixels high


def grid_scale(height: int, width: int, ncol: int, padding: int = 1, min_width: int = GRID_MIN_WIDTH,
               min_size: int = GRID_MIN_SIZE) -> int:
    """The default integer enlargement of a grid of ``ncol`` columns of (height, width) images: the
    smallest factor making the grid at least ``min_width`` pixels wide (padding included) and each
    image at least ``min_size`` pixels high."""
    ncol = max(1, ncol)
    by_width = -(-(min_width - padding - ncol * padding) // (ncol * width))
    by_height = -(-min_size // height)
    return max(1, by_width, by_height)


def _check_scale(scale) -> int | None:
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"the grid scale must be a positive integer, got {scale!r}")
    return int(scale)


def make_grid(images: torch.Tensor, num_levels: int, ncol: int | None = None, padding: int = 1,
              scale: int | None = None, cells: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Tile images into one (rows * H', cols * W', 3) uint8 array on white, each enlarged by the
    integer factor ``scale`` (nearest neighbour; default :func:`grid_scale`: the grid at least 512
    pixels wide, each image at least 32 high). Image k goes to cell ``cells[k]`` = (row, column)
    when given (cells left out stay white), else row-major in ``ncol`` columns (default about
    sqrt(n))."""
    arr = to_uint8(images, num_levels)
    n, h, w, c = arr.shape
    if c == 1:
        arr = np.repeat(arr, 3, axis=3)
    if cells is not None:
        if len(cells) != n:
            raise ValueError(f"{n} images but {len(cells)} cells")
        ncol = max(col for _, col in cells) + 1 if cells else 1
        nrow = max(r for r, _ in cells) + 1 if cells else 1
    else:
        ncol = ncol or int(np.ceil(np.sqrt(n)))
        nrow = max(1, -(-n // ncol))
        cells = [divmod(k, ncol) for k in range(n)]
    factor = _check_scale(scale) or grid_scale(h, w, ncol, padding)
    arr = arr.repeat(factor, axis=1).repeat(factor, axis=2)
    h, w = h * factor, w * factor
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3), 255, dtype=np.uint8)
    for k, (r, col) in enumerate(cells):
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = arr[k]
    return grid


def label_columns(grid: np.ndarray, labels: list[str], cell_width: int, padding: int = 1) -> np.ndarray:
    """``grid`` with a white strip on top holding ``labels[j]`` centred over column j (columns of
    ``cell_width`` pixels plus ``padding``), in PIL's built-in default font (nothing is downloaded)."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), str(t), font=font) for t in labels]
    text_h = max([b[3] for b in boxes] + [8])
    strip = text_h + 4
    img = Image.new("RGB", (grid.shape[1], grid.shape[0] + strip), (255, 255, 255))
    img.paste(Image.fromarray(grid), (0, strip))
    draw = ImageDraw.Draw(img)
    for j, (t, b) in enumerate(zip(labels, boxes)):
        centre = padding + j * (cell_width + padding) + cell_width / 2
        draw.text((round(centre - (b[2] - b[0]) / 2 - b[0]), 2), str(t), fill=(0, 0, 0), font=font)
    return np.asarray(img)


def _save_png(grid: np.ndarray, path) -> None:
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    atomic_write_bytes(buf.getvalue(), path)


def save_grid(images: torch.Tensor, num_levels: int, path: str | os.PathLike, ncol: int | None = None, *,
              scale: int | None = None, column_labels: list | None = None, cells=None) -> None:
    """Write ``images`` as a PNG grid (:func:`make_grid`), atomically; ``column_labels``: one text
    per column, drawn above the grid."""
    grid = make_grid(images, num_levels, ncol, scale=scale, cells=cells)
    if column_labels is not None:
        columns = max(c for _, c in cells) + 1 if cells else (ncol or int(np.ceil(np.sqrt(images.shape[0]))))
        if len(column_labels) != columns:
            raise ValueError(f"{len(column_labels)} column labels for {columns} columns")
        grid = label_columns(grid, [str(t) for t in column_labels], (grid.shape[1] - 1) // columns - 1)
    _save_png(grid, path)


def class_cells(labels, num_classes: int | None = None) -> tuple[list[tuple[int, int]], list[int]]:
    """The layout of a class-conditional grid: one class per column, whatever the number of images.
    Returns (cells, the class of each column). Several classes: a column per class present
    (ascending), its images top-down in their given order, so with labels ``arange(n) % C`` and n
    not a multiple of C the last row is ragged (the columns of the later classes end one image
    early, leaving empty white cells). A single class: an about-square grid, every column labelled
    with that class."""
    y = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
    if num_classes is not None and any(not 0 <= v < num_classes for v in y):
        raise ValueError(f"class labels must lie in [0, {num_classes})")
    classes = sorted(set(y))
    if len(classes) <= 1:
        ncol = max(1, int(np.ceil(np.sqrt(len(y)))))
        return [divmod(k, ncol) for k in range(len(y))], classes * min(ncol, len(y)) or [0]
    column = {c: j for j, c in enumerate(classes)}
    filled = [0] * len(classes)
    cells = []
    for v in y:
        j = column[v]
        cells.append((filled[j], j))
        filled[j] += 1
    return cells, classes


def save_class_grid(images: torch.Tensor, labels, num_levels: int, path: str | os.PathLike, *,
                    scale: int | None = None, class_names: list[str] | None = None) -> None:
    """A grid of class-conditional samples with one class per column and the class above each
    column (:func:`class_cells`: a ragged last row when the number of images is not a multiple of
    the classes); ``class_names[c]`` replaces the number c when given."""
    if images.shape[0] != len(labels):
        raise ValueError(f"{images.shape[0]} images but {len(labels)} labels")
    cells, classes = class_cells(labels)
    names = [class_names[c] if class_names else str(c) for c in classes]
    save_grid(images, num_levels, path, scale=scale, column_labels=names, cells=cells)


def save_levels_grid(levels: list[tuple[torch.Tensor, int]], path: str | os.PathLike, *, scale: int | None = None,
                     column_labels: list | None = None) -> None:
    """One row per level, one column per sample (Kolesnikov & Lampert's Fig. 2 and 6): ``levels`` is
    a list of (images (N, C, h, w), num_levels), lowest level first; each is enlarged (nearest
    neighbour) to the largest level's size and shown on its own level grid (gray views as gray).
    ``scale`` enlarges the whole grid further (default :func:`grid_scale`); ``column_labels``: a text
    above each sample's column (its class)."""
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
    save_grid(torch.cat(rows).round().long(), 256, path, ncol=n, scale=scale, column_labels=column_labels)


def write_sample_grid(images: torch.Tensor, labels, num_levels: int, path: str | os.PathLike, *,
                      scale: int | None = None, levels: list[tuple[torch.Tensor, int]] | None = None) -> None:
    """The one writer of sample grids (training's, a composite run's final one, ``pixelzoo sample``'s):
    with ``labels`` (class-conditional samples) one class per column, labelled
    (:func:`save_class_grid`); without, a plain grid (:func:`save_grid`). ``levels``: a model's
    auxiliary levels of the same samples, lowest first, drawn one row per level
    (:func:`save_levels_grid`; each sample's class above its column when labelled)."""
    if levels is not None:
        save_levels_grid(levels, path, scale=scale, column_labels=None if labels is None else labels.tolist())
    elif labels is not None:
        save_class_grid(images, labels, num_levels, path, scale=scale)
    else:
        save_grid(images, num_levels, path, scale=scale)
