"""The streaming loader: the batches of a run read from a prepared data set's shards by
``torch.utils.data.DataLoader`` workers, ahead of the training step.

Item ``t`` of the loader is this process's rows of the global batch of step ``t``
(:func:`pixelzoo.data.batches.take_batch`: the permutation and the flips are functions of the run's
seed and the step, the rows those of the process's rank), so the batches are the same in memory or
streamed, with 0 workers or many, and after a resume, which starts the steps where the run stopped.
A worker opens its own memory maps, reads and mirrors its batches (uint8, the smallest thing to
send) and sends them to the training process, into pinned memory when training on a GPU. One
iterator spans the whole run: its workers live through every epoch and prefetch ``prefetch``
batches each. Workers run one intra-op thread and ignore SIGINT, SIGTERM and SIGUSR1: the training
process handles those, finishes its step and shuts the workers down (when its iteration ends in
any way, and at exit; a worker whose training process was killed sees it and exits).
"""

from __future__ import annotations

import atexit
import signal
import weakref

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pixelzoo.data.batches import BatchPlan, take_batch
from pixelzoo.errors import DataError

#: batches each worker reads ahead
PREFETCH = 4


class _StepBatches(Dataset):
    """Item ``step``: ``take_batch`` of this process's ``rows`` of that step."""

    def __init__(self, dataset, plan: BatchPlan, rows: slice, labels: bool):
        self.dataset, self.plan, self.rows, self.labels = dataset, plan, rows, labels

    def __getitem__(self, step: int):
        return take_batch(self.dataset, self.plan, int(step), self.rows, self.labels)


class _Steps(Sampler):
    """The steps ``start .. stop - 1``, in order (set before each iterator is made)."""

    def __init__(self):
        self.start = self.stop = 0

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


class StreamingLoader:
    """Batches of ``dataset`` (a ShardedDataset, or any data set ``take_batch`` reads) by ``plan``:
    ``batches(start, stop)`` yields ``(images, labels or None, extras)`` of steps ``start .. stop - 1``
    for this process's ``rows``, read by ``workers`` processes (0: in this one); ``pin_memory`` when
    they go to a GPU."""

    def __init__(self, dataset, plan: BatchPlan, *, rows: slice = slice(None), labels: bool = True,
                 workers: int = 2, pin_memory: bool = False):
        self._steps = _Steps()
        self.source = getattr(dataset, "source", type(dataset).__name__)
        self._loader = DataLoader(_StepBatches(dataset, plan, rows, labels), batch_size=None, sampler=self._steps,
                                  num_workers=workers, pin_memory=pin_memory, worker_init_fn=_worker_init,
                                  prefetch_factor=PREFETCH if workers else None)

    def batches(self, start: int, stop: int):
        """The batches of steps ``start .. stop - 1``. A failure to read one (a shard removed or damaged
        since the data set was opened) is a DataError naming it, in one line: a worker's exception
        comes back with the worker's traceback as its text, whose last line says what happened."""
        self._steps.start, self._steps.stop = start, stop
        it = iter(self._loader)
        _LIVE.add(it)
        step = start
        try:
            while True:
                try:
                    batch = next(it)
                except StopIteration:
                    return
                except (OSError, ValueError, IndexError, RuntimeError) as e:
                    lines = [line for line in str(e).splitlines() if line.strip()]
                    raise DataError(f"reading the batch of step {step} from {self.source}: "
                                    f"{lines[-1] if lines else type(e).__name__}") from None
                yield batch
                step += 1
        finally:
            _shut_down(it)  # now, not when the iterator is collected: a traceback may hold it until exit


#: the loaders' iterators still alive: shut down at exit, before multiprocessing would terminate their workers
#: (which ignore SIGTERM) and wait for them
_LIVE: "weakref.WeakSet" = weakref.WeakSet()


def _shut_down(it) -> None:
    """Stop an iterator's worker processes (a DataLoader iterator with workers; else nothing to do)."""
    stop = getattr(it, "_shutdown_workers", None)
    if stop is not None:
        stop()


@atexit.register
def _shut_down_all() -> None:
    for it in list(_LIVE):
        _shut_down(it)
