"""``pixelzoo inpaint``: complete test images whose top half is given; a PNG grid."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..imaging import save_grid
from ..io import check_writable
from ..sampling.labels import expand_labels
from ..zoo import local_dir
from ..training import load_data, load_run_model
from .options import COUNT, SEED, TEMPERATURE, add_device_option, add_progress_option, \
    check_sample_memory


def add_parser(subparsers):
    i = subparsers.add_parser("inpaint", help="complete test images whose top half is given; PNG grid")
    i.add_argument("run_dir")
    i.add_argument("--images", type=COUNT, default=8, help="number of test images (default 8)")
    i.add_argument("--completions", type=COUNT, default=4, help="completions per image (default 4)")
    i.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature")
    i.add_argument("--seed", type=SEED, default=0, help="random seed (which images, and the draws)")
    i.add_argument("--out", help="output PNG path (default RUN_DIR/samples/inpaint-TIME.png)")
    add_progress_option(i)
    add_device_option(i)
    return i


def run(args) -> int:
    model, config = load_run_model(args.run_dir, args.device)
    check_sample_memory(model, args.images * args.completions, "--images x --completions")
    out = Path(args.out) if args.out else local_dir(args.run_dir) / "samples" / f"inpaint-{time.strftime('%Y%m%d-%H%M%S')}.png"
    check_writable(out.parent, "where the inpainting grid goes")  # before sampling
    test = load_data(config["data"]).test
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[: args.images]
    known = test.images[idx].long()
    y = expand_labels(test.labels[idx], len(idx), args.completions) if model.num_classes and test.labels is not None \
        else None
    mask = torch.zeros(model.image_shape, dtype=torch.bool)
    mask[:, : model.image_shape[1] // 2] = True
    fills = model.sample(args.images * args.completions, y=y, known=known, mask=mask, generator=g,
                         progress=not args.no_progress, temperature=args.temperature).cpu()
    rows = []
    for k in range(args.images):
        shown = known[k].clone()
        shown[:, model.image_shape[1] // 2:] = 0
        rows += [known[k], shown, *fills[k * args.completions:(k + 1) * args.completions]]
    save_grid(torch.stack(rows), model.num_levels, out, ncol=args.completions + 2)
    print(f"inpainting grid (original, top half given, {args.completions} completions per row): {out}")
    return 0
