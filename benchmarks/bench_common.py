"""What every benchmark script writes with its numbers: the environment they were measured in, and
the JSON file itself (atomically)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from pixelzoo.io import atomic_write_json


def environment(threads: int) -> dict:
    return {"torch": torch.__version__, "threads": threads, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_result(result: dict, out: str | os.PathLike, start: float) -> None:
    """Add ``total_seconds`` since ``start`` (a ``time.perf_counter()`` value) and write ``out``."""
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, out)


def own_memory_cgroup() -> Path | None:
    """This process's cgroup-v1 memory cgroup, if there is one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            p = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return p if p.is_dir() else None
    return None


def make_cgroup(cap: int, name: str) -> tuple[Path | None, str]:
    """A child of this process's memory cgroup (cgroup v1), limited to ``cap`` bytes (and to the same with
    swap, where that can be set): (the cgroup, "") or (None, why not). A process joins it by writing its
    pid to ``cgroup.procs``; remove it with ``rmdir`` once empty."""
    parent = own_memory_cgroup()
    if parent is None:
        return None, "no cgroup-v1 memory controller at /sys/fs/cgroup/memory"
    cg = parent / f"pixelzoo_{name}_{os.getpid()}"
    try:
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(cap))
    except OSError as e:
        return None, f"cannot create or limit {cg}: {e.strerror or e}"
    try:
        (cg / "memory.memsw.limit_in_bytes").write_text(str(cap))
    except OSError:
        pass   # no swap accounting: the machine's swap (if any) is not capped
    return cg, ""
