"""The pixelzoo command line: train | sample | evaluate | train-classifier | inpaint | colorize |
upscale | rejection-sweep | plot | presets | datasets. `pixelzoo COMMAND --help` explains each."""

from __future__ import annotations

import argparse
import os
import sys

from .commands import (colorize, datasets, evaluate, inpaint, plot, presets, reconstruct, rejection_sweep, sample, train,
                       train_classifier, upscale)
from .commands.options import add_threads_option
from .errors import PixelzooError, TrainingStopped
from .threads import set_threads

#: the commands, in the order ``pixelzoo --help`` lists them: each module has ``add_parser(subparsers)``
#: and ``run(args) -> int``
COMMANDS = (train, sample, evaluate, train_classifier, inpaint, rejection_sweep, colorize, upscale, reconstruct, plot,
            presets, datasets)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="pixelzoo", description=__doc__)
    p.add_argument("--version", action="version", version=f"pixelzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        parser = command.add_parser(sub)
        parser.set_defaults(func=command.run)
        add_threads_option(parser)  # every command, last
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        set_threads(getattr(args, "threads", None))
        return args.func(args)
    except TrainingStopped as e:  # a signal during training: checkpointed (or aborted), exit 128 + its number
        if str(e):
            print(f"pixelzoo {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except PixelzooError as e:
        print(f"pixelzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (training itself stops with TrainingStopped)
        print(f"pixelzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `pixelzoo presets | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
