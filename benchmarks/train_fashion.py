"""Train presets on Fashion-MNIST for the same wall-clock budget, in one run, and write test
bits/dim on the full 10k test set, steps and images/s as JSON.

    python benchmarks/train_fashion.py --minutes 20 --out benchmarks/results/train_fashion.json
    python benchmarks/train_fashion.py --minutes 10 --side-by-side --eval-images 2000 \\
        --presets pixelcnnpp/fashion-cpu "pixelcnnpp/fashion-cpu+model.dropout=0.0"   # a recipe against the preset

By default the presets train one after the other, each with all threads. ``--side-by-side`` trains
them at the same time, one process per preset with ``--threads`` threads each, so that both see the
same machine for the same wall-clock minutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

from pixelzoo.io import atomic_write_json
from pixelzoo.registry import list_presets
from pixelzoo.training import load_config, start_run
from pixelzoo.training.run import apply_overrides

DEFAULT_PRESETS = [p for p in ("gated_pixelcnn/fashion-cpu", "pixelcnnpp/fashion-cpu") if p in list_presets()]


def run_one(spec: str, budget_s: float, samples: int, out_root: Path, data_dir: str | None, threads: int | None = None,
            eval_images: int | None = None) -> dict:
    """Train ``spec`` (a preset, or ``PRESET+KEY=VALUE+...``: the preset with `--set` overrides, a
    recipe to try) for ``budget_s`` seconds, then its test bits/dim (``eval_images``: the first N)."""
    if threads:
        set_threads(threads)
    preset, *overrides = spec.split("+")
    config = apply_overrides(load_config(preset), overrides)
    if data_dir:
        config["data"]["data_dir"] = data_dir
    config["train"].update(steps=10**9, time_budget=budget_s, num_samples=samples, eval_every=0,
                           checkpoint_every=10**9, final_eval_images=eval_images)
    trainer = start_run(config, out_root / spec.replace("/", "-").replace("+", "_"), progress=threads is None)
    t0 = time.perf_counter()
    result = trainer.train()
    seen = trainer.single.step * trainer.single.cfg.batch_size
    return {
        "preset": preset,
        "overrides": overrides,
        "budget_s": budget_s,
        "steps": trainer.single.step,
        "images_seen": seen,
        "epochs": round(seen / len(trainer.splits.train), 3),
        "train_images_per_s": round(seen / result["train_seconds"], 2),
        # test bits/dim, or the held-out loss of a model without a likelihood (PixelIQN)
        **{k: round(result[k], 4) for k in ("test_bpd", "test_loss") if k in result},
        "test_images": min(eval_images or len(trainer.splits.test), len(trainer.splits.test)),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "wall_s_including_eval": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "run_dir": str(trainer.run_dir),
        "samples": result.get("samples"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, required=True, help="training budget per preset, wall clock")
    p.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS,
                   help=f"presets to compare (default {DEFAULT_PRESETS}); PRESET+KEY=VALUE+... tries a recipe "
                        "(the preset with those --set overrides)")
    p.add_argument("--eval-images", type=int, help="test bits/dim on the first N test images (default: all)")
    p.add_argument("--samples", type=int, default=16, help="samples drawn at the end of each run (PNG grid)")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--runs", default="runs/bench-fashion", help="where the run directories go")
    p.add_argument("--out", default="benchmarks/results/train_fashion.json", help="JSON output path")
    p.add_argument("--side-by-side", action="store_true", help="train the presets at the same time, one process each")
    p.add_argument("--threads", type=int, default=1, help="threads per process with --side-by-side (default 1)")
    args = p.parse_args()
    jobs = [(preset, args.minutes * 60, args.samples, Path(args.runs), args.data_dir) for preset in args.presets]
    load_before = os.getloadavg()
    if args.side_by_side:
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            results = pool.starmap(run_one, [(*job, args.threads, args.eval_images) for job in jobs])
    else:
        results = [run_one(*job, eval_images=args.eval_images) for job in jobs]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    report = {"benchmark": "train_fashion", "budget_minutes": args.minutes, "side_by_side": args.side_by_side,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_count": multiprocessing.cpu_count(), "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M"),
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "results": results}
    atomic_write_json(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
