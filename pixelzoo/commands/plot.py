"""Training and test curves of runs (``pixelzoo plot RUN [RUN ...]``): one PNG with a panel per
metric against the training step, every run, and every part of a composite run (labelled
``RUN/part``), as its own line, so runs can be compared on one axis.

A run's curves come from ``RUN/metrics.jsonl`` (one JSON object per line, as
:class:`pixelzoo.training.logger.MetricsLogger` writes) and, for a composite, from each
``RUN/parts/NAME/metrics.jsonl``; the whole composite's final ``test_bpd_full`` (its bound) is
drawn as a dashed horizontal line in the test bits/dim panel. Figures are drawn with matplotlib's
object-oriented API (no pyplot, no global backend) and written atomically."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..training.logger import parse_rows
from ..zoo import is_zoo_name, local_dir, zoo_entry

# the metrics a panel can show, in panel order, with their axis labels
METRICS = {
    "train_loss": "training loss",    # nats/dim, or the loss of a model without a likelihood
    "train_bpd": "training bits/dim",
    "test_bpd": "test bits/dim",
    "test_loss": "test loss",
    "lr": "learning rate",
    "images_per_s": "training images/s",
}
DEFAULT_PANELS = (("train_bpd", "train_loss"), ("test_bpd", "test_loss"))  # per series: the first it has


def save_figure(fig: Figure, path) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    FigureCanvasAgg(fig)
    fig.savefig(tmp, dpi=100, format="png")
    tmp.replace(path)
    return str(path)


def read_metrics(path) -> list[dict]:
    """The rows of a ``metrics.jsonl``; a line that is not a JSON object with an integer ``step`` (e.g.
    cut short by a kill) is skipped with a warning on stderr naming the file and the line.
    ConfigError naming the file when it is missing or has no rows."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    rows, skipped = parse_rows(path)
    for message in skipped:
        print(f"pixelzoo plot: warning: {message}", file=sys.stderr)
    if not rows:
        raise ConfigError(f"{path}: no rows (the run has logged nothing yet)")
    return rows


