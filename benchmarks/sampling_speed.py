"""Sampling speed of a Gated PixelCNN: naive against row-cached ancestral sampling, same process.

The model is the architecture of the ``gated_pixelcnn/fashion-cpu`` preset (28x28, 256 levels, 10
classes; untrained weights: speed does not depend on them). Both samplers draw ``--n`` images as one
batch with the same generator seed.

The naive sampler runs the trunk on rows 0..i for every pixel of row i, so a full 28x28 image takes
minutes; it is timed on ``--rows`` rows only, spread evenly over the image (their mean row index is
the image's, and the naive cost grows linearly with the row index, so the per-pixel figure is the
full image's). The other rows are given as inpainting context (``known`` / ``mask``: the sampler
skips them), taken from a full image drawn by the cached sampler. The cached sampler is timed on the
same rows (the speed-up compares the two there) and on the full image. The two samplers' outputs on
the timed rows must be identical; ``identical`` records it. ``--repeats`` alternates the samplers
and keeps each one's best time. A "pixel" is one spatial position of one image (all its channels).

    python benchmarks/sampling_speed.py                    # default: n=8, 4 naive rows, ~1-2 min
    python benchmarks/sampling_speed.py --rows 1 --repeats 1 --n 2     # smoke run

Writes ``benchmarks/results/sampling_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="gated_pixelcnn/fashion-cpu", help="preset whose model section is built")
    p.add_argument("--n", type=int, default=8, help="images drawn in one batch (default 8)")
    p.add_argument("--rows", type=int, default=4,
                   help="rows timed for both samplers, spread over the image; 0 = every row (default 4)")
    p.add_argument("--repeats", type=int, default=2,
                   help="timing repeats, alternating the samplers; each one's best is reported (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=str(ROOT / "results" / "sampling_speed.json"), help="JSON result file")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def timed_rows(height: int, rows: int) -> list[int]:
    """``rows`` row indices spread evenly over ``height`` (mean index (height - 1) / 2)."""
    if rows <= 0 or rows >= height:
        return list(range(height))
    return sorted({round((k + 0.5) * height / rows - 0.5) for k in range(rows)})


def timed_sample(model, n, y, seed, cached, known=None, mask=None):
    from pixelzoo.sampling.ancestral import ancestral_sample

    t = time.perf_counter()
    x = ancestral_sample(model, n, y=y, known=known, mask=mask, generator=torch.Generator().manual_seed(seed),
                         cached=cached)
    return x, time.perf_counter() - t


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT.parent))
    sys.path.insert(0, str(ROOT))
    from bench_common import environment, write_result
    import pixelzoo
    from pixelzoo.registry import load_preset

    start = time.perf_counter()
    model_cfg = dict(load_preset(args.preset)["model"])
    name = model_cfg.pop("name")
    torch.manual_seed(args.seed)
    model = pixelzoo.create_model(name, (1, 28, 28), 256, 10, **model_cfg).eval()
    if not model.trunk.row_cache:
        raise SystemExit(f"{name} has no row-cached sampler")
    _, height, width = model.image_shape
    n = args.n
    y = torch.arange(n) % 10

    # a full image with the cached sampler (timed), then the context for the row-subset runs
    full, full_seconds = timed_sample(model, n, y, args.seed, cached=True)
    rows = timed_rows(height, args.rows)
    mask = torch.ones(model.image_shape, dtype=torch.bool)
    mask[:, rows] = False
    best = {"naive": None, "cached": None}
    outs = {}
    for r in range(args.repeats):
        for kind, cached in (("naive", False), ("cached", True)):
            outs[kind], seconds = timed_sample(model, n, y, args.seed + 1 + r, cached, known=full, mask=mask)
            best[kind] = seconds if best[kind] is None else min(best[kind], seconds)
        if not torch.equal(outs["naive"], outs["cached"]):
            break
    pixels = n * len(rows) * width
    result = {
        "benchmark": "sampling_speed",
        "preset": args.preset, "model": dict(model_cfg, name=name), "image_shape": list(model.image_shape),
        "num_levels": 256, "num_classes": 10, "trained": False, "params": sum(p.numel() for p in model.parameters()),
        "batch": n, "timed_rows": rows, "repeats": args.repeats,
        "naive": {"seconds": best["naive"], "seconds_per_pixel": best["naive"] / pixels},
        "cached": {"seconds": best["cached"], "seconds_per_pixel": best["cached"] / pixels,
                   "full_image_seconds": full_seconds,
                   "full_image_seconds_per_pixel": full_seconds / (n * height * width)},
        "speedup_per_pixel": best["naive"] / best["cached"],
        "naive_full_image_seconds_estimate": best["naive"] / pixels * n * height * width,
        "identical": bool(torch.equal(outs["naive"], outs["cached"])),
    }
    result["environment"] = environment(args.threads)
    write_result(result, args.out, start)
    print(f"naive:  {result['naive']['seconds_per_pixel']:.5f} s/pixel on rows {rows} (batch {n})")
    print(f"cached: {result['cached']['seconds_per_pixel']:.5f} s/pixel on the same rows, "
          f"{result['cached']['full_image_seconds_per_pixel']:.5f} s/pixel on the full image")
    print(f"speed-up per pixel: {result['speedup_per_pixel']:.1f}x; identical images: {result['identical']}; "
          f"written to {args.out}")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
