"""The level cache of a streamed data set: levels written shard by shard in one pass, read by memory map.

When a trained encoder's source level is read from a prepared data set's shards, what it makes is
not held in memory: :func:`write_level_shards` encodes the source a chunk at a time and appends each
chunk's levels to the current shard of each array (``SPLIT.TARGET-NNNNN.rows``, raw rows in C order,
little-endian, about ``SHARD_BYTES`` each, written to a temporary name and renamed), hashing as it
goes; ``index.json``, written last, names every shard with its row count and sha256 and is stamped
with the cache's fingerprint (the encoder's weights, the data's shard checksums: see
``level_cache.fingerprint``). :func:`read_level_shards` gives the arrays as ``ShardedImages`` of their
dtype (code maps int16, latents float32), which the streaming loader reads a batch at a time like a
prepared data set's images. A folder of another fingerprint is stale (recomputed and overwritten);
one whose shards are missing, of the wrong size or fail their checksums is damaged (said, then
recomputed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from ...data.shards import ShardedImages, sha256_file
from ...io import atomic_write_json, check_writable, storage_error

FORMAT = "pixelzoo-level-shards-1"
INDEX = "index.json"
SHARD_BYTES = 64 << 20


def shards_dir(cache_dir: str | os.PathLike, slot: str) -> Path:
    """The folder of the streamed levels made by the encoder ``slot``."""
    return Path(cache_dir) / f"{slot}-levels"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def read_level_shards(directory: Path, key: str, specs: dict[str, tuple]) -> dict[str, ShardedImages] | None:
    """The arrays named as ``specs`` (name -> (rows, row shape, dtype)) of the cache in ``directory`` for
    fingerprint ``key``; None when there is none, it is stale (another fingerprint or layout) or damaged
    (said on stderr)."""
    path = directory / INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"pixelzoo: ignoring unreadable level cache {path} ({e}); recomputing", file=sys.stderr)
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("fingerprint") != key:
        return None   # another encoder or data set: recompute (and overwrite)
    arrays = index.get("arrays")
    if not isinstance(arrays, dict) or set(arrays) != set(specs):
        return None
    out = {}
    for name, (rows, shape, dtype) in specs.items():
        entry = arrays[name]
        if (entry.get("dtype") != _dtype_name(dtype) or entry.get("shape") != list(shape)
                or sum(s["count"] for s in entry["shards"]) != rows):
            return None
        row_bytes = math.prod(shape) * dtype.itemsize
        for s in entry["shards"]:
            f = directory / s["file"]
            why = ("missing" if not f.is_file() else f"{f.stat().st_size} bytes, not {s['count'] * row_bytes}"
                   if f.stat().st_size != s["count"] * row_bytes else
                   "fails its sha256 checksum" if sha256_file(f) != s["sha256"] else None)
            if why:
                print(f"pixelzoo: level cache shard {f} is damaged ({why}); recomputing the cache", file=sys.stderr)
                return None
        out[name] = ShardedImages([directory / s["file"] for s in entry["shards"]], [s["count"] for s in entry["shards"]],
                                  shape, [s["sha256"] for s in entry["shards"]], dtype)
    return out


def write_level_shards(directory: Path, key: str, sources: dict[str, object], encode: Callable,
                       specs: dict[str, tuple], chunk: int) -> dict[str, ShardedImages]:
    """Encode every source (split -> rows, indexed by slices) ``chunk`` rows at a time in one pass:
    ``encode(rows) -> {target: tensor}``; array ``SPLIT.TARGET`` of ``specs`` ((rows, row shape,
    dtype) each) is written as shards into ``directory`` (emptied of an older cache first), then the
    index. Returns the arrays, read by memory map."""
    directory.mkdir(parents=True, exist_ok=True)
    check_writable(directory, "the level cache goes there")
    (directory / INDEX).unlink(missing_ok=True)   # first: a half-written cache never reads as one
    for old in directory.iterdir():
        if old.suffix in (".rows", ".tmp"):
            old.unlink()
    arrays = {}
    for split, src in sources.items():
        writers = {name.split(".", 1)[1]: _ShardWriter(directory, name, spec[1], spec[2])
                   for name, spec in specs.items() if name.split(".", 1)[0] == split}
        for s in range(0, len(src), chunk):
            for target, values in encode(src[s:s + chunk]).items():
                writers[target].append(values)
        for target, w in writers.items():
            arrays[f"{split}.{target}"] = w.close()
    for name, (rows, _, _) in specs.items():
        got = sum(s["count"] for s in arrays[name]["shards"])
        if got != rows:
            raise RuntimeError(f"level cache {directory}: {name} has {got} rows, expected {rows}")
    atomic_write_json({"format": FORMAT, "fingerprint": key, "arrays": arrays}, directory / INDEX)
    found = read_level_shards(directory, key, specs)
    assert found is not None, f"the level cache just written in {directory} does not read back"
    return found


class _ShardWriter:
    """Rows of one array appended to shards of about ``SHARD_BYTES``, each hashed as written."""

    def __init__(self, directory: Path, name: str, shape: tuple, dtype: torch.dtype):
        self.directory, self.name, self.shape, self.dtype = directory, name, tuple(shape), dtype
        self.row_bytes = math.prod(shape) * dtype.itemsize
        self.per_shard = max(1, SHARD_BYTES // self.row_bytes)
        self.shards: list[dict] = []
        self._f = self._h = None
        self._count = 0

    def append(self, values: torch.Tensor) -> None:
        a = values.to("cpu", self.dtype).contiguous().numpy()
        if a.shape[1:] != self.shape:
            raise RuntimeError(f"level cache {self.name}: rows of shape {a.shape[1:]}, expected {self.shape}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        start = 0
        while start < a.shape[0]:
            if self._f is None:
                self._open()
            take = min(a.shape[0] - start, self.per_shard - self._count)
            data = a[start:start + take].tobytes()
            try:
                self._f.write(data)
            except OSError as e:
                raise storage_error(self._tmp, e, "cannot write the level cache") from None
            self._h.update(data)
            self._count += take
            start += take
            if self._count == self.per_shard:
                self._finish()

    def _open(self) -> None:
        self.file = f"{self.name}-{len(self.shards):05d}.rows"
        self._tmp = self.directory / f".{self.file}.tmp"
        self._f, self._h, self._count = open(self._tmp, "wb"), hashlib.sha256(), 0

    def _finish(self) -> None:
        try:
            self._f.close()
            os.replace(self._tmp, self.directory / self.file)
        except OSError as e:
            raise storage_error(self._tmp, e, "cannot write the level cache") from None
        self.shards.append({"file": self.file, "count": self._count, "sha256": self._h.hexdigest()})
        self._f = None

    def close(self) -> dict:
        if self._f is not None:
            self._finish()
        return {"dtype": _dtype_name(self.dtype), "shape": list(self.shape), "shards": self.shards}

