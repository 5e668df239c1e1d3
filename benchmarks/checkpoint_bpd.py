"""Test bits/dim of a run's checkpoint with its raw (not Polyak-averaged) weights, as JSON.

    python benchmarks/checkpoint_bpd.py RUN_DIR [--images N]

``pixelzoo evaluate`` scores the Polyak weights, which for short runs can lag the raw ones.
"""

from __future__ import annotations

import argparse
import json

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

from pixelzoo.evaluation import dataset_bits_per_dim
from pixelzoo.io import load_state_strict
from pixelzoo.training import load_data, read_run_config
from pixelzoo.training.checkpoint import CHECKPOINT_NAME, read_checkpoint
from pixelzoo.training.run import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--images", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args()
    if args.threads:
        set_threads(args.threads)
    config = read_run_config(args.run_dir)
    model = build_model(config["model"])
    path = f"{args.run_dir}/{CHECKPOINT_NAME}"
    step, groups, _ = read_checkpoint(path)
    load_state_strict(model, groups["model"], path)
    test = load_data(config["data"]).test
    n = len(test) if args.images is None else min(args.images, len(test))
    print(json.dumps({"run": args.run_dir, "step": step, "weights": "raw (not Polyak)", "test_images": n,
                      "test_bpd": dataset_bits_per_dim(model, test, 250, n)}))


if __name__ == "__main__":
    main()
