"""What the commands' parsers share: checked number types for option values (a bad value is an
argparse error naming the option) and the options every command, or most, take."""

from __future__ import annotations

import argparse
import math

from ..threads import check_memory  # noqa: F401  (the commands' memory checks use it)
from ..training.config import MAX_SEED


def number(kind, low=None, strict=False, what="", high=None, why=""):
    """An argparse type: ``kind`` (int or float), at least ``low`` (above it when ``strict``), at most
    ``high`` (``why``: the reason of the bound, said in the error)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {what or ('> ' if strict else '>= ') + str(low)}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}{why}, got {text}")
        return value
    return parse


POSITIVE = number(int, 1, what="a positive integer")
NON_NEGATIVE = number(int, 0, what="an integer >= 0")
TEMPERATURE = number(float, 0.0, what="a number >= 0")
#: the most images one command draws or reads (-n, -n x --per-image): a sane cap before any memory estimate
MAX_COUNT = 1_000_000
COUNT = number(int, 1, what="a positive integer", high=MAX_COUNT, why=" (pixelzoo's cap on images per command)")
SEED = number(int, 0, what="an integer >= 0", high=MAX_SEED, why=" (2**63 - 1, the largest seed)")


def _threads(text):
    from ..threads import max_threads

    return number(int, 1, what="a positive integer", high=max_threads(),
                  why=" (4 x this machine's cores)")(text)


def check_sample_memory(model, count: int, option: str = "-n") -> None:
    """Refuse, before drawing, ``count`` samples that cannot fit: the images (int64) and each
    subpixel's output distribution (a float per level) for all of them at once, a lower bound."""
    import math as _math

    per_image = _math.prod(model.image_shape) * (8 + 4 * int(model.num_levels))
    check_memory(count * per_image, f"{option} {count} ({count} images of {tuple(model.image_shape)} with "
                                    f"{model.num_levels} levels)", f"lower {option}")


def check_grid_pixels(count: int, image_shape, scale: int | None, rows_per_image: int = 1) -> None:
    """Refuse up front a sample grid PIL would not open again: ``count`` images enlarged ``scale``
    times hold more pixels than PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)."""
    from PIL import Image

    from ..errors import ConfigError

    if scale is None or Image.MAX_IMAGE_PIXELS is None:
        return
    pixels = count * rows_per_image * image_shape[-2] * image_shape[-1] * scale * scale
    if pixels > Image.MAX_IMAGE_PIXELS:
        raise ConfigError(f"--scale {scale}: a grid of {count} images of {image_shape[-2]}x{image_shape[-1]} pixels "
                          f"would hold over {pixels:,} pixels, more than PIL opens ({Image.MAX_IMAGE_PIXELS:,}, its "
                          f"decompression-bomb limit): lower --scale or -n")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (checked when the command runs: a bad or absent device is a ConfigError, exit
    code 2)."""
    parser.add_argument("--device", metavar="DEVICE", help="auto (default: CUDA when present, else the CPU; or "
                                                           "$PIXELZOO_DEVICE), cpu, cuda or cuda:N")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``, which every command takes (the command line adds it to each, last)."""
    parser.add_argument("--threads", type=_threads, metavar="N",
                        help="intra-op CPU threads, at most 4 x the machine's cores (default: $PIXELZOO_THREADS, "
                             "else the cores this process may use, shared among torchrun's local processes)")


def add_given_images_parser(subparsers, name: str, help: str, own) -> argparse.ArgumentParser:
    """The parser of a command that samples a composite's image given one of its levels (``colorize``,
    ``upscale``): a run, the given images, how many and how many samples each, the sampling options;
    ``own(parser)`` adds the command's own options after ``--per-image``."""
    a = subparsers.add_parser(name, help=help)
    a.add_argument("run_dir")
    a.add_argument("images", help="`test` (random test images of the run's data) or an .npz with 'images' "
                                  "(and 'labels'), as `pixelzoo sample` writes")
    a.add_argument("-n", type=COUNT, default=None,
                   help="number of given images (default 8, or all the input holds when fewer)")
    a.add_argument("--per-image", type=COUNT, default=4, help="samples per given image (default 4)")
    own(a)
    a.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every image (default: the images' labels)")
    a.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    a.add_argument("--map", action="store_true", help="MAP sampling: a mixture component by its weight, then its mode")
    a.add_argument("--log-scale-shift", type=number(float), help="variance reduction: subtract this from the logistics' "
                                                                "log-scales (the paper's log-variance reduction / 2)")
    a.add_argument("--seed", type=SEED, default=0, help="random seed (which test images, and the draws)")
    a.add_argument("--out", help=f"output PNG path (default RUN_DIR/samples/{name}-TIME.png; the .npz goes next to it)")
    add_progress_option(a)
    add_device_option(a)
    return a
