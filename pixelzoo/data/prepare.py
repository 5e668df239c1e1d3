"""``prepare``: any supported source to the prepared format (:mod:`pixelzoo.data.shards`), in one
streaming pass.

An image folder is read image by image (its headers first: mixed sizes, a crop box larger than an
image or a file that is no image fail before anything is written); the data sets that load into
memory anyway (CIFAR-10, IDX, npz, digits, patches) are read as they are. Each image is cropped
(``center_crop``: the centred square; or ``crop``: a fixed box, pixels off the left, right, top and
bottom), then resized (``resize``: SIZE x SIZE, an area average when shrinking, bicubic when
enlarging), then made grey (``grey``: Rec. 601 luma). A folder is split by ``test_fraction`` and
``seed`` as the ``folder`` data set splits it; the other sources keep their own test split.

Every file is written atomically and ``index.json`` last, so an interrupted preparation never looks
complete. Run again with the same source and options, it keeps the shards already written whose
inputs are unchanged and whose checksums match (``.prepare-progress.json`` records them), and
writes the rest. A folder holding another preparation, finished or not, is refused untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pixelzoo.data._checks import existing_dir
from pixelzoo.data.image_folder import image_header, list_image_folder, load_image
from pixelzoo.data.patches import luma
from pixelzoo.data.shards import FORMAT, INDEX_NAME, LABEL_DTYPE, SPLITS, VERSION, shard_names, sha256_file
from pixelzoo.errors import DataError
from pixelzoo.io import atomic_write_bytes, atomic_write_json, check_writable

PROGRESS_NAME = ".prepare-progress.json"
#: shards hold this many bytes of images unless a shard size is given
DEFAULT_SHARD_BYTES = 64 << 20
#: named data sets that read no path (the others are given by their path)
NAMED_SOURCES = ("digits", "fashion-mnist", "patches")


# ------------------------------------------------------------------------------ preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """What happens to each image, in this order: a crop (``center_crop``, or ``crop`` = (left,
    right, top, bottom) pixels removed), ``resize`` to SIZE x SIZE, ``grey`` (Rec. 601 luma), ``pad``
    (that many pixels of level 0 on every side: 28x28 Fashion-MNIST to 32x32 with 2)."""

    center_crop: bool = False
    crop: tuple[int, int, int, int] | None = None
    resize: int | None = None
    grey: bool = False
    pad: int = 0

    def __post_init__(self):
        if self.center_crop and self.crop is not None:
            raise DataError("give either a centre crop or a crop box, not both")
        if self.crop is not None and (len(self.crop) != 4 or any(int(v) < 0 for v in self.crop)):
            raise DataError(f"a crop box is four pixel counts >= 0 (left, right, top, bottom), got {self.crop}")
        if self.resize is not None and int(self.resize) < 1:
            raise DataError(f"resize must be a positive size, got {self.resize}")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise DataError(f"pad must be a number of pixels >= 0, got {self.pad!r}")

    def to_dict(self) -> dict:
        d = {"center_crop": self.center_crop, "crop": None if self.crop is None else list(self.crop),
             "resize": self.resize, "grey": self.grey}
        return d | {"pad": self.pad} if self.pad else d   # without padding: as before, so earlier preparations still match

    def box(self, h: int, w: int, where: str) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the crop of an h x w image, pixels kept."""
        if self.center_crop:
            s = min(h, w)
            top, left = (h - s) // 2, (w - s) // 2
            return top, top + s, left, left + s
        if self.crop is None:
            return 0, h, 0, w
        left, right, top, bottom = self.crop
        if left + right >= w or top + bottom >= h:
            raise DataError(f"{where}: the crop box (left {left}, right {right}, top {top}, bottom {bottom}) leaves "
                            f"nothing of a {w}x{h} image")
        return top, h - bottom, left, w - right

    def out_size(self, h: int, w: int, where: str) -> tuple[int, int]:
        """(H, W) of an h x w image once cropped and resized."""
        if self.resize is not None:
            self.box(h, w, where)   # a box too large fails all the same
            return self.resize + 2 * self.pad, self.resize + 2 * self.pad
        top, bottom, left, right = self.box(h, w, where)
        return bottom - top + 2 * self.pad, right - left + 2 * self.pad

    def apply(self, a: np.ndarray, num_levels: int, where: str) -> np.ndarray:
        """The preprocessed image, uint8 (H, W, C), from uint8 (H, W) or (H, W, C)."""
        from PIL import Image

        a = a[..., None] if a.ndim == 2 else a
        top, bottom, left, right = self.box(a.shape[0], a.shape[1], where)
        a = a[top:bottom, left:right]
        if self.resize is not None and a.shape[:2] != (self.resize, self.resize):
            shrink = self.resize <= min(a.shape[:2])
            method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
            a = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c])).resize(
                (self.resize, self.resize), method)) for c in range(a.shape[2])], axis=-1)
            a = np.minimum(a, num_levels - 1).astype(np.uint8)   # bicubic may overshoot the top level
        if self.grey and a.shape[2] == 3:
            a = luma(a)
        elif self.grey and a.shape[2] != 1:
            raise DataError(f"{where}: grey needs RGB or one-channel images, got {a.shape[2]} channels")
        if self.pad:
            a = np.pad(a, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)))
        return a


