"""The output distribution of one autoregressive step, separate from the network that feeds it.

A head turns the trunk's raw output ``raw`` (B, num_params(C), H, W) into *sub-pixel parameters*
``sp`` (B, C, P, H, W): ``sp[:, c, :, i, j]`` fully describes the distribution of sub-pixel
``(i, j, c)`` given everything before it in raster order (earlier pixels, then channels ``< c`` of
the same pixel). ``log_prob`` scores integer images under those parameters and ``sample`` draws one
sub-pixel from them. Every raw parameter channel belongs to one colour group (``param_groups``): the
group of the first sub-pixel whose distribution uses it, which the output layer's channel mask obeys.

``subpixel_params`` acts on each pixel separately (the sampler calls it on one pixel at a time). A head
with ``models_channel_order`` makes channel ``c``'s parameters depend on the same pixel's channels
``< c`` itself (through ``x_scaled``), so it is valid on trunks that do not mask colour channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16 / bfloat16 (e.g. a trunk run under autocast): the heads'
    probabilities (differences of sigmoids, log-softmax over many levels) need the precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Head(nn.Module):
    """Base class of output heads over ``num_levels`` integer levels ``0 .. num_levels - 1``."""

    #: True when ``log_prob`` is a log-likelihood (bits/dim is defined).
    has_likelihood = True
    #: True when ``subpixel_params`` itself orders the channels of a pixel (see the module docstring).
    models_channel_order = False

    def __init__(self, num_levels: int, channels: int):
        super().__init__()
        self.num_levels = int(num_levels)
        self.channels = int(channels)

    def num_params(self) -> int:
        raise NotImplementedError

    def param_groups(self) -> torch.Tensor:
        raise NotImplementedError

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, num_params, H, W) -> (B, C, P, H, W); ``x_scaled`` is the input in [-1, 1] for heads
        that model the order of channels within a pixel themselves."""
        raise NotImplementedError

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_i | x_<i) in nats, (B, C, H, W), for integer ``x`` (B, C, H, W)."""
        raise NotImplementedError

    def sample(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               **options) -> torch.Tensor:
        """Draw integer levels (N,) from sub-pixel parameters (N, P). ``options`` are head-specific
        sampling options (e.g. ``mode="map"``); a head rejects options it does not know."""
        raise NotImplementedError
