"""Reader for CIFAR-10 python pickle batches, through an unpickler that only rebuilds numpy arrays."""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path

import numpy as np

from pixelzoo.data._checks import existing_dir, existing_file
from pixelzoo.errors import DataError

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_FOLDER = "cifar-10-batches-py"


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as Python 3 pickles of bytes use it, limited to latin-1."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a pickled numpy array needs, under old and new module names."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only the globals numpy arrays need.

    Every other global (``os.system``, ``builtins.eval``, any class) is refused with DataError
    before it is imported, so a malicious file cannot run code.
    """

    def __init__(self, file, *, source: str, **kwargs):
        super().__init__(file, **kwargs)
        self._source = source
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self._source}: refused to unpickle global {module}.{name}; "
                            "only numpy arrays, lists, dicts, numbers and strings are allowed") from None


def safe_unpickle(path: str | os.PathLike):
    """Unpickle ``path`` with :class:`NumpyOnlyUnpickler` (bytes keys kept as bytes)."""
    p = existing_file(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {p}: {e}") from e
    try:
        return NumpyOnlyUnpickler(io.BytesIO(raw), source=str(p), encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:  # corrupt pickles raise many types; report them all the same way
        raise DataError(f"{p}: not a readable pickle ({type(e).__name__}: {e})") from e


def _get(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{path}: batch has no {key!r} entry (keys: {sorted(map(repr, batch))})")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: images uint8 (N, 3, 32, 32) and labels int64 (N,) in [0, 10)."""
    p = Path(path)
    batch = safe_unpickle(p)
    if not isinstance(batch, dict):
        raise DataError(f"{p}: expected a dict batch, got {type(batch).__name__}")
    data, labels = _get(batch, "data", p), _get(batch, "labels", p)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{p}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    try:
        y = np.asarray(labels)
    except Exception as e:
        raise DataError(f"{p}: 'labels' is not a list of integers ({e})") from e
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{p}: 'labels' must be a list of integers, got {y.dtype} {y.shape}")
    if len(y) != len(data):
        raise DataError(f"{p}: {len(data)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= 10):
        bad = y.min() if y.min() < 0 else y.max()
        raise DataError(f"{p}: label {int(bad)} is outside [0, 10)")
    return data.reshape(-1, 3, 32, 32).copy(), y.astype(np.int64)


def find_cifar10_dir(path: str | os.PathLike) -> Path:
    """The folder holding the batches: ``path`` itself or its ``cifar-10-batches-py`` child."""
    d = existing_dir(path, "CIFAR-10 directory")
    for cand in (d, d / CIFAR10_FOLDER):
        if (cand / CIFAR10_TEST_FILE).is_file() or (cand / CIFAR10_TRAIN_FILES[0]).is_file():
            return cand
    raise DataError(f"{d}: no CIFAR-10 python batches here or in {d / CIFAR10_FOLDER} "
                    f"(need {', '.join(CIFAR10_TRAIN_FILES)} and {CIFAR10_TEST_FILE})")


def read_cifar10(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``data_batch_1..5`` and ``test_batch`` from ``path`` (or ``path/cifar-10-batches-py``).

    Returns (x_train, y_train, x_test, y_test): images uint8 (N, 3, 32, 32), labels int64.
    """
    d = find_cifar10_dir(path)
    missing = [f for f in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE) if not (d / f).is_file()]
    if missing:
        raise DataError(f"{d}: missing CIFAR-10 batch files: {', '.join(missing)}")
    train = [read_cifar_batch(d / f) for f in CIFAR10_TRAIN_FILES]
    x_test, y_test = read_cifar_batch(d / CIFAR10_TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test
