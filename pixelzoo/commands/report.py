"""``pixelzoo report RUN``: one self-contained HTML file of a run (or a zoo model): its configuration,
its training curves, its evaluation (with the data's real-vs-real floor where it was measured), and
the pictures it holds (sample grids, level grids, reconstructions, nearest-neighbour grids), every
image embedded as a data URI, so the file opens from disk with no server and no network (no script,
no font, no style sheet from anywhere)."""

from __future__ import annotations

import base64
import html
import json
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_bytes, check_writable, output_paths
from ..training.run import read_run_config
from ..zoo import RUN_CONFIG, card, is_zoo_name, local_dir, read_json, zoo_entry
from .evaluate import EVAL_NAME
from .plot import plot_runs

MAX_PICTURES = 24  # the newest pictures of a run, at most

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f6f6f6;padding:.8em;overflow:auto}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}img{max-width:100%;image-rendering:pixelated}"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.3e}"
    return html.escape(json.dumps(v) if isinstance(v, (dict, list)) else str(v))


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if isinstance(c, (int, float)) else ""}">{_value(c)}</td>'
                                    for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _evaluation(folder: Path) -> str:
    path = folder / EVAL_NAME
    if not path.is_file():
        return "<p>No evaluation yet: <code>pixelzoo evaluate RUN --metrics bpd,fid,is,pr</code> writes one.</p>"
    try:
        result = json.loads(path.read_text())
    except ValueError:
        return f"<p>{html.escape(str(path))} cannot be read.</p>"
    rows = [(k, v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in result.get("notes", []))
    return _table(rows, ("metric", "value")) + (f"<ul>{notes}</ul>" if notes else "")


def _card_metrics(c: dict) -> str:
    sm = c.get("sample_metrics")
    if not sm:
        return ""
    model, floor = sm.get("model", {}), sm.get("data_floor", {})
    rows = [(k, model[k], floor.get(k, "")) for k in model]
    return (f"<h3>Sample metrics at {sm.get('count')} samples, next to the data's own floor</h3>"
            + _table(rows, ("metric", "model", "real vs real")))


def _pictures(folders: list[Path]) -> list[Path]:
    found = [p for f in folders if f.is_dir() for p in f.rglob("*.png")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_PICTURES]


def write_report(run, out=None) -> Path:
    """Write the report of ``run`` (a run directory or ``zoo:NAME``) to ``out`` (default
    ``RUN/report.html``; for a zoo model ``./zoo-NAME/report.html``) and return its path."""
    zoo = is_zoo_name(run)
    source = zoo_entry(run) if zoo else Path(run)
    if not zoo and not (source / "config.json").is_file():
        raise ConfigError(f"{run}: not a run directory (no config.json)")
    config = read_json(source, RUN_CONFIG) if zoo else read_run_config(source)
    target = Path(out) if out else local_dir(run) / "report.html"
    (target,) = output_paths(target, ".html")
    check_writable(target.parent, "where the report goes")
    name = str(run)
    sections = [f"<h1>pixelzoo report: {html.escape(name)}</h1>",
                f"<p>model <b>{html.escape(config['model']['name'])}</b> on <b>{html.escape(config['data']['name'])}"
                f"</b>; written {time.strftime('%Y-%m-%d %H:%M')}</p>"]
    if zoo:
        c = card(run)
        rows = [(k, v) for k, v in c.items() if k != "sample_metrics"]
        sections += ["<h2>Model card</h2>", _table(rows, ("field", "value")), _card_metrics(c)]
    sections += ["<h2>Configuration</h2>", f"<pre>{html.escape(json.dumps(config, indent=2))}</pre>"]
    with tempfile.TemporaryDirectory() as tmp:
        curves = ""
        try:
            drawn = plot_runs([source], out=Path(tmp) / "curves.png", title=f"training curves: {name}")
            curves = _img(Path(drawn["png"]), "training and test curves (metrics.jsonl)")
        except ConfigError as e:  # no metrics yet
            curves = f"<p>No curves: {html.escape(str(e))}</p>"
        sections += ["<h2>Training curves</h2>", curves]
    sections += ["<h2>Evaluation</h2>", _evaluation(local_dir(run) if zoo else source)]
    folders = [source] if zoo else [source / "samples", source / "eval", source / "parts"]
    if zoo:
        folders.append(local_dir(run))
    pictures = _pictures(folders)
    sections.append("<h2>Pictures</h2>")
    sections += [_img(p, str(p.relative_to(p.parents[1]) if len(p.parents) > 1 else p.name)) for p in pictures] or [
        "<p>No pictures yet: <code>pixelzoo sample RUN</code> draws some.</p>"]
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>pixelzoo report: {html.escape(name)}'
            f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    atomic_write_bytes(page.encode(), target)
    return target


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    r = subparsers.add_parser("report", help="one self-contained HTML file of a run or zoo model (images embedded)")
    r.add_argument("run_dir", help="a run directory or zoo:NAME")
    r.add_argument("--out", help="the HTML file (default RUN_DIR/report.html; zoo models ./zoo-NAME/report.html)")
    return r


def run(args) -> int:
    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0