def curves(rows: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """metric -> (steps, values) of the finite numbers in ``rows``, by ascending step; a step logged
    twice (a run resumed from a checkpoint before its last log) keeps its last value."""
    by_metric: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                by_metric.setdefault(key, {})[row["step"]] = float(value)
    return {k: (sorted(v), [v[s] for s in sorted(v)]) for k, v in by_metric.items()}


def run_curves(run_dir, label: str | None = None) -> tuple[dict[str, dict], dict[str, float]]:
    """The curves of one run: ({series label: curves}, {label: the whole model's final test_bpd_full}).

    A plain run is one series, labelled ``label`` (default: the path as given). A composite run
    (``RUN/parts/NAME/metrics.jsonl``) gives one series per part, ``label/NAME``, plus the final
    bound of the whole model when ``RUN/metrics.jsonl`` holds it."""
    label = label or str(run_dir)
    run_dir = zoo_entry(run_dir) if is_zoo_name(run_dir) else Path(run_dir)  # a zoo model's curves ship with it
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    top = run_dir / "metrics.jsonl"
    parts = sorted(p for p in (run_dir / "parts").glob("*/metrics.jsonl")) if (run_dir / "parts").is_dir() else []
    if not parts and not top.is_file():
        raise ConfigError(f"{run_dir}: no metrics.jsonl (and no parts/NAME/metrics.jsonl): is it a pixelzoo run directory?")
    series: dict[str, dict] = {}
    finals: dict[str, float] = {}
    if parts:
        for p in parts:
            series[f"{label}/{p.parent.name}"] = curves(read_metrics(p))
        if top.is_file():
            whole = curves(read_metrics(top))
            if "test_bpd_full" in whole:
                finals[label] = whole["test_bpd_full"][1][-1]
    else:
        series[label] = curves(read_metrics(top))
    return series, finals


def _labels(run_dirs) -> list[str]:
    """The runs' names in the legend: their paths as given, without a trailing slash."""
    return [str(Path(r)) for r in run_dirs]


def parse_metrics(text) -> list[str] | None:
    """``"train_bpd,test_bpd"`` (or a list) -> metric names, checked against :data:`METRICS`; None -> None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [m.strip() for m in items if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}" if unknown else
                          f"give at least one metric: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def plot_runs(run_dirs, out=None, metrics=None, title: str | None = None) -> dict:
    """One PNG of the curves of ``run_dirs``: a panel per metric against the step, a line per run
    (per part for composites), one colour per line across the panels.

    ``metrics``: the panels (names of :data:`METRICS`); by default a training and a test panel,
    each series drawn in the first of (bits/dim, loss) it has, so a model without a likelihood shows
    its loss. In a test panel the evaluation on the whole test set at the end of training
    (``test_bpd_full`` / ``test_loss_full``) is a star at its step, and a composite's whole-model
    bound a dashed horizontal line. ``out``: the PNG (default ``RUN/curves.png`` of the first run).

    Returns exactly what was drawn: {"png": path, "panels": [metric, ...], "series": {metric:
    {label: (steps, values)}}, "full": {metric: {label: (steps, values)}}, "finals": {run:
    whole-model test_bpd_full}}."""
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ConfigError("give at least one run directory")
    metrics = parse_metrics(metrics)
    all_series: dict[str, dict] = {}
    finals: dict[str, float] = {}
    for run_dir, label in zip(run_dirs, _labels(run_dirs)):
        s, f = run_curves(run_dir, label)
        for name in s:
            if name in all_series:
                raise ConfigError(f"{name} is given twice")
        all_series.update(s)
        finals.update(f)

    def has(c, m):
        return m in c or f"{m}_full" in c

    wanted: dict[str, list[str]] = {}
    if metrics is None:
        for choices in DEFAULT_PANELS:
            for label, c in all_series.items():
                key = next((m for m in choices if has(c, m)), None)
                if key is not None:
                    wanted.setdefault(key, []).append(label)
        wanted = {m: wanted[m] for m in METRICS if m in wanted}
    else:
        wanted = {m: [label for label, c in all_series.items() if has(c, m)] for m in metrics}
    drawn = {m: {label: all_series[label][m] for label in labels if m in all_series[label]} for m, labels in wanted.items()}
    full = {m: {label: all_series[label][f"{m}_full"] for label in labels if f"{m}_full" in all_series[label]}
            for m, labels in wanted.items()}
    panels = [m for m in wanted if drawn[m] or full[m]]
    if not panels:
        have = sorted({k for c in all_series.values() for k in c})
        raise ConfigError(f"nothing to plot: the runs log none of {metrics or [m for c in DEFAULT_PANELS for m in c]} "
                          f"(they log {have})")
    colour = {label: f"C{k % 10}" for k, label in enumerate(all_series)}
    fig = Figure(figsize=(6 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, m in zip(axes, panels):
        for label, (steps, values) in drawn[m].items():
            ax.plot(steps, values, "o-" if len(steps) < 2 else "-", color=colour[label], label=label, markersize=3)
        for label, (steps, values) in full[m].items():
            ax.plot(steps, values, "*", color=colour[label], markersize=10,
                    label=f"{label} (whole test set)" if label not in drawn[m] else None)
        if m == "test_bpd":
            for k, (label, value) in enumerate(finals.items()):
                ax.axhline(value, linestyle="--", linewidth=1, color=f"C{(len(all_series) + k) % 10}",
                           label=f"{label}: whole model {value:.3f}")
        ax.set_xlabel("step")
        ax.set_ylabel(METRICS[m])
        ax.set_title(m + (" (stars: whole test set at the end)" if full[m] else ""), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "training curves: " + ", ".join(_labels(run_dirs)))
    fig.tight_layout()
    out = Path(out) if out is not None else local_dir(run_dirs[0]) / "curves.png"
    if out.suffix.lower() != ".png":
        out = out.with_name(out.name + ".png")
    png = save_figure(fig, out)
    return {"png": png, "panels": panels, "series": {m: drawn[m] for m in panels},
            "full": {m: full[m] for m in panels if full[m]}, "finals": finals}


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    """``pixelzoo plot``'s parser."""
    pl = subparsers.add_parser("plot", help="PNG of the training and test curves of one or more runs, on shared axes",
                               description="Plot the curves of runs from their metrics.jsonl: a panel per metric against "
                                           "the step (by default training and test bits/dim, or the loss for models without "
                                           "a likelihood), a line per run and, for composite models, per part (RUN/part); "
                                           "a composite's final whole-model bits/dim is a dashed line.")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    pl.add_argument("--out", help="output PNG (default FIRST_RUN/curves.png)")
    pl.add_argument("--metrics", help="comma-separated panels instead of the default: train_loss, train_bpd, "
                                      "test_bpd, test_loss, lr, images_per_s")
    return pl


def run(args) -> int:
    """``pixelzoo plot``: ``plot_runs`` and what it drew."""
    result = plot_runs(args.runs, out=args.out, metrics=args.metrics)
    lines = sorted({label for series in result["series"].values() for label in series})
    print(f"curves of {len(lines)} line(s) ({', '.join(lines)}) in panels {', '.join(result['panels'])}: {result['png']}")
    return 0
