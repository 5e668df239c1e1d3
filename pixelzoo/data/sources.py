"""One loader per named data set: each turns files (or embedded data) into :class:`DataSplits`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from pixelzoo.data._checks import existing_dir
from pixelzoo.data.cifar import read_cifar10
from pixelzoo.data.dataset import DataSplits, ImageDataset
from pixelzoo.data.idx import read_idx
from pixelzoo.data.image_folder import read_image_folder
from pixelzoo.data.npz import read_npz, to_nchw
from pixelzoo.data.patches import PATCH_TEST_PHOTOS, PATCH_TRAIN_PHOTOS, make_patch_splits
from pixelzoo.errors import DataError

# --------------------------------------------------------------------------------------- helpers


def make_splits(name: str, source: str, x_train: np.ndarray, y_train: np.ndarray | None,
                x_test: np.ndarray, y_test: np.ndarray | None, num_levels: int,
                num_classes: int | None) -> DataSplits:
    """Wrap numpy arrays (uint8 NCHW images, int64 labels or None) as checked DataSplits."""

    def part(split: str, x: np.ndarray, y: np.ndarray | None) -> ImageDataset:
        # the standard strides of (N, C, H, W), whatever numpy gave a dimension of size 1 (x[:, None] gives
        # stride 0): the kernels a batch runs through depend on them, and images read from a prepared
        # data set's shards have these, so a batch computes alike from either (tests/test_streaming.py)
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))
        return ImageDataset(
            name=f"{name}/{split}",
            images=images.reshape(-1).view(images.shape),
            labels=None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
            num_levels=num_levels,
            num_classes=num_classes,
            source=source,
        )

    return DataSplits(part("train", x_train, y_train), part("test", x_test, y_test))


def pad_images(x: np.ndarray, pad_to: int | None, where: str) -> np.ndarray:
    """Zero-pad NCHW images to pad_to x pad_to; an odd margin puts the extra row/column last."""
    if pad_to is None:
        return x
    h, w = x.shape[2:]
    if pad_to < max(h, w):
        raise DataError(f"{where}: pad_to={pad_to} is smaller than the images ({h}x{w})")
    top, left = (pad_to - h) // 2, (pad_to - w) // 2
    return np.pad(x, ((0, 0), (0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))


def seeded_split(n: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sorted index arrays: a random n_test of range(n) by ``RandomState(seed)``."""
    perm = np.random.RandomState(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# ---------------------------------------------------------------------------------------- digits

DIGITS_TEST_SIZE = 360
DIGITS_SEED = 0


def digits_split_indices(labels: np.ndarray, test_size: int = DIGITS_TEST_SIZE,
                         seed: int = DIGITS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, test) indices: each class gives its share of ``test_size``.

    Shares are rounded by largest remainder (ties to the lower class), then each class's test
    images are the first of ``RandomState(seed).permutation`` of that class, classes in order.
    """
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * test_size / counts.sum()
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: test_size - take.sum()]] += 1
    rng = np.random.RandomState(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def load_digits_splits() -> DataSplits:
    """scikit-learn's 8x8 digits (values 0..16, 17 levels): 1437 train / 360 test, stratified, seed 0."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError(f"digits: scikit-learn is not installed; `pip install scikit-learn` ({e})") from e
    d = load_digits()
    x = np.rint(d.images).astype(np.uint8)[:, None]   # (1797, 1, 8, 8)
    y = d.target.astype(np.int64)
    train, test = digits_split_indices(y)
    return make_splits("digits", "scikit-learn load_digits()", x[train], y[train], x[test], y[test],
                       num_levels=17, num_classes=10)


# ------------------------------------------------------------------------------------------- IDX

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HOWTO = ("install Debian's dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`) "
                       "or pass --data-dir (data_dir=) with the four IDX files "
                       f"{', '.join(IDX_FILES.values())} (optionally .gz)")


def find_idx_files(d: Path) -> tuple[dict[str, Path], list[str]]:
    """The four standard IDX files in ``d`` (plain name first, then ``.gz``) and the missing names."""
    found, missing = {}, []
    for key, base in IDX_FILES.items():
        for cand in (d / base, d / f"{base}.gz"):
            if cand.is_file():
                found[key] = cand
                break
        else:
            missing.append(base)
    return found, missing


def _dpkg_fashion_mnist_dir() -> Path | None:
    """The folder holding the IDX files according to ``dpkg -L dataset-fashion-mnist``."""
    if shutil.which("dpkg") is None:
        return None
    try:
        out = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True,
                             text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        p = Path(line.strip())
        if p.name.startswith(IDX_FILES["train_images"]):
            return p.parent
    return None


def find_fashion_mnist_dir() -> Path | None:
    """Where Debian's dataset-fashion-mnist put the IDX files, or None if it is not installed."""
    for d in (FASHION_MNIST_DEBIAN_DIR, _dpkg_fashion_mnist_dir()):
        if d is not None and d.is_dir() and not find_idx_files(d)[1]:
            return d
    return None


def _idx_images(path: Path) -> np.ndarray:
    x = read_idx(path)
    if x.dtype != np.uint8:
        raise DataError(f"{path}: images must be unsigned bytes (IDX type 0x08), got {x.dtype}")
    if x.ndim not in (3, 4):
        raise DataError(f"{path}: images must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    return to_nchw(x, str(path))


def _idx_labels(path: Path, n_images: int, images_path: Path) -> np.ndarray:
    y = read_idx(path)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(y) != n_images:
        raise DataError(f"{path}: {len(y)} labels but {images_path} holds {n_images} images")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: negative label {int(y.min())}")
    return y.astype(np.int64)


def load_idx_splits(name: str, d: Path, pad_to: int | None, num_classes: int | None) -> DataSplits:
    """Read the four IDX files from ``d``; num_classes None means max label + 1."""
    files, missing = find_idx_files(d)
    if missing:
        raise DataError(f"{name}: {d} lacks {', '.join(missing)} (plain or .gz)")
    x_train = _idx_images(files["train_images"])
    x_test = _idx_images(files["test_images"])
    y_train = _idx_labels(files["train_labels"], len(x_train), files["train_images"])
    y_test = _idx_labels(files["test_labels"], len(x_test), files["test_images"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{name}: {files['train_images']} images are {x_train.shape[1:]} but "
                        f"{files['test_images']} images are {x_test.shape[1:]}")
    top = int(max(y_train.max(initial=0), y_test.max(initial=0)))
    if num_classes is None:
        num_classes = top + 1
    elif top >= num_classes:
        bad = files["train_labels"] if y_train.max(initial=0) == top else files["test_labels"]
        raise DataError(f"{bad}: label {top} is outside [0, {num_classes})")
    x_train = pad_images(x_train, pad_to, name)
    x_test = pad_images(x_test, pad_to, name)
    return make_splits(name, str(d), x_train, y_train, x_test, y_test, 256, num_classes)


def load_fashion_mnist_splits(data_dir: str | os.PathLike | None, pad_to: int | None) -> DataSplits:
    """Fashion-MNIST from ``data_dir``, else from Debian's dataset-fashion-mnist folder."""
    if data_dir is not None:
        d = existing_dir(data_dir, "fashion-mnist directory")
        if find_idx_files(d)[1]:
            raise DataError(f"fashion-mnist: {d} lacks {', '.join(find_idx_files(d)[1])}; "
                            f"{FASHION_MNIST_HOWTO}")
    else:
        found = find_fashion_mnist_dir()
        if found is None:
            raise DataError(f"fashion-mnist: not found in {FASHION_MNIST_DEBIAN_DIR}; {FASHION_MNIST_HOWTO}")
        d = found
    return load_idx_splits("fashion-mnist", d, pad_to, num_classes=10)


def load_mnist_idx_splits(data_dir: str | os.PathLike | None, pad_to: int | None) -> DataSplits:
    """Any MNIST-format IDX quadruple in ``data_dir``; classes = max label + 1."""
    if data_dir is None:
        raise DataError("mnist-idx: needs data_dir (--data-dir) holding "
                        f"{', '.join(IDX_FILES.values())} (optionally .gz)")
    return load_idx_splits("mnist-idx", existing_dir(data_dir, "mnist-idx directory"), pad_to, None)


# ------------------------------------------------------------------------- CIFAR-10, folder, npz


def load_cifar10_splits(data_dir: str | os.PathLike | None) -> DataSplits:
    """CIFAR-10 python batches from ``data_dir`` (cifar-10-batches-py or its parent)."""
    if data_dir is None:
        raise DataError("cifar10: needs data_dir (--data-dir): the cifar-10-batches-py folder of the "
                        "CIFAR-10 python version, or its parent")
    x_train, y_train, x_test, y_test = read_cifar10(data_dir)
    return make_splits("cifar10", str(data_dir), x_train, y_train, x_test, y_test, 256, 10)


def load_folder_splits(data_dir: str | os.PathLike | None, test_fraction: float, seed: int) -> DataSplits:
    """Images from a folder, split at random (``RandomState(seed)``) into train and test."""
    if data_dir is None:
        raise DataError("folder: needs data_dir (--data-dir): a directory of images, "
                        "optionally one subdirectory per class")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0.0 < test_fraction < 1.0:
        raise DataError(f"folder: test_fraction must be a number in (0, 1), got {test_fraction!r}")
    got = read_image_folder(data_dir)
    n = len(got.images)
    if n < 2:
        raise DataError(f"folder: {data_dir} holds {n} image; need at least 2 to split")
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    train, test = seeded_split(n, n_test, seed)
    y = got.labels
    k = None if got.class_names is None else len(got.class_names)
    return make_splits("folder", str(data_dir), got.images[train], None if y is None else y[train],
                       got.images[test], None if y is None else y[test], 256, k)


def load_npz_splits(data_dir: str | os.PathLike | None, num_levels: int) -> DataSplits:
    """Arrays x_train/x_test (and y_train/y_test) from an .npz file; classes = max label + 1."""
    if data_dir is None:
        raise DataError("npz: needs data_dir (--data-dir): an .npz file with x_train and x_test "
                        "(optional y_train, y_test), or a directory holding exactly one")
    x_train, y_train, x_test, y_test = read_npz(data_dir, num_levels=num_levels)
    k = None
    if y_train is not None:
        k = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return make_splits("npz", str(data_dir), x_train, y_train, x_test, y_test, num_levels, k)


# --------------------------------------------------------------------------------------- patches


def load_patches_splits(size: int, n_train: int, n_test: int, seed: int, grey: bool = False,
                        split: str = "photos") -> DataSplits:
    """Crops of scikit-image photographs, RGB or grey (luma). ``split="photos"``: unlabelled, train
    and test from disjoint photographs; ``"crops"``: both from the training photographs, labelled by
    photograph (6 classes)."""
    x_train, y_train, x_test, y_test = make_patch_splits(size=size, n_train=n_train, n_test=n_test, seed=seed,
                                                         grey=grey, split=split)
    colour = "grey (Rec. 601 luma)" if grey else "RGB"
    if split == "photos":
        where = f"train: {', '.join(PATCH_TRAIN_PHOTOS)}; test: {', '.join(PATCH_TEST_PHOTOS)}"
    else:
        where = f"train and test: {', '.join(PATCH_TRAIN_PHOTOS)}; label = photograph"
    source = f"scikit-image photos, {colour}, split {split!r} ({where})"
    num_classes = None if y_train is None else len(PATCH_TRAIN_PHOTOS)
    return make_splits("patches", source, x_train, y_train, x_test, y_test, 256, num_classes)
