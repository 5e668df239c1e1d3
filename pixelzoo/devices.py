"""Devices and precision: which device a command runs on and which precision training uses there.

``resolve_device(spec)``: ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``,
``"cuda:N"``; ``None`` reads ``$PIXELZOO_DEVICE`` (default ``"auto"``). Under ``torchrun`` ``"auto"``
and ``"cuda"`` mean the GPU of this process, ``cuda:$LOCAL_RANK``. A bad value or a CUDA device that
is absent is a ``ConfigError`` (exit code 2 on the command line).

``resolve_precision(precision, device)``: ``"auto"`` is bf16 where the device runs it natively (CUDA
with bf16 support; a CPU with AVX512-BF16 or AMX-BF16) and fp32 elsewhere. On a CPU without native
bf16 the autocast is emulated and several times slower than fp32, so an explicit ``"bf16"`` there
warns (once per process); on a GPU without bf16 it falls back to fp32 with a warning.
"""

from __future__ import annotations

import contextlib

import os
import re
import warnings
from pathlib import Path

import torch

from .errors import ConfigError

DEVICE_ENV = "PIXELZOO_DEVICE"
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")   # /proc/cpuinfo flags of native bf16 arithmetic

_warned: set[str] = set()


class PrecisionWarning(UserWarning):
    """A precision choice that runs, but slowly or not as asked."""


def _local_rank() -> int | None:
    """This process's GPU index under ``torchrun`` (``LOCAL_RANK`` with ``WORLD_SIZE`` > 1), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    return None


def _cuda_device(index: int | None, spec: str) -> torch.device:
    if not torch.cuda.is_available():
        why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"device {spec!r}: CUDA is not available here ({why}, torch {torch.__version__}); "
                          f"use --device cpu or --device auto")
    count = torch.cuda.device_count()
    if index is None:
        index = _local_rank()
        if index is None:
            index = torch.cuda.current_device()
    if not 0 <= index < count:
        raise ConfigError(f"device {spec!r}: there is no CUDA device {index} here ({count} visible: "
                          f"{', '.join(f'cuda:{k}' for k in range(count))})"
                          + ("; under torchrun run at most one process per GPU" if _local_rank() is not None else ""))
    return torch.device("cuda", index)


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` that ``spec`` names (see the module's doc); ``None``: ``$PIXELZOO_DEVICE``
    or ``"auto"``."""
    source = "device"
    if spec is None:
        env = os.environ.get(DEVICE_ENV)
        spec, source = (env, f"${DEVICE_ENV}") if env else ("auto", source)
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ConfigError(f"{source} must be one of {DEVICE_CHOICES}, got {spec!r}")
    text = spec.strip().lower()
    if text == "auto":
        return _cuda_device(None, "auto") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None:
        raise ConfigError(f"{source} {spec!r} is not a device: use {DEVICE_CHOICES}")
    return _cuda_device(None if m.group(1) is None else int(m.group(1)), spec)


def module_device(module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for one without either."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def to_device(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """``t`` on ``device``; to a GPU through pinned memory without blocking (the copy overlaps the
    work already queued)."""
    if t is None or t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


# ------------------------------------------------------------------ native bf16
def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags: from the text of ``/proc/cpuinfo`` (given, or read), its first
    ``flags`` line (x86) or ``Features`` line (ARM); empty when there is none."""
    value = _cpuinfo_field(("flags", "features"), cpuinfo)
    return set(value.split()) if value else set()


def _cpuinfo_field(keys: tuple[str, ...], cpuinfo: str | None = None) -> str | None:
    """The value of the first line of ``/proc/cpuinfo`` (``cpuinfo``: its text) whose key is in
    ``keys``; None when there is none or the file cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in keys:
            return value.strip()
    return None


def cpu_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes in bf16 natively: AVX512-BF16 or AMX-BF16 among its ``flags``
    (default: this machine's; without /proc/cpuinfo, what PyTorch detects)."""
    if flags is None:
        flags = cpu_flags()
        if not flags:
            probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
            amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
            try:
                return bool((probe and probe()) or (amx and amx()))
            except RuntimeError:
                return False
    return any(f in flags for f in CPU_BF16_FLAGS)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 natively: a CUDA GPU with bf16 (compute capability 8.0 and up),
    or a CPU with AVX512-BF16 or AMX-BF16."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        with torch.cuda.device(device):
            try:
                return bool(torch.cuda.is_bf16_supported(including_emulation=False))
            except TypeError:  # older PyTorch: no emulation counted
                return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_native_bf16()
    return False


def warn_once(key: str, message: str) -> None:
    """``message`` as a ``PrecisionWarning``, the first time ``key`` comes up in this process."""
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, PrecisionWarning, stacklevel=3)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"fp32"``: what training with ``train.precision = precision`` uses on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {list(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return "fp32"
    native = native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if native:
        return "bf16"
    if device.type == "cuda":
        warn_once(f"bf16-{device}", f"train.precision 'bf16': {device} has no bf16 support; training in fp32")
        return "fp32"
    warn_once(f"bf16-{device.type}", "train.precision 'bf16' on a CPU without native bf16 (no AVX512-BF16 or AMX): "
                                     "the bf16 autocast is emulated and usually several times slower than fp32 "
                                     "here; train.precision 'auto' picks fp32 on this CPU")
    return "bf16"


def autocast(device: torch.device, precision: str):
    """The training forward pass's autocast context: bf16 when ``precision`` (resolved) is ``"bf16"``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def full_precision_region(device: torch.device):
    """A region computed in the tensors' own precision, autocast off (log-probabilities of heads); no
    context on the meta device (a training step traced for its memory), which has no autocast."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)


def describe_device(device: torch.device | str) -> str:
    """A line naming the device: the GPU's name, or the CPU's model and threads."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        model = _cpuinfo_field(("model name",)) or ""
        return f"cpu ({model + ', ' if model else ''}{torch.get_num_threads()} threads)"
    return str(device)
