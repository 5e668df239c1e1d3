"""Atomic file writing and safe tensor files (safetensors only; nothing is ever unpickled)."""

from __future__ import annotations

import errno as errno_codes
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError, StorageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_REASONS = {
    errno_codes.ENOSPC: "no space left on the device",
    errno_codes.EDQUOT: "disk quota exceeded",
    errno_codes.EFBIG: "file too large (over the file-size limit, `ulimit -f`, or the file system's)",
    errno_codes.EROFS: "read-only file system",
    errno_codes.EACCES: "permission denied",
    errno_codes.EPERM: "operation not permitted",
}


def _errno_of(e: BaseException) -> int | None:
    """The errno of an OSError, or of a safetensors write error ('... (os error 28)')."""
    if isinstance(e, OSError):
        return e.errno
    m = re.search(r"os error (\d+)", str(e))
    return int(m.group(1)) if m else None


def _free_space(path: Path) -> str:
    """', 1.2 MB free of 300.0 KB'-style text about the file system of ``path`` ('' when unknown)."""
    for p in (path, *path.parents):
        try:
            if p.exists():
                usage = shutil.disk_usage(p)
                return f"; {_size(usage.free)} free of {_size(usage.total)} on its file system"
        except OSError:
            return ""
    return ""


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def storage_error(path, e: BaseException, what: str = "cannot write") -> StorageError:
    """A StorageError naming ``path``, why (from ``e``'s errno) and the free space where it matters."""
    path = Path(path)
    code = _errno_of(e)
    reason = _REASONS.get(code) or (os.strerror(code) if code else str(e))
    extra = _free_space(path) if code in (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG) else ""
    return StorageError(f"{what} {path}: {reason}{extra}", code, str(path))


def _is_storage_failure(e: BaseException) -> bool:
    return isinstance(e, OSError) or (isinstance(e, SafetensorError) and _errno_of(e) is not None)


def check_writable(directory: str | os.PathLike, what: str = "") -> Path:
    """Make ``directory`` (and its parents) if missing and check a file can be created in it, by
    creating and removing one: StorageError naming it otherwise (read-only, forbidden, not a folder).
    Called before long computations whose result goes there."""
    directory = Path(directory)
    try:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(errno_codes.ENOTDIR, "not a directory", str(directory))
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".pixelzoo-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        err = storage_error(directory, e, "cannot write in")
        if e.errno == errno_codes.ENOTDIR:
            err = StorageError(f"cannot write in {directory}: it is not a directory", e.errno, str(directory))
        if what:
            err = StorageError(f"{err} ({what})", err.errno, err.filename)
        raise err from None
    return directory


def _atomic(path: Path, write) -> None:
    """Write ``path`` through ``write(tmp)`` into a temporary file in the same folder, then rename it
    over ``path``: the old file stays whole until the new one is complete. Any failure to write
    (no space, a file-size limit, a read-only or forbidden folder) removes the temporary file and is
    a StorageError naming ``path``; other errors are raised as they are, the temporary file removed."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        # mkstemp makes 0600 (and a writer may recreate the file): give it what open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if _is_storage_failure(e):
            raise storage_error(path, e) from e
        raise


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    _atomic(Path(path), write)


def atomic_write_npz(path: str | os.PathLike, **arrays) -> None:
    """``np.savez_compressed`` of ``arrays`` to exactly ``path`` (no suffix added), atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(buf.getvalue(), path)


def output_paths(out: str | os.PathLike, *suffixes: str) -> list[Path]:
    """The files of a user-given output name: ``out`` plus each suffix, the name kept as given
    (``samples.v1.final`` -> ``samples.v1.final.png``; ``Path.with_suffix`` would give
    ``samples.v1.png``); a name already ending in one of ``suffixes`` has it replaced."""
    out = Path(out)
    if out.suffix.lower() in suffixes:
        out = out.with_name(out.name[: -len(out.suffix)])
    return [out.with_name(out.name + s) for s in suffixes]


def read_json(path: str | os.PathLike, error_class: type[Exception]):
    """The JSON value in ``path``; ``error_class`` naming the file when it cannot be read or is not
    valid JSON (the caller checks the value's shape)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error_class(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise error_class(f"{path}: cannot read it ({e.strerror or e})") from None


def atomic_write_json(obj, path: str | os.PathLike) -> None:
    atomic_write_bytes((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), path)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as safetensors, atomically (temporary file, then rename)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_tensors(path: str | os.PathLike, map_location="cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e


def load_state_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``module``, naming missing, unexpected and mis-shaped keys on failure."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    badshape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or badshape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if badshape:
            parts.append(f"wrong shape {[(k, tuple(tensors[k].shape), tuple(own[k].shape)) for k in badshape[:5]]}")
        raise CheckpointError(f"{source} does not match the model: {'; '.join(parts)}")
    module.load_state_dict(tensors, strict=True)
