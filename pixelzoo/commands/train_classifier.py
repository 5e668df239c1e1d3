"""``pixelzoo train-classifier``: train the LeNet feature network of the sample metrics on a data set."""

from __future__ import annotations

from .evaluate import train_feature_network
from .options import POSITIVE, add_device_option, add_progress_option


def add_parser(subparsers):
    c = subparsers.add_parser("train-classifier", help="train the LeNet feature network of the sample metrics on a data set")
    c.add_argument("data", help="data set name (see `pixelzoo datasets`)")
    c.add_argument("--data-dir", help="folder (or file) the data set is read from")
    c.add_argument("--steps", type=POSITIVE, help="training steps (default about 4 epochs, 600 to 2000)")
    c.add_argument("--batch-size", type=POSITIVE, default=128, help="batch size (default 128)")
    c.add_argument("--out", help="directory to create (default classifiers/DATA-lenet; never overwrites one)")
    c.add_argument("--cache", action="store_true", help="also install it in the feature-network cache that "
                                                         "`pixelzoo evaluate` uses ($PIXELZOO_CACHE)")
    add_progress_option(c)
    add_device_option(c)
    return c


def run(args) -> int:
    model, directory, seconds = train_feature_network(args.data, args.data_dir, args.steps, args.out,
                                                      batch_size=args.batch_size, progress=not args.no_progress,
                                                      install=args.cache, device=args.device)
    cfg = model.config
    top5 = f", top-5 {cfg['test_top5']:.4f}" if cfg.get("test_top5") is not None else ""
    print(f"feature network {cfg['feature_id']}: test accuracy {cfg['test_accuracy']:.4f}{top5} "
          f"({cfg['training']['steps']} steps, {seconds:.0f} s)")
    print(f"saved in {directory}; use it with `pixelzoo evaluate RUN_DIR --feature-net {directory}`")
    return 0
