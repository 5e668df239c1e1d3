"""Sampling speed and bits/dim of a Pyramid PixelCNN against a flat PixelCNN at the same resolution.

Kolesnikov & Lampert (2017, §4.2) report 0.004 s per generated pixel for their Pyramid PixelCNN
(128x128 faces, no caching, TitanX) against 0.05 s for PixelCNN++ with caching: 12.5x. This script
measures both models *in the same run* on this machine:

* trains a ``pyramid_pixelcnn`` preset (every part) and a flat model (default: ``gated_pixelcnn``
  with the hyper-parameters of ``gated_pixelcnn/fashion-cpu``) on the pyramid preset's data, with
  the training budgets given by the flags (``--no-train`` skips training and bits/dim: speed does
  not depend on the weights);
* bits/dim on the first ``--eval-images`` test images: the flat model's, and the pyramid's bound in
  total, per part (bits per dimension of the full image, adding up to the total) and per resolution
  (each sub-pyramid's bound in bits per dimension of that resolution, the paper's Table 2);
* seconds per generated pixel: ``--sample-n`` images drawn as one batch (default 1, the paper's
  single-image setting), ``--repeats`` times alternating the two models, each one's best time
  taken; also in CPU time of the thread (``*cpu_seconds*``, ``speedup_per_pixel_cpu``: with one
  torch thread all of the work, and not stretched when other processes load the machine). A "pixel" is a spatial position of the final image (all its channels), so the pyramid's
  figure includes the time spent on its lower resolutions (also reported per part, and per pixel
  of every level).

Both use the library's default ancestral sampler with each trunk's exact incremental stepper (the
``stepper`` fields of the JSON): Gated PixelCNN trunks (the flat model and the pyramid's per-scale
conditionals in its Fashion preset) with per-layer queues (``GatedStepper``: the vertical stack once
per row, the horizontal stack once per position), PixelCNN++ trunks (the pyramid's prior) with
per-map caches (``PixelCNNPPStepper``); each scale's embedding net runs once. The paper's flat
baseline was cached too (PixelCNN++ with caching). The speed-up therefore depends on how light the
pyramid's per-scale trunks are against the flat model (see the preset and ``--flat-model``).

    python benchmarks/pyramid_speed.py                                  # real budgets: see --help
    python benchmarks/pyramid_speed.py --steps 2 --flat-steps 2 --eval-images 16   # smoke run
    python benchmarks/pyramid_speed.py --no-train --repeats 3 \
        --out benchmarks/results/pyramid_speed_sampling.json                     # sampling speed only
    python benchmarks/pyramid_speed.py --time-budget 75 --flat-time-budget 300 \
        --run-dir runs/pyr                                                       # an equal budget: 4 x 75 s = 300 s
    python benchmarks/pyramid_speed.py --from-runs --run-dir runs/pyr ...        # measure those runs again

Writes ``benchmarks/results/pyramid_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
FLAT_DEFAULT = {"name": "gated_pixelcnn", "channels": 64, "n_layers": 8, "kernel_size": 3, "first_kernel_size": 7,
                "out_hidden": 128}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="pyramid_pixelcnn/fashion-cpu", help="pyramid preset (its data is used for both)")
    p.add_argument("--flat-model", default=json.dumps(FLAT_DEFAULT),
                   help="JSON model section of the flat baseline (default: gated_pixelcnn/fashion-cpu's model)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the pyramid preset (model./data./train.), e.g. --set train.batch_size=8")
    p.add_argument("--steps", type=int, help="training steps of every pyramid part (default: the preset's, per part)")
    p.add_argument("--flat-steps", type=int, help="training steps of the flat model (default: the pyramid's largest)")
    p.add_argument("--time-budget", type=float, help="seconds of training per part / for the flat model (stops early)")
    p.add_argument("--flat-time-budget", type=float,
                   help="seconds of training of the flat model (default: --time-budget; give the pyramid's total, "
                        "parts times --time-budget, for an equal budget)")
    p.add_argument("--no-train", action="store_true", help="untrained weights: sampling speed only (no bits/dim)")
    p.add_argument("--from-runs", action="store_true",
                   help="do not train: load the two runs of an earlier call from --run-dir (its pyramid/ and flat/) "
                        "and measure them")
    p.add_argument("--eval-images", type=int, default=500, help="test images for bits/dim (default 500)")
    p.add_argument("--sample-n", type=int, default=1, help="images drawn in one batch (default 1)")
    p.add_argument("--repeats", type=int, default=2,
                   help="sampling repeats, alternating the models; each one's best is reported (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--run-dir", help="where the two runs are written (default: a temporary directory)")
    p.add_argument("--out", default=str(ROOT / "results" / "pyramid_speed.json"), help="JSON result file")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def configs(args):
    from pixelzoo.training import apply_overrides, load_config

    pyr = apply_overrides(load_config(args.preset), args.set)
    if pyr["model"]["name"] != "pyramid_pixelcnn":
        raise SystemExit(f"{args.preset} is not a pyramid_pixelcnn preset")
    pyr.pop("preset", None)
    train = dict(pyr.get("train", {}), num_samples=0, eval_every=0, sample_every=0, seed=args.seed)
    if args.time_budget:
        train["time_budget"] = args.time_budget
    parts = {k: dict(v) for k, v in pyr.get("train_parts", {}).items()}
    if args.steps is not None:
        train["steps"] = args.steps
        parts = {}
    pyr["train"], pyr["train_parts"] = train, parts
    largest = max([train.get("steps", 1000)] + [v.get("steps", 0) for v in parts.values()])
    flat_model = json.loads(args.flat_model)
    if "class_conditional" not in flat_model and "class_conditional" in pyr["model"]:
        flat_model["class_conditional"] = pyr["model"]["class_conditional"]
    flat = {"model": flat_model, "data": dict(pyr["data"]),
            "train": dict(train, steps=args.flat_steps if args.flat_steps is not None else largest)}
    if args.flat_time_budget:
        flat["train"]["time_budget"] = args.flat_time_budget
    return pyr, flat


def last_steps(run_dir: Path) -> dict:
    """Per unit of a run (the run itself, or each part under parts/), the last step and test bits/dim
    its metrics.jsonl records."""
    out = {}
    for metrics in sorted([run_dir / "metrics.jsonl"] + list((run_dir / "parts").glob("*/metrics.jsonl"))):
        if not metrics.exists():
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        test = [r for r in rows if "test_bpd_full" in r]
        info = {"step": max(r["step"] for r in rows)} if rows else {}
        if test:
            info["test_bpd"] = test[-1]["test_bpd_full"]
        out["run" if metrics.parent == run_dir else metrics.parent.name] = info
    return out


def train_or_build(config, run_dir, no_train, eval_images, from_run=False):
    from pixelzoo.data import DataSplits
    from pixelzoo.training import load_data, load_run_model, start_run
    from pixelzoo.training.run import build_model, resolve_model_config

    if from_run:
        model, _ = load_run_model(run_dir)
        splits = load_data(config["data"])
        splits = DataSplits(splits.train, splits.test.subset(range(min(eval_images, len(splits.test)))))
        return model, splits, {"run_dir": str(run_dir), "reloaded": True, "units": last_steps(Path(run_dir))}
    if no_train:
        splits = load_data(config["data"])
        torch.manual_seed(config["train"].get("seed", 0))
        return build_model(resolve_model_config(config["model"], splits)).eval(), splits, None
    trainer = start_run(config, run_dir, progress=False, tensorboard=False)
    # every evaluation of the trainers (each part's final one, the composite's) on the first
    # eval_images test images only, the ones bits() uses
    test = trainer.splits.test
    trainer.splits = DataSplits(trainer.splits.train, test.subset(range(min(eval_images, len(test)))))
    t = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - t
    model, _ = load_run_model(trainer.run_dir)
    info = {"run_dir": str(trainer.run_dir), "train_seconds": round(seconds, 1)}
    keep = ("step", "test_bpd", "train_seconds", "stopped_by_time_budget")
    if "parts" in result:
        info["parts"] = {k: {kk: vv for kk, vv in v.items() if kk in keep} for k, v in result["parts"].items()}
    else:
        info.update({k: v for k, v in result.items() if k in keep})
    return model, trainer.splits, info


@torch.no_grad()
def bits(model, splits, n):
    test = splits.test
    n = min(n, len(test))
    x = test.images[:n].long()
    y = test.labels[:n] if model.num_classes and test.labels is not None else None
    out, sums = {}, {}
    for s in range(0, n, 64):
        xb, yb = x[s:s + 64], None if y is None else y[s:s + 64]
        if hasattr(model, "bits_per_dim_parts"):
            for k, v in model.bits_per_dim_parts(xb, yb).items():
                sums.setdefault(("part", k), 0.0)
                sums[("part", k)] += float(v.double().sum())
            for k, v in model.level_bits_per_dim(xb, yb).items():
                sums.setdefault(("level", k), 0.0)
                sums[("level", k)] += float(v.double().sum())
        else:
            sums.setdefault(("part", "model"), 0.0)
            sums[("part", "model")] += float(model.bits_per_dim(xb, yb).double().sum())
    out["bpd_parts"] = {k: v / n for (kind, k), v in sums.items() if kind == "part"}
    out["bpd"] = sum(out["bpd_parts"].values())
    levels = {k: v / n for (kind, k), v in sums.items() if kind == "level"}
    if levels:
        out["bpd_per_resolution"] = levels
    out["eval_images"] = n
    return out


def labels(model, n):
    return torch.arange(n) % model.num_classes if model.num_classes else None


def stepper_name(model, n, y=None, cond=None):
    """The class of the stepper ``model`` (an autoregressive model, or a conditional one around it,
    given ``cond``, the level above) samples with."""
    if hasattr(model, "ar"):  # a stepper may need the conditioning map at creation (PixelCNN++'s)
        return type(model.ar.stepper(n, y=y, spatial=model.spatial(cond))).__name__
    return type(model.stepper(n, y=y)).__name__


def time_flat(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    t, c = time.perf_counter(), time.thread_time()
    model.sample(n, y=labels(model, n), generator=g)
    best, cpu = time.perf_counter() - t, time.thread_time() - c
    _, h, w = model.image_shape
    return {"seconds": best, "seconds_per_pixel": best / (n * h * w), "cpu_seconds": cpu,
            "cpu_seconds_per_pixel": cpu / (n * h * w), "stepper": stepper_name(model, n, labels(model, n))}


def time_pyramid(model, n, seed):
    """Time each part of ancestral sampling separately (the same steps as ``model.sample``)."""
    y = labels(model, n)
    g = torch.Generator().manual_seed(seed)
    parts, conds = {}, {"prior": None}
    t0, c0 = time.perf_counter(), time.thread_time()
    low = model.parts["prior"].sample(n, y=y, generator=g)
    parts["prior"] = time.perf_counter() - t0
    for k in range(1, model.n_scales + 1):
        t = time.perf_counter()
        conds[f"scale_{k}"] = low
        low = model.parts[f"scale_{k}"].sample(n, y=y, cond=low, generator=g)
        parts[f"scale_{k}"] = time.perf_counter() - t
    total, cpu = time.perf_counter() - t0, time.thread_time() - c0
    steppers = {k: stepper_name(model.parts[k], n, y, conds[k]) for k in parts}
    _, h, w = model.image_shape
    level_pixels = {name: math.prod(model.levels[model.link_of_part(name).level].shape[1:]) for name in model.part_names}
    return {"seconds": total, "seconds_per_pixel": total / (n * h * w), "cpu_seconds": cpu,
            "cpu_seconds_per_pixel": cpu / (n * h * w),
            "seconds_per_generated_pixel_all_levels": total / (n * sum(level_pixels.values())),
            "parts": {k: {"seconds": v, "level": "{}x{}".format(*model.levels[model.link_of_part(k).level].shape[1:]),
                          "seconds_per_pixel_of_level": v / (n * level_pixels[k]),
                          "stepper": steppers[k]} for k, v in parts.items()}}


def time_both(pyramid, flat, n, repeats, seed):
    """Alternate the two models ``repeats`` times (so a change in the machine's load hits both alike)
    and keep each one's fastest run (by wall time; the fastest CPU time of this thread, which other
    processes on a busy machine do not stretch, is kept apart as ``best_cpu_seconds``)."""
    best_p = best_f = None
    cpu_p, cpu_f = [], []
    for r in range(repeats):
        p = time_pyramid(pyramid, n, seed + r)
        f = time_flat(flat, n, seed + r)
        cpu_p.append(p["cpu_seconds"])
        cpu_f.append(f["cpu_seconds"])
        best_p = p if best_p is None or p["seconds"] < best_p["seconds"] else best_p
        best_f = f if best_f is None or f["seconds"] < best_f["seconds"] else best_f
    best_p["best_cpu_seconds"], best_f["best_cpu_seconds"] = min(cpu_p), min(cpu_f)
    return best_p, best_f


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT.parent))
    sys.path.insert(0, str(ROOT))
    from bench_common import environment, write_result
    from pixelzoo.threads import set_threads

    set_threads(args.threads)  # through pixelzoo, so the library's policy does not replace it at the first sample
    pyr_cfg, flat_cfg = configs(args)
    base = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="pyramid_speed-"))
    start = time.perf_counter()
    if args.from_runs and not args.run_dir:
        raise SystemExit("--from-runs needs --run-dir (the directory of the earlier call)")
    pyramid, splits, pyr_train = train_or_build(pyr_cfg, base / "pyramid", args.no_train, args.eval_images,
                                                args.from_runs)
    flat, _, flat_train = train_or_build(flat_cfg, base / "flat", args.no_train, args.eval_images, args.from_runs)
    result = {
        "benchmark": "pyramid_speed",
        "paper": {"pyramid_s_per_pixel": 0.004, "pixelcnnpp_cached_s_per_pixel": 0.05, "speedup": 12.5,
                  "setting": "128x128 CelebA, NVidia TitanX"},
        "preset": args.preset, "overrides": args.set, "data": pyr_cfg["data"],
        "image_shape": list(pyramid.image_shape), "trained": not args.no_train,
        "pyramid": {"model": pyr_cfg["model"], "train": pyr_train,
                    "params": sum(p.numel() for p in pyramid.parameters())},
        "flat": {"model": flat_cfg["model"], "train": flat_train, "params": sum(p.numel() for p in flat.parameters())},
    }
    if args.from_runs:
        result["note"] = (f"the runs of an earlier call reloaded from {args.run_dir} (budgets as given: "
                          f"--time-budget {args.time_budget} per part, --flat-time-budget {args.flat_time_budget})")
    if args.no_train:
        result["note"] = "untrained weights: sampling speed only (the time of a step does not depend on the weights)"
    else:
        result["pyramid"].update(bits(pyramid, splits, args.eval_images))
        result["flat"].update(bits(flat, splits, args.eval_images))
    result["pyramid"]["sampling"], result["flat"]["sampling"] = time_both(pyramid, flat, args.sample_n, args.repeats,
                                                                         args.seed)
    result["speedup_per_pixel"] = (result["flat"]["sampling"]["seconds_per_pixel"]
                                   / result["pyramid"]["sampling"]["seconds_per_pixel"])
    # in CPU time of this thread: all of the work with one torch thread, not stretched by other processes
    result["speedup_per_pixel_cpu"] = result["flat"]["sampling"]["best_cpu_seconds"] / result["pyramid"]["sampling"]["best_cpu_seconds"]
    result["sampling_batch"] = args.sample_n
    result["environment"] = environment(args.threads)
    write_result(result, args.out, start)
    p, f = result["pyramid"], result["flat"]
    if args.no_train:
        print(f"pyramid: {p['sampling']['seconds_per_pixel']:.5f} s/pixel; flat: "
              f"{f['sampling']['seconds_per_pixel']:.5f} s/pixel (untrained weights)")
    else:
        print(f"pyramid: {p['sampling']['seconds_per_pixel']:.5f} s/pixel, bound {p['bpd']:.3f} bits/dim "
              f"({', '.join(f'{k} {v:.3f}' for k, v in p['bpd_parts'].items())})")
        print(f"flat:    {f['sampling']['seconds_per_pixel']:.5f} s/pixel, {f['bpd']:.3f} bits/dim")
    print(f"speed-up per pixel: {result['speedup_per_pixel']:.2f}x, in CPU time {result['speedup_per_pixel_cpu']:.2f}x "
          f"(paper: 12.5x); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
