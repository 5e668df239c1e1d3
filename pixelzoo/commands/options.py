"""What the commands' parsers share: checked number types for option values (a bad value is an
argparse error naming the option) and the options every command, or most, take."""

from __future__ import annotations

import argparse
import math


def number(kind, low=None, strict=False, what=""):
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


POSITIVE = number(int, 1, what="a positive integer")
NON_NEGATIVE = number(int, 0, what="an integer >= 0")
TEMPERATURE = number(float, 0.0, what="a number >= 0")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (checked when the command runs: a bad or absent device is a ConfigError, exit
    code 2)."""
    parser.add_argument("--device", metavar="DEVICE", help="auto (default: CUDA when present, else the CPU; or "
                                                           "$PIXELZOO_DEVICE), cpu, cuda or cuda:N")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``, which every command takes (the command line adds it to each, last)."""
    parser.add_argument("--threads", type=POSITIVE, metavar="N",
                        help="intra-op CPU threads (default: $PIXELZOO_THREADS, else the cores this process "
                             "may use, shared among torchrun's local processes)")


def add_given_images_parser(subparsers, name: str, help: str, own) -> argparse.ArgumentParser:
    """The parser of a command that samples a composite's image given one of its levels (``colorize``,
    ``upscale``): a run, the given images, how many and how many samples each, the sampling options;
    ``own(parser)`` adds the command's own options after ``--per-image``."""
    a = subparsers.add_parser(name, help=help)
    a.add_argument("run_dir")
    a.add_argument("images", help="`test` (random test images of the run's data) or an .npz with 'images' "
                                  "(and 'labels'), as `pixelzoo sample` writes")
    a.add_argument("-n", type=POSITIVE, default=8, help="number of given images (default 8)")
    a.add_argument("--per-image", type=POSITIVE, default=4, help="samples per given image (default 4)")
    own(a)
    a.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every image (default: the images' labels)")
    a.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    a.add_argument("--map", action="store_true", help="MAP sampling: a mixture component by its weight, then its mode")
    a.add_argument("--log-scale-shift", type=number(float), help="variance reduction: subtract this from the logistics' "
                                                                "log-scales (the paper's log-variance reduction / 2)")
    a.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (which test images, and the draws)")
    a.add_argument("--out", help=f"output PNG path (default RUN_DIR/samples/{name}-TIME.png; the .npz goes next to it)")
    add_progress_option(a)
    add_device_option(a)
    return a
