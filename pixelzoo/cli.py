"""The ``pixelzoo`` command line: train | sample | evaluate | inpaint | presets | datasets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .errors import PixelzooError


def _cmd_train(args) -> int:
    from .training import apply_overrides, load_config, resume_run, start_run

    if args.resume:
        if args.config or args.set or args.data or args.data_dir or args.out:
            raise PixelzooError("--resume continues a run with its own config; only --steps may change")
        trainer = resume_run(args.resume, steps=args.steps, parts=args.part, progress=not args.no_progress)
        print(f"resuming {trainer.run_dir}" + (f" at step {trainer.step} of {trainer.cfg.steps}" if hasattr(trainer, "step") else ""))
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
        out = args.out or Path("runs") / args.config.replace("/", "-").removesuffix(".json").split("\\")[-1]
        trainer = start_run(config, out, parts=args.part, progress=not args.no_progress)
        print(f"run directory: {trainer.run_dir}")
    result = trainer.train()
    if "test_bpd" in result:
        test = trainer.splits.test
        print(f"test bits/dim: {result['test_bpd']:.4f} ({len(test)} test images of {test.name})")
        for name, value in result.get("test_bpd_parts", {}).items():
            print(f"  part {name}: {value:.4f}")
    if "samples" in result:
        print(f"samples: {result['samples']}")
    print(f"checkpoint: {result['checkpoint']}")
    return 0


def _load(run_dir):
    from .training import load_run_model

    return load_run_model(run_dir)


def _cmd_sample(args) -> int:
    from .imaging import save_grid

    model, _ = _load(args.run_dir)
    y = None
    if model.num_classes:
        y = torch.full((args.n,), args.cls) if args.cls is not None else torch.arange(args.n) % model.num_classes
    elif args.cls is not None:
        raise PixelzooError("this model is not class-conditional: --class does not apply")
    g = torch.Generator().manual_seed(args.seed)
    x = model.sample(args.n, y=y, temperature=args.temperature, generator=g, progress=not args.no_progress)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(x, model.num_levels, out.with_suffix(".png"))
    np.savez_compressed(out.with_suffix(".npz"), images=x.numpy().astype(np.uint8),
                        labels=(y.numpy() if y is not None else np.zeros(0, np.int64)))
    print(f"samples: {out.with_suffix('.png')} and {out.with_suffix('.npz')}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluation import dataset_bits_per_dim
    from .io import atomic_write_json
    from .training import load_data

    model, config = _load(args.run_dir)
    splits = load_data(config["data"])
    result = {"test_bpd": dataset_bits_per_dim(model, splits.test, args.batch_size, args.n, progress=not args.no_progress),
              "test_images": len(splits.test) if args.n is None else min(args.n, len(splits.test)),
              "data": splits.test.name}
    atomic_write_json(result, Path(args.run_dir) / "eval.json")
    print(json.dumps(result, indent=2))
    return 0


def _cmd_inpaint(args) -> int:
    from .imaging import save_grid
    from .training import load_data

    model, config = _load(args.run_dir)
    test = load_data(config["data"]).test
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[: args.images]
    known = test.images[idx].long()
    y = test.labels[idx].repeat_interleave(args.completions) if model.num_classes and test.labels is not None else None
    mask = torch.zeros(model.image_shape, dtype=torch.bool)
    mask[:, : model.image_shape[1] // 2] = True
    fills = model.sample(args.images * args.completions, y=y, known=known, mask=mask, generator=g,
                         progress=not args.no_progress, temperature=args.temperature)
    rows = []
    for k in range(args.images):
        shown = known[k].clone()
        shown[:, model.image_shape[1] // 2:] = 0
        rows += [known[k], shown, *fills[k * args.completions:(k + 1) * args.completions]]
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"inpaint-{time.strftime('%Y%m%d-%H%M%S')}.png"
    save_grid(torch.stack(rows), model.num_levels, out, ncol=args.completions + 2)
    print(f"inpainting grid (original, top half given, {args.completions} completions per row): {out}")
    return 0


def _cmd_presets(args) -> int:
    from .registry import list_presets, load_preset

    for name in list_presets():
        print(f"{name:32s} {load_preset(name).get('description', '')}")
    return 0


def _cmd_datasets(args) -> int:
    from .data import available_datasets

    for d in available_datasets():
        print(f"{d['name']:14s} {'yes' if d['available'] else 'no ':3s}  {d['detail']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pixelzoo", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a preset or config file, or resume a run")
    t.add_argument("config", nargs="?", help="preset name (see `pixelzoo presets`) or path to a JSON run config")
    t.add_argument("--data", help="data set name, replacing the preset's (see `pixelzoo datasets`)")
    t.add_argument("--data-dir", help="folder (or file) the data set is read from")
    t.add_argument("--steps", type=int, help="number of training steps (with --resume: the new total)")
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
    s.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--class", dest="cls", type=int, help="class of every sample (default: classes in turn)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (0: most likely value)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--out", help="output path without suffix (default RUN_DIR/samples/sample-TIME)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_sample)

    e = sub.add_parser("evaluate", help="test bits/dim of a trained run, as JSON (also written to RUN_DIR/eval.json)")
    e.add_argument("run_dir")
    e.add_argument("-n", type=int, default=None, help="use only the first N test images (default all)")
    e.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_cmd_evaluate)

    i = sub.add_parser("inpaint", help="complete test images whose top half is given; PNG grid")
    i.add_argument("run_dir")
    i.add_argument("--images", type=int, default=8, help="number of test images (default 8)")
    i.add_argument("--completions", type=int, default=4, help="completions per image (default 4)")
    i.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    i.add_argument("--seed", type=int, default=0, help="random seed (which images, and the draws)")
    i.add_argument("--out", help="output PNG path (default RUN_DIR/samples/inpaint-TIME.png)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.set_defaults(func=_cmd_inpaint)

    sub.add_parser("presets", help="list the named configurations").set_defaults(func=_cmd_presets)
    sub.add_parser("datasets", help="list the data sets, whether each is available here, and why not").set_defaults(func=_cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PixelzooError as e:
        print(f"pixelzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
