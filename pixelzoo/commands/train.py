"""``pixelzoo train``: train a model from a preset or config file, or resume a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import PixelzooError, TrainingStopped
from ..training import apply_overrides, distributed, load_config, resume_run, start_run
from ..training.config import set_steps
from .options import POSITIVE, add_device_option, add_progress_option


def add_parser(subparsers):
    t = subparsers.add_parser(
        "train", help="train a model from a preset or config file, or resume a run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 (SLURM's warning before the time limit) finish the step, write\n"
               "a checkpoint and print the command that resumes the run; the exit code is 128 + the signal's number:\n"
               "143, 130, 138 (on Linux). A second signal stops at once; the last checkpoint stays intact.\n"
               "One process trains a run at a time (a lock, RUN/.lock); exit code 2 for any other error.")
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
    add_progress_option(t)
    add_device_option(t)
    return t


def run(args) -> int:
    """Start or resume the run (``start_run``/``resume_run`` parse its configuration and resolve the
    device, once), train it, report what it reached."""
    if args.resume:
        if args.config or args.set or args.data or args.data_dir or args.out:
            raise PixelzooError("--resume continues a run with its own config; only --steps may change")
        runner = resume_run(args.resume, steps=args.steps, parts=args.part, progress=not args.no_progress,
                            device=args.device)
        print(f"resuming {runner.run_dir}, {runner.status()}")
    else:
        if not args.config:
            raise PixelzooError("give a preset or config file to train (see `pixelzoo presets`), or --resume RUN_DIR")
        config = load_config(args.config)
        if args.data:
            config["data"] = {"name": args.data}
        if args.data_dir:
            config["data"]["data_dir"] = args.data_dir
        if args.steps is not None:
            config = set_steps(config, args.steps)  # every part's steps too
        config = apply_overrides(config, args.set or [])
        default_name = Path(args.config).stem if args.config.endswith(".json") else args.config.replace("/", "-")
        out = args.out or Path("runs") / default_name
        runner = start_run(config, out, parts=args.part, progress=not args.no_progress, device=args.device)
        if distributed.is_main():
            print(f"run directory: {runner.run_dir}")
    if distributed.is_main() and not runner.plan.is_single:
        print("steps per part: " + ", ".join(f"{name} {steps}" for name, steps in
                                             runner.run_config.part_steps(runner.plan.names).items()))
    try:
        result = runner.train()
    except TrainingStopped as e:
        if not distributed.is_main():  # under torchrun process 0 says where and how to resume
            raise TrainingStopped("", e.exit_code) from None
        raise
    distributed.finish()
    if "process" in result:  # a process other than 0 under torchrun: process 0 reports
        return 0
    if "test_bpd" in result:
        test = runner.splits.test
        print(f"test bits/dim: {result['test_bpd']:.4f} ({len(test)} test images of {test.name})")
        for name, value in result.get("test_bpd_parts", {}).items():
            print(f"  part {name}: {value:.4f}")
    elif "test_loss" in result:
        test = runner.splits.test
        print(f"test loss: {result['test_loss']:.4f} ({len(test)} test images of {test.name}; the model has no "
              "likelihood, so no bits/dim)")
    if "samples" in result:
        print(f"samples: {result['samples']}")
    if result.get("unfinished_parts"):
        print(f"parts short of their steps: {', '.join(result['unfinished_parts'])}; the whole model's test "
              f"bits/dim and samples come once every part is trained (pixelzoo train --resume {runner.run_dir}), "
              f"or now from `pixelzoo evaluate {runner.run_dir}` and `pixelzoo sample {runner.run_dir}`")
    print(f"checkpoint: {result['checkpoint']}")
    return 0
