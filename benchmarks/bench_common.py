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
