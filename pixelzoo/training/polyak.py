"""Polyak averaging: an exponential moving average of the weights, swapped in to evaluate and sample."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


class Polyak:
    def __init__(self, model: nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """The decay used after optimizer step ``step`` (1-based): min(decay, (1 + step) / (10 + step)).

        A plain average with decay 0.999 still gives the random initial weights a weight of
        0.999 ** 600 = 0.55 after 600 steps; the warm-up lets the average forget them early."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = self.decay_at(step)
        for k, v in self.model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v, 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    @contextlib.contextmanager
    def applied(self):
        """Temporarily load the averaged weights into the model."""
        saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.shadow)
        try:
            yield self.model
        finally:
            self.model.load_state_dict(saved)
