"""A fairer test of PixelIQN against the softmax PixelCNN (Ostrovski et al. 2018, Fig. 4: the sample
quality of each model throughout training, after a hyper-parameter search per model).

Two steps, on Fashion-MNIST with the same network for both (``gated_pixelcnn/fashion-cpu`` and
``pixeliqn/fashion-cpu``: a 64-channel, 8-layer Gated PixelCNN; PixelIQN feeds tau through every
layer):

``search``: per model a short grid on its own seed (``--seed``, default 100, apart from the curves'
seeds): for the softmax the learning rate; for PixelIQN kappa in {0, 1, 4} levels, 16 or 64 cosine
features and the learning rate (``GRIDS``). Every configuration trains for the same ``--steps``
(steps, not seconds, so that the machine's load does not pick the winner), then ``--samples``
class-balanced samples are drawn with the Polyak weights and scored by FID (the Fashion feature
network against the 10,000 test images). The best of each model by FID is the one the curves use.

``curves``: the best configuration of each (from ``--search-json``), for every seed of ``--seeds``,
trained side by side (one process per run, ``--threads`` each; ``--jobs`` at a time), paused at every
point of ``--minutes`` (cumulative training time, wall clock) to draw ``--samples`` class-balanced
samples (excluded from the training time); at each point FID, IS, precision and recall against the
test set, and the total-variation distance of the samples' pixel histogram to the test set's. The
floor: as many random training images scored the same way. Figures: FID against training time
(``iqn_vs_softmax_curves.png``) and the pixel histograms at the last point
(``iqn_vs_softmax_histograms.png``).

    python benchmarks/iqn_vs_softmax_curves.py search --steps 300 --samples 500
    python benchmarks/iqn_vs_softmax_curves.py curves --minutes 2,5,10 --samples 2000 --seeds 0,1
    python benchmarks/iqn_vs_softmax_curves.py search --smoke --out /tmp/s.json     # a minute

Writes ``benchmarks/results/iqn_vs_softmax_search.json`` and ``..._curves.json`` (``--out``).
Training precision is each preset's ("auto": bf16 autocast where the CPU runs bf16 natively, else
fp32; PixelIQN's quantile values and loss are computed in fp32 in either case); the JSON says which.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
sys.path.insert(0, str(ROOT))
from bench_common import environment, write_result  # noqa: E402

MODELS = {"softmax": "gated_pixelcnn/fashion-cpu", "pixeliqn": "pixeliqn/fashion-cpu"}
#: per model, the configurations of the search: overrides of the preset ("section.key": value)
GRIDS = {
    "softmax": [{"train.lr": 0.001}, {"train.lr": 0.002}, {"train.lr": 0.004}],
    "pixeliqn": [{"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 16},
                 {"train.lr": 0.002, "model.kappa": 0.0, "model.n_cos": 16},
                 {"train.lr": 0.002, "model.kappa": 4.0, "model.n_cos": 16},
                 {"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 64},
                 {"train.lr": 0.001, "model.kappa": 1.0, "model.n_cos": 16},
                 {"train.lr": 0.004, "model.kappa": 1.0, "model.n_cos": 16}],
}
METRICS = ("fid", "is", "pr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=("search", "curves"))
    p.add_argument("--steps", type=int, default=300, help="search: training steps per configuration")
    p.add_argument("--minutes", default="2,5,10", help="curves: cumulative training minutes of the points")
    p.add_argument("--samples", type=int, default=None, help="samples per point (search 500, curves 2000)")
    p.add_argument("--seeds", default="0,1", help="curves: training seeds")
    p.add_argument("--seed", type=int, default=100, help="search: the training seed")
    p.add_argument("--search-json", default=str(ROOT / "results" / "iqn_vs_softmax_search.json"),
                   help="curves: the search whose best configurations to run")
    p.add_argument("--jobs", type=int, default=2, help="runs at the same time (one process each)")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--run-dir", help="where the runs go (default: a temporary directory)")
    p.add_argument("--out", help="JSON (default benchmarks/results/iqn_vs_softmax_{search,curves}.json)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets, few samples: checks the script runs")
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 500 if args.step == "search" else 2000
    if args.out is None:
        args.out = str(ROOT / "results" / f"iqn_vs_softmax_{args.step}.json")
    if args.smoke:
        args.steps, args.minutes, args.samples, args.seeds = 3, "0.05,0.1", 20, "0"
    return args


def configured(preset: str, overrides: dict, seed: int) -> dict:
    from pixelzoo.training import load_config

    config = copy.deepcopy(load_config(preset))
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    config["train"].update(seed=seed, steps=10**9, eval_every=0, sample_every=0, checkpoint_every=10**9,
                           num_samples=0, final_eval_images=100, time_budget=None)
    return config


def run_points(preset: str, overrides: dict, seed: int, points: list, by: str, n: int, batch: int,
               run_dir: str, threads: int) -> list:
    """Train ``preset`` with ``overrides``; at each of ``points`` (cumulative steps or training
    seconds, ``by``) draw ``n`` class-balanced samples with the Polyak weights into the run
    directory. Returns a row per point."""
    from pixelzoo.training import start_run

    torch.set_num_threads(threads)
    trainer = start_run(configured(preset, overrides, seed), run_dir, progress=False).single
    rows, trained_s = [], 0.0
    for k, point in enumerate(points):
        if by == "steps":
            trainer.cfg.steps, trainer.cfg.time_budget = int(point), None
        else:
            trainer.cfg.steps, trainer.cfg.time_budget = 10**9, max(float(point) - trained_s, 0.0)
        result = trainer.train()
        trained_s += result["train_seconds"]
        g = torch.Generator().manual_seed(1000 * seed + k)
        t0 = time.perf_counter()
        with torch.no_grad(), trainer.evaluation_model() as model:
            model.eval()
            chunks = []
            for start in range(0, n, batch):
                y = torch.arange(start, min(start + batch, n)) % model.num_classes
                chunks.append(model.sample(len(y), y=y, generator=g).cpu())
        path = Path(trainer.run_dir) / f"samples-{k}.pt"
        torch.save(torch.cat(chunks), path)
        rows.append({"point": point, "step": trainer.step, "train_seconds": round(trained_s, 1),
                     "sample_seconds": round(time.perf_counter() - t0, 1), "precision": result["precision"],
                     "samples_file": str(path),
                     **{key: round(v, 4) for key, v in result.items() if key in ("test_bpd", "test_loss")}})
    return rows


def pixel_histogram(images: torch.Tensor, levels: int = 256) -> torch.Tensor:
    return torch.bincount(images.flatten().long(), minlength=levels).double() / images.numel()


class Scorer:
    """The Fashion feature network, the test set's features and pixel histogram, and the floor."""

    def __init__(self, n: int, seed: int):
        from pixelzoo.data import load_dataset
        from pixelzoo.evaluation.classifier import get_feature_network
        from pixelzoo.evaluation.sample_quality import compute_features, sample_quality

        self._quality = sample_quality
        self.splits = load_dataset("fashion-mnist")
        self.net = get_feature_network("fashion-mnist", splits=self.splits, progress=False)
        self.real = compute_features(self.net, self.splits.test.images, 256)
        self.hist = pixel_histogram(self.splits.test.images)
        idx = torch.randperm(len(self.splits.train), generator=torch.Generator().manual_seed(seed))[:n]
        self.floor = {"what": f"{n} random training images scored as samples",
                      **self.score(self.splits.train.images[idx])}

    def score(self, x: torch.Tensor) -> dict:
        out = self._quality(x, None, self.net, METRICS, real_features=self.real, seed=0)
        out = {key.split("[")[0]: round(float(v), 4) for key, v in out.items()}
        out["pixel_tv"] = round(0.5 * float((pixel_histogram(x) - self.hist).abs().sum()), 4)
        return out


