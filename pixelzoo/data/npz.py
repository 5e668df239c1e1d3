"""Reader for ``.npz`` archives holding x_train / x_test (and optional y_train / y_test) arrays."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pixelzoo.errors import DataError


def find_npz(path: str | os.PathLike) -> Path:
    """``path`` if it is a file, else the single ``.npz`` file inside the directory ``path``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"npz file or directory not found: {p}")
    if p.is_file():
        return p
    found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() == ".npz")
    if len(found) != 1:
        what = "no .npz file" if not found else f"{len(found)} .npz files ({', '.join(q.name for q in found)})"
        raise DataError(f"{p}: directory holds {what}; pass the .npz file itself")
    return found[0]


def check_npz_archive(path: str | os.PathLike, error=DataError) -> None:
    """Raise ``error`` naming ``path`` unless it starts as an .npz archive (a zip of .npy arrays) does:
    a text file, a single .npy array or anything else is said to be one before numpy reads it
    (numpy would call a text file "pickled (object) data")."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror or e})") from None
    if head.startswith(b"\x93NUMPY"):
        raise error(f"{path}: is a single .npy array, not an .npz archive (a zip of named arrays, as numpy.savez writes)")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = "empty" if not head else ("a text file" if _looks_like_text(path) else "not a zip archive")
        raise error(f"{path}: is not an .npz archive ({kind}); expected a zip of named arrays, as numpy.savez writes")


def _looks_like_text(path) -> bool:
    try:
        with open(path, "rb") as f:
            chunk = f.read(4096)
        chunk.decode("utf-8")
        return b"\x00" not in chunk
    except (OSError, UnicodeDecodeError):
        return False


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """NHW -> N1HW; NHWC (last dim 1 or 3 and dim 1 not) -> NCHW; NCHW unchanged."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: images must be NHW, NCHW or NHWC, got shape {x.shape}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return x.transpose(0, 3, 1, 2)
    return x


def _images(x: np.ndarray, key: str, path: Path, num_levels: int) -> np.ndarray:
    where = f"{path}: {key}"
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise DataError(f"{where}: images must be integers in [0, {num_levels}), got dtype {x.dtype}")
    x = to_nchw(x, where)
    if x.shape[0] == 0 or min(x.shape[1:]) < 1:
        raise DataError(f"{where}: empty image array of shape {x.shape}")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= num_levels:
        raise DataError(f"{where}: values span [{lo}, {hi}], outside [0, {num_levels}) "
                        "(pass the option num_levels if the data has more levels)")
    return np.ascontiguousarray(x.astype(np.uint8))


def _labels(y: np.ndarray, key: str, path: Path, n: int) -> np.ndarray:
    where = f"{path}: {key}"
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: expected {n} labels for {n} images, got shape {y.shape}")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: negative label {int(y.min())}")
    return y.astype(np.int64)


def read_npz(path: str | os.PathLike, num_levels: int = 256
             ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Read (x_train, y_train, x_test, y_test) from an .npz file (or a dir with exactly one).

    Images become uint8 NCHW (see :func:`to_nchw`); values must lie in [0, num_levels). Labels
    are int64 or None; either both y arrays are present or neither. Loaded with
    ``allow_pickle=False``.
    """
    if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)) \
            or not 2 <= num_levels <= 256:
        raise DataError(f"num_levels must be an int in [2, 256], got {num_levels!r}")
    p = find_npz(path)
    check_npz_archive(p)
    try:
        with open(p, "rb") as fh:   # our own handle, closed even when np.load fails
            f = np.load(fh, allow_pickle=False)
            if not hasattr(f, "files"):
                raise DataError(f"{p}: is a single .npy array, not an .npz archive")
            keys = set(f.files)
            missing = {"x_train", "x_test"} - keys
            if missing:
                raise DataError(f"{p}: missing arrays {sorted(missing)} (found {sorted(keys)})")
            if ("y_train" in keys) != ("y_test" in keys):
                raise DataError(f"{p}: has only one of y_train / y_test; give both or neither")
            arrays = {k: f[k] for k in ("x_train", "x_test", "y_train", "y_test") if k in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{p}: cannot read as .npz ({type(e).__name__}: {e})") from e
    x_train = _images(arrays["x_train"], "x_train", p, int(num_levels))
    x_test = _images(arrays["x_test"], "x_test", p, int(num_levels))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{p}: x_train images are {x_train.shape[1:]} (C, H, W) "
                        f"but x_test images are {x_test.shape[1:]}")
    y_train = y_test = None
    if "y_train" in arrays:
        y_train = _labels(arrays["y_train"], "y_train", p, len(x_train))
        y_test = _labels(arrays["y_test"], "y_test", p, len(x_test))
    return x_train, y_train, x_test, y_test
