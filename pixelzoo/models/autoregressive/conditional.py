"""A conditional autoregressive model p(x | cond, y): every block of the trunk sees f(cond), the
output of a non-causal network over the conditioning input (an auxiliary view of the image, or the
codes of the level above), through the trunk's spatial conditioning path."""

from __future__ import annotations

import torch
import torch.nn as nn

from ...devices import module_device
from ...errors import ConfigError
from .model import AutoregressiveModel
from ...nn.modes import eval_mode
from ..base import Part, SamplesImages


class ConditionalAR(Part, SamplesImages):
    """``ar`` (built with ``spatial_channels`` = the output channels of ``cond_net``) + ``cond_net``.

    ``cond_net`` maps the conditioning tensor to a (B, spatial_channels, H, W) map at the image's
    resolution; it may see all of ``cond``, since ``cond`` is given, not modelled.
    """

    def __init__(self, ar: AutoregressiveModel, cond_net: nn.Module):
        super().__init__()
        self.ar = ar
        self.cond_net = cond_net

    @property
    def num_classes(self):
        return self.ar.num_classes

    @property
    def num_levels(self):
        return self.ar.num_levels

    @property
    def image_shape(self):
        return self.ar.image_shape

    @property
    def has_likelihood(self) -> bool:
        return self.ar.has_likelihood

    def spatial(self, cond: torch.Tensor) -> torch.Tensor:
        if cond is None:
            raise ConfigError("this part is conditioned on the level above it: pass cond=")
        if isinstance(cond, torch.Tensor):  # a given level may come from the CPU
            cond = cond.to(module_device(self.cond_net))
        return self.cond_net(cond)

    def labels(self, y):
        """The class labels the AR model takes: ``y`` (a part whose decoder is never class-conditional,
        in a class-conditional chain, overrides this to drop them)."""
        return y

    def loss(self, x, y=None, cond=None) -> dict:
        return self.ar.loss(x, self.labels(y), spatial=self.spatial(cond))

    def log_prob(self, x, y=None, cond=None) -> torch.Tensor:
        return self.ar.log_prob(x, self.labels(y), spatial=self.spatial(cond))

    @torch.no_grad()
    def bits_per_dim(self, x, y=None, cond=None) -> torch.Tensor:
        return self.ar.bits_per_dim(x, self.labels(y), spatial=self.spatial(cond))

    @torch.no_grad()
    def sample(self, n, y=None, cond=None, **kwargs) -> torch.Tensor:
        """``n`` samples given ``cond`` (B rows, B dividing n: n / B samples per conditioning input)."""
        with eval_mode(self):
            spatial = self.spatial(cond)
        return self.ar.sample(n, y=self.labels(y), spatial=spatial, **kwargs)
