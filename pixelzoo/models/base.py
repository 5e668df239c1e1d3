"""Training plans: how a model trains, as stages of units.

A *unit* is what one optimizer trains: the module whose parameters it updates (one part, or a
module holding several parts that train jointly), the data it reads, the loss it minimises and its
own sub-run directory. Units of one stage are independent (they may train in parallel processes,
``pixelzoo train ... --part NAME``); a later stage starts from the trained (evaluation) weights of
the earlier ones and may read the levels they make (through the level cache). A plain model is a
plan of one unit, named None, trained in the run directory itself; a composite's units are its
parts, each in ``RUN/parts/NAME``. ``pixelzoo.training`` has the one runner that trains any plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import ConfigError


def _same_splits(splits, cache_dir=None, write_cache=True):
    return splits


@dataclass
class Unit:
    """One thing to train.

    ``module``: its parameters are what the optimizer updates (and what its checkpoint, Polyak
    weights and evaluation hold). ``data(splits, cache_dir, write_cache)``: the ``DataSplits`` it
    trains and is evaluated on (``extras`` go to ``loss`` as keyword arguments). ``loss(x, y,
    **extras) -> {"loss": scalar, ...}``: None means ``module.loss``, looked up at each step.
    ``directory``: relative to the run directory.
    """

    name: str | None
    module: nn.Module
    data: Callable = _same_splits
    loss: Callable | None = None
    directory: str = "."

    def path(self, run_dir) -> Path:
        return Path(run_dir) / self.directory


@dataclass
class TrainingPlan:
    stages: list[list[Unit]] = field(default_factory=list)

    @property
    def units(self) -> list[Unit]:
        return [u for stage in self.stages for u in stage]

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.units if u.name is not None]

    @property
    def is_single(self) -> bool:
        """One unit with no name: a plain model, trained in the run directory itself."""
        return len(self.units) == 1 and self.units[0].name is None

    def unit(self, name: str | None) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise ConfigError(f"unknown part {name!r}; this model's parts are {self.names}")


def single_unit_plan(model: nn.Module) -> TrainingPlan:
    """The plan of a plain model: the whole model, its ``loss``, the run's data, the run directory."""
    return TrainingPlan([[Unit(None, model)]])


class PixelzooModel(nn.Module):
    """What every pixelzoo model has besides its own methods: a training plan and saving.

    ``config`` is recorded at construction by the registry (``@register_model``)."""

    config: dict

    def training_plan(self) -> TrainingPlan:
        return single_unit_plan(self)

    def save_pretrained(self, directory) -> None:
        from ..pretrained import save_pretrained

        save_pretrained(self, directory)
