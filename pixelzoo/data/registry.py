"""The named data sets: :func:`load_dataset`, :func:`dataset_names`, :func:`available_datasets`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from pixelzoo.data import sources
from pixelzoo.data._checks import bool_option, choice_option, int_option
from pixelzoo.data.dataset import DataSplits
from pixelzoo.data.patches import PATCH_SIZES, PATCH_SPLITS, patches_status
from pixelzoo.data.shards import load_prepared
from pixelzoo.errors import DataError


@dataclass(frozen=True)
class _Source:
    name: str
    load: Callable[..., DataSplits]        # load(data_dir, **options)
    options: dict[str, Any] = field(default_factory=dict)   # option -> default
    reads_data_dir: bool = True
    needs: str = ""                        # what data_dir must hold, for available_datasets


def _digits(data_dir, **_):
    return sources.load_digits_splits()


def _fashion(data_dir, pad_to):
    return sources.load_fashion_mnist_splits(data_dir, _pad_to(pad_to, "fashion-mnist"))


def _mnist_idx(data_dir, pad_to):
    return sources.load_mnist_idx_splits(data_dir, _pad_to(pad_to, "mnist-idx"))


def _cifar10(data_dir):
    return sources.load_cifar10_splits(data_dir)


def _folder(data_dir, test_fraction, seed):
    return sources.load_folder_splits(data_dir, test_fraction, int_option("seed", seed, minimum=0,
                                                                          dataset="folder"))


def _npz(data_dir, num_levels):
    return sources.load_npz_splits(data_dir, int_option("num_levels", num_levels, minimum=2,
                                                        maximum=256, dataset="npz"))


def _patches(data_dir, size, n_train, n_test, seed, grey, split):
    return sources.load_patches_splits(
        size=int_option("size", size, choices=PATCH_SIZES, dataset="patches"),
        n_train=int_option("n_train", n_train, minimum=1, dataset="patches"),
        n_test=int_option("n_test", n_test, minimum=1, dataset="patches"),
        seed=int_option("seed", seed, minimum=0, dataset="patches"),
        grey=bool_option("grey", grey, dataset="patches"),
        split=choice_option("split", split, PATCH_SPLITS, dataset="patches"),
    )


def _prepared(data_dir, stream, verify):
    if data_dir is None:
        raise DataError("prepared: needs data_dir (--data-dir): a folder written by `pixelzoo prepare`")
    return load_prepared(data_dir, stream=None if stream is None else bool_option("stream", stream, dataset="prepared"),
                         verify=bool_option("verify", verify, dataset="prepared"))


def _pad_to(value, dataset: str) -> int | None:
    return None if value is None else int_option("pad_to", value, minimum=1, dataset=dataset)


_SOURCES = {s.name: s for s in (
    _Source("digits", _digits, reads_data_dir=False),
    _Source("fashion-mnist", _fashion, {"pad_to": None}),
    _Source("mnist-idx", _mnist_idx, {"pad_to": None},
            needs=f"a directory with the four MNIST-format IDX files {', '.join(sources.IDX_FILES.values())} (optionally .gz)"),
    _Source("cifar10", _cifar10,
            needs="the cifar-10-batches-py folder of CIFAR-10's python version, or its parent"),
    _Source("folder", _folder, {"test_fraction": 0.1, "seed": 0},
            needs="a directory of PNG/JPEG images, optionally one subdirectory per class"),
    _Source("npz", _npz, {"num_levels": 256},
            needs="an .npz file with x_train, x_test (optional y_train, y_test), or a directory holding one"),
    _Source("patches", _patches, {"size": 32, "n_train": 20000, "n_test": 2000, "seed": 0,
                                    "grey": False, "split": "photos"},
            reads_data_dir=False),
    _Source("prepared", _prepared, {"stream": None, "verify": True},
            needs="a folder written by `pixelzoo prepare` (shards and index.json)"),
)}


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts."""
    return list(_SOURCES)


def _source(name: str) -> _Source:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _SOURCES:
        raise DataError(f"unknown data set {name!r}; valid names: {', '.join(_SOURCES)}")
    return _SOURCES[key]


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **options) -> DataSplits:
    """Load the data set ``name`` as train/test splits.

    ``data_dir`` is where file-based data sets read from (for fashion-mnist it overrides the
    Debian folder; digits and patches take none). Options per data set, with defaults:
    fashion-mnist / mnist-idx ``pad_to=None``; folder ``test_fraction=0.1, seed=0``;
    npz ``num_levels=256``; patches ``size=32, n_train=20000, n_test=2000, seed=0, grey=False,
    split="photos"`` (``grey``: true/false or 1/0, one channel of Rec. 601 luma instead of RGB;
    ``split``: "photos", unlabelled, test crops from held-out photographs, or "crops", train and
    test crops from the same six photographs, labelled by photograph; see
    :mod:`pixelzoo.data.patches`); prepared ``stream=None, verify=True`` (a folder written by
    ``pixelzoo prepare``; ``stream`` true reads the images by memory map, false loads them into
    memory, None streams above ``shards.STREAM_ABOVE_BYTES``; ``verify`` checks every shard's sha256).
    An option passed as None takes its default. Nothing is downloaded or cached on disk.
    """
    src = _source(name)
    unknown = sorted(set(options) - set(src.options))
    if unknown:
        accepted = ", ".join(src.options) or "none"
        raise DataError(f"data set {src.name!r}: unknown option(s) {', '.join(unknown)}; accepted: {accepted}")
    if data_dir is not None and not src.reads_data_dir:
        raise DataError(f"data set {src.name!r} reads no files, but data_dir={str(data_dir)!r} was given")
    values = {k: (options[k] if options.get(k) is not None else default)
              for k, default in src.options.items()}
    return src.load(data_dir, **values)


def _status(src: _Source) -> tuple[bool, str]:
    if src.name == "digits":
        try:
            import sklearn
        except ImportError:
            return False, "scikit-learn is not installed; `pip install scikit-learn`"
        return True, (f"embedded in scikit-learn {sklearn.__version__}: 1797 images, "
                      f"{1797 - sources.DIGITS_TEST_SIZE} train / {sources.DIGITS_TEST_SIZE} test "
                      f"(stratified, seed {sources.DIGITS_SEED})")
    if src.name == "fashion-mnist":
        d = sources.find_fashion_mnist_dir()
        if d is None:
            return False, f"not found in {sources.FASHION_MNIST_DEBIAN_DIR}; {sources.FASHION_MNIST_HOWTO}"
        return True, f"found in {d} (Debian package dataset-fashion-mnist)"
    if src.name == "patches":
        return patches_status()
    return False, f"reads a path you give: pass data_dir (--data-dir): {src.needs}"


def available_datasets() -> list[dict]:
    """One dict per data set: ``name``, ``available`` (bool) and ``detail``.

    ``detail`` says where the data was found, or why it is not available and how to get it.
    Data sets that read a user-given path are reported unavailable with what the path must hold.
    """
    out = []
    for src in _SOURCES.values():
        ok, detail = _status(src)
        out.append({"name": src.name, "available": ok, "detail": detail})
    return out
