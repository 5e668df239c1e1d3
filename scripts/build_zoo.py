"""Rebuild the zoo from scratch with pixelzoo's own commands: each entry is trained by `pixelzoo
train` from its preset, evaluated (sample metrics at a stated count next to the data's own floor at
that count), then exported into the package (``pixelzoo/zoo/entries/NAME``) with its card.

    python scripts/build_zoo.py --list                 # the recipes
    python scripts/build_zoo.py digits                 # one entry (about a minute on 2 idle cores)
    python scripts/build_zoo.py all --threads 1        # every entry, one after another (hours)
    python scripts/build_zoo.py NAME --rescore         # only its sample metrics again, from the shipped weights

Runs go to ``runs/zoo/NAME`` (``--runs``), trained anew each time. The card records the command, the commit, the wall time, the threads,
the steps and the images seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _parts(**steps) -> list[str]:
    return [a for part, n in steps.items() for a in ("--set", f"train_parts.{part}.steps={n}")]


#: name -> (preset, extra `pixelzoo train` arguments, sample-metric count or why there are none)
RECIPES = {
    "digits": ("gated_pixelcnn/digits", [], 360),
    "fashion-gated": ("gated_pixelcnn/fashion-cpu", ["--set", "train.time_budget=1500"], 1000),
    "fashion-pixelcnnpp": ("pixelcnnpp/fashion-cpu", ["--set", "train.time_budget=1500"], 1000),
    "fashion-pixeliqn": ("pixeliqn/fashion-cpu", ["--set", "train.time_budget=1500"], 1000),
    "fashion-pixelsnail": ("pixelsnail/fashion-cpu", ["--set", "train.time_budget=1500"], 1000),
    # composites: each part's steps sized to about half an hour of one thread in all (a part stopped by a
    # time budget is not finished, and the parts after it train on its levels)
    "fashion-vqvae2": ("vqvae2/fashion-cpu", _parts(autoencoder=1500, top_prior=1500, bottom_prior=1200), 1000),
    "fashion-pyramid": ("pyramid_pixelcnn/fashion-cpu", _parts(prior=1000, scale_1=1000, scale_2=1000, scale_3=1000),
                        1000),
    "fashion-agave-aiqn": ("agave/fashion-made-aiqn-cpu", _parts(vae=1000, pixel_decoder=400, joint=400, prior=1000),
                           1000),
    "fashion-defauw": ("defauw/fashion-ff-cpu", _parts(level1=300, prior=600), 1000),
    "patches-grayscale": ("grayscale_pixelcnn/patches-cpu", _parts(prior=600, conditional=600),
                          "none: the patches have no labels to train a feature network on"),
}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def build(name: str, runs: Path, threads: int, root) -> Path:
    from pixelzoo.cli import main as cli
    from pixelzoo.commands.zoo import export_entry
    from pixelzoo.io import read_metadata
    from pixelzoo.training.config import RunConfig
    from pixelzoo.training.run import read_run_config

    preset, extra, count = RECIPES[name]
    run = runs / name
    argv = ["train", preset, "--out", str(run), "--threads", str(threads), "--no-progress", *extra]
    shown = ["train", preset, "--out", f"runs/zoo/{name}", *argv[4:]]  # the card's command: where the run goes aside
    shutil.rmtree(run, ignore_errors=True)  # from scratch: the card's wall time is this training's
    commit = _commit()  # the code that trains, read before training
    start = time.perf_counter()
    if cli(argv):
        raise SystemExit(f"training {name} failed")
    wall = time.perf_counter() - start
    config = read_run_config(run)
    run_config = RunConfig.from_dict(config)
    parts = sorted(p.parent.name for p in (run / "parts").glob("*/checkpoint.safetensors")) or [None]
    steps, images = {}, {}
    for part in parts:  # the steps each part took (a time budget may have stopped it earlier)
        checkpoint = run / ("parts/" + part if part else ".") / "checkpoint.safetensors"
        steps[part] = int(read_metadata(checkpoint)["step"])
        images[part] = steps[part] * run_config.train_for(part).batch_size
    if parts == [None]:
        steps, images = steps[None], images[None]
    fields = {"preset": preset, "command": "pixelzoo " + " ".join(shown), "commit": commit,
              "wall_seconds": round(wall, 1), "cores": os.cpu_count(), "threads": threads, "steps": steps,
              "images_seen": images,
              "built": time.strftime("%Y-%m-%d"), "rebuild": f"python scripts/build_zoo.py {name}"}
    fields["sample_metrics"] = sample_metrics(run, config, count) if isinstance(count, int) else count
    return export_entry(run, name, fields, root=root)


def sample_metrics(run, config: dict, count: int) -> dict:
    """FID, IS, precision/recall (and CAS for a class-conditional model) of ``count`` samples, next to
    the data's own floor at that count (``count`` training images against the test set)."""
    from pixelzoo.commands.evaluate import evaluate_real, evaluate_run
    from pixelzoo.training import load_run_model

    wanted = "fid,is,pr,cas" if load_run_model(run)[0].num_classes else "fid,is,pr"
    metrics = evaluate_run(run, wanted, count, progress=False, write=False)
    data = dict(config["data"])  # the floor on the images the model was measured on (padded, ...)
    floor = evaluate_real(data.pop("name"), data.pop("data_dir", None), "fid,is,pr", count, progress=False,
                          data_options=data)
    keep = ("fid", "is", "precision", "recall", "cas_top1", "real_top1")
    return {"count": count, "model": {k: v for k, v in metrics.items() if k.split("[")[0] in keep},
            "data_floor": {k: v for k, v in floor.items() if k.split("[")[0] in keep}}


def rescore(name: str, root) -> Path:
    """Measure the sample metrics of an entry's shipped weights again (its recipe's count) onto its card."""
    from pixelzoo.commands.zoo import update_card
    from pixelzoo.zoo import RUN_CONFIG, zoo_entry

    count = RECIPES[name][2]
    if not isinstance(count, int):
        raise SystemExit(f"zoo entry {name} has no sample metrics to measure ({count})")
    if root:
        os.environ["PIXELZOO_ZOO"] = str(root)  # zoo:NAME is looked up there
    config = json.loads((zoo_entry(name) / RUN_CONFIG).read_text())
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:  # evaluate's ./zoo-NAME (its cached samples) goes with it
        os.chdir(scratch)
        try:
            metrics = sample_metrics(f"zoo:{name}", config, count)
        finally:
            os.chdir(here)
    return update_card(name, {"sample_metrics": metrics}, root=root)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="entries to build, or `all`")
    p.add_argument("--list", action="store_true", help="list the recipes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", default=str(ROOT / "runs" / "zoo"), help="where the training runs go")
    p.add_argument("--root", help="where the entries go (default: the package's zoo)")
    p.add_argument("--rescore", action="store_true", help="measure the named entries' sample metrics again (their "
                                                          "shipped weights), onto their cards; no training")
    args = p.parse_args(argv)
    if args.list or not args.names:
        for name, (preset, extra, count) in RECIPES.items():
            print(f"{name:<20} {preset} {' '.join(extra)}")
        return 0
    names = list(RECIPES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; the recipes: {', '.join(RECIPES)}")
    for name in names:
        if args.rescore:
            from pixelzoo.threads import set_threads

            set_threads(args.threads)
            print(f"zoo entry {name} rescored: {rescore(name, args.root)}")
        else:
            print(f"zoo entry {name}: {build(name, Path(args.runs), args.threads, args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
