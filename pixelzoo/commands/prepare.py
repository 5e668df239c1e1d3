"""``pixelzoo prepare``: a data set to uint8 shards and an index, read by memory map when training."""

from __future__ import annotations

import argparse

from ..data.prepare import Preprocessing, prepare
from ..data.shards import STREAM_ABOVE_BYTES, index_bytes
from .options import POSITIVE, SEED, add_progress_option, number


def _crop_box(text: str) -> tuple[int, int, int, int]:
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or min(box) < 0:
        raise argparse.ArgumentTypeError(f"expected LEFT,RIGHT,TOP,BOTTOM: four pixel counts >= 0, got {text!r}")
    return box  # type: ignore[return-value]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "prepare", help="write a data set as uint8 shards with an index, for training from disk by memory map",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="SOURCE: digits, fashion-mnist (Debian's folder) or patches; or a path: an image folder (one\n"
               "subfolder per class, or none), an .npz file, a CIFAR-10 folder, a folder of MNIST-format IDX files.\n"
               "Each image is cropped, then resized, then made grey, then padded. Interrupted, the same command again keeps\n"
               "the shards already written and writes the rest; index.json is written last.\n"
               "Train on it with: pixelzoo train PRESET --data prepared --data-dir OUT\n"
               "(--set data.stream=true|false: read by memory map or load into memory; default by size).")
    p.add_argument("source", help="data set name or path (see below)")
    p.add_argument("out", help="folder to write (new or empty; or one an interrupted prepare left)")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--center-crop", action="store_true", help="crop each image to its centred square")
    crop.add_argument("--crop", type=_crop_box, metavar="LEFT,RIGHT,TOP,BOTTOM",
                      help="remove these pixels from each side (the Pyramid PixelCNN paper's CelebA box: 25,25,50,40)")
    p.add_argument("--resize", type=POSITIVE, metavar="SIZE", help="resize each image to SIZE x SIZE after cropping")
    p.add_argument("--grey", action="store_true", help="one channel: Rec. 601 luma")
    p.add_argument("--pad", type=number(int, 0, what="a number of pixels >= 0"), default=0, metavar="N",
                   help="add N pixels of level 0 on every side, last (28x28 Fashion-MNIST to 32x32: --pad 2)")
    p.add_argument("--test-fraction", type=number(float, 0.0, strict=True, what="a number in (0, 1)"), metavar="F",
                   help="image folders: the share held out as the test split (default 0.1)")
    p.add_argument("--seed", type=SEED, default=0, help="image folders: the seed of the split (default 0)")
    p.add_argument("--shard-size", type=POSITIVE, metavar="N", help="images per shard (default: 64 MB of images)")
    add_progress_option(p)
    return p


def run(args) -> int:
    pre = Preprocessing(center_crop=args.center_crop, crop=args.crop, resize=args.resize, grey=args.grey,
                        pad=args.pad)
    r = prepare(args.source, args.out, pre, test_fraction=args.test_fraction, seed=args.seed,
                shard_size=args.shard_size, progress=not args.no_progress)
    index = r.index
    splits = index["splits"]
    classes = f"{index['num_classes']} classes" if index["num_classes"] else "no labels"
    shape = "x".join(str(v) for v in index["image_shape"])
    what = (f"{splits['train']['count']} train / {splits['test']['count']} test images of {shape}, "
            f"{index['num_levels']} levels, {classes}")
    if r.already:
        print(f"{args.out} holds this preparation already: {what}")
    else:
        kept = f", {r.kept} kept from an earlier run" if r.kept else ""
        print(f"prepared {what} in {args.out}: {r.written} shards written{kept}, {r.seconds:.1f} s "
              f"({r.images_per_s:.0f} images/s)")
    streams = "streams from its shards" if index_bytes(index) > STREAM_ABOVE_BYTES else "loads into memory"
    print(f"train on it with: pixelzoo train PRESET --data prepared --data-dir {args.out} (by size it {streams}; "
          "--set data.stream=true|false to choose)")
    return 0
