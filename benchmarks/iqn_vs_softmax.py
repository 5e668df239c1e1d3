"""PixelIQN against the softmax Gated PixelCNN at the same network and wall-clock budget (the central
claim of Ostrovski et al. 2018): train ``gated_pixelcnn/fashion-cpu`` and ``pixeliqn/fashion-cpu``
side by side (one process and ``--threads`` threads each), then draw the same number of
class-balanced samples from each (Polyak weights, side by side again) and compute, with the Fashion-MNIST
feature network, FID, IS and improved precision/recall against the 10,000 test images. The same
metrics of as many *training* images stand for the floor at that sample count. One JSON.

    python benchmarks/iqn_vs_softmax.py --minutes 20 --samples 1000

``--runs-from DIR`` skips training and evaluates the runs already in DIR (from an earlier call),
reusing their saved samples; ``--cas`` adds the classification accuracy score (a classifier of the
feature network's architecture trained on each model's class-conditional samples, tested on the
real test set, next to the same classifier trained on real data).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fashion import run_one  # noqa: E402

from pixelzoo.evaluation.classifier import get_feature_network  # noqa: E402
from pixelzoo.evaluation.sample_quality import (  # noqa: E402
    classification_accuracy_score,
    compute_features,
    sample_quality,
)
from pixelzoo.imaging import save_grid  # noqa: E402
from pixelzoo.io import atomic_write_json  # noqa: E402
from pixelzoo.training import load_data, load_run_model  # noqa: E402

PRESETS = ["gated_pixelcnn/fashion-cpu", "pixeliqn/fashion-cpu"]
METRICS = ("fid", "is", "pr")


def draw_samples(run_dir: str, n: int, seed: int, batch: int, threads: int, out: str) -> dict:
    """``n`` class-balanced samples of the run's model, saved to ``out`` (.pt), with the seconds taken."""
    set_threads(threads)
    if Path(out).is_file():  # drawn by an earlier call on the same runs
        return {"run_dir": run_dir, "samples_file": out, "reused": True}
    model, _ = load_run_model(run_dir)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    chunks = []
    for start in range(0, n, batch):
        y = torch.arange(start, min(start + batch, n)) % model.num_classes if model.num_classes else None
        chunks.append(model.sample(len(range(start, min(start + batch, n))), y=y, generator=g))
    seconds = time.perf_counter() - t0
    x = torch.cat(chunks)
    torch.save(x, out)
    return {"run_dir": run_dir, "samples_file": out, "sample_seconds": round(seconds, 1),
            "seconds_per_image": round(seconds / n, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per model, wall clock")
    p.add_argument("--samples", type=int, default=1000, help="samples per model for the metrics")
    p.add_argument("--sample-batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="threads per process (the two run side by side)")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--runs", default="runs/bench-iqn", help="where the run directories go")
    p.add_argument("--runs-from", help="evaluate the runs in this directory instead of training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cas", action="store_true", help="also the classification accuracy score of each model")
    p.add_argument("--out", default="benchmarks/results/iqn_vs_softmax.json", help="JSON output path")
    args = p.parse_args()
    ctx = multiprocessing.get_context("spawn")
    runs = Path(args.runs_from or args.runs)
    report: dict = {"benchmark": "iqn_vs_softmax", "presets": PRESETS, "budget_minutes": args.minutes,
                    "threads_per_process": args.threads, "torch": torch.__version__,
                    "machine": platform.processor() or platform.machine(), "cpu_count": multiprocessing.cpu_count()}
    if args.runs_from:
        report["training"] = "runs evaluated from " + str(runs)
        trained = [{"preset": pr, "run_dir": str(runs / pr.replace("/", "-"))} for pr in PRESETS]
    else:
        jobs = [(pr, args.minutes * 60, 16, runs, args.data_dir, args.threads) for pr in PRESETS]
        with ctx.Pool(len(jobs)) as pool:
            trained = pool.starmap(run_one, jobs)
    sample_jobs = [(t["run_dir"], args.samples, args.seed, args.sample_batch, args.threads,
                    str(Path(t["run_dir"]) / f"bench-samples-{args.samples}.pt")) for t in trained]
    with ctx.Pool(len(sample_jobs)) as pool:
        sampled = pool.starmap(draw_samples, sample_jobs)

    set_threads(max(1, args.threads * 2))
    _, config = load_run_model(trained[0]["run_dir"])
    splits = load_data(config["data"])
    net = get_feature_network("fashion-mnist", splits=splits, progress=False)
    real_f = compute_features(net, splits.test.images, 256)
    floor_idx = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(args.seed))[: args.samples]
    floor = sample_quality(splits.train.images[floor_idx], None, net, METRICS, real_features=real_f, seed=args.seed)
    report["reference"] = f"the {len(splits.test)} Fashion-MNIST test images"
    report["floor"] = {"what": f"{args.samples} random training images treated as samples", **floor}
    results = []
    for t, s in zip(trained, sampled):
        x = torch.load(s["samples_file"])
        metrics = sample_quality(x, None, net, METRICS, real_features=real_f, seed=args.seed)
        if args.cas:
            labels = torch.arange(x.shape[0]) % splits.num_classes  # how draw_samples conditioned them
            metrics.update(classification_accuracy_score(x, labels, splits.test, net=net, data_name="fashion-mnist",
                                                         seed=args.seed))
        grid = Path(args.out).with_name(f"iqn_vs_softmax_{t['preset'].split('/')[0]}.png")
        save_grid(x[:100], splits.num_levels, grid, ncol=10)
        results.append({**t, **s, "num_samples": int(x.shape[0]), "grid": str(grid), **metrics})
    report["results"] = results
    atomic_write_json(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
