"""Bits per dimension over a data set."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def dataset_bits_per_dim(model, dataset, batch_size: int = 256, max_images: int | None = None, progress: bool = False) -> float:
    """Mean bits/dim over ``dataset`` (the first ``max_images`` images if given):
    -sum_n log2 p(x_n) / (N * C * H * W), every image counting C*H*W dimensions. The data set's
    ``extras`` are passed to ``model.log_prob`` as keyword arguments."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    was_training = model.training
    model.eval()
    total_nats = 0.0
    try:
        for start in tqdm(range(0, n, batch_size), desc="bits/dim", disable=not progress, leave=False):
            x = dataset.images[start:start + batch_size][: n - start].long()
            y = None
            if getattr(model, "num_classes", None) and dataset.labels is not None:
                y = dataset.labels[start:start + batch_size][: n - start]
            extras = {k: v[start:start + batch_size][: n - start] for k, v in dataset.extras.items()}
            total_nats -= model.log_prob(x, y, **extras).double().sum().item()
    finally:
        model.train(was_training)
    dims = n * math.prod(dataset.image_shape)
    return total_nats / (dims * math.log(2.0))
