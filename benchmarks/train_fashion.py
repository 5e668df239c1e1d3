"""Train presets on Fashion-MNIST for the same wall-clock budget, in one run, and write test
bits/dim on the full 10k test set, steps and images/s as JSON.

    python benchmarks/train_fashion.py --minutes 20 --out benchmarks/results/train_fashion.json

By default the presets train one after the other, each with all threads. ``--side-by-side`` trains
them at the same time, one process per preset with ``--threads`` threads each, so that both see the
same machine for the same wall-clock minutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

from pixelzoo.io import atomic_write_json
from pixelzoo.registry import list_presets
from pixelzoo.training import load_config, start_run

DEFAULT_PRESETS = [p for p in ("gated_pixelcnn/fashion-cpu", "pixelcnnpp/fashion-cpu") if p in list_presets()]


def run_one(preset: str, budget_s: float, samples: int, out_root: Path, data_dir: str | None, threads: int | None = None) -> dict:
    if threads:
        set_threads(threads)
    config = load_config(preset)
    if data_dir:
        config["data"]["data_dir"] = data_dir
    config["train"].update(steps=10**9, time_budget=budget_s, num_samples=samples, eval_every=0,
                           checkpoint_every=10**9)
    trainer = start_run(config, out_root / preset.replace("/", "-"), progress=threads is None)
    t0 = time.perf_counter()
    result = trainer.train()
    seen = trainer.single.step * trainer.single.cfg.batch_size
    return {
        "preset": preset,
        "budget_s": budget_s,
        "steps": trainer.single.step,
        "images_seen": seen,
        "epochs": round(seen / len(trainer.splits.train), 3),
        "train_images_per_s": round(seen / result["train_seconds"], 2),
        # test bits/dim, or the held-out loss of a model without a likelihood (PixelIQN)
        **{k: round(result[k], 4) for k in ("test_bpd", "test_loss") if k in result},
        "test_images": len(trainer.splits.test),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "wall_s_including_eval": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "run_dir": str(trainer.run_dir),
        "samples": result.get("samples"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, required=True, help="training budget per preset, wall clock")
    p.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, help=f"presets to compare (default {DEFAULT_PRESETS})")
    p.add_argument("--samples", type=int, default=16, help="samples drawn at the end of each run (PNG grid)")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--runs", default="runs/bench-fashion", help="where the run directories go")
    p.add_argument("--out", default="benchmarks/results/train_fashion.json", help="JSON output path")
    p.add_argument("--side-by-side", action="store_true", help="train the presets at the same time, one process each")
    p.add_argument("--threads", type=int, default=1, help="threads per process with --side-by-side (default 1)")
    args = p.parse_args()
    jobs = [(preset, args.minutes * 60, args.samples, Path(args.runs), args.data_dir) for preset in args.presets]
    if args.side_by_side:
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            results = pool.starmap(run_one, [(*job, args.threads) for job in jobs])
    else:
        results = [run_one(*job) for job in jobs]
    report = {"benchmark": "train_fashion", "budget_minutes": args.minutes, "side_by_side": args.side_by_side,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_count": multiprocessing.cpu_count(), "results": results}
    atomic_write_json(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
