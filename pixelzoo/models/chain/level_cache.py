"""The fingerprinted cache of levels made by trained encoders.

A level made by a trained encoder (VQ codes, latents) is computed once over the training and test
sets and kept: in memory, and in ``cache_dir/<part>-levels.safetensors`` stamped with a fingerprint
of the encoder's weights and buffers, of the format and of the data it read (names, tensors,
labels; images streamed from a prepared data set's shards by the shards' checksums, unread). A
changed encoder or data set gives another fingerprint, so a stale cache is never used: it is
recomputed and overwritten. An unreadable cache file is ignored with a message. Levels of data held
in memory are held in memory; levels of a data set streamed from its shards stream too
(``level_shards``: written shard by shard in one pass, read by memory map), and a damaged shard of
them is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ...data.shards import ShardedImages
from ...errors import CheckpointError
from ...io import load_tensors, read_metadata, save_tensors
from .level_shards import read_level_shards, write_level_shards

CACHE_FORMAT = "pixelzoo-levels-1"


def cache_file(part: str) -> str:
    """The file name of the levels made by the encoder ``part``."""
    return f"{part}-levels.safetensors"


def _hash_tensor(h, key: str, t) -> None:
    if isinstance(t, ShardedImages):  # images read from shards: by their shards' checksums, without reading them
        h.update(f"{key}|sharded|{tuple(t.shape)}|{t.digest}".encode())
        return
    t = t.detach().cpu().contiguous()
    h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
    h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())


def fingerprint(encoder: nn.Module, inputs: dict[str, torch.Tensor], tags: dict[str, str]) -> str:
    """SHA-256 of the format, ``encoder``'s state, the ``inputs`` tensors and the ``tags``."""
    h = hashlib.sha256()
    h.update(CACHE_FORMAT.encode())
    for key, value in sorted(encoder.state_dict().items()):
        _hash_tensor(h, key, value)
    for key, value in sorted(tags.items()):
        h.update(f"{key}={value}".encode())
    for key, value in sorted(inputs.items()):
        _hash_tensor(h, key, value)
    return h.hexdigest()


class LevelCache:
    """Levels by fingerprint: from memory, from the cache file, or computed (and written).

    ``last_source`` says where the last ``get`` found them: "memory", "cache" or "computed"."""

    def __init__(self):
        self.memo: dict[str, tuple[str, dict[str, torch.Tensor]]] = {}  # per encoder: its latest levels
        self.last_source: str | None = None

    def get(self, slot: str, key: str, shapes: dict[str, tuple], compute: Callable[[], dict[str, torch.Tensor]],
            path: Path | None = None, write: bool = True, what: str = "levels") -> dict[str, torch.Tensor]:
        """The tensors named as ``shapes`` (each of exactly that shape) for fingerprint ``key`` of the
        encoder ``slot``. ``write``: False under a process that must not write (all but process 0
        under torchrun)."""
        if slot in self.memo and self.memo[slot][0] == key:
            self.last_source = "memory"
            return self.memo[slot][1]
        found = self._read(path, key, shapes) if path is not None and Path(path).is_file() else None
        if found is not None:
            self.last_source = "cache"
        else:
            where = f"; cached in {path}" if path is not None and write else ""
            print(f"pixelzoo: computing {what} (once{where})", file=sys.stderr)
            found = compute()
            if path is not None and write:
                save_tensors(found, path, {"format": CACHE_FORMAT, "fingerprint": key, "names": json.dumps(sorted(found))})
            self.last_source = "computed"
        self.memo[slot] = (key, found)
        return found

    def get_streamed(self, slot: str, key: str, specs: dict[str, tuple], sources: dict, encode: Callable,
                     directory: Path, chunk: int, what: str = "levels") -> dict:
        """Like ``get`` for a streamed data set: the arrays of ``specs`` (name -> (rows, row shape,
        dtype)) as ``ShardedImages`` read by memory map from ``directory``, written there shard by shard
        in one pass over ``sources`` (split -> rows) by ``encode`` when they are missing, stale or damaged."""
        if slot in self.memo and self.memo[slot][0] == key:
            self.last_source = "memory"
            return self.memo[slot][1]
        found = read_level_shards(directory, key, specs)
        if found is not None:
            self.last_source = "cache"
        else:
            print(f"pixelzoo: computing {what} (once, streamed to {directory})", file=sys.stderr)
            found = write_level_shards(directory, key, sources, encode, specs, chunk)
            self.last_source = "computed"
        self.memo[slot] = (key, found)
        return found

    @staticmethod
    def _read(path: Path, key: str, shapes: dict[str, tuple]) -> dict | None:
        try:
            meta = read_metadata(path)
            if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != key:
                return None  # another encoder or data set: recompute (and overwrite)
            tensors = load_tensors(path)
            if set(tensors) != set(shapes) or any(tuple(tensors[k].shape) != tuple(s) for k, s in shapes.items()):
                return None
            return tensors
        except CheckpointError as e:
            print(f"pixelzoo: ignoring unreadable level cache {path} ({e}); recomputing", file=sys.stderr)
            return None