# ------------------------------------------------------------------------------ sources


@dataclass
class _Split:
    """The images of one split of a source: ``read(i)`` the i-th, uint8 (H, W) or (H, W, C);
    ``where(i)`` names it; ``fingerprint(a, b)`` changes when the inputs of images a..b-1 do."""

    count: int
    read: Callable[[int], np.ndarray]
    where: Callable[[int], str]
    labels: np.ndarray | None
    fingerprint: Callable[[int, int], str]
    rows: Callable[[int, int], np.ndarray] | None = None   # images a..b-1 at once, NCHW (arrays only)


@dataclass
class _Source:
    name: str
    description: str
    image_shape: tuple[int, int, int]          # (C, H, W) after preprocessing
    num_levels: int
    class_names: list[str] | None
    num_classes: int | None
    splits: dict[str, _Split]
    split_rule: dict


def resolve_source(source: str) -> tuple[str, Path | None]:
    """(data set name, path or None) of a SOURCE: a named data set that reads no path (digits,
    fashion-mnist from Debian's folder, patches), or a path: an .npz file, a CIFAR-10 folder, a
    folder of the four MNIST-format IDX files, else a folder of images."""
    from pixelzoo.data.cifar import find_cifar10_dir
    from pixelzoo.data.npz import find_npz
    from pixelzoo.data.sources import find_idx_files

    key = str(source).strip().lower().replace("_", "-")
    if key in NAMED_SOURCES:
        return key, None
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{source!r} is neither a data set that reads no path ({', '.join(NAMED_SOURCES)}) nor "
                        "an existing file or folder (an image folder, an .npz file, a CIFAR-10 or IDX folder)")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"{path}: a file source must be an .npz archive")
        return "npz", path
    try:
        find_cifar10_dir(path)
        return "cifar10", path
    except DataError:
        pass
    if not find_idx_files(path)[1]:
        return "mnist-idx", path
    if any(p.suffix.lower() == ".npz" for p in path.iterdir() if p.is_file()):
        return "npz", find_npz(path)
    return "folder", path


def _folder_source(root: Path, pre: Preprocessing, test_fraction: float, seed: int, progress: bool) -> _Source:
    from tqdm.auto import tqdm

    from pixelzoo.data.sources import seeded_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    files, labels, class_names = list_image_folder(root)
    if len(files) < 2:
        raise DataError(f"{root}: holds {len(files)} image; need at least 2 to split into train and test")
    sizes, all_grey = [], True
    for f in tqdm(files, desc="reading headers", unit="img", disable=not progress, leave=False):
        w, h, grey = image_header(f)
        size = pre.out_size(h, w, str(f))
        if sizes and size != sizes[0]:
            raise DataError(f"{f}: is {size[1]}x{size[0]}{' once cropped' if pre.crop or pre.center_crop else ''} "
                            f"but {files[0]} is {sizes[0][1]}x{sizes[0][0]}; images of mixed sizes need --resize SIZE "
                            "(with --center-crop to keep their proportions)")
        sizes.append(size)
        all_grey &= grey
    n_test = min(max(1, round(len(files) * test_fraction)), len(files) - 1)
    order = dict(zip(SPLITS, seeded_split(len(files), n_test, seed)))
    channels = 1 if pre.grey or all_grey else 3

    def split(idx: np.ndarray) -> _Split:
        chosen = [files[i] for i in idx]

        def fingerprint(a: int, b: int) -> str:
            h = hashlib.sha256()
            for i in range(a, b):
                st = chosen[i].stat()
                label = -1 if labels is None else int(labels[idx[i]])
                h.update(f"{chosen[i].relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\t{label}\n".encode())
            return h.hexdigest()

        return _Split(len(idx), lambda i: load_image(chosen[i]), lambda i: str(chosen[i]),
                      None if labels is None else labels[idx], fingerprint)

    return _Source("folder", str(root.resolve()), (channels, *sizes[0]), 256, class_names,
                   None if class_names is None else len(class_names),
                   {s: split(order[s]) for s in SPLITS},
                   {"test_fraction": test_fraction, "seed": seed})


