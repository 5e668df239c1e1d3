"""One writer per run: an exclusive ``flock`` on ``.lock`` in each directory a process trains.

A plain model's run is locked at ``RUN/.lock``; a composite's parts at ``RUN/parts/NAME/.lock`` (the
parts a process trains: all of them, or those of ``--part``, so the parts of one stage can still
train as parallel processes). The file holds the holder's pid, host and start time. The kernel
releases a ``flock`` when its process dies however it dies; the file is removed on a clean release,
so a file found with a free lock was left by a process that is gone (SIGKILL, power loss): it is
taken over with a message. A lock that is held is a ``TrainingError`` naming its holder.
``start_run``/``resume_run`` take the locks before writing anything (process 0 only under
``torchrun``) and the runner releases them when training ends, however it ends.
"""

from __future__ import annotations

import atexit
import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from ..errors import TrainingError

LOCK_NAME = ".lock"


def _describe(info: dict) -> str:
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096).decode(errors="replace")
        info = json.loads(data) if data.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """The lock of one directory: ``acquire()`` (TrainingError naming the holder when another process
    has it), ``release()`` (idempotent; also at interpreter exit)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # the file may be removed by its releaser between our open and our flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_info(fd)
                os.close(fd)
                raise TrainingError(f"{self.directory} is being trained by {_describe(holder)} (lock {self.path}); "
                                    "one process writes a run: wait for it to end or stop it") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a file its holder has just removed: try the new one
                os.close(fd)
                continue
            stale = _read_info(fd)
            if stale.get("pid") is not None:
                print(f"pixelzoo: taking over the stale lock {self.path} of {_describe(stale)} "
                      "(that process has ended without releasing it)", file=sys.stderr, flush=True)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info) + "\n").encode())
            self._fd = fd
            atexit.register(self.release)
            return self
        raise TrainingError(f"could not lock {self.path}: it keeps being replaced by another process")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        atexit.unregister(self.release)
        try:
            os.unlink(self.path)  # while still held: nobody can take the file we remove
        except OSError:
            pass
        os.close(fd)


class RunLocks:
    """The locks of several directories, taken together (all or none) and released together."""

    def __init__(self, directories):
        self.locks = [RunLock(d) for d in directories]

    @property
    def held(self) -> bool:
        return bool(self.locks) and all(lock.held for lock in self.locks)

    def acquire(self) -> "RunLocks":
        try:
            for lock in self.locks:
                lock.acquire()
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        for lock in self.locks:
            lock.release()
