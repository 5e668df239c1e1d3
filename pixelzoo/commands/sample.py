"""``pixelzoo sample``: draw samples from a trained run: a PNG grid and an .npz of the images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import PixelzooError
from ..imaging import write_sample_grid
from ..models.base import SamplesLevels
from ..training import load_run_model
from .colorize_upscale import class_option
from .options import NON_NEGATIVE, POSITIVE, TEMPERATURE, add_device_option, add_progress_option


def add_parser(subparsers):
    s = subparsers.add_parser("sample", help="draw samples from a trained run: a PNG grid and an .npz of the images")
    s.add_argument("run_dir")
    s.add_argument("-n", type=POSITIVE, default=64, help="number of images (default 64)")
    s.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every sample (default: classes in turn)")
    s.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature (0: most likely value)")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed")
    s.add_argument("--levels", action="store_true",
                   help="grayscale/pyramid models: one row per level, lowest first (the paper's Fig. 2 / Fig. 6); "
                        "agave: f(z) above each sample (Lucas & Verbeek's Fig. 3 / Fig. 6)")
    s.add_argument("--scale", type=POSITIVE, help="enlarge every image by this integer factor (default: the smallest "
                                             "making the grid at least 512 pixels wide); class-conditional models: "
                                             "one class per column, labelled")
    s.add_argument("--out", help="output path without suffix (default RUN_DIR/samples/sample-TIME)")
    add_progress_option(s)
    add_device_option(s)
    return s


def run(args) -> int:
    model, _ = load_run_model(args.run_dir, args.device)
    cls = class_option(model, args.cls)
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
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_sample_grid(x, y, model.num_levels, out.with_suffix(".png"), scale=args.scale, levels=levels)
    np.savez_compressed(out.with_suffix(".npz"), images=x.numpy().astype(np.uint8),
                        labels=(y.numpy() if y is not None else np.zeros(0, np.int64)))
    print(f"samples: {out.with_suffix('.png')} and {out.with_suffix('.npz')}")
    return 0