def _array_source(name: str, path: Path | None, pre: Preprocessing) -> _Source:
    from pixelzoo.data.registry import load_dataset

    splits = load_dataset(name, path)
    parts = {}
    for s, ds in zip(SPLITS, (splits.train, splits.test)):
        x = ds.images.numpy()
        y = None if ds.labels is None else ds.labels.numpy()

        def fingerprint(a: int, b: int, x=x, y=y) -> str:
            h = hashlib.sha256(np.ascontiguousarray(x[a:b]).tobytes())
            if y is not None:
                h.update(np.ascontiguousarray(y[a:b]).tobytes())
            return h.hexdigest()

        parts[s] = _Split(len(ds), lambda i, x=x: np.moveaxis(x[i], 0, -1), lambda i, s=s: f"{name} {s} image {i}",
                          y, fingerprint, rows=lambda a, b, x=x: x[a:b])
    first = pre.apply(np.moveaxis(splits.train.images[0].numpy(), 0, -1), splits.num_levels, f"{name} train image 0")
    return _Source(name, f"{name}: {splits.train.source}", (first.shape[2], *first.shape[:2]), splits.num_levels,
                   None, splits.num_classes, parts, {"own": True})


def open_source(source: str, pre: Preprocessing, test_fraction: float | None = None, seed: int = 0,
                progress: bool = False) -> _Source:
    """The images of SOURCE (see :func:`resolve_source`), checked before anything is written."""
    name, path = resolve_source(source)
    if name == "folder":
        return _folder_source(path, pre, 0.1 if test_fraction is None else test_fraction, seed, progress)
    if test_fraction is not None:
        raise DataError(f"{source}: {name} has its own test split; a test fraction applies to image folders")
    return _array_source(name, path, pre)


# ------------------------------------------------------------------------------ writing


@dataclass
class PrepareResult:
    """What :func:`prepare` did: the ``index`` written (or found), shards ``written`` and ``kept``
    (from an earlier, interrupted run), images per second over the images it read, ``seconds``."""

    index: dict
    written: int
    kept: int
    images_per_s: float
    seconds: float
    already: bool = False   # the folder held this very preparation, finished: nothing was done


