"""The prepared format (what ``pixelzoo prepare`` writes) and its reader by memory map.

A prepared folder holds, per split (``train``, ``test``), shards of a fixed number of images (the
last one shorter): ``SPLIT-NNNNN.images``, raw uint8 (count, C, H, W) in C order, and with labels
``SPLIT-NNNNN.labels``, raw little-endian int64 (count,). ``index.json``, written last, names them
with their image counts and sha256 checksums, and holds the image shape, the levels, the classes
and their names, how the images were made (source, preprocessing, split) and the format's version.
A folder without ``index.json`` is an unfinished preparation and is never read as a data set.

:func:`load_prepared` checks the index against its shards (every file present and of the size its
count says; with ``verify``, every checksum) before anything reads them, then gives the splits in
memory (an :class:`ImageDataset`) or, for large data (``stream``), as a :class:`ShardedDataset`
whose images are read by memory map, a batch at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
from pathlib import Path

import numpy as np
import torch

from pixelzoo.data._checks import existing_dir
from pixelzoo.data.dataset import DataSplits, ImageDataset
from pixelzoo.errors import DataError
from pixelzoo.io import read_json

FORMAT = "pixelzoo-prepared"
VERSION = 1
INDEX_NAME = "index.json"
SPLITS = ("train", "test")
LABEL_DTYPE = np.dtype("<i8")
#: with ``stream`` unset, a prepared data set of more image bytes than this streams from its shards
STREAM_ABOVE_BYTES = 1 << 30


def shard_names(split: str, k: int) -> tuple[str, str]:
    """The file names of shard ``k`` of ``split``: (images, labels)."""
    return f"{split}-{k:05d}.images", f"{split}-{k:05d}.labels"


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ the index


def read_index(directory: str | os.PathLike) -> dict:
    """The checked ``index.json`` of a prepared folder (DataError naming what is wrong)."""
    d = existing_dir(directory, "prepared data folder")
    path = d / INDEX_NAME
    if not path.is_file():
        unfinished = any(d.glob("*.images"))
        why = ("its preparation did not finish: run the same `pixelzoo prepare` again to complete it"
               if unfinished else "it is not a folder written by `pixelzoo prepare`")
        raise DataError(f"{d}: no {INDEX_NAME}; {why}")
    index = read_json(path, DataError)
    _check_index(index, path)
    return index


def _check_index(index, path: Path) -> None:
    def bad(what: str):
        raise DataError(f"{path}: {what}; the index does not describe a prepared data set")

    if not isinstance(index, dict) or index.get("format") != FORMAT:
        bad(f"'format' is not {FORMAT!r}")
    if index.get("version") != VERSION:
        raise DataError(f"{path}: format version {index.get('version')!r}, but this pixelzoo reads version {VERSION}; "
                        "prepare the data again")
    shape = index.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v >= 1 for v in shape)):
        bad(f"image_shape {shape!r} is not [C, H, W]")
    k = index.get("num_levels")
    if not (_is_int(k) and 2 <= k <= 256):
        bad(f"num_levels {k!r} is not an int in [2, 256]")
    m, names = index.get("num_classes"), index.get("class_names")
    if m is not None and not (_is_int(m) and m >= 1):
        bad(f"num_classes {m!r} is not a positive int or null")
    if names is not None and not (isinstance(names, list) and len(names) == m):
        bad(f"class_names does not list num_classes ({m}) names")
    splits = index.get("splits")
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        bad(f"'splits' must hold {' and '.join(SPLITS)}")
    for split in SPLITS:
        entry = splits[split]
        shards = entry.get("shards") if isinstance(entry, dict) else None
        if not isinstance(shards, list) or not _is_int(entry.get("count")):
            bad(f"split {split!r} needs 'count' and 'shards'")
        for k_, shard in enumerate(shards):
            names_k = shard_names(split, k_)
            if not (isinstance(shard, dict) and shard.get("images") == names_k[0] and _is_int(shard.get("count"))
                    and shard["count"] >= 1 and isinstance(shard.get("sha256"), str)):
                bad(f"shard {k_} of {split!r} is not {{images: {names_k[0]!r}, count, sha256}}")
            if (m is None) != (shard.get("labels") is None):
                bad(f"shard {k_} of {split!r}: labels {'missing' if m is not None else 'given without classes'}")
            if m is not None and (shard.get("labels") != names_k[1] or not isinstance(shard.get("labels_sha256"), str)):
                bad(f"shard {k_} of {split!r}: labels must be {names_k[1]!r} with labels_sha256")
        total = sum(s["count"] for s in shards)
        if total != entry["count"]:
            bad(f"split {split!r} counts {entry['count']} images but its shards hold {total}")
        if total < 1:
            bad(f"split {split!r} holds no images")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_shards(directory: str | os.PathLike, index: dict, verify: bool = True, progress: bool = False) -> None:
    """Every shard the index names is present and holds exactly its count of images (and labels);
    with ``verify`` its sha256 matches too. A DataError names the first file that does not."""
    from tqdm.auto import tqdm

    d = Path(directory)
    image_bytes = math.prod(index["image_shape"])
    files = []
    for split in SPLITS:
        for shard in index["splits"][split]["shards"]:
            files.append((shard["images"], shard["count"] * image_bytes, shard["sha256"]))
            if shard.get("labels") is not None:
                files.append((shard["labels"], shard["count"] * LABEL_DTYPE.itemsize, shard["labels_sha256"]))
    for name, size, digest in tqdm(files, desc="checking shards", disable=not progress, leave=False):
        path = d / name
        if not path.is_file():
            raise DataError(f"{path}: missing; {d / INDEX_NAME} names it (prepare the data again)")
        actual = path.stat().st_size
        if actual != size:
            kind = "truncated" if actual < size else "longer than the index says"
            raise DataError(f"{path}: {kind}: {actual} bytes, the index says {size}; the shards do not match "
                            f"{d / INDEX_NAME} (prepare the data again)")
        if verify and sha256_file(path) != digest:
            raise DataError(f"{path}: fails its sha256 checksum (corrupt, or changed since it was prepared); "
                            "prepare the data again")


# ------------------------------------------------------------------------------------ reading


class ShardedImages:
    """The images of a split, read by memory map from its shards: indexed like a tensor
    (``images[idx]``, ``images[a:b]``) it returns a tensor holding a copy of those rows. The maps are
    opened on first use in each process (a DataLoader worker opens its own). ``dtype``: of the rows,
    uint8 for images; a chain's level cache holds wider code maps (int16, int32) and latents (float32)
    the same way, each shard raw rows in C order, little-endian."""

    def __init__(self, paths: list[Path], counts: list[int], image_shape: tuple[int, int, int], digests: list[str],
                 dtype: torch.dtype = torch.uint8):
        self.paths, self.counts = [Path(p) for p in paths], [int(c) for c in counts]
        self.digests = list(digests)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.dtype = dtype
        self._np_dtype = np.dtype(str(dtype).removeprefix("torch.")).newbyteorder("<")
        self._maps: list[np.ndarray] | None = None   # per shard: its rows, over ...
        self._mms: list[mmap.mmap] | None = None      # ... its memory map

    @property
    def shape(self) -> torch.Size:
        return torch.Size((int(self.offsets[-1]), *self.image_shape))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def digest(self) -> str:
        """What these images are, from their shards' checksums: a fingerprint of the data without reading it."""
        what = [list(self.image_shape), self.counts, self.digests]
        if self.dtype != torch.uint8:
            what.append(str(self.dtype))
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None, "_mms": None}   # maps are reopened, never pickled (they would copy the data)

    def _map(self, k: int) -> np.memmap:
        if self._maps is None:
            self._maps, self._mms = [None] * len(self.paths), [None] * len(self.paths)
        if self._maps[k] is None:
            with open(self.paths[k], "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            # batches read rows at random: without this, each row read pulls the kernel's readahead (about
            # 10x the bytes of a 12 KB image), which thrashes the page cache of a data set beyond memory
            _advise(mm, "MADV_RANDOM")
            self._mms[k] = mm
            self._maps[k] = np.frombuffer(mm, dtype=self._np_dtype).reshape(self.counts[k], *self.image_shape)
        return self._maps[k]

    def __getitem__(self, key) -> torch.Tensor:
        n = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return torch.from_numpy(self._range(start, max(start, stop)))
            key = np.arange(start, stop, step)
        idx = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        if idx.ndim > 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"{self.paths[0].parent}: images are indexed by a slice or integer indices, got {key!r}")
        scalar = idx.ndim == 0
        idx = idx.reshape(-1).astype(np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"{self.paths[0].parent}: image index out of range for {n} images")
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((idx.size, *self.image_shape), dtype=self._np_dtype.newbyteorder("="))
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for k in np.unique(which):
            sel = which == k
            out[sel] = self._map(int(k))[idx[sel] - self.offsets[k]]
        return torch.from_numpy(out[0] if scalar else out)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every image, read into memory: for what needs a whole split at once (the sample metrics'
        reference features, nearest neighbours)."""
        x = self._range(0, len(self))
        return x if dtype is None else x.astype(dtype)

    def _range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.image_shape), dtype=self._np_dtype.newbyteorder("="))
        for k in range(len(self.paths)):
            a, b = max(start, int(self.offsets[k])), min(stop, int(self.offsets[k + 1]))
            if a < b:
                rows = self._map(k)
                row_bytes = rows.itemsize * math.prod(self.image_shape)
                lo = (a - int(self.offsets[k])) * row_bytes // mmap.PAGESIZE * mmap.PAGESIZE
                _advise(self._mms[k], "MADV_WILLNEED", lo, (b - int(self.offsets[k])) * row_bytes - lo)  # read ahead
                out[a - start:b - start] = rows[a - self.offsets[k]:b - self.offsets[k]]
        return out


def _advise(mm, advice: str, *span) -> None:
    """``mm.madvise`` where the platform has it (a hint: nothing is lost without it)."""
    flag = getattr(mmap, advice, None)
    if flag is not None and isinstance(mm, mmap.mmap):
        try:
            mm.madvise(flag, *span)
        except (OSError, ValueError):
            pass


class ShardedDataset:
    """A split of a prepared data set read from its shards by memory map: what an :class:`ImageDataset`
    offers to the trainer and the evaluations (``images`` indexed by rows, ``labels`` in memory,
    ``num_levels``, ``num_classes``, ``image_shape``, ``len``), without holding the images."""

    def __init__(self, name: str, images: ShardedImages, labels: torch.Tensor | None, num_levels: int,
                 num_classes: int | None, source: str, extras: dict[str, torch.Tensor] | None = None):
        self.name, self.images, self.labels = name, images, labels
        self.num_levels, self.num_classes, self.source = num_levels, num_classes, source
        # per-image rows next to the images: tensors in memory, or rows read on demand (``ShardedImages``,
        # ``MappedRows``: a chain's levels made from the images, cached in shards)
        self.extras = dict(extras or {})
        for key, value in self.extras.items():
            rows = value.shape[0] if isinstance(value, (torch.Tensor, ShardedImages, MappedRows)) and len(value.shape) else -1
            if rows != len(images):
                raise DataError(f"data set {name!r}: extra {key!r} must be a tensor or sharded rows with {len(images)} rows")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.images.image_shape

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> ImageDataset:
        """The images (and labels) at ``indices``, in memory."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        idx = idx.nonzero().flatten() if idx.dtype == torch.bool else idx.to(torch.int64).flatten()
        return ImageDataset(self.name, self.images[idx], None if self.labels is None else self.labels[idx],
                            self.num_levels, self.num_classes, self.source, {k: v[idx] for k, v in self.extras.items()})