def run_all(jobs: list, n_jobs: int) -> list:
    if n_jobs <= 1:
        return [run_points(*job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(n_jobs) as pool:
        return pool.starmap(run_points, jobs)


def search(args, run_dir: Path, start: float) -> dict:
    jobs, names = [], []
    for model, grid in GRIDS.items():
        for k, overrides in enumerate(grid):
            names.append((model, overrides))
            jobs.append((MODELS[model], overrides, args.seed, [args.steps], "steps", args.samples,
                         args.sample_batch, str(run_dir / f"{model}-{k}"), args.threads))
    runs = run_all(jobs, args.jobs)
    scorer = Scorer(args.samples, args.seed)
    rows = []
    for (model, overrides), points in zip(names, runs):
        (point,) = points
        rows.append({"model": model, "preset": MODELS[model], "overrides": overrides, "seed": args.seed,
                     **{k: v for k, v in point.items() if k != "samples_file"},
                     **scorer.score(torch.load(point["samples_file"]))})
        print(f"{model} {overrides}: step {point['step']}, FID {rows[-1]['fid']:.1f}", flush=True)
    best = {m: min((r for r in rows if r["model"] == m), key=lambda r: r["fid"])["overrides"] for m in GRIDS}
    result = {"benchmark": "iqn_vs_softmax_search", "steps": args.steps, "samples": args.samples,
              "floor": scorer.floor, "rows": rows, "best": best}
    write_result({**environment(args.threads), **result}, args.out, start)
    return result


def curves(args, run_dir: Path, start: float) -> dict:
    best = json.loads(Path(args.search_json).read_text())["best"] if not args.smoke else \
        {m: grid[0] for m, grid in GRIDS.items()}
    minutes = [float(m) for m in args.minutes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs, names = [], []
    for seed in seeds:
        for model in MODELS:
            names.append((model, seed))
            jobs.append((MODELS[model], best[model], seed, [60 * m for m in minutes], "seconds", args.samples,
                         args.sample_batch, str(run_dir / f"{model}-seed{seed}"), args.threads))
    runs = run_all(jobs, args.jobs)
    scorer = Scorer(args.samples, 0)
    rows, last = [], {}
    for (model, seed), points in zip(names, runs):
        for m, point in zip(minutes, points):
            x = torch.load(point["samples_file"])
            rows.append({"model": model, "seed": seed, "minutes": m, "overrides": best[model],
                         **{k: v for k, v in point.items() if k not in ("samples_file", "point")}, **scorer.score(x)})
            print(f"{model} seed {seed} at {m} min: step {point['step']}, FID {rows[-1]['fid']:.1f}", flush=True)
        last[(model, seed)] = x
    out = Path(args.out)
    figures = {"curves": str(out.with_name(out.stem.replace("_curves", "") + "_curves.png")),
               "histograms": str(out.with_name(out.stem.replace("_curves", "") + "_histograms.png"))}
    plot_curves(rows, scorer.floor["fid"], figures["curves"])
    plot_histograms(last, scorer.hist, figures["histograms"])
    result = {"benchmark": "iqn_vs_softmax_curves", "minutes": minutes, "seeds": seeds, "samples": args.samples,
              "best": best, "floor": scorer.floor, "rows": rows, "figures": figures,
              "summary": summary(rows, minutes)}
    write_result({**environment(args.threads), **result}, args.out, start)
    return result


def summary(rows: list, minutes: list) -> dict:
    """Per point, the mean FID over seeds of each model and whether PixelIQN is ahead at every seed."""
    out = {}
    for m in minutes:
        at = {model: {r["seed"]: r["fid"] for r in rows if r["model"] == model and r["minutes"] == m}
              for model in MODELS}
        seeds = sorted(set(at["softmax"]) & set(at["pixeliqn"]))
        out[str(m)] = {"softmax_fid": round(sum(at["softmax"][s] for s in seeds) / len(seeds), 2),
                       "pixeliqn_fid": round(sum(at["pixeliqn"][s] for s in seeds) / len(seeds), 2),
                       "pixeliqn_ahead_at_every_seed": all(at["pixeliqn"][s] < at["softmax"][s] for s in seeds)}
    return out


def plot_curves(rows: list, floor: float, path: str) -> None:
    from matplotlib.figure import Figure

    from pixelzoo.commands.plot import save_figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for (model, seed) in sorted({(r["model"], r["seed"]) for r in rows}):
        pts = sorted((r["train_seconds"] / 60, r["fid"]) for r in rows if r["model"] == model and r["seed"] == seed)
        ax.plot(*zip(*pts), marker="o", color="C0" if model == "softmax" else "C3",
                linestyle="-" if seed == min(r["seed"] for r in rows) else "--", label=f"{model}, seed {seed}")
    ax.axhline(floor, color="grey", linestyle=":", label="floor (training images)")
    ax.set_xlabel("training time (minutes, one core)")
    ax.set_ylabel("FID (Fashion feature network)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_histograms(last: dict, data_hist: torch.Tensor, path: str) -> None:
    from matplotlib.figure import Figure

    from pixelzoo.commands.plot import save_figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(256), data_hist.numpy(), color="black", label="test images", linewidth=2)
    for (model, seed), x in sorted(last.items()):
        ax.plot(range(256), pixel_histogram(x).numpy(), color="C0" if model == "softmax" else "C3",
                alpha=0.8, linestyle="-" if seed == min(s for _, s in last) else "--", label=f"{model}, seed {seed}")
    ax.set_xlabel("pixel level")
    ax.set_ylabel("fraction of pixels")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    if args.run_dir:
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return (search if args.step == "search" else curves)(args, run_dir, start)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return (search if args.step == "search" else curves)(args, Path(tmp), start)


if __name__ == "__main__":
    main()
