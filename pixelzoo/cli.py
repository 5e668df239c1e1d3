"""The pixelzoo command line: train | sample | evaluate | train-classifier | inpaint | colorize |
upscale | rejection-sweep | plot | presets | datasets. `pixelzoo COMMAND --help` explains each."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .errors import PixelzooError
from .threads import set_threads


def _number(kind, low=None, strict=False, what=""):
    """An argparse type: ``kind`` (int or float), at least ``low`` (above it when ``strict``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {what or ('> ' if strict else '>= ') + str(low)}, got {text}")
        return value
    return parse


POSITIVE = _number(int, 1, what="a positive integer")
NON_NEGATIVE = _number(int, 0, what="an integer >= 0")
TEMPERATURE = _number(float, 0.0, what="a number >= 0")


def _cmd_train(args) -> int:
    from .training import apply_overrides, distributed, load_config, resume_run, start_run

    if args.resume:
        if args.config or args.set or args.data or args.data_dir or args.out:
            raise PixelzooError("--resume continues a run with its own config; only --steps may change")
        trainer = resume_run(args.resume, steps=args.steps, parts=args.part, progress=not args.no_progress,
                             device=args.device)
        print(f"resuming {trainer.run_dir}, {trainer.status()}")
    else:
        if not args.config:
            raise PixelzooError("give a preset or config file to train (see `pixelzoo presets`), or --resume RUN_DIR")
        config = load_config(args.config)
        if args.data:
            config["data"] = {"name": args.data}
        if args.data_dir:
            config["data"]["data_dir"] = args.data_dir
        if args.steps is not None:
            config.setdefault("train", {})["steps"] = args.steps
        config = apply_overrides(config, args.set or [])
        default_name = Path(args.config).stem if args.config.endswith(".json") else args.config.replace("/", "-")
        out = args.out or Path("runs") / default_name
        trainer = start_run(config, out, parts=args.part, progress=not args.no_progress, device=args.device)
        if distributed.is_main():
            print(f"run directory: {trainer.run_dir}")
    result = trainer.train()
    distributed.finish()
    if "process" in result:  # a process other than 0 under torchrun: process 0 reports
        return 0
    if "test_bpd" in result:
        test = trainer.splits.test
        print(f"test bits/dim: {result['test_bpd']:.4f} ({len(test)} test images of {test.name})")
        for name, value in result.get("test_bpd_parts", {}).items():
            print(f"  part {name}: {value:.4f}")
    elif "test_loss" in result:
        test = trainer.splits.test
        print(f"test loss: {result['test_loss']:.4f} ({len(test)} test images of {test.name}; the model has no "
              "likelihood, so no bits/dim)")
    if "samples" in result:
        print(f"samples: {result['samples']}")
    if result.get("unfinished_parts"):
        print(f"parts short of their steps: {', '.join(result['unfinished_parts'])}; the whole model's test "
              f"bits/dim and samples come once every part is trained (pixelzoo train --resume {trainer.run_dir}), "
              f"or now from `pixelzoo evaluate {trainer.run_dir}` and `pixelzoo sample {trainer.run_dir}`")
    print(f"checkpoint: {result['checkpoint']}")
    return 0


def _load(run_dir, device=None):
    from .training import load_run_model

    return load_run_model(run_dir, device)


def _cmd_sample(args) -> int:
    from .imaging import write_sample_grid

    from .commands.colorize_upscale import class_option

    model, _ = _load(args.run_dir, args.device)
    cls = class_option(model, args.cls)
    y = None
    if model.num_classes:
        y = torch.full((args.n,), cls) if cls is not None else torch.arange(args.n) % model.num_classes
    g = torch.Generator().manual_seed(args.seed)
    levels = None
    if args.levels:
        if not hasattr(model, "level_grid"):
            raise PixelzooError(f"--levels needs a model with auxiliary levels (grayscale_pixelcnn, pyramid_pixelcnn, agave); "
                                f"{type(model).__name__} has none")
        levels = model.level_grid(args.n, y=y, temperature=args.temperature, generator=g,
                                  progress=not args.no_progress)
        levels = [(lv.cpu(), k) for lv, k in levels]
        x = levels[-1][0]
    else:
        x = model.sample(args.n, y=y, temperature=args.temperature, generator=g, progress=not args.no_progress).cpu()
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_sample_grid(x, y, model.num_levels, out.with_suffix(".png"), scale=args.scale, levels=levels)
    np.savez_compressed(out.with_suffix(".npz"), images=x.numpy().astype(np.uint8),
                        labels=(y.numpy() if y is not None else np.zeros(0, np.int64)))
    print(f"samples: {out.with_suffix('.png')} and {out.with_suffix('.npz')}")
    return 0


def _cmd_evaluate(args) -> int:
    from .commands.evaluate import evaluate_real, evaluate_run, format_table

    progress = not args.no_progress
    if args.real:
        if args.run_dir:
            raise PixelzooError("give either RUN_DIR or --real DATA, not both")
        result = evaluate_real(args.real, args.data_dir, args.metrics or "fid,is,kid,pr", args.n,
                               feature_net=args.feature_net, batch_size=args.batch_size, progress=progress,
                               seed=args.seed, out=args.out, device=args.device)
        print(f"real-vs-real floor of {result['data']} with feature network {result['feature_net']}")
    else:
        if not args.run_dir:
            raise PixelzooError("give a run directory to evaluate, or --real DATA for the real-vs-real floor")
        if args.data_dir or args.out:
            raise PixelzooError("--data-dir and --out apply to --real only (a run evaluation writes RUN_DIR/eval.json)")
        result = evaluate_run(args.run_dir, args.metrics or "bpd", args.n, batch_size=args.batch_size,
                              progress=progress, feature_net=args.feature_net, seed=args.seed,
                              temperature=args.temperature, samples=args.samples, cas_steps=args.cas_steps,
                              iwae_samples=args.iwae_samples, device=args.device)
        print(f"evaluation of {args.run_dir} (step {result['step']}), written to {Path(args.run_dir) / 'eval.json'}")
    print(format_table(result))
    return 0


def _cmd_train_classifier(args) -> int:
    from .commands.evaluate import train_feature_network

    model, directory, seconds = train_feature_network(args.data, args.data_dir, args.steps, args.out,
                                                      batch_size=args.batch_size, progress=not args.no_progress,
                                                      install=args.cache, device=args.device)
    cfg = model.config
    top5 = f", top-5 {cfg['test_top5']:.4f}" if cfg.get("test_top5") is not None else ""
    print(f"feature network {cfg['feature_id']}: test accuracy {cfg['test_accuracy']:.4f}{top5} "
          f"({cfg['training']['steps']} steps, {seconds:.0f} s)")
    print(f"saved in {directory}; use it with `pixelzoo evaluate RUN_DIR --feature-net {directory}`")
    return 0


def _cmd_rejection_sweep(args) -> int:
    from .commands.rejection_sweep import parse_rates, sweep_run

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


def _cmd_inpaint(args) -> int:
    from .imaging import save_grid
    from .training import load_data

    model, config = _load(args.run_dir, args.device)
    test = load_data(config["data"]).test
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[: args.images]
    known = test.images[idx].long()
    y = test.labels[idx].repeat_interleave(args.completions) if model.num_classes and test.labels is not None else None
    mask = torch.zeros(model.image_shape, dtype=torch.bool)
    mask[:, : model.image_shape[1] // 2] = True
    fills = model.sample(args.images * args.completions, y=y, known=known, mask=mask, generator=g,
                         progress=not args.no_progress, temperature=args.temperature).cpu()
    rows = []
    for k in range(args.images):
        shown = known[k].clone()
        shown[:, model.image_shape[1] // 2:] = 0
        rows += [known[k], shown, *fills[k * args.completions:(k + 1) * args.completions]]
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"inpaint-{time.strftime('%Y%m%d-%H%M%S')}.png"
    save_grid(torch.stack(rows), model.num_levels, out, ncol=args.completions + 2)
    print(f"inpainting grid (original, top half given, {args.completions} completions per row): {out}")
    return 0


def _cmd_colorize(args) -> int:
    from .commands.colorize_upscale import colorize_command

    r = colorize_command(args.run_dir, args.images, args.n, args.per_image, gray_given=args.gray, cls=args.cls,
                         temperature=args.temperature, map_sampling=args.map, log_scale_shift=args.log_scale_shift,
                         seed=args.seed, out=args.out, progress=not args.no_progress, device=args.device)
    cols = ("original, " if r["with_original"] else "") + f"gray view, {r['per_image']} colourisations"
    print(f"colourisation grid ({cols} per row): {r['png']}; samples: {r['npz']}")
    print(f"psi(colourisation) equals the given gray view at {r['agreement']:.1%} of pixels")
    return 0


def _cmd_upscale(args) -> int:
    from .commands.colorize_upscale import upscale_command

    r = upscale_command(args.run_dir, args.images, args.n, args.per_image, from_size=args.from_size, cls=args.cls,
                        temperature=args.temperature, map_sampling=args.map, log_scale_shift=args.log_scale_shift,
                        seed=args.seed, out=args.out, progress=not args.no_progress, device=args.device)
    cols = ("original, " if r["with_original"] else "") + f"{r['from_size']}-pixel level, {r['per_image']} upscalings"
    print(f"upscaling grid ({cols} per row): {r['png']}; samples: {r['npz']}")
    return 0


def _cmd_reconstruct(args) -> int:
    from .commands.reconstruct import reconstruct_command

    r = reconstruct_command(args.run_dir, args.images, args.n, args.per_image, cls=args.cls,
                            temperature=args.temperature, seed=args.seed, out=args.out,
                            progress=not args.no_progress, device=args.device)
    above = "".join(f"a row of {name}, " for name in r["shown_levels"])
    print(f"reconstructions (per image: {above}a row of samples; each row starts with the image): {r['png']}; "
          f"samples: {r['npz']}")
    return 0


def _cmd_plot(args) -> int:
    from .commands.plot import plot_runs

    result = plot_runs(args.runs, out=args.out, metrics=args.metrics)
    lines = sorted({label for series in result["series"].values() for label in series})
    print(f"curves of {len(lines)} line(s) ({', '.join(lines)}) in panels {', '.join(result['panels'])}: {result['png']}")
    return 0


def _cmd_presets(args) -> int:
    import shutil
    import textwrap

    from .registry import list_presets, load_preset

    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    for name in list_presets():
        text = " ".join(load_preset(name).get("description", "").split())
        if args.verbose:
            print(name)
            print(textwrap.fill(text, width - 1, initial_indent="    ", subsequent_indent="    "))
        else:
            print(f"{name:32s} {textwrap.shorten(text, max(20, width - 34), placeholder=' ...')}")
    return 0


def _cmd_datasets(args) -> int:
    from .data import available_datasets

    for d in available_datasets():
        print(f"{d['name']:14s} {'yes' if d['available'] else 'no ':3s}  {d['detail']}")
    return 0


def _add_device_option(sub, commands) -> None:
    """``--device`` on each of ``commands`` (checked when the command runs: a bad or absent device
    is a ConfigError, exit code 2)."""
    for name in commands:
        sub.choices[name].add_argument(
            "--device", metavar="DEVICE", help="auto (default: CUDA when present, else the CPU; or "
                                               "$PIXELZOO_DEVICE), cpu, cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="pixelzoo", description=__doc__)
    p.add_argument("--version", action="version", version=f"pixelzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a preset or config file, or resume a run")
    t.add_argument("config", nargs="?", help="preset name (see `pixelzoo presets`) or path to a JSON run config")
    t.add_argument("--data", help="data set name, replacing the preset's (see `pixelzoo datasets`)")
    t.add_argument("--data-dir", help="folder (or file) the data set is read from")
    t.add_argument("--steps", type=POSITIVE, help="number of training steps (with --resume: the new total)")
    t.add_argument("--out", help="run directory to create (default runs/PRESET; never overwrites a run)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set model.channels=32 --set train.lr=3e-4 (repeatable)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument("--part", action="append", metavar="NAME",
                   help="composite models: train only this part (repeatable); parts of one stage can run as parallel processes")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run: a PNG grid and an .npz of the images")
    s.add_argument("run_dir")
    s.add_argument("-n", type=POSITIVE, default=64, help="number of images (default 64)")
    s.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every sample (default: classes in turn)")
    s.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature (0: most likely value)")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed")
    s.add_argument("--levels", action="store_true",
                   help="grayscale/pyramid models: one row per level, lowest first (the paper's Fig. 2 / Fig. 6); "
                        "agave: f(z) above each sample (Lucas & Verbeek's Fig. 3 / Fig. 6)")
    s.add_argument("--scale", type=POSITIVE, help="enlarge every image by this integer factor (default: the smallest "
                                             "making the grid at least 512 pixels wide); class-conditional models: "
                                             "one class per column, labelled")
    s.add_argument("--out", help="output path without suffix (default RUN_DIR/samples/sample-TIME)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_sample)

    e = sub.add_parser("evaluate", help="evaluate a trained run (bits/dim, sample metrics); writes RUN_DIR/eval.json",
                       description="Evaluate a run: test bits/dim and sample metrics (FID, IS, KID, precision/recall, "
                                   "CAS, FID*, nearest neighbours) in the feature space of a classifier trained on the "
                                   "run's data set (trained and cached on first use). Or, with --real DATA, the "
                                   "real-vs-real floor: the test set against an equally large training subset.")
    e.add_argument("run_dir", nargs="?", help="run directory (omit with --real)")
    e.add_argument("--metrics", help="comma-separated: bpd,iwae,fid,is,kid,pr,cas,nn,fid_star (default bpd; "
                                     "with --real: fid,is,kid,pr); iwae: a latent-variable model's (AGAVE) ELBO, "
                                     "IWAE bound and their terms")
    e.add_argument("-n", type=POSITIVE, default=None,
                   help="samples to draw for sample metrics (default: as many as test images); bpd and iwae use "
                        "only the first N test images (default all)")
    e.add_argument("--iwae-samples", type=POSITIVE, default=150, metavar="K",
                   help="importance samples per image of the iwae metric (default 150, the AGAVE paper's)")
    e.add_argument("--batch-size", type=POSITIVE, default=256, help="evaluation and sampling batch size")
    e.add_argument("--feature-net", metavar="DIR", help="a saved classifier (pixelzoo train-classifier) instead of "
                                                        "the cached one of the data set")
    e.add_argument("--samples", metavar="NPZ", help="use these samples (images, labels; as `pixelzoo sample` writes) "
                                                    "instead of drawing new ones")
    e.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed of the samples (and of --real's subset)")
    e.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    e.add_argument("--cas-steps", type=POSITIVE, help="training steps of the CAS classifier (default: the feature network's)")
    e.add_argument("--real", metavar="DATA", help="no run: the real-vs-real floor of data set DATA")
    e.add_argument("--data-dir", help="with --real: folder the data set is read from")
    e.add_argument("--out", help="with --real: also write the result to this JSON file")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser("train-classifier", help="train the LeNet feature network of the sample metrics on a data set")
    c.add_argument("data", help="data set name (see `pixelzoo datasets`)")
    c.add_argument("--data-dir", help="folder (or file) the data set is read from")
    c.add_argument("--steps", type=POSITIVE, help="training steps (default about 4 epochs, 600 to 2000)")
    c.add_argument("--batch-size", type=POSITIVE, default=128, help="batch size (default 128)")
    c.add_argument("--out", help="directory to create (default classifiers/DATA-lenet; never overwrites one)")
    c.add_argument("--cache", action="store_true", help="also install it in the feature-network cache that "
                                                         "`pixelzoo evaluate` uses ($PIXELZOO_CACHE)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_cmd_train_classifier)

    i = sub.add_parser("inpaint", help="complete test images whose top half is given; PNG grid")
    i.add_argument("run_dir")
    i.add_argument("--images", type=POSITIVE, default=8, help="number of test images (default 8)")
    i.add_argument("--completions", type=POSITIVE, default=4, help="completions per image (default 4)")
    i.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature")
    i.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (which images, and the draws)")
    i.add_argument("--out", help="output PNG path (default RUN_DIR/samples/inpaint-TIME.png)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.set_defaults(func=_cmd_inpaint)

    r = sub.add_parser("rejection-sweep", help="classifier-based rejection sampling: FID, IS, precision/recall per "
                                               "acceptance rate (JSON + PNG)",
                       description="Classifier-based rejection sampling (VQ-VAE-2, sec. 3.3): draw candidates, keep per "
                                   "class those the classifier gives the highest probability of their class, and measure "
                                   "FID, IS and precision/recall of the kept samples against the test set at each "
                                   "acceptance rate (the paper's Fig. 7 trade-off). Works for any run whose model samples.")
    r.add_argument("run_dir")
    r.add_argument("--rates", default="1,0.5,0.25,0.1", help="acceptance rates in (0, 1] (default 1,0.5,0.25,0.1)")
    r.add_argument("-n", type=_number(int, 2, what="an integer >= 2"), default=1000, help="accepted samples per rate (default 1000); n / min(rate) "
                                                      "candidates are drawn")
    r.add_argument("--batch-size", type=POSITIVE, default=64, help="sampling batch size")
    r.add_argument("--feature-net", metavar="DIR", help="saved classifier for the metrics (default: the data set's "
                                                        "cached evaluation classifier)")
    r.add_argument("--scorer", metavar="DIR", help="saved classifier that scores candidates (default: the feature network)")
    r.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed of the candidates")
    r.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    r.add_argument("--out", help="JSON path (default RUN_DIR/eval/rejection_sweep.json; the PNG goes next to it)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_rejection_sweep)

    for cmd, what in (("colorize", "colourise gray views with a grayscale_pixelcnn run (the paper's Fig. 3); PNG grid + .npz"),
                      ("upscale", "sample the higher resolutions of low-resolution images with a pyramid_pixelcnn run; "
                                  "PNG grid + .npz")):
        a = sub.add_parser(cmd, help=what)
        a.add_argument("run_dir")
        a.add_argument("images", help="`test` (random test images of the run's data) or an .npz with 'images' "
                                      "(and 'labels'), as `pixelzoo sample` writes")
        a.add_argument("-n", type=POSITIVE, default=8, help="number of given images (default 8)")
        a.add_argument("--per-image", type=POSITIVE, default=4, help="samples per given image (default 4)")
        if cmd == "colorize":
            a.add_argument("--gray", action="store_true", help="the images are gray views already (default: images, "
                                                               "or gray views when their shape says so)")
        else:
            a.add_argument("--from-size", type=POSITIVE, help="resolution to upscale from (default: the lowest level)")
        a.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every image (default: the images' labels)")
        a.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
        a.add_argument("--map", action="store_true", help="MAP sampling: a mixture component by its weight, then its mode")
        a.add_argument("--log-scale-shift", type=_number(float), help="variance reduction: subtract this from the logistics' "
                                                             "log-scales (the paper's log-variance reduction / 2)")
        a.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (which test images, and the draws)")
        a.add_argument("--out", help=f"output PNG path (default RUN_DIR/samples/{cmd}-TIME.png; the .npz goes next to it)")
        a.add_argument("--no-progress", action="store_true", help="no progress bar")
        a.set_defaults(func=_cmd_colorize if cmd == "colorize" else _cmd_upscale)

    rc = sub.add_parser("reconstruct", help="sampled reconstructions: agave (z ~ q(z | x), then x given f(z); f(z) "
                                            "above the samples) or defauw (the top codes, then the levels below); "
                                            "PNG grid + .npz")
    rc.add_argument("run_dir")
    rc.add_argument("images", help="`test` (random test images of the run's data) or an .npz with 'images' "
                                   "(and 'labels'), as `pixelzoo sample` writes")
    rc.add_argument("-n", type=POSITIVE, default=8, help="number of given images (default 8)")
    rc.add_argument("--per-image", type=POSITIVE, default=4, help="reconstructions per given image (default 4)")
    rc.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every image (class-conditional decoders)")
    rc.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature of the decoders")
    rc.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (which test images, and the draws)")
    rc.add_argument("--out", help="output PNG path (default RUN_DIR/samples/reconstruct-TIME.png; the .npz next to it)")
    rc.add_argument("--no-progress", action="store_true", help="no progress bar")
    rc.set_defaults(func=_cmd_reconstruct)

    pl = sub.add_parser("plot", help="PNG of the training and test curves of one or more runs, on shared axes",
                        description="Plot the curves of runs from their metrics.jsonl: a panel per metric against "
                                    "the step (by default training and test bits/dim, or the loss for models without "
                                    "a likelihood), a line per run and, for composite models, per part (RUN/part); "
                                    "a composite's final whole-model bits/dim is a dashed line.")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    pl.add_argument("--out", help="output PNG (default FIRST_RUN/curves.png)")
    pl.add_argument("--metrics", help="comma-separated panels instead of the default: train_loss, train_bpd, "
                                      "test_bpd, test_loss, lr, images_per_s")
    pl.set_defaults(func=_cmd_plot)

    _add_device_option(sub, ("train", "sample", "evaluate", "train-classifier", "inpaint", "rejection-sweep",
                             "colorize", "upscale", "reconstruct"))
    ps = sub.add_parser("presets", help="list the named configurations (a line each; -v: the full descriptions)")
    ps.add_argument("-v", "--verbose", action="store_true", help="print each preset's full description")
    ps.set_defaults(func=_cmd_presets)
    sub.add_parser("datasets", help="list the data sets, whether each is available here, and why not").set_defaults(func=_cmd_datasets)
    for command in sub.choices.values():  # every command, last so that none is missed
        command.add_argument("--threads", type=POSITIVE, metavar="N",
                             help="intra-op CPU threads (default: $PIXELZOO_THREADS, else the cores this process "
                                  "may use, shared among torchrun's local processes)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        set_threads(getattr(args, "threads", None))
        return args.func(args)
    except PixelzooError as e:
        print(f"pixelzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `pixelzoo presets | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
