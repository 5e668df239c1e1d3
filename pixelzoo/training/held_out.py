"""Held-out evaluation, during training and after: bits per dimension over a data set (also per
part of a composite's bound), and the held-out loss of models without a likelihood; on the
model's device (batches are moved there). ``pixelzoo.evaluation`` exports ``dataset_bits_per_dim``."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..data.dataset import as_input
from ..devices import module_device, to_device
from ..models.base import has_likelihood, takes_labels
from ..nn.modes import eval_mode


def _batches(model, dataset, batch_size: int, n: int, progress: bool, desc: str):
    """(x, y, extras) for the first ``n`` images, on the model's device; labels only for
    class-conditional models."""
    device = module_device(model)
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        stop = min(start + batch_size, n)
        x = as_input(dataset.images[start:stop])
        y = None
        if takes_labels(model) and dataset.labels is not None:
            y = dataset.labels[start:stop]
        yield (to_device(x, device), to_device(y, device),
               {k: to_device(v[start:stop], device) for k, v in dataset.extras.items()})


@torch.no_grad()
def dataset_bits_per_dim(model, dataset, batch_size: int = 256, max_images: int | None = None, progress: bool = False) -> float:
    """Mean bits/dim over ``dataset`` (the first ``max_images`` images if given):
    -sum_n log2 p(x_n) / (N * C * H * W), every image counting C*H*W dimensions. The data set's
    ``extras`` are passed to ``model.log_prob`` as keyword arguments."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    total_nats = 0.0
    with eval_mode(model):
        for x, y, extras in _batches(model, dataset, batch_size, n, progress, "bits/dim"):
            total_nats -= model.log_prob(x, y, **extras).double().sum().item()
    dims = n * math.prod(dataset.image_shape)
    return total_nats / (dims * math.log(2.0))


@torch.no_grad()
def dataset_bits_per_dim_parts(model, dataset, batch_size: int = 256, max_images: int | None = None,
                               progress: bool = False) -> dict:
    """A composite model's mean bits/dim per part over ``dataset`` (``model.bits_per_dim_parts``: each
    part's share of the bound, in bits per dimension of the full image, so the parts add up to the
    total), in one pass."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    sums: dict = {}
    with eval_mode(model):
        for x, y, _ in _batches(model, dataset, batch_size, n, progress, "bits/dim per part"):
            for name, v in model.bits_per_dim_parts(x, y).items():
                sums[name] = sums.get(name, 0.0) + v.double().sum().item()
    return {name: v / n for name, v in sums.items()}


@torch.no_grad()
def dataset_loss(model, dataset, batch_size: int = 256, max_images: int | None = None, seed: int = 0,
                 progress: bool = False, loss=None) -> float:
    """Mean of ``model.loss(...)["loss"]`` (a per-dimension mean; or of ``loss(...)``) over ``dataset``,
    weighting each batch by its size: the held-out loss of a model without a likelihood (PixelIQN's
    quantile loss). The loss's own random inputs (tau) come from ``seed``, so two evaluations see the
    same draws."""
    loss = loss or model.loss
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    total = 0.0
    device = module_device(model)
    with eval_mode(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for x, y, extras in _batches(model, dataset, batch_size, n, progress, "held-out loss"):
            total += loss(x, y, **extras)["loss"].item() * x.shape[0]
    return total / n


def held_out_figure(model, dataset, batch_size: int = 256, max_images: int | None = None, seed: int = 0,
                    loss=None) -> dict[str, float]:
    """``{"test_bpd": ...}`` on ``dataset``, or for a model without a likelihood ``{"test_loss": ...}``
    (its loss, or ``loss``, averaged: :func:`dataset_loss`): what a trained unit is measured by."""
    if has_likelihood(model):
        return {"test_bpd": dataset_bits_per_dim(model, dataset, batch_size, max_images)}
    return {"test_loss": dataset_loss(model, dataset, batch_size, max_images, seed, loss=loss)}
