"""``pixelzoo sample``: draw samples from a trained run: a PNG grid and an .npz of the images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import PixelzooError
from ..imaging import write_sample_grid
from ..io import atomic_write_npz, check_writable, output_paths
from ..models.base import SamplesLevels
from ..zoo import local_dir
from ..training import load_run_model
from .colorize_upscale import class_option
from .options import (COUNT, NON_NEGATIVE, POSITIVE, SEED, TEMPERATURE, add_device_option, add_progress_option,
                      check_grid_pixels, check_sample_memory)


def add_parser(subparsers):
    s = subparsers.add_parser("sample", help="draw samples from a trained run: a PNG grid and an .npz of the images")
    s.add_argument("run_dir")
    s.add_argument("-n", type=COUNT, default=64, help="number of images (default 64)")
    s.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every sample (default: classes in turn)")
    s.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature (0: most likely value)")
    s.add_argument("--seed", type=SEED, default=0, help="random seed")
    s.add_argument("--levels", action="store_true",
                   help="grayscale/pyramid models: one row per level, lowest first (the paper's Fig. 2 / Fig. 6); "
                        "agave: f(z) above each sample (Lucas & Verbeek's Fig. 3 / Fig. 6)")
    s.add_argument("--scale", type=POSITIVE, help="enlarge every image by this integer factor (default: the smallest "
                                             "making the grid at least 512 pixels wide); class-conditional models: "
                                             "one class per column, labelled")
    s.add_argument("--out", help="output path without suffix, kept as given (OUT.png and OUT.npz; default "
                                 "RUN_DIR/samples/sample-TIME)")
    add_progress_option(s)
    add_device_option(s)
    return s


def run(args) -> int:
    model, _ = load_run_model(args.run_dir, args.device)
    cls = class_option(model, args.cls)
    # what cannot be done is refused before sampling: too many images, a grid PIL would refuse, no place to write
    check_sample_memory(model, args.n)
    check_grid_pixels(args.n, model.image_shape, args.scale, rows_per_image=2 if args.levels else 1)
    out = Path(args.out) if args.out else local_dir(args.run_dir) / "samples" / f"sample-{time.strftime('%Y%m%d-%H%M%S')}"
    png, npz = output_paths(out, ".png", ".npz")
    check_writable(png.parent, "where the samples go")
    y = None
    if model.num_classes:
        y = torch.full((args.n,), cls) if cls is not None else torch.arange(args.n) % model.num_classes
    g = torch.Generator().manual_seed(args.seed)
    levels = None
    if args.levels:
        if not isinstance(model, SamplesLevels):
            raise PixelzooError(f"--levels needs a model with auxiliary levels (grayscale_pixelcnn, pyramid_pixelcnn, agave); "
                                f"{type(model).__name__} has none")
        levels = model.level_grid(args.n, y=y, temperature=args.temperature, generator=g,
                                  progress=not args.no_progress)
        levels = [(lv.cpu(), k) for lv, k in levels]
        x = levels[-1][0]
    else:
        x = model.sample(args.n, y=y, temperature=args.temperature, generator=g, progress=not args.no_progress).cpu()
    write_sample_grid(x, y, model.num_levels, png, scale=args.scale, levels=levels)
    atomic_write_npz(npz, images=x.numpy().astype(np.uint8),
                     labels=(y.numpy() if y is not None else np.zeros(0, np.int64)))
    print(f"samples: {png} and {npz}")
    return 0
