"""The in-memory data set types: :class:`ImageDataset` and a train/test pair :class:`DataSplits`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pixelzoo.errors import DataError

#: image dtypes an ImageDataset accepts, with the most levels each can hold
IMAGE_DTYPE_LEVELS = {torch.uint8: 256, torch.int16: 32768, torch.int32: 65536}


def image_dtype_for(num_levels: int) -> torch.dtype:
    """The smallest image dtype that holds ``num_levels`` levels: uint8, int16 or int32."""
    for dtype, most in IMAGE_DTYPE_LEVELS.items():
        if num_levels <= most:
            return dtype
    raise DataError(f"num_levels must be at most 65536, got {num_levels}")


def as_input(images: torch.Tensor) -> torch.Tensor:
    """Stored images as a model takes them: integer levels as int64, a continuous level's values
    (a VAE's latents) as float32."""
    return images.float() if images.is_floating_point() else images.long()


@dataclass
class ImageDataset:
    """Images held in memory: discrete levels, or the values of a continuous level.

    ``images`` is uint8 (N, C, H, W) with every value in [0, num_levels), num_levels <= 256; maps of
    more levels (VQ code maps of a codebook larger than 256) are int16 (num_levels <= 32768) or int32
    (num_levels <= 65536). A continuous level (``num_levels`` None: the latents of a trained encoder,
    read through a chain's level cache) is float32 with finite values. ``labels`` is int64 (N,) with values in [0, num_classes), or None (then
    ``num_classes`` is None too). ``extras`` holds
    per-image tensors (first dimension N) that a model takes as keyword arguments next to the images,
    e.g. ``cond``: the level above in a hierarchy. The fields are checked on construction
    (:meth:`validate`), so a dataset that exists is well formed.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    num_levels: int | None
    num_classes: int | None
    source: str
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def validate(self) -> None:
        """Check dtype, shape, value range and labels; raise DataError naming the data set."""
        where = f"data set {self.name!r} (from {self.source})"
        x = self.images
        if not isinstance(x, torch.Tensor):
            raise DataError(f"{where}: images must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or min(x.shape[1:]) < 1:
            raise DataError(f"{where}: images must have shape (N, C, H, W), got {tuple(x.shape)}")
        if self.num_levels is None:
            self._validate_continuous(where)
        else:
            self._validate_levels(where)
        self._validate_extras_and_labels(where)

    def _validate_continuous(self, where: str) -> None:
        x = self.images
        if x.dtype != torch.float32:
            raise DataError(f"{where}: a continuous level (num_levels None) is float32, got {x.dtype}")
        if x.numel() and not torch.isfinite(x).all():
            raise DataError(f"{where}: a continuous level holds non-finite values")

    def _validate_levels(self, where: str) -> None:
        x, k = self.images, self.num_levels
        if x.dtype not in IMAGE_DTYPE_LEVELS:
            raise DataError(f"{where}: images must be uint8 (int16 or int32 only for more than 256 levels), "
                            f"got {x.dtype}")
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 65536:
            raise DataError(f"{where}: num_levels must be an int in [2, 65536], got {k!r}")
        if k > IMAGE_DTYPE_LEVELS[x.dtype]:
            raise DataError(f"{where}: {k} levels do not fit {x.dtype} images (at most {IMAGE_DTYPE_LEVELS[x.dtype]}); "
                            f"use {image_dtype_for(k)}")
        if x.numel() and int(x.max()) >= k:
            raise DataError(f"{where}: image value {int(x.max())} is outside [0, {k})")
        if x.numel() and x.dtype != torch.uint8 and int(x.min()) < 0:
            raise DataError(f"{where}: image value {int(x.min())} is outside [0, {k})")

    def _validate_extras_and_labels(self, where: str) -> None:
        x = self.images
        for key, value in self.extras.items():
            if not isinstance(value, torch.Tensor) or value.dim() < 1 or value.shape[0] != x.shape[0]:
                desc = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise DataError(f"{where}: extra {key!r} must be a tensor with {x.shape[0]} rows, got {desc}")
        y, m = self.labels, self.num_classes
        if y is None:
            if m is not None:
                raise DataError(f"{where}: num_classes is {m} but there are no labels")
            return
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
            desc = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise DataError(f"{where}: labels must be an int64 tensor of shape (N,), got {desc}")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: {x.shape[0]} images but {y.shape[0]} labels")
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise DataError(f"{where}: num_classes must be a positive int with labels, got {m!r}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= m):
            bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise DataError(f"{where}: label {bad} is outside [0, {m})")

    def subset(self, indices) -> "ImageDataset":
        """A new dataset holding the images (and labels) at ``indices`` (sequence, array or tensor)."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.to(torch.int64).flatten()
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise DataError(f"data set {self.name!r}: subset index out of range for {n} images")
        return ImageDataset(
            name=self.name,
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            num_levels=self.num_levels,
            num_classes=self.num_classes,
            source=self.source,
            extras={k: v[idx] for k, v in self.extras.items()},
        )


@dataclass
class DataSplits:
    """A training set and a held-out test set with the same image shape, levels and classes."""

    train: ImageDataset
    test: ImageDataset

    def __post_init__(self) -> None:
        a, b = self.train, self.test
        for attr in ("image_shape", "num_levels", "num_classes"):
            if getattr(a, attr) != getattr(b, attr):
                raise DataError(
                    f"train {a.name!r} and test {b.name!r} disagree on {attr}: "
                    f"{getattr(a, attr)} vs {getattr(b, attr)}")
        if (a.labels is None) != (b.labels is None):
            raise DataError(f"train {a.name!r} and test {b.name!r}: only one of them has labels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape

    @property
    def num_levels(self) -> int:
        return self.train.num_levels

    @property
    def num_classes(self) -> int | None:
        return self.train.num_classes