class MappedRows:
    """Rows made on demand: ``rows[idx]`` is ``fn([source[idx] for source in sources])``, for per-image
    inputs computed from rows read from shards (a chain's conditioning made of the code maps above a
    level). ``fn`` must be picklable (DataLoader workers get a copy) and leave the rows on the CPU."""

    def __init__(self, fn, sources: list, shape: tuple):
        self.fn, self.sources = fn, list(sources)
        self.shape = torch.Size(shape)
        if any(len(s) != self.shape[0] for s in self.sources):
            raise DataError(f"mapped rows: every source must hold {self.shape[0]} rows")

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key) -> torch.Tensor:
        return self.fn([s[key] for s in self.sources])


def dataset_of(name: str, images, labels, num_levels, num_classes, source: str, extras=None):
    """An :class:`ImageDataset` of images in memory, or a :class:`ShardedDataset` of images read from
    shards (``ShardedImages``), with the same fields: e.g. a level of a chain made of either."""
    if isinstance(images, ShardedImages):
        return ShardedDataset(name, images, labels, num_levels, num_classes, source, extras)
    return ImageDataset(name, images, labels, num_levels, num_classes, source, extras or {})


def index_bytes(index: dict) -> int:
    """The bytes of every image of a prepared data set (both splits)."""
    return sum(index["splits"][s]["count"] for s in SPLITS) * math.prod(index["image_shape"])


