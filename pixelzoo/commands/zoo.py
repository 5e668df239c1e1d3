"""``pixelzoo zoo``: list the zoo's trained models, print one's card, verify every entry; and
``export_entry``, which turns a trained run into a zoo entry (``scripts/build_zoo.py`` calls it).

An exported entry holds the run's evaluation weights (Polyak when kept) as ``save_pretrained``
writes them, in float16 when that changes test bits/dim (or, for a model without a likelihood, its
test loss) by under 0.001 on the whole test set (measured here, both figures on the card), else in
float32; its ``run.json``, its ``metrics.jsonl`` curves, a sample grid, ``card.json`` and
``checksums.json`` (``pixelzoo.zoo``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..imaging import write_sample_grid
from ..io import atomic_write_json, check_writable, load_tensors, save_tensors
from ..models.base import SamplesImages, has_likelihood
from ..training import load_data, load_run_model
from ..training.held_out import held_out_figure
from ..training.run import read_run_config
from ..zoo import CARD, CHECKSUMS, RUN_CONFIG, card, checksums_of, list_zoo, verify, zoo_entry, zoo_root

HALF_TOLERANCE = 1e-3  # bits/dim (or loss) a float16 copy of the weights may change the test figure by


def _test_figures(model, splits, run_dir, seed: int) -> dict[str, float]:
    """The whole test set's figure: bits/dim for a model with a likelihood (a composite's bound), the
    mean test loss of a model without one (PixelIQN's quantile loss); for a composite without a
    likelihood of x (VQ-VAE-2) each part's figure on its own data (``test_bpd_PART`` for a prior, in
    bits per code; ``test_loss_PART`` for the autoencoder), as its training evaluates it."""
    plan = model.training_plan()
    if has_likelihood(model) or plan.is_single:
        return held_out_figure(model, splits.test, 256, seed=seed)
    out = {}
    for unit in plan.units:  # the levels from the weights as they are (not a cache of others)
        test = unit.data(splits, Path(run_dir) / "cache", False).test
        figure = held_out_figure(unit.module, test, 256, seed=seed, loss=unit.loss)
        out.update({f"{key}_{unit.name}": value for key, value in figure.items()})
    return out


def _halve(model) -> None:
    """Round the model's floating weights through float16, in place (what loading the half copy gives)."""
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.half().float())


def _to_half_files(folder: Path) -> None:
    for path in sorted(folder.rglob("model.safetensors")):
        tensors = load_tensors(path)
        save_tensors({k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}, path)


def export_entry(run_dir, name: str, card_fields: dict, root=None, samples: int = 64, seed: int = 0) -> Path:
    """Write the zoo entry ``name`` from the trained run ``run_dir`` under ``root`` (default the zoo's
    root), replacing an entry of that name only once the new one is complete. ``card_fields`` (the
    command, preset, commit, wall time, ...) go on the card with what is measured here: the test
    figure on the whole test set in float32 and float16, the precision kept, the parameters, a
    ``samples``-image grid and its sampling time."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"a zoo entry's name is one folder name, got {name!r}")
    root = Path(root) if root is not None else zoo_root()
    check_writable(root, "the zoo's entries go there")
    model, config = load_run_model(run_dir, "cpu")
    splits = load_data(config["data"])
    test = splits.test
    full = _test_figures(model, splits, run_dir, seed)
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    _halve(model)
    half = _test_figures(model, splits, run_dir, seed)
    change = max(abs(half[k] - full[k]) for k in full)
    in_half = change < HALF_TOLERANCE
    if in_half:
        _to_half_files(tmp)
    atomic_write_json(read_run_config(run_dir), tmp / RUN_CONFIG)
    for metrics in Path(run_dir).rglob("metrics.jsonl"):
        target = tmp / metrics.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(metrics, target)
    info = {}
    if isinstance(model, SamplesImages):
        n = samples
        y = torch.arange(n) % model.num_classes if model.num_classes else None
        t = time.perf_counter()
        x = model.sample(n, y=y, generator=torch.Generator().manual_seed(seed))
        info = {"sample_seconds": round(time.perf_counter() - t, 2), "sample_images": n, "sample_grid": "samples.png"}
        write_sample_grid(x, y, model.num_levels, tmp / "samples.png")
    params = sum(p.numel() for p in model.parameters())
    figures = {f"{k}_{precision}": round(v, 4) for precision, values in (("full", full), ("float16", half))
               for k, v in values.items()}
    entry = {"name": name, **card_fields, **figures, "float16_change": round(change, 6),
             "weights": "float16" if in_half else "float32", "parameters": params, "test_images": len(test),
             "data": config["data"], "model": config["model"]["name"], **info}
    atomic_write_json(entry, tmp / CARD)
    atomic_write_json(checksums_of(tmp), tmp / CHECKSUMS)
    final = root / name
    old = root / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    verify(final)
    return final


def update_card(name: str, fields: dict, root=None) -> Path:
    """Add ``fields`` to the card of entry ``name`` (its files verified first) and list the new card in
    its checksums; the card and the checksums are each replaced atomically, the card first."""
    root = Path(root) if root is not None else zoo_root()
    folder = root / name
    verify(folder)
    atomic_write_json({**json.loads((folder / CARD).read_text()), **fields}, folder / CARD)
    atomic_write_json(checksums_of(folder), folder / CHECKSUMS)
    verify(folder)
    return folder


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _line(name: str) -> str:
    c = card(name)
    figures = [f"{k[:-5]} {c[k]}" for k in c if k.startswith(("test_bpd", "test_loss")) and k.endswith("_full")]
    figure = figures[0] if len(figures) == 1 else f"{len(figures)} parts' figures" if figures else ""
    return (f"zoo:{name:<24} {c.get('model', '?'):<20} {c.get('data', {}).get('name', '?'):<14} {figure:<18} "
            f"{_size(zoo_entry(name, check=False)) / 2 ** 20:.1f} MB")


def format_card(name: str) -> str:
    c = card(name)
    order = ["name", "model", "preset", "command", "data", "commit", "wall_seconds", "cores", "threads", "steps",
             "images_seen", *sorted(k for k in c if k.startswith(("test_bpd", "test_loss"))), "float16_change", "weights",
             "parameters", "test_images", "sample_metrics", "sample_seconds", "sample_images", "sample_grid"]
    keys = [k for k in order if k in c] + sorted(k for k in c if k not in order)
    lines = [f"{k}: {json.dumps(c[k]) if isinstance(c[k], (dict, list)) else c[k]}" for k in keys]
    lines.append(f"files: {zoo_entry(name, check=False)} ({_size(zoo_entry(name, check=False)) / 2 ** 20:.2f} MB)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    z = subparsers.add_parser("zoo", help="the trained models shipped with pixelzoo: list them, print one's card "
                                          "(use zoo:NAME wherever a run directory goes)")
    z.add_argument("name", nargs="?", help="an entry: print its card")
    z.add_argument("--verify", action="store_true", help="check every entry's files against their checksums")
    return z


def run(args) -> int:
    if args.name:
        zoo_entry(args.name)  # unknown names and damaged entries are errors
        print(format_card(args.name))
        return 0
    names = list_zoo()
    if args.verify:
        for name in names:
            verify(zoo_root() / name)
        print(f"{len(names)} zoo entries verified in {zoo_root()}")
        return 0
    if not names:
        print(f"the zoo at {zoo_root()} holds no models")
        return 0
    for name in names:
        print(_line(name))
    print("use zoo:NAME wherever a run directory goes (pixelzoo sample zoo:NAME, load_pretrained('zoo:NAME'))")
    return 0
