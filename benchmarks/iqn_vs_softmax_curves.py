"""A fairer test of PixelIQN against the softmax PixelCNN (Ostrovski et al. 2018, Fig. 4: the sample
quality of each model throughout training, after a hyper-parameter search per model).

Two data sets (``--data``), the same network for both models on each (a 64-channel, 8-layer Gated
PixelCNN; PixelIQN feeds tau through every layer):

* ``fashion``: Fashion-MNIST, class-conditional (``gated_pixelcnn/fashion-cpu``, ``pixeliqn/fashion-cpu``);
  metrics with the Fashion feature network against the 10,000 test images.
* ``patches``: 16x16 grey crops of scikit-image's training photographs, unconditional like the
  paper's CIFAR-10 models (``gated_pixelcnn/patches-grey-cpu``, ``pixeliqn/patches-grey-cpu``): the
  smoother conditionals of natural images; metrics against 2,000 held-out crops of the same
  photographs, with the patches feature network (a LeNet trained to tell the six photographs apart,
  the data set's labels; there is no other label-free feature network here).

``search``: per model a short grid on its own seed (``--seed``, default 100, apart from the curves'
seeds): for the softmax the learning rate; for PixelIQN kappa in {0, 1, 4} levels, 16 or 64 cosine
features, the learning rate, the output layer in fp32 under bf16 autocast and the shared tau
projection (``GRIDS``). Every configuration trains for the same ``--steps`` (steps, not seconds, so
that the machine's load does not pick the winner), then ``--samples`` samples (class-balanced where
the models are class-conditional) are drawn with the Polyak weights and scored by FID. The best of
each model by FID is the one the curves use. Configurations already in ``--out`` with the same steps,
samples and seed are kept, not run again (so a grown grid runs only its new rows).

``curves``: the best configuration of each (from ``--search-json``), for every seed of ``--seeds``,
trained side by side (one process per run, ``--threads`` each; ``--jobs`` at a time), paused at every
point of ``--minutes`` (cumulative training time, wall clock) to draw ``--samples`` samples (excluded
from the training time) into ``--run-dir``; at each point FID, IS, precision and recall against the
test set, the total-variation distance of the samples' pixel histogram to the test set's and, with
``--cas`` on class-conditional models, the classification accuracy score (a classifier of the feature
network's architecture trained only on the samples, tested on the real test set). The floor: as many
random training images scored the same way. Figures: FID against training time and the pixel
histograms at the last point. Seeds already in ``--out`` from the same protocol, with their samples
in the same ``--run-dir``, are kept (so ``--seeds 2,3`` adds two seeds to a run of 0 and 1).
``rescore`` scores the samples a ``curves`` run left in ``--run-dir`` again (e.g. with ``--cas``) and
rewrites its JSON and figures.

    python benchmarks/iqn_vs_softmax_curves.py search --steps 300 --samples 500
    python benchmarks/iqn_vs_softmax_curves.py curves --minutes 2,5,10 --samples 2000 --seeds 0,1 --run-dir RUNS
    python benchmarks/iqn_vs_softmax_curves.py rescore --cas --run-dir RUNS
    python benchmarks/iqn_vs_softmax_curves.py search --data patches --steps 300 --samples 500
    python benchmarks/iqn_vs_softmax_curves.py search --smoke --out /tmp/s.json     # a minute

Writes ``benchmarks/results/iqn_vs_softmax_{search,curves}.json`` (patches:
``iqn_vs_softmax_patches_{search,curves}.json``; ``--out``). Training precision is each preset's
("auto": bf16 autocast where the CPU runs bf16 natively, else fp32; PixelIQN's quantile values and
loss are computed in fp32 in either case); the JSON says which.
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

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
sys.path.insert(0, str(ROOT))
from bench_common import environment, write_result  # noqa: E402

from pixelzoo.io import atomic_write_json  # noqa: E402

#: per data set: its loader's name and options, the preset of each model, whether they are
#: class-conditional, and per model the configurations of the search (overrides of the preset,
#: "section.key": value)
DATA = {
    "fashion": {
        "dataset": ("fashion-mnist", {}),
        "models": {"softmax": "gated_pixelcnn/fashion-cpu", "pixeliqn": "pixeliqn/fashion-cpu"},
        "conditional": True,
        "grids": {
            "softmax": [{"train.lr": 0.001}, {"train.lr": 0.002}, {"train.lr": 0.004}, {"train.lr": 0.008}],
            "pixeliqn": [{"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 16},
                         {"train.lr": 0.002, "model.kappa": 0.0, "model.n_cos": 16},
                         {"train.lr": 0.002, "model.kappa": 4.0, "model.n_cos": 16},
                         {"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 64},
                         {"train.lr": 0.001, "model.kappa": 1.0, "model.n_cos": 16},
                         {"train.lr": 0.004, "model.kappa": 1.0, "model.n_cos": 16},
                         {"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 16, "model.fp32_output": True},
                         {"train.lr": 0.002, "model.kappa": 1.0, "model.n_cos": 16,
                          "model.shared_conditioning": True}],
        },
        "prefix": "iqn_vs_softmax",
    },
    "patches": {
        "dataset": ("patches", {"size": 16, "grey": True, "split": "crops"}),
        "models": {"softmax": "gated_pixelcnn/patches-grey-cpu", "pixeliqn": "pixeliqn/patches-grey-cpu"},
        "conditional": False,
        "grids": {
            "softmax": [{"train.lr": 0.002}, {"train.lr": 0.004}, {"train.lr": 0.008}, {"train.lr": 0.016}],
            "pixeliqn": [{"train.lr": 0.002, "model.kappa": 1.0},
                         {"train.lr": 0.004, "model.kappa": 1.0},
                         {"train.lr": 0.008, "model.kappa": 1.0},
                         {"train.lr": 0.002, "model.kappa": 4.0},
                         {"train.lr": 0.002, "model.kappa": 1.0, "model.shared_conditioning": True}],
        },
        "prefix": "iqn_vs_softmax_patches",
    },
}
METRICS = ("fid", "is", "pr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=("search", "curves", "rescore"))
    p.add_argument("--data", choices=tuple(DATA), default="fashion")
    p.add_argument("--steps", type=int, default=300, help="search: training steps per configuration")
    p.add_argument("--minutes", default="2,5,10", help="curves: cumulative training minutes of the points")
    p.add_argument("--samples", type=int, default=None, help="samples per point (search 500, curves 2000)")
    p.add_argument("--seeds", default="0,1", help="curves: training seeds")
    p.add_argument("--seed", type=int, default=100, help="search: the training seed")
    p.add_argument("--search-json", help="curves: the search whose best configurations to run "
                                         "(default: the data set's search JSON in benchmarks/results)")
    p.add_argument("--cas", action="store_true", help="curves, rescore: also the classification accuracy score")
    p.add_argument("--jobs", type=int, default=2, help="runs at the same time (one process each)")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--run-dir", help="where the runs go (default: a temporary directory; rescore: required)")
    p.add_argument("--out", help="JSON (default benchmarks/results/<prefix>_{search,curves}.json)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets, few samples: checks the script runs")
    args = p.parse_args(argv)
    prefix = DATA[args.data]["prefix"]
    if args.samples is None:
        args.samples = 500 if args.step == "search" else 2000
    if args.out is None:
        args.out = str(ROOT / "results" / f"{prefix}_{'search' if args.step == 'search' else 'curves'}.json")
    if args.search_json is None:
        args.search_json = str(ROOT / "results" / f"{prefix}_search.json")
    if args.cas and not DATA[args.data]["conditional"]:
        p.error(f"--cas needs class-conditional samples; the {args.data} models are unconditional")
    if args.step == "rescore" and not args.run_dir:
        p.error("rescore needs --run-dir: the directory of the curves run whose samples to score")
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


def samples_path(run_dir, k: int) -> Path:
    return Path(run_dir) / f"samples-{k}.pt"


def run_points(preset: str, overrides: dict, seed: int, points: list, by: str, n: int, batch: int,
               run_dir: str, threads: int) -> list:
    """Train ``preset`` with ``overrides``; at each of ``points`` (cumulative steps or training
    seconds, ``by``) draw ``n`` samples with the Polyak weights (class-balanced, labels ``k % K`` for
    sample ``k``, where the model is class-conditional) into the run directory. Returns a row per point."""
    from pixelzoo.training import start_run

    set_threads(threads)
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
                count = min(start + batch, n) - start
                y = torch.arange(start, start + count) % model.num_classes if model.num_classes else None
                chunks.append(model.sample(count, y=y, generator=g).cpu())
        path = samples_path(trainer.run_dir, k)
        torch.save(torch.cat(chunks), path)
        rows.append({"point": point, "step": trainer.step, "train_seconds": round(trained_s, 1),
                     "sample_seconds": round(time.perf_counter() - t0, 1), "train_precision": result["precision"],
                     "samples_file": str(path),
                     **{key: round(v, 4) for key, v in result.items() if key in ("test_bpd", "test_loss")}})
    return rows


def pixel_histogram(images: torch.Tensor, levels: int = 256) -> torch.Tensor:
    return torch.bincount(images.flatten().long(), minlength=levels).double() / images.numel()


class Scorer:
    """The data set's feature network, the test set's features and pixel histogram, and the floor."""

    def __init__(self, data: str, n: int, seed: int):
        from pixelzoo.data import load_dataset
        from pixelzoo.evaluation.classifier import get_feature_network
        from pixelzoo.evaluation.sample_quality import compute_features, sample_quality

        self._quality = sample_quality
        name, options = DATA[data]["dataset"]
        self.splits = load_dataset(name, **options)
        self.net = get_feature_network(name, splits=self.splits, data_options=options, progress=False)
        self.real = compute_features(self.net, self.splits.test.images, 256)
        self.hist = pixel_histogram(self.splits.test.images)
        idx = torch.randperm(len(self.splits.train), generator=torch.Generator().manual_seed(seed))[:n]
        self.floor = {"what": f"{n} random training images scored as samples",
                      **self.score(self.splits.train.images[idx])}

    def score(self, x: torch.Tensor, cas: bool = False) -> dict:
        """FID, IS, precision, recall and the pixel-histogram TV of the samples ``x``; with ``cas``
        (class-balanced samples of a class-conditional model: sample k has label k % K) the
        classification accuracy score, top-1 and top-5."""
        from pixelzoo.evaluation.sample_quality import classification_accuracy_score

        out = self._quality(x, None, self.net, METRICS, real_features=self.real, seed=0)
        if cas:
            labels = torch.arange(len(x)) % self.splits.test.num_classes
            out.update(classification_accuracy_score(x, labels, self.splits.test, net=self.net))
        out = {key.split("[")[0]: round(float(v), 4) for key, v in out.items()}
        out["pixel_tv"] = round(0.5 * float((pixel_histogram(x) - self.hist).abs().sum()), 4)
        return out


def run_all(jobs: list, n_jobs: int) -> list:
    if n_jobs <= 1:
        return [run_points(*job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(n_jobs) as pool:
        return pool.starmap(run_points, jobs)


def search(args, run_dir: Path, start: float) -> dict:
    """The grid of ``DATA[args.data]``: rows already in ``args.out`` from the same protocol (steps,
    samples, seed) are kept; the others are run and scored."""
    spec = DATA[args.data]
    kept = []
    if Path(args.out).is_file() and not args.smoke:
        old = json.loads(Path(args.out).read_text())
        if (old.get("steps"), old.get("samples"), old.get("data", "fashion")) == (args.steps, args.samples, args.data):
            kept = [r for r in old["rows"] if r["seed"] == args.seed]
    done = {(r["model"], json.dumps(r["overrides"], sort_keys=True)) for r in kept}
    jobs, names = [], []
    for model, grid in spec["grids"].items():
        for k, overrides in enumerate(grid):
            if (model, json.dumps(overrides, sort_keys=True)) in done:
                continue
            names.append((model, overrides))
            jobs.append((spec["models"][model], overrides, args.seed, [args.steps], "steps", args.samples,
                         args.sample_batch, str(run_dir / f"{model}-{k}"), args.threads))
    print(f"search: {len(kept)} configurations kept from {args.out}, {len(jobs)} to run", flush=True)
    runs = run_all(jobs, args.jobs)
    scorer = Scorer(args.data, args.samples, args.seed)
    rows = list(kept)
    for (model, overrides), points in zip(names, runs):
        (point,) = points
        rows.append({"model": model, "preset": spec["models"][model], "overrides": overrides, "seed": args.seed,
                     **{k: v for k, v in point.items() if k != "samples_file"},
                     **scorer.score(torch.load(point["samples_file"]))})
        print(f"{model} {overrides}: step {point['step']}, FID {rows[-1]['fid']:.1f}", flush=True)
    best = {m: min((r for r in rows if r["model"] == m), key=lambda r: r["fid"])["overrides"] for m in spec["grids"]}
    result = {"benchmark": "iqn_vs_softmax_search", "data": args.data, "steps": args.steps, "samples": args.samples,
              "floor": scorer.floor, "rows": rows, "best": best}
    write_result({**environment(args.threads), **result}, args.out, start)
    return result


def curves(args, run_dir: Path, start: float) -> dict:
    spec = DATA[args.data]
    best = json.loads(Path(args.search_json).read_text())["best"] if not args.smoke else \
        {m: grid[0] for m, grid in spec["grids"].items()}
    minutes = [float(m) for m in args.minutes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs, names = [], []
    for seed in seeds:
        for model in spec["models"]:
            names.append((model, seed))
            jobs.append((spec["models"][model], best[model], seed, [60 * m for m in minutes], "seconds", args.samples,
                         args.sample_batch, str(run_dir / f"{model}-seed{seed}"), args.threads))
    runs = run_all(jobs, args.jobs)
    rows = [{"model": model, "seed": seed, "minutes": m, "overrides": best[model],
             **{k: v for k, v in point.items() if k not in ("samples_file", "point")}}
            for (model, seed), points in zip(names, runs) for m, point in zip(minutes, points)]
    kept = kept_seeds(args, minutes, best, seeds)
    rows = [r for r in kept if r["seed"] not in seeds] + rows
    seeds = sorted({r["seed"] for r in rows})
    result = {"benchmark": "iqn_vs_softmax_curves", "data": args.data, "minutes": minutes, "seeds": seeds,
              "samples": args.samples, "best": best, "rows": rows}
    return score_curves(args, result, run_dir, start)


def kept_seeds(args, minutes: list, best: dict, seeds: list) -> list:
    """The rows of other seeds in ``args.out`` from the same protocol (data, points, samples, best
    configurations), whose samples are in the same ``--run-dir``: a curves run with new seeds adds to them."""
    if args.smoke or not args.run_dir or not Path(args.out).is_file():
        return []
    old = json.loads(Path(args.out).read_text())
    same = (old.get("data", "fashion"), old.get("minutes"), old.get("samples"), old.get("best")) == \
        (args.data, minutes, args.samples, best)
    rows = [r for r in old.get("rows", []) if same and r["seed"] not in seeds and
            samples_path(Path(args.run_dir) / f"{r['model']}-seed{r['seed']}", minutes.index(r["minutes"])).is_file()]
    if rows:
        print(f"curves: kept seeds {sorted({r['seed'] for r in rows})} from {args.out}", flush=True)
    return rows


def rescore(args, run_dir: Path, start: float) -> dict:
    """Score again the samples of the ``curves`` run in ``run_dir`` whose JSON is ``args.out``."""
    result = json.loads(Path(args.out).read_text())
    if result.get("data", "fashion") != args.data:
        raise SystemExit(f"{args.out} holds curves on {result.get('data', 'fashion')!r}, not {args.data!r}")
    result["data"] = args.data
    score_curves(args, result, run_dir, start, rescored=True)
    return result


def score_curves(args, result: dict, run_dir: Path, start: float, rescored: bool = False) -> dict:
    """Score every row of ``result`` from its saved samples (``run_dir/<model>-seed<seed>/samples-<k>.pt``,
    k the point's index), plot, and write ``args.out``; ``rescored``: the environment of the run that
    trained and sampled is kept, the rescoring's own goes under ``rescored``."""
    minutes = result["minutes"]
    scorer = Scorer(args.data, result["samples"], 0)
    last = {}
    for row in result["rows"]:
        k = minutes.index(row["minutes"])
        x = torch.load(samples_path(run_dir / f"{row['model']}-seed{row['seed']}", k))
        row.update(scorer.score(x, cas=args.cas))
        print(f"{row['model']} seed {row['seed']} at {row['minutes']} min: step {row['step']}, "
              f"FID {row['fid']:.1f}" + (f", CAS {row['cas_top1']:.3f}" if args.cas else ""), flush=True)
        if k == len(minutes) - 1:
            last[(row["model"], row["seed"])] = x
    out = Path(args.out)
    stem = out.stem.replace("_curves", "")
    figures = {"curves": str(out.with_name(stem + "_curves.png")),
               "histograms": str(out.with_name(stem + "_histograms.png"))}
    plot_curves(result["rows"], scorer.floor["fid"], figures["curves"], DATA[args.data]["dataset"][0])
    plot_histograms(last, scorer.hist, figures["histograms"])
    result.update(floor=scorer.floor, figures=figures, summary=summary(result["rows"], minutes))
    if rescored:
        result["rescored"] = {**environment(args.threads), "cas": args.cas,
                              "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(result, args.out)
    else:
        write_result({**environment(args.threads), **result}, args.out, start)
    return result


def summary(rows: list, minutes: list) -> dict:
    """Per point, the mean FID over seeds of each model and whether PixelIQN is ahead at every seed."""
    out = {}
    for m in minutes:
        at = {model: {r["seed"]: r["fid"] for r in rows if r["model"] == model and r["minutes"] == m}
              for model in ("softmax", "pixeliqn")}
        seeds = sorted(set(at["softmax"]) & set(at["pixeliqn"]))
        out[str(m)] = {"softmax_fid": round(sum(at["softmax"][s] for s in seeds) / len(seeds), 2),
                       "pixeliqn_fid": round(sum(at["pixeliqn"][s] for s in seeds) / len(seeds), 2),
                       "pixeliqn_ahead_at_every_seed": all(at["pixeliqn"][s] < at["softmax"][s] for s in seeds)}
    return out


def seed_style(seed: int):
    """A line style per seed (solid, dashed, dash-dot, dotted, then dash patterns)."""
    styles = ["-", "--", "-.", (0, (1, 1))]
    return styles[seed] if 0 <= seed < len(styles) else (0, (seed % 7 + 2, 2))


def plot_curves(rows: list, floor: float, path: str, data_name: str) -> None:
    from matplotlib.figure import Figure

    from pixelzoo.commands.plot import save_figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for (model, seed) in sorted({(r["model"], r["seed"]) for r in rows}):
        pts = sorted((r["train_seconds"] / 60, r["fid"]) for r in rows if r["model"] == model and r["seed"] == seed)
        ax.plot(*zip(*pts), marker="o", color="C0" if model == "softmax" else "C3",
                linestyle=seed_style(seed), label=f"{model}, seed {seed}")
    ax.axhline(floor, color="grey", linestyle=":", label="floor (training images)")
    ax.set_xlabel("training time (minutes, one thread each)")
    ax.set_ylabel(f"FID ({data_name} feature network)")
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
                alpha=0.8, linestyle=seed_style(seed), label=f"{model}, seed {seed}")
    ax.set_xlabel("pixel level")
    ax.set_ylabel("fraction of pixels")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    set_threads(args.threads)
    if args.run_dir:
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return STEPS[args.step](args, run_dir, start)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return STEPS[args.step](args, Path(tmp), start)


STEPS = {"search": search, "curves": curves, "rescore": rescore}


if __name__ == "__main__":
    main()
