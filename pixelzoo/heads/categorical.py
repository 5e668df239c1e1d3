"""Categorical head: a softmax over the ``K`` levels of each sub-pixel (van den Oord et al. 2016)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..devices import full_precision_region
from ..errors import ConfigError
from .base import Head, full_precision
from .draws import draw_index


class CategoricalHead(Head):
    """``K`` logits per sub-pixel; the logits of channel ``c`` are parameter group ``c``.

    On a trunk that masks colour channels, channel ``c``'s logits come from feature group ``c`` and
    so already see the pixel's channels ``< c``. On a trunk that does not, ``enable_channel_order``
    adds a learned linear map of the same pixel's earlier sub-pixels (their [-1, 1] values) to the
    logits: ``logits_c += W_c x_<c`` with ``W`` strictly lower-triangular across channels. A linear
    term in ``x_c'`` tilts the softmax, which together with the trunk's logits can express, e.g., a
    peak that follows the earlier channel's value.
    """

    def num_params(self) -> int:
        return self.channels * self.num_levels

    def param_groups(self) -> torch.Tensor:
        return torch.arange(self.channels).repeat_interleave(self.num_levels)

    def enable_channel_order(self) -> None:
        """Let channel ``c``'s logits depend on sub-pixels ``< c`` of the same pixel (for trunks that
        do not mask colour channels). Adds the parameter ``channel_order`` (C*K, C)."""
        if self.models_channel_order or self.channels == 1:
            self.models_channel_order = True
            return
        c, k = self.channels, self.num_levels
        weight = torch.empty(c * k, c)
        nn.init.normal_(weight, std=0.1)
        self.channel_order = nn.Parameter(weight)
        mask = (torch.arange(c)[None, :] < torch.arange(c).repeat_interleave(k)[:, None]).float()
        self.register_buffer("channel_order_mask", mask, persistent=False)
        self.models_channel_order = True

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """Acts on each pixel separately."""
        b, _, h, w = raw.shape
        if getattr(self, "channel_order", None) is not None:
            with full_precision_region(raw.device):
                raw = full_precision(raw)
                weight = (self.channel_order * self.channel_order_mask).to(raw.dtype)
                raw = raw + torch.einsum("oc,bchw->bohw", weight, x_scaled.to(raw.dtype))
        return raw.reshape(b, self.channels, self.num_levels, h, w)

    def step_params(self, raw: torch.Tensor, c: int, pixel) -> torch.Tensor:
        """Channel ``c``'s logits: a slice of ``raw`` (without ``channel_order``, the pixel is not read).
        Looked up in ``_parameters``: a missing attribute costs nn.Module a raised exception per step."""
        if self._parameters.get("channel_order") is not None:
            return super().step_params(raw, c, pixel)
        return raw[:, c * self.num_levels : (c + 1) * self.num_levels]

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(full_precision(sp), dim=2)
        return logp.gather(2, x.long().unsqueeze(2)).squeeze(2)

    def draw(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
             **options) -> torch.Tensor:
        """Sample from softmax(logits / temperature); temperature 0, or ``mode="map"``, takes the most
        likely level."""
        mode = "sample"
        if options:  # checked only when given: a sampling step is a few microseconds
            unknown = sorted(set(options) - {"mode"})
            if unknown:
                raise ConfigError(f"unknown sampling options {unknown} for the categorical head; valid: ['mode']")
            mode = options.get("mode") or "sample"
            if mode not in ("sample", "map"):
                raise ConfigError(f"sampling mode must be 'sample' or 'map', got {mode!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0 or mode == "map":
            return sp.argmax(dim=1)
        logits = sp.float()
        if temperature != 1.0:  # dividing by 1 changes nothing: one operation less per step
            logits = logits / temperature
        return draw_index(logits.softmax(1), generator)