def prepare(source: str, out, pre: Preprocessing = Preprocessing(), test_fraction: float | None = None,
            seed: int = 0, shard_size: int | None = None, progress: bool = True) -> PrepareResult:
    """Prepare SOURCE into the folder ``out`` (see the module's docstring)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    src = open_source(source, pre, test_fraction, seed, progress)
    image_bytes = math.prod(src.image_shape)
    if shard_size is None:
        shard_size = max(1, DEFAULT_SHARD_BYTES // image_bytes)
    elif isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise DataError(f"shard size must be a positive number of images, got {shard_size!r}")
    out = Path(out).expanduser()
    params = json.loads(json.dumps({
        "source": src.description, "name": src.name, "preprocessing": pre.to_dict(), "split": src.split_rule,
        "image_shape": list(src.image_shape), "num_levels": src.num_levels, "shard_size": shard_size}))
    done = _open_out(out, params)
    if done is None:
        index = json.loads((out / INDEX_NAME).read_text())
        return PrepareResult(index, 0, 0, 0.0, time.perf_counter() - t0, already=True)
    atomic_write_json({"params": params, "shards": done}, out / PROGRESS_NAME)   # first: the folder is ours
    total = sum(s.count for s in src.splits.values())
    bar = tqdm(total=total, desc="prepare", unit="img", disable=not progress, dynamic_ncols=True)
    written = kept = read = 0
    entries = {}
    t_read = time.perf_counter()
    for split_name in SPLITS:
        split = src.splits[split_name]
        entries[split_name] = []
        for k in range(math.ceil(split.count / shard_size)):
            a, b = k * shard_size, min(split.count, (k + 1) * shard_size)
            images_name, labels_name = shard_names(split_name, k)
            inputs = split.fingerprint(a, b)
            entry = done.get(images_name)
            if not (entry and entry["inputs"] == inputs and _intact(out, entry)):
                entry = _write_shard(out, src, split, a, b, pre, images_name, labels_name, inputs)
                done[images_name] = entry
                atomic_write_json({"params": params, "shards": done}, out / PROGRESS_NAME)
                written += 1
                read += b - a
            else:
                kept += 1
            entries[split_name].append({k_: v for k_, v in entry.items() if k_ != "inputs"})
            bar.update(b - a)
    bar.close()
    seconds_read = time.perf_counter() - t_read
    index = {"format": FORMAT, "version": VERSION, "name": src.name, "source": src.description,
             "image_shape": list(src.image_shape), "num_levels": src.num_levels, "num_classes": src.num_classes,
             "class_names": src.class_names, "prepared_with": params,
             "splits": {s: {"count": src.splits[s].count, "shards": entries[s]} for s in SPLITS}}
    atomic_write_json(index, out / INDEX_NAME)   # last: only now does the folder read as a data set
    (out / PROGRESS_NAME).unlink(missing_ok=True)
    return PrepareResult(index, written, kept, read / max(seconds_read, 1e-9), time.perf_counter() - t0)


def _open_out(out: Path, params: dict) -> dict | None:
    """The shards an earlier, interrupted run of this preparation recorded ({} for a fresh folder);
    None when ``out`` holds this preparation finished. Any other content: a DataError, nothing touched."""
    if out.exists():
        existing_dir(out, "output folder")
        if (out / INDEX_NAME).is_file():
            try:
                index = json.loads((out / INDEX_NAME).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                index = None
            if isinstance(index, dict) and index.get("prepared_with") == params:
                return None
            raise DataError(f"{out}: holds a data set prepared from another source or with other options; "
                            "choose another output folder")
        if (out / PROGRESS_NAME).is_file():
            try:
                progress = json.loads((out / PROGRESS_NAME).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                progress = None
            if not isinstance(progress, dict) or progress.get("params") != params:
                raise DataError(f"{out}: holds an unfinished preparation from another source or with other options; "
                                "finish that one, remove the folder, or choose another output folder")
            for stale in out.glob(".*.tmp"):   # what a killed run was writing
                stale.unlink(missing_ok=True)
            return dict(progress.get("shards") or {})
        if any(out.iterdir()):
            raise DataError(f"{out}: is not empty and holds no preparation; choose a new or empty output folder")
    check_writable(out, "the prepared data set goes there")
    return {}


def _intact(out: Path, entry: dict) -> bool:
    """A shard an earlier run wrote is still whole: its files' checksums match the record."""
    try:
        if sha256_file(out / entry["images"]) != entry["sha256"]:
            return False
        return entry.get("labels") is None or sha256_file(out / entry["labels"]) == entry["labels_sha256"]
    except (OSError, KeyError, TypeError):
        return False


def _write_shard(out: Path, src: _Source, split: _Split, a: int, b: int, pre: Preprocessing, images_name: str,
                 labels_name: str, inputs: str) -> dict:
    """Read images a..b-1 of ``split``, preprocess them and write them as one shard (and its labels)."""
    c, h, w = src.image_shape
    if split.rows is not None and pre == Preprocessing():
        x = np.ascontiguousarray(split.rows(a, b), dtype=np.uint8)
    else:
        x = np.empty((b - a, c, h, w), dtype=np.uint8)
        for i in range(a, b):
            img = pre.apply(split.read(i), src.num_levels, split.where(i))
            if img.shape[2] == 1 and c == 3:
                img = np.repeat(img, 3, axis=2)   # a grey image among colour ones
            if img.shape != (h, w, c):
                raise DataError(f"{split.where(i)}: is {img.shape[1]}x{img.shape[0]} with {img.shape[2]} channels once "
                                f"preprocessed, but the data set's images are {w}x{h} with {c}; images of mixed sizes "
                                "need --resize SIZE")
            x[i - a] = np.moveaxis(img, -1, 0)
    data = x.tobytes()
    entry = {"images": images_name, "count": b - a, "sha256": hashlib.sha256(data).hexdigest(), "inputs": inputs}
    atomic_write_bytes(data, out / images_name)
    if split.labels is not None:
        labels = np.ascontiguousarray(split.labels[a:b], dtype=LABEL_DTYPE).tobytes()
        atomic_write_bytes(labels, out / labels_name)
        entry.update(labels=labels_name, labels_sha256=hashlib.sha256(labels).hexdigest())
    return entry
