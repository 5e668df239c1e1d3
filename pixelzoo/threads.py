"""Intra-op threads: how many CPU threads one process uses for its tensor operations.

Asked for by ``--threads N`` or ``PIXELZOO_THREADS``; otherwise the cores this process may run on
(its CPU affinity) that the machine's load leaves idle (the cores minus the 1-minute load average,
rounded), shared among the processes that ``torchrun`` starts on this machine
(``LOCAL_WORLD_SIZE``), at least 1. PyTorch's own default is every physical core whatever else runs
there; on a 2-core machine that another job keeps busy, two threads per operation ran the demo
several times slower than one (threads waiting on each other's time slices).

The Python API follows the same policy (``apply_policy``): once, at the first sampling or training
call, unless the user has set threads themselves (``user_choice`` says how that is detected).
"""

from __future__ import annotations

import contextlib
import os
import threading

import torch

from .errors import ConfigError

ENV = "PIXELZOO_THREADS"


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_load() -> float:
    """The 1-minute load average (0 where the system does not say)."""
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def default_threads() -> int:
    """The idle cores this process may use, divided among the local processes of a torchrun, at least 1."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    cores = available_cores()
    idle = min(cores, max(1, int(cores - machine_load() + 0.5)))
    return max(1, idle // local)


def max_threads() -> int:
    """The most threads pixelzoo accepts: 4 x the machine's cores (``os.cpu_count()``); more only
    make threads wait on each other's time slices."""
    return 4 * max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: Linux's MemAvailable (/proc/meminfo), else the
    free physical pages (``os.sysconf``); None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def parse_threads(value, what: str = "--threads") -> int:
    try:
        n = int(value)
        if str(value).strip() != str(n) and not isinstance(value, int):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if n > max_threads():
        raise ConfigError(f"{what} must be at most {max_threads()} (4 x this machine's {os.cpu_count()} cores), "
                          f"got {value!r}")
    return n


def set_threads(n: int | None = None) -> int:
    """Set and return the intra-op threads: ``n``, else ``$PIXELZOO_THREADS``, else ``default_threads()``.
    Once called (the command line calls it; so may a user), the Python API's policy leaves threads alone."""
    global _SET
    if n is None:
        env = os.environ.get(ENV)
        n = parse_threads(env, ENV) if env not in (None, "") else default_threads()
    else:
        n = parse_threads(n)
    torch.set_num_threads(n)
    _SET = True
    return n


# ---------------------------------------------------------------------- the Python API's policy
#: PyTorch's thread count when pixelzoo was imported (``pixelzoo.registry`` imports this module):
#: a different count at the first sampling or training call means the user called torch.set_num_threads
_TORCH_AT_IMPORT = torch.get_num_threads()
_SET = False       # set_threads was called (the command line, or a user through pixelzoo.threads)
_APPLIED = False   # apply_policy has run (it runs once)
#: PyTorch's own environment settings of its thread count: a user who set one has chosen
TORCH_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def user_choice() -> str | None:
    """How the user set the threads, or None when nobody did: ``pixelzoo.threads.set_threads`` (or the
    command line's ``--threads``) was called, ``$PIXELZOO_THREADS`` or ``$OMP_NUM_THREADS`` /
    ``$MKL_NUM_THREADS`` is set, or ``torch.get_num_threads()`` differs from its value when pixelzoo
    was imported (``torch.set_num_threads`` was called since; a call before the import, or one that
    set PyTorch's default again, cannot be told apart from PyTorch's default)."""
    if _SET:
        return "pixelzoo.threads.set_threads"
    if os.environ.get(ENV) not in (None, ""):
        return f"${ENV}"
    for name in TORCH_ENVS:
        if os.environ.get(name) not in (None, ""):
            return f"${name}"
    if torch.get_num_threads() != _TORCH_AT_IMPORT:
        return "torch.set_num_threads"
    return None


def apply_policy() -> int | None:
    """The command line's thread policy for the Python API, applied once, lazily, at the first sampling
    or training call: ``$PIXELZOO_THREADS`` where set, else ``default_threads()`` (the idle cores)
    unless the user set threads (``user_choice``). Returns the threads it set, or None."""
    global _APPLIED
    if _APPLIED:
        return None
    _APPLIED = True
    choice = user_choice()
    if choice == f"${ENV}":
        return set_threads()  # the command line's reading of it, checked
    if choice is not None:
        return None
    n = default_threads()
    torch.set_num_threads(n)
    return n


def check_memory(need: int, what: str, remedy: str) -> None:
    """ConfigError when ``need`` bytes (an estimate for ``what``) exceed the machine's available
    memory (``pixelzoo.threads.available_memory``; nothing checked where it is unknown)."""
    from .errors import ConfigError
    from .io import _size

    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(f"{what} needs about {_size(need)} of memory, more than the {_size(have)} available: {remedy}")


def release_free_memory() -> None:
    """Give the C heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing):
    after a part of a composite has trained, the many freed activations below glibc's mmap threshold
    stay in the heap and count in the process's memory while the next part trains."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        trim = None
    if trim is not None:
        trim(0)


_NUMPY_BLAS = None  # threadpoolctl's controller of the OpenBLAS that NumPy's products call, made at first use
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0  # contexts open (any thread); the first sets the limit, the last restores what was there
_BLAS_LIMIT = None


@contextlib.contextmanager
def numpy_blas_one_thread():
    """A context in which the OpenBLAS behind NumPy's products runs one thread (PyTorch's own threads
    are untouched). The steppers' one-image steps on NumPy make thousands of small products per image;
    OpenBLAS threads them from a small size on, and on a 2-core machine a (28, 576) x (576, 48) product
    then took 300 us inside a sample call against 20 us on one thread. Entering costs some 20 us (the
    first time per process, some 2 ms to find the libraries). Contexts may overlap (threads of a server,
    nested calls): the limit holds while any is open, and the last one out restores the setting it found."""
    global _NUMPY_BLAS, _BLAS_USERS, _BLAS_LIMIT
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            if _NUMPY_BLAS is None:
                from threadpoolctl import ThreadpoolController

                _NUMPY_BLAS = ThreadpoolController().select(internal_api="openblas")
            _BLAS_LIMIT = _NUMPY_BLAS.limit(limits=1)
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None
