"""The classifier-based rejection sweep (``pixelzoo rejection-sweep``; VQ-VAE-2, Razavi et al. 2019,
sec. 3.3 and Fig. 7): one pool of candidates, scored once, and FID, Inception Score and improved
precision/recall of the accepted samples at several acceptance rates, written as JSON and a PNG
plot of the trade-off. The sampling itself is ``pixelzoo.sampling.rejection``."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..devices import resolve_device
from ..errors import ConfigError
from ..evaluation.classifier import canonical_data_name, data_fingerprint, get_feature_network, load_classifier
from ..evaluation.sample_quality import compute_features, feature_network_id, sample_quality
from ..io import atomic_write_json, output_paths
from ..sampling.rejection import (class_counts, class_scores, draw_candidates, in_request_order,
                                  requested_labels, select_best)
from ..training import load_data, load_run_model
from ..zoo import local_dir
from ..models.base import SamplesImages
from .plot import save_figure


def parse_rates(text) -> list[float]:
    """``"1,0.5,0.25"`` (or a list) -> acceptance rates in (0, 1], order kept, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    rates: list[float] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            r = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"acceptance rate {item!r} is not a number") from None
        if not 0 < r <= 1:
            raise ConfigError(f"acceptance rates must lie in (0, 1], got {r}")
        if r not in rates:
            rates.append(r)
    if not rates:
        raise ConfigError("give at least one acceptance rate, e.g. 1,0.5,0.25,0.1")
    return rates


def _metric(result: dict, name: str):
    for k, v in result.items():
        if k.startswith(name + "["):
            return v
    return None


