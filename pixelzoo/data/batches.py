"""The batches of a seeded run: which rows, and which of them mirrored, at each step.

Every epoch is a permutation of the training set drawn from (seed, epoch); the batch of step ``t``
is its next ``batch_size`` rows (the last partial batch of an epoch dropped), mirrored where a mask
drawn from (seed, t) says. Both are functions of the seed and the step alone, so the batch of a
step is the same in memory or streamed from shards, with any number of loader workers, after a
resume, and, taken row by row (process ``r`` of ``W``: rows ``r, r + W, ...``), under torchrun.
"""

from __future__ import annotations

import torch

from pixelzoo.data.augment import apply_hflip, hflip_mask


def step_seed(seed: int, step: int) -> int:
    """The seed of what step ``step`` of a run seeded ``seed`` draws (negative steps: other streams)."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


class BatchPlan:
    """The global batch of each step for ``n`` training images, ``batch_size`` (at most ``n``) a
    step, ``seed``, and random horizontal flips when ``flip``."""

    def __init__(self, n: int, batch_size: int, seed: int, flip: bool):
        self.n, self.batch_size, self.seed, self.flip = n, min(batch_size, n), seed, flip
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        """The rows of the global batch of ``step``, (batch_size,) int64."""
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(step_seed(self.seed, -1 - epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]

    def flips(self, step: int) -> torch.Tensor | None:
        """Which images of the global batch of ``step`` are mirrored, (batch_size,) bool; None without flips."""
        if not self.flip:
            return None
        return hflip_mask(self.batch_size, torch.Generator().manual_seed(step_seed(self.seed, step)))


def take_batch(dataset, plan: BatchPlan, step: int, rows: slice = slice(None), labels: bool = True):
    """``(images, labels or None, extras)`` of ``rows`` of the global batch of ``step``, on the CPU, in
    the data set's own dtype (uint8 levels): images and their per-image maps (``extras`` with 4
    dimensions, levels of a chain) mirrored alike. ``dataset``: an ImageDataset, or a ShardedDataset
    (rows read from its shards)."""
    idx = plan.indices(step)[rows]
    x = dataset.images[idx]
    extras = {k: v[idx] for k, v in dataset.extras.items()}
    mask = plan.flips(step)
    if mask is not None:
        mask = mask[rows]
        x = apply_hflip(x, mask)
        extras = {k: apply_hflip(v, mask) if v.dim() == 4 else v for k, v in extras.items()}
    y = dataset.labels[idx] if labels and dataset.labels is not None else None
    return x, y, extras
