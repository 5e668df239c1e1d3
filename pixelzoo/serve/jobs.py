"""The page's work queue: computations (sampling, inpainting, ...) run on worker threads, never on a
request's thread, so the page answers while a model samples.

* **Bounded**: at most ``capacity`` jobs wait or run at once; one more is refused with :class:`Busy`
  (the page says "busy, try again"), never queued without end.
* **One computation at a time per model**: a worker takes the oldest waiting job whose model is not
  already computing (a second model's job may run beside it when there are two workers).
* **Observable**: a job holds its latest state (status, progress, a picture so far, the result) and a
  version number; :meth:`Job.wait_change` blocks until the version moves, which is what the page's
  event stream sends. Only the latest state is kept, so memory does not grow with rows or watchers.
* **Stoppable**: :meth:`Job.stop` sets a flag the computation checks after each row
  (:meth:`Job.check_stopped` raises :class:`JobStopped`), so a stop ends the work on the server.

Finished jobs are kept (for a late watcher) up to ``keep`` of them, then forgotten oldest first.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable

from ..errors import PixelzooError

#: a job's states; the last three are final
WAITING, RUNNING, DONE, FAILED, STOPPED = "waiting", "running", "done", "failed", "stopped"
FINAL = (DONE, FAILED, STOPPED)


class Busy(PixelzooError):
    """The queue is full: the request is refused, nothing is queued."""


class JobStopped(Exception):
    """Raised inside a computation whose job was asked to stop (caught by the worker)."""


class Job:
    """One computation: ``work(job)`` returns the result (a JSON-able dict) and may call
    :meth:`report` on the way."""

    def __init__(self, model_id: str, kind: str, work: Callable[[Job], dict]):
        self.id = secrets.token_hex(8)
        self.model_id, self.kind, self._work = model_id, kind, work
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.version = 0
        self.state = {"id": self.id, "kind": kind, "model": model_id, "status": WAITING, "done": 0, "total": 0}
        self.created = time.monotonic()

    # --- read by the page's event stream
    def snapshot(self) -> tuple[int, dict]:
        with self._cond:
            return self.version, dict(self.state)

    def wait_change(self, seen: int, timeout: float) -> tuple[int, dict]:
        """(version, state) once the version differs from ``seen``, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout)
            return self.version, dict(self.state)

    @property
    def final(self) -> bool:
        return self.state["status"] in FINAL

    # --- written by the computation
    def _update(self, **values) -> None:
        with self._cond:
            self.state.update(values)
            self.version += 1
            self._cond.notify_all()

    def report(self, done: int, total: int, **values) -> None:
        """Progress: ``done`` of ``total`` steps, with e.g. ``image`` (the picture so far) or ``level``."""
        self.check_stopped()
        self._update(done=int(done), total=int(total), **values)

    def check_stopped(self) -> None:
        if self._stop.is_set():
            raise JobStopped

    def stop(self) -> None:
        """Ask the computation to stop (a waiting job is never started)."""
        self._stop.set()

    def run(self) -> None:
        if self._stop.is_set():
            self._update(status=STOPPED, message="stopped before it started")
            return
        self._update(status=RUNNING)
        started = time.perf_counter()
        try:
            result = self._work(self)
        except JobStopped:
            self._update(status=STOPPED, message="stopped", seconds=round(time.perf_counter() - started, 3))
        except PixelzooError as e:  # a value the checks at the door could not see (e.g. an image the model refuses)
            self._update(status=FAILED, message=str(e))
        except Exception as e:  # a bug: the page says so in one line, the server log has the traceback
            traceback.print_exc()
            self._update(status=FAILED, message=f"internal error: {type(e).__name__}: {e}")
        else:
            self._update(status=DONE, result=result, seconds=round(time.perf_counter() - started, 3))


class WorkQueue:
    """``workers`` threads over at most ``capacity`` waiting or running jobs (see the module docstring)."""

    def __init__(self, capacity: int = 8, workers: int = 1, keep: int = 64):
        if capacity < 1 or workers < 1:
            raise ValueError("capacity and workers must be at least 1")
        self.capacity, self.keep = capacity, keep
        self._cond = threading.Condition()
        self._waiting: list[Job] = []
        self._busy_models: set[str] = set()
        self._running = 0
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._closed = False
        self._threads = [threading.Thread(target=self._worker, name=f"pixelzoo-serve-worker-{k}", daemon=True)
                         for k in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, model_id: str, kind: str, work: Callable[[Job], dict]) -> Job:
        """Queue a job, or raise :class:`Busy` when ``capacity`` jobs already wait or run."""
        job = Job(model_id, kind, work)
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down")
            if len(self._waiting) + self._running >= self.capacity:
                raise Busy(f"busy: {self.capacity} computations are already queued or running; try again shortly")
            self._waiting.append(job)
            self._jobs[job.id] = job
            self._forget_old()
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def load(self) -> dict:
        with self._cond:
            return {"waiting": len(self._waiting), "running": self._running, "capacity": self.capacity}

    def close(self) -> None:
        """Stop every job and the workers (they finish the row they are on)."""
        with self._cond:
            self._closed = True
            for job in self._jobs.values():
                job.stop()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.final]
        for k in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[k]

    def _next(self) -> Job | None:
        for k, job in enumerate(self._waiting):
            if job.model_id not in self._busy_models:
                return self._waiting.pop(k)
        return None

    def _worker(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._next_ready())
                if self._closed:
                    return
                job = self._next()
                self._busy_models.add(job.model_id)
                self._running += 1
            try:
                job.run()
            finally:
                with self._cond:
                    self._busy_models.discard(job.model_id)
                    self._running -= 1
                    self._forget_old()
                    self._cond.notify_all()

    def _next_ready(self) -> bool:
        return any(job.model_id not in self._busy_models for job in self._waiting)
