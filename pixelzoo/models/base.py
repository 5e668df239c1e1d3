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

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json, save_tensors


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


CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PARTS_DIR = "parts"


class PixelzooModel(nn.Module):
    """What every pixelzoo model has besides its own methods: a training plan and saving.

    ``config`` is recorded at construction by the registry (``@register_model``)."""

    config: dict

    def training_plan(self) -> TrainingPlan:
        return single_unit_plan(self)

    def saved_parts(self) -> dict[str, nn.Module] | None:
        """The parts whose weights are saved one folder each (a chain's parts hold all its state), or
        None: the model's weights are saved as one file."""
        return None

    def save_pretrained(self, directory) -> None:
        """``config.json`` and the weights (``model.safetensors``, or ``parts/NAME/``; see
        ``pixelzoo.pretrained``), each file written atomically."""
        if not getattr(self, "config", None):
            raise CheckpointError(f"{type(self).__name__} has no config: build it with pixelzoo.create_model, a "
                                  "registered builder or a registered class to save it")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        parts = self.saved_parts()
        if parts is None:
            save_tensors(self.state_dict(), directory / WEIGHTS_NAME)
        else:
            for name, part in parts.items():
                save_tensors(part.state_dict(), directory / PARTS_DIR / name / WEIGHTS_NAME)
                if getattr(part, "config", None):
                    atomic_write_json(part.config, directory / PARTS_DIR / name / CONFIG_NAME)
        atomic_write_json(self.config, directory / CONFIG_NAME)
