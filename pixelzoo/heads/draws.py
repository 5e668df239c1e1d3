"""The random choices the heads' ``draw`` make, in as few tensor operations as one sampling step
affords (a step at batch 1 costs its number of operations, not their arithmetic)."""

from __future__ import annotations

import torch


def draw_index(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs`` (N, K) (non-negative weights, positive sums), drawn in proportion
    to the weights: (N,) long.

    The same draw as ``torch.multinomial(probs, 1, generator=generator)[:, 0]``, value for value and
    with the same generator state after it: multinomial's one-sample path takes the argmax of
    ``probs / E`` with ``E ~ Exp(1)`` drawn from the generator (the exponential race; the smallest
    ``E_k / p_k`` wins with probability ``p_k / sum p``), which this does without multinomial's
    per-call validation of ``probs`` (``tests/test_head_draws.py`` holds them equal)."""
    race = torch.empty_like(probs).exponential_(generator=generator)
    return torch.div(probs, race, out=race).argmax(1)
