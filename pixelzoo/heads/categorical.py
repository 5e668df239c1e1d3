"""Categorical head: a softmax over the ``K`` levels of each sub-pixel (van den Oord et al. 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Head


class CategoricalHead(Head):
    """``K`` logits per sub-pixel; the logits of channel ``c`` are parameter group ``c``."""

    def num_params(self) -> int:
        return self.channels * self.num_levels

    def param_groups(self) -> torch.Tensor:
        return torch.arange(self.channels).repeat_interleave(self.num_levels)

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        b, _, h, w = raw.shape
        return raw.view(b, self.channels, self.num_levels, h, w)

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(sp, dim=2)
        return logp.gather(2, x.long().unsqueeze(2)).squeeze(2)

    def sample(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample from softmax(logits / temperature); temperature 0 takes the most likely level."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0:
            return sp.argmax(dim=1)
        probs = F.softmax(sp.float() / temperature, dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
