"""The pixelzoo command line: train | sample | evaluate | score | train-classifier | inpaint | colorize |
upscale | rejection-sweep | plot | report | serve | prepare | presets | datasets | zoo. `pixelzoo COMMAND --help`
explains each."""

from __future__ import annotations

import argparse
import os
import sys

from .commands import (colorize, datasets, evaluate, inpaint, plot, prepare, presets, reconstruct, rejection_sweep, report,
                       sample, score, train, train_classifier, upscale, zoo)
from .commands.options import add_threads_option
from .errors import PixelzooError, TrainingStopped
from .serve import command as serve
from .threads import set_threads

#: the commands, in the order ``pixelzoo --help`` lists them: each module has ``add_parser(subparsers)``
#: and ``run(args) -> int``
COMMANDS = (train, sample, evaluate, score, train_classifier, inpaint, rejection_sweep, colorize, upscale, reconstruct,
            plot, report, serve, prepare, presets, datasets, zoo)


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
    except OSError as e:  # what the system refused (a file, a folder, a device): one line naming the path
        print(f"pixelzoo {args.command}: error: {_os_error_text(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"pixelzoo {args.command}: error: out of memory: {MEMORY_ADVICE}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # PyTorch's allocators say so with a RuntimeError (OutOfMemoryError on CUDA)
        if not _is_out_of_memory(e):
            raise
        print(f"pixelzoo {args.command}: error: out of memory ({str(e).splitlines()[0][:200]}): {MEMORY_ADVICE}",
              file=sys.stderr)
        return 1


#: what a command that ran out of memory can reduce
MEMORY_ADVICE = ("reduce -n (samples), --batch-size, --scale, or the model's size (--set model.channels=..., "
                 "train.batch_size=...)")


def _os_error_text(e: OSError) -> str:
    """``PATH: reason`` (both paths of a rename) from an OSError, without a traceback."""
    reason = e.strerror or str(e) or type(e).__name__
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(str(p) for p in paths)}: {reason}" if paths else reason


def _is_out_of_memory(e: RuntimeError) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    text = str(e)
    return (oom is not None and isinstance(e, oom)) or "can't allocate memory" in text or "out of memory" in text


if __name__ == "__main__":
    sys.exit(main())
