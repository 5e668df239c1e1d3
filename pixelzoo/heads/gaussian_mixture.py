"""A mixture of Gaussians per sub-pixel on an unbounded scale: the likelihood head of a continuous
level (a VAE's latents), next to the implicit quantile head with ``continuous=True``.

Per sub-pixel ``M`` logits, ``M`` means and ``M`` log-standard-deviations (parameter group ``c`` for
channel ``c``); ``log_prob`` is the log-density ``log sum_k pi_k N(x; mu_k, sigma_k^2)`` in nats (a
density, so "bits/dim" of a continuous level is a differential entropy bound, not a code length).
On a trunk that does not mask channels, ``enable_channel_order`` lets the means of channel ``c`` move
linearly with the same position's channels ``< c`` (a strictly lower-triangular map).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Head, full_precision

LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixtureHead(Head):
    """``n_mix`` Gaussians per sub-pixel of a continuous level (``num_levels`` is unused)."""

    continuous = True

    def __init__(self, num_levels: int, channels: int, n_mix: int = 5, min_log_scale: float = -7.0):
        super().__init__(num_levels, channels)
        if int(n_mix) != n_mix or n_mix < 1:
            raise ConfigError(f"n_mix must be a positive integer, got {n_mix!r}")
        self.n_mix = int(n_mix)
        self.min_log_scale = float(min_log_scale)

    def num_params(self) -> int:
        return self.channels * 3 * self.n_mix

    def param_groups(self) -> torch.Tensor:
        return torch.arange(self.channels).repeat_interleave(3 * self.n_mix)

    def enable_channel_order(self) -> None:
        """Let the means of channel ``c`` depend linearly on the same position's channels ``< c``."""
        if self.models_channel_order or self.channels == 1:
            self.models_channel_order = True
            return
        c, m = self.channels, self.n_mix
        self.channel_order = nn.Parameter(torch.zeros(c * m, c))
        mask = (torch.arange(c)[None, :] < torch.arange(c).repeat_interleave(m)[:, None]).float()
        self.register_buffer("channel_order_mask", mask, persistent=False)
        self.models_channel_order = True

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, C*3M, H, W) -> (B, C, 3M, H, W): logits, means, log-scales (clamped below)."""
        b, _, h, w = raw.shape
        m = self.n_mix
        sp = full_precision(raw).reshape(b, self.channels, 3 * m, h, w)
        logits, means, log_s = sp[:, :, :m], sp[:, :, m:2 * m], sp[:, :, 2 * m:]
        if getattr(self, "channel_order", None) is not None:
            weight = (self.channel_order * self.channel_order_mask).to(sp.dtype)
            shift = torch.einsum("oc,bchw->bohw", weight, full_precision(x_scaled).to(sp.dtype))
            means = means + shift.reshape(b, self.channels, m, h, w)
        return torch.cat([logits, means, log_s.clamp(min=self.min_log_scale)], dim=2)

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log-density of the values ``x`` (B, C, H, W) in nats per sub-pixel."""
        m = self.n_mix
        sp = full_precision(sp)
        logits, means, log_s = sp[:, :, :m], sp[:, :, m:2 * m], sp[:, :, 2 * m:]
        z = (x.to(sp.dtype).unsqueeze(2) - means) * torch.exp(-log_s)
        comp = -0.5 * (LOG_2PI + z * z) - log_s
        return torch.logsumexp(F.log_softmax(logits, dim=2) + comp, dim=2)

    def draw(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
             **options) -> torch.Tensor:
        """A component by its weight, then mean + temperature * sigma * N(0, 1); (N,) floats."""
        if options:
            raise ConfigError(f"the Gaussian mixture head takes no sampling options, got {sorted(options)}")
        m = self.n_mix
        sp = full_precision(sp)
        probs = F.softmax(sp[:, :m], dim=1)
        k = torch.multinomial(probs.cpu(), 1, generator=generator).to(sp.device)
        mean = sp[:, m:2 * m].gather(1, k).squeeze(1)
        sd = torch.exp(sp[:, 2 * m:].gather(1, k).squeeze(1))
        eps = torch.randn(mean.shape, generator=generator).to(sp.device, sp.dtype)
        return mean + float(temperature) * sd * eps
