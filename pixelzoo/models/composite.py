"""Composite models: a chain of levels whose parts are trained one stage at a time.

Every model in scope is a chain of levels x_0 (the pixels), x_1, ..., x_L: the top level has an
autoregressive prior, every level below a model conditioned on the level above. A composite names
its parts (``parts``, a ModuleDict), groups them into ``stages`` (parts of one stage are independent
and may train in parallel processes; a stage may need the trained parts of earlier ones, as a
prior over codes needs the trained encoder), and says what each part is trained on
(``part_data``): a ``DataSplits`` whose images are the level the part models and whose ``extras``
hold what it is conditioned on. Each part is a module with ``loss(x, y, **extras)`` and, for
likelihood models, ``log_prob``; the generic ``Trainer`` trains it as it trains any model.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn


class CompositeModel(nn.Module):
    #: the part names, stage by stage
    stages: list[list[str]]
    parts: nn.ModuleDict
    image_shape: tuple[int, int, int]
    num_levels: int
    num_classes: int | None

    @property
    def part_names(self) -> list[str]:
        return [name for stage in self.stages for name in stage]

    def part_data(self, name: str, splits, cache_dir: Path | None = None):
        """The ``DataSplits`` part ``name`` trains and is evaluated on."""
        raise NotImplementedError(f"{type(self).__name__} must define part_data")

    def log_prob_parts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per part, log-probability in nats of each image's share, (B,); their sum is log p(x, levels)."""
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    @property
    def has_likelihood(self) -> bool:
        return type(self).log_prob_parts is not CompositeModel.log_prob_parts

    def bits_per_dim_parts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each part's bits per dimension *of x*, (B,): they add up to ``bits_per_dim``."""
        dims = math.prod(self.image_shape) * math.log(2.0)
        return {k: -v / dims for k, v in self.log_prob_parts(x, y).items()}

    def bits_per_dim(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """-log2 p(x, levels above) / dims of x: an upper bound on -log2 p(x) / dims, (B,)."""
        return sum(self.bits_per_dim_parts(x, y).values())

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, levels above) in nats per image, (B,)."""
        return sum(self.log_prob_parts(x, y).values())

    def sample(self, n: int, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """``n`` images drawn ancestrally from the top level down."""
        raise NotImplementedError(f"{type(self).__name__} must define sample")