def load_prepared(directory: str | os.PathLike, stream: bool | None = None, verify: bool = True,
                  progress: bool = False) -> DataSplits:
    """The splits of a prepared folder, after :func:`check_shards`. ``stream``: read the images by
    memory map as :class:`ShardedDataset` (True), load them into memory (False), or stream when they
    hold more than ``STREAM_ABOVE_BYTES`` (None). Labels are always in memory."""
    d = existing_dir(directory, "prepared data folder")
    index = read_index(d)
    check_shards(d, index, verify=False)  # every file present and whole before any is read
    if stream is None:
        stream = index_bytes(index) > STREAM_ABOVE_BYTES
    if stream and verify:  # in memory, each shard's checksum is checked on the bytes read
        check_shards(d, index, verify=True, progress=progress or index_bytes(index) > STREAM_ABOVE_BYTES)
    shape = tuple(index["image_shape"])
    m = index["num_classes"]
    source = f"{d} (prepared from {index.get('source', '?')})"
    parts = {}
    for split in SPLITS:
        shards = index["splits"][split]["shards"]
        labels = None
        if m is not None:
            labels = torch.from_numpy(np.concatenate([
                _read(d / s["labels"], s["labels_sha256"], verify).view(LABEL_DTYPE) for s in shards]).astype(np.int64))
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= m):
                raise DataError(f"{d}: a label of split {split!r} is outside [0, {m}); the shards do not match "
                                f"{d / INDEX_NAME}")
        name = f"{index.get('name', 'prepared')}/{split}"
        if stream:
            images = ShardedImages([d / s["images"] for s in shards], [s["count"] for s in shards], shape,
                                   [s["sha256"] for s in shards])
            parts[split] = ShardedDataset(name, images, labels, index["num_levels"], m, source)
        else:
            x = np.concatenate([_read(d / s["images"], s["sha256"], verify) for s in shards])
            parts[split] = ImageDataset(name, torch.from_numpy(x.reshape(-1, *shape)), labels, index["num_levels"],
                                        m, source)
    return DataSplits(parts["train"], parts["test"])


def _read(path: Path, digest: str, verify: bool) -> np.ndarray:
    """A shard's bytes as uint8, its checksum checked (``verify``) on the bytes read."""
    data = path.read_bytes()
    if verify and hashlib.sha256(data).hexdigest() != digest:
        raise DataError(f"{path}: fails its sha256 checksum (corrupt, or changed since it was prepared); "
                        "prepare the data again")
    return np.frombuffer(data, dtype=np.uint8).copy()


def is_streamed(splits) -> bool:
    """Whether a data set's training images are read from shards (not held in memory)."""
    return isinstance(splits.train, ShardedDataset)
