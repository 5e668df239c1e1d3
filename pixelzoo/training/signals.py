"""Stopping a run on a signal, as schedulers and users ask: SIGTERM (SLURM, Kubernetes, `timeout`),
SIGINT (Ctrl-C) and SIGUSR1 (SLURM's warning before the time limit).

While training runs (and only in the main thread) ``StopSignals`` replaces their handlers: the first
signal is noted and the step in progress finishes; the trainer then writes a checkpoint (process 0,
atomically) and raises ``TrainingStopped`` saying where and how to resume, with exit code 128 + the
signal's number. Under ``torchrun`` the processes agree on the signal at every step (any process
that received one stops them all, on the same step). A second signal raises ``TrainingStopped`` at
once, wherever the program is: a checkpoint being written is abandoned (its temporary file removed)
and the previous one stays intact. The handlers in place before are restored when training ends.
"""

from __future__ import annotations

import signal
import sys
import threading

from ..errors import TrainingStopped
from . import distributed

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """A reusable, re-entrant context in which SIGTERM, SIGINT and SIGUSR1 ask training to stop.

    ``resume_command``: the command that continues the run (said in every message); ``where``: set by
    the runner to the unit in training (e.g. "part prior"); ``abort_at_once``: set while nothing is
    left but evaluating (any signal then stops at once: the checkpoint is written already)."""

    def __init__(self, resume_command: str):
        self.resume_command = resume_command
        self.where = ""
        self.signum: int | None = None
        self.abort_at_once = False
        self._previous: dict = {}
        self._depth = 0

    def __enter__(self) -> "StopSignals":
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> bool:
        self._depth -= 1
        if self._depth == 0:
            for s, handler in self._previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
            self._previous = {}
        return False

    def _handle(self, signum, frame) -> None:
        name = signal_name(signum)
        if self.signum is not None:
            raise TrainingStopped(f"aborted at once by a second signal ({name}): nothing more was written; the last "
                                  f"checkpoint written is intact. Resume with: {self.resume_command}", 128 + signum)
        self.signum = signum
        if self.abort_at_once:
            raise TrainingStopped(f"stopped by {name} after training{self._in()}, during its final evaluation: the "
                                  f"checkpoint is written. Resume with: {self.resume_command} (to run the "
                                  "final evaluation)", 128 + signum)
        if distributed.is_main():
            print(f"pixelzoo: {name} received: finishing this step, then writing a checkpoint "
                  f"(send another signal to stop at once)", file=sys.stderr, flush=True)

    def _in(self) -> str:
        return f" ({self.where})" if self.where else ""

    def agreed(self) -> int | None:
        """The signal received by any process (the same on every process; collective under torchrun), or None."""
        return distributed.max_over_processes(self.signum or 0) or None

    def stopped(self, signum: int, step: int, steps: int, checkpoint) -> TrainingStopped:
        """The error raised once the checkpoint of ``step`` is written."""
        return TrainingStopped(f"stopped by {signal_name(signum)} at step {step} of {steps}{self._in()}: checkpoint "
                               f"written to {checkpoint}. Resume with: {self.resume_command}", 128 + signum)
