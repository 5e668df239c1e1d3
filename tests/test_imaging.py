"""PNG sample grids: the default scale (at least ~512 pixels wide), an explicit scale, class labels
along the columns and one class per column whatever the number of images."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixelzoo.errors import ConfigError
from pixelzoo.imaging import (class_cells, grid_scale, make_grid, save_class_grid, save_grid,
                              save_levels_grid, write_sample_grid)


def read(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def cell(grid, r, c, size, top=0, padding=1):
    """The pixels of cell (r, c) of a grid of size x size images (below a label strip of ``top`` rows)."""
    y0, x0 = top + padding + r * (size + padding), padding + c * (size + padding)
    return grid[y0:y0 + size, x0:x0 + size]


def test_default_scale_makes_the_grid_at_least_512_wide_and_scale_overrides_it(tmp_path):
    x = torch.randint(0, 17, (16, 1, 8, 8))
    assert grid_scale(8, 8, 4) == 16            # 4 * (8 * 16 + 1) + 1 = 517 >= 512 > 4 * (8 * 15 + 1) + 1
    save_grid(x, 17, tmp_path / "d.png")
    assert read(tmp_path / "d.png").shape[:2] == (517, 517)
    save_grid(x, 17, tmp_path / "s.png", scale=3)
    assert read(tmp_path / "s.png").shape[:2] == (4 * 25 + 1, 4 * 25 + 1)
    big = torch.randint(0, 256, (64, 3, 28, 28))  # 8 columns of 28: scale 3 (8 * 85 + 1 = 681)
    assert make_grid(big, 256).shape == (681, 681, 3)
    assert make_grid(torch.zeros(2, 1, 300, 300, dtype=torch.long), 256).shape[:2] == (302, 603)  # wide enough: 1
    for bad in (0, -2, 1.5):
        with pytest.raises(ConfigError, match="positive integer"):
            save_grid(x, 17, tmp_path / "bad.png", scale=bad)


def test_every_pixel_is_its_image_enlarged(tmp_path):
    x = torch.randint(0, 4, (3, 1, 2, 2))
    grid = make_grid(x, 4, ncol=3, scale=5)
    assert grid.shape == (1 + 11, 1 + 3 * 11, 3)
    want = (x[1, 0] * 85).repeat_interleave(5, 0).repeat_interleave(5, 1).numpy()
    assert (cell(grid.astype(int), 0, 1, 10)[..., 0] == want).all()


def test_class_grid_one_class_per_column_labelled_ragged_last_row(tmp_path):
    """23 images of 10 classes in turn: 10 labelled columns, 3 rows, the last row holds classes 0-2
    and empty white cells; every image stands in the column of its class."""
    n, classes = 23, 10
    y = torch.arange(n) % classes
    x = (y + 3).view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()   # image k is the flat level y_k + 3
    save_class_grid(x, y, 17, tmp_path / "c.png", scale=2)
    plain = make_grid(x, 17, ncol=classes, scale=2)
    grid = read(tmp_path / "c.png")
    top = grid.shape[0] - plain.shape[0]
    assert grid.shape[1] == classes * 17 + 1 and plain.shape[0] == 3 * 17 + 1
    assert 8 <= top <= 30                                       # the label strip
    for k in range(n):
        r, c = divmod(k, classes)
        assert (cell(grid, r, c, 16, top) == round((int(y[k]) + 3) * 255 / 16)).all(), k
    for c in range(3, classes):
        assert (cell(grid, 2, c, 16, top) == 255).all()         # ragged: empty cells
    strip = grid[:top]
    for c in range(classes):                                    # a label (dark text) over every column
        x0 = 1 + c * 17
        assert strip[:, x0:x0 + 16].min() < 128, c
    assert strip.min() < 128 and (strip[:, 0] == 255).all()


def test_class_grid_groups_any_labels_by_class(tmp_path):
    y = torch.tensor([2, 0, 2, 2, 5, 0])
    cells, columns = class_cells(y)
    assert columns == [0, 2, 5]
    assert cells == [(0, 1), (0, 0), (1, 1), (2, 1), (0, 2), (1, 0)]
    x = y.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    save_class_grid(x, y, 6, tmp_path / "g.png", scale=1, class_names=["zero", "one", "two", "three", "four", "five"])
    grid = read(tmp_path / "g.png")
    assert grid.shape[1] == 3 * 5 + 1
    # fewer images than classes: one column each
    assert class_cells(torch.arange(3))[1] == [0, 1, 2]
    # a single class (--class C): an about-square grid, every column labelled with it
    cells, columns = class_cells(torch.full((6,), 3))
    assert columns == [3, 3, 3] and cells[-1] == (1, 2)
    with pytest.raises(ValueError, match="labels"):
        save_class_grid(x, y[:2], 6, tmp_path / "bad.png")


def test_levels_grid_takes_a_scale_and_column_labels(tmp_path):
    levels = [(torch.randint(0, 4, (3, 1, 2, 2)), 4), (torch.randint(0, 256, (3, 3, 4, 4)), 256)]
    save_levels_grid(levels, tmp_path / "l.png", scale=3)
    assert read(tmp_path / "l.png").shape[:2] == (1 + 2 * 13, 1 + 3 * 13)
    save_levels_grid(levels, tmp_path / "labelled.png", scale=3, column_labels=[0, 1, 2])
    labelled = read(tmp_path / "labelled.png")
    assert labelled.shape[1] == 1 + 3 * 13 and labelled.shape[0] > 1 + 2 * 13
    save_levels_grid(levels, tmp_path / "default.png")
    assert read(tmp_path / "default.png").shape[1] >= 512


def test_the_sample_grid_writer_is_a_class_grid_with_labels_else_a_plain_grid(tmp_path):
    """``write_sample_grid``, which training, a composite's final samples and `pixelzoo sample` share."""
    x, y = torch.randint(0, 17, (13, 1, 8, 8)), torch.arange(13) % 10
    write_sample_grid(x, y, 17, tmp_path / "w_class.png", scale=2)
    save_class_grid(x, y, 17, tmp_path / "class.png", scale=2)
    assert (tmp_path / "w_class.png").read_bytes() == (tmp_path / "class.png").read_bytes()
    write_sample_grid(x, None, 17, tmp_path / "w_plain.png")
    save_grid(x, 17, tmp_path / "plain.png")
    assert (tmp_path / "w_plain.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    levels = [(torch.randint(0, 4, (3, 1, 2, 2)), 4), (torch.randint(0, 256, (3, 3, 4, 4)), 256)]
    write_sample_grid(levels[-1][0], torch.tensor([0, 1, 2]), 256, tmp_path / "w_levels.png", scale=3, levels=levels)
    save_levels_grid(levels, tmp_path / "levels.png", scale=3, column_labels=[0, 1, 2])
    assert (tmp_path / "w_levels.png").read_bytes() == (tmp_path / "levels.png").read_bytes()