def plot_sweep(report: dict, path) -> str:
    """The Fig. 7-style PNG (IS against FID; precision against recall; one point per acceptance
    rate, labelled with it), written atomically; returns its path."""
    rows = report["results"]
    rates = [r["acceptance_rate"] for r in rows]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    panels = [("fid", "is", "FID", "Inception Score"), ("recall", "precision", "recall", "precision")]
    for ax, (xk, yk, xl, yl) in zip(axes, panels):
        xs, ys = [_metric(r, xk) for r in rows], [_metric(r, yk) for r in rows]
        pts = [(a, b, r) for a, b, r in zip(xs, ys, rates) if a is not None and b is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
            for a, b, r in pts:
                ax.annotate(f"{r:g}", (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
        else:
            ax.text(0.5, 0.5, f"{xl} / {yl} not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"{xl} [{report['feature_net']}]")
        ax.set_ylabel(f"{yl} [{report['feature_net']}]")
        ax.grid(alpha=0.3)
    fig.suptitle(f"classifier-based rejection sampling: {report['n']} samples per acceptance rate (labels)")
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def rejection_sweep(model, scorer, real_images, rates=(1.0, 0.5, 0.25, 0.1), n: int = 1000, *, feature_net=None,
                    metrics=("fid", "is", "pr"), batch_size: int = 64, seed: int = 0, temperature=1.0,
                    progress: bool = False, out=None, plot=None, outputs: str = "auto", reference: str | None = None,
                    **sample_kwargs) -> dict:
    """FID, Inception Score and improved precision/recall of ``n`` rejection-sampled images at each
    acceptance rate in ``rates``, against ``real_images``.

    One pool of ``ceil(n_c / min(rates))`` candidates per class is drawn (seed ``seed``) and scored
    once by ``scorer``; rate ``r`` keeps the best ``n_c`` of the first ``ceil(n_c / r)`` candidates of
    each class, so rate 1 is plain sampling. Metrics use ``feature_net`` (default: the scorer; it
    needs a ``probs`` method for the Inception Score, otherwise IS is skipped). The report is written
    to ``out`` (JSON) and the plot to ``plot`` (PNG, :func:`plot_sweep`).
    """
    rates = parse_rates(rates)
    if n < 2:
        raise ConfigError(f"n must be >= 2 for the sample metrics, got {n}")
    feature_net = scorer if feature_net is None else feature_net
    metrics = [m.strip().lower() for m in metrics]
    notes: list[str] = []
    if "is" in metrics and not callable(getattr(feature_net, "probs", None)):
        metrics = [m for m in metrics if m != "is"]
        notes.append("Inception Score skipped: the feature network has no probs method")
    labels = requested_labels(model, n, None)
    need = class_counts(labels, n)
    low = min(rates)
    pool = {c: math.ceil(k / low - 1e-9) for c, k in need.items()}
    cand_labels = None if labels is None else torch.cat([torch.full((m,), c) for c, m in pool.items()])
    total = sum(pool.values())
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    images = draw_candidates(model, cand_labels, total, batch_size, temperature, g, progress,
                             desc=f"drawing {total} candidates", **sample_kwargs)
    sample_seconds = time.perf_counter() - t0
    scores = class_scores(scorer, images, cand_labels, outputs=outputs)
    starts, s = {}, 0
    for c, m in pool.items():
        starts[c], s = s, s + m
    real = torch.as_tensor(np.asarray(real_images)) if not isinstance(real_images, torch.Tensor) else real_images
    real_f = compute_features(feature_net, real, progress=progress) if set(metrics) - {"is"} else None
    net_id = feature_network_id(feature_net)
    rows = []
    for r in rates:
        idx = torch.cat([torch.arange(starts[c], starts[c] + math.ceil(k / r - 1e-9)) for c, k in need.items()])
        sub_labels = None if cand_labels is None else cand_labels[idx]
        keep = idx[select_best(scores[idx], sub_labels, need)]
        if labels is not None:  # interleave the classes again, as the request was
            keep = in_request_order(labels, keep, cand_labels[keep])
        row = {"acceptance_rate": r, "candidates": int(idx.numel()), "accepted": int(keep.numel()),
               "mean_score": float(scores[keep].mean()), "min_accepted_score": float(scores[keep].min()),
               "mean_candidate_score": float(scores[idx].mean())}
        values = sample_quality(images[keep], real, feature_net, metrics, batch_size=256, real_features=real_f, seed=seed)
        row.update({k: float(v) for k, v in values.items()})
        rows.append(row)
    same = scorer is feature_net
    if same:
        notes.append("the scorer is also the feature network of the metrics, which favours the accepted samples "
                     "(the paper scores with one ImageNet classifier and measures with Inception)")
    report = {
        "n": n, "rates": rates, "results": rows, "feature_net": net_id, "scorer": feature_network_id(scorer),
        "scorer_is_feature_net": same, "pool_candidates": total, "sample_seconds": round(sample_seconds, 2),
        "seed": seed, "temperature": temperature if not isinstance(temperature, dict) else dict(temperature),
        "score": "classifier probability of the intended class" if labels is not None else "classifier top-class probability",
        "reference": reference or f"{real.shape[0]} real images",
        "notes": notes + ["rate r keeps, per class, the n_c best of the first ceil(n_c / r) candidates of one pool; "
                          "rate 1 is plain sampling"],
    }
    if plot is not None:
        report["plot"] = plot_sweep(report, plot)
    if out is not None:
        atomic_write_json(report, out)
    return report


def sweep_run(run_dir, rates=(1.0, 0.5, 0.25, 0.1), n: int = 1000, *, feature_net=None, scorer=None,
              batch_size: int = 64, seed: int = 0, temperature=1.0, progress: bool = True, out=None,
              cache_dir=None, device=None) -> dict:
    """:func:`rejection_sweep` on the model of a run directory against its data set's test images.

    ``feature_net`` / ``scorer``: saved classifier directories (checked against the run's data) or
    networks; by default the data set's cached evaluation classifier (trained on first use), which
    then both scores and measures. Writes ``out`` (default ``RUN_DIR/eval/rejection_sweep.json``)
    and the PNG next to it. The model and the networks run on ``device`` (None: ``$PIXELZOO_DEVICE``
    or auto).
    """
    source, run_dir = run_dir, local_dir(run_dir)  # a zoo model's outputs go to ./zoo-NAME
    device = resolve_device(device)
    model, config = load_run_model(source, device)
    if not isinstance(model, SamplesImages):
        raise ConfigError(f"{type(model).__name__} has no sample method")
    splits = load_data(config["data"])
    data_name = canonical_data_name(config["data"]["name"])

    def network(spec):
        if spec is None:
            return get_feature_network(data_name, splits=splits, cache_dir=cache_dir, progress=progress, device=device)
        if isinstance(spec, (str, Path)):
            return load_classifier(spec, fingerprint=data_fingerprint(data_name, splits), map_location=device)
        return spec

    net = network(feature_net)
    score_net = net if scorer is None else network(scorer)
    out = Path(out) if out is not None else run_dir / "eval" / "rejection_sweep.json"
    test = splits.test
    report = rejection_sweep(model, score_net, test.images, rates, n, feature_net=net, batch_size=batch_size,
                             seed=seed, temperature=temperature, progress=progress, out=None,
                             plot=output_paths(out, ".json", ".png")[1],
                             reference=f"the {len(test)} images of the {data_name} test set")
    report["run_dir"] = str(source)
    report["json"] = str(out)
    atomic_write_json(report, out)
    return report


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    """``pixelzoo rejection-sweep``'s parser."""
    from .options import POSITIVE, SEED, TEMPERATURE, add_device_option, add_progress_option, number

    r = subparsers.add_parser("rejection-sweep", help="classifier-based rejection sampling: FID, IS, precision/recall per "
                                                      "acceptance rate (JSON + PNG)",
                              description="Classifier-based rejection sampling (VQ-VAE-2, sec. 3.3): draw candidates, keep per "
                                          "class those the classifier gives the highest probability of their class, and measure "
                                          "FID, IS and precision/recall of the kept samples against the test set at each "
                                          "acceptance rate (the paper's Fig. 7 trade-off). Works for any run whose model samples.")
    r.add_argument("run_dir")
    r.add_argument("--rates", default="1,0.5,0.25,0.1", help="acceptance rates in (0, 1] (default 1,0.5,0.25,0.1)")
    r.add_argument("-n", type=number(int, 2, what="an integer >= 2"), default=1000,
                   help="accepted samples per rate (default 1000); n / min(rate) candidates are drawn")
    r.add_argument("--batch-size", type=POSITIVE, default=64, help="sampling batch size")
    r.add_argument("--feature-net", metavar="DIR", help="saved classifier for the metrics (default: the data set's "
                                                        "cached evaluation classifier)")
    r.add_argument("--scorer", metavar="DIR", help="saved classifier that scores candidates (default: the feature network)")
    r.add_argument("--seed", type=SEED, default=0, help="random seed of the candidates")
    r.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    r.add_argument("--out", help="JSON path (default RUN_DIR/eval/rejection_sweep.json; the PNG goes next to it)")
    add_progress_option(r)
    add_device_option(r)
    return r


def run(args) -> int:
    """``pixelzoo rejection-sweep``: ``sweep_run`` and its table."""
    report = sweep_run(args.run_dir, parse_rates(args.rates), args.n, feature_net=args.feature_net, scorer=args.scorer,
                       batch_size=args.batch_size, seed=args.seed, temperature=args.temperature,
                       progress=not args.no_progress, out=args.out, device=args.device)
    print(f"classifier-based rejection sampling of {args.run_dir}: {report['n']} samples per rate, "
          f"scored by {report['scorer']}, measured with {report['feature_net']} against {report['reference']}")
    keys = [k for k in report["results"][0] if "[" in k]
    print("rate     " + "  ".join(f"{k.split('[')[0]:>10s}" for k in keys))
    for row in report["results"]:
        print(f"{row['acceptance_rate']:<8g} " + "  ".join(f"{row[k]:10.4f}" for k in keys))
    print(f"written to {report['json']} and {report['plot']}")
    return 0
