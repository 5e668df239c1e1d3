"""The model base: what a model or part declares it can do, and how it trains (training plans).

**Capabilities.** Every module the runner trains or a chain's link models is a ``Part``: it has
``loss(x, y, **extras) -> {"loss": scalar, ...}`` and declares ``has_likelihood`` (then it has
``log_prob`` per dimension) and ``num_classes`` (the labels it takes; None: unconditional). A model
declares what else it can do by deriving from the capability classes below (``SamplesImages``,
``SamplesLevels``, ``Encodes``, ``Reconstructs``, ``SamplesReconstructions``,
``ImportanceWeighted``); commands and evaluation check those with ``isinstance``, never by
probing for attributes.

**Training plans**: how a model trains, as stages of units.

A *unit* is what one optimizer trains: the module whose parameters it updates (one part, or a
module holding several parts that train jointly), the data it reads, the loss it minimises and its
own sub-run directory. Units of one stage are independent (they may train in parallel processes,
``pixelzoo train ... --part NAME``); a later stage starts from the trained (evaluation) weights of
the earlier ones and may read the levels they make (through the level cache). A plain model is a
plan of one unit, named None, trained in the run directory itself; a composite's units are its
parts, each in ``RUN/parts/NAME``. ``pixelzoo.training`` has the one runner that trains any plan.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json, save_tensors


class Part(nn.Module):
    """A module the runner can train and evaluate: ``loss(x, y, **extras)``; with ``has_likelihood``
    also ``log_prob(x, y, **extras)`` in nats per dimension; ``num_classes`` the labels it takes."""

    has_likelihood: bool = False
    num_classes: int | None = None


def takes_labels(module: nn.Module) -> bool:
    """Whether ``module`` declares that it takes class labels (a ``Part`` with ``num_classes``); a
    plain module a unit trains (several parts held together) declares nothing and takes none."""
    return isinstance(module, Part) and module.num_classes is not None


def has_likelihood(module: nn.Module) -> bool:
    """Whether ``module`` declares a likelihood (a ``Part`` with ``has_likelihood``)."""
    return isinstance(module, Part) and bool(module.has_likelihood)


# ---------------------------------------------------------------------- capabilities
class SamplesImages(ABC):
    """Draws images: ``sample(n, y=None, temperature=1.0, head_options=None, generator=None,
    progress=False, ...)`` -> integer images (n, C, H, W)."""

    @abstractmethod
    def sample(self, n: int, y=None, temperature=1.0, **options) -> torch.Tensor: ...


class SamplesLevels(ABC):
    """Draws several levels at once (a chain): ``sample_levels(n, ...)`` -> ``SampledLevels``, and
    ``level_grid(n, ...)``, the levels shown as images, top first."""

    @abstractmethod
    def sample_levels(self, n: int, y=None, temperature=1.0, **options): ...

    @abstractmethod
    def level_grid(self, n: int, **sample_options) -> list: ...


class Encodes(ABC):
    """Maps images to the levels (codes) a trained encoder makes: ``encode(x)``."""

    @abstractmethod
    def encode(self, x: torch.Tensor): ...


class Reconstructs(ABC):
    """A deterministic reconstruction: ``reconstruct(x)`` decodes the encoding of ``x`` (VQ-VAE-2),
    integer images of ``x``'s shape."""

    @abstractmethod
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


class SamplesReconstructions(ABC):
    """Sampled reconstructions: ``sample_reconstructions(x, n_per_image, y=None, temperature=1.0,
    head_options=None, generator=None, progress=False)`` -> ``SampledLevels`` (every level, the
    images under the data level's name): a latent or code of ``x``, then the levels below it
    sampled given it (AGAVE, De Fauw et al.)."""

    @abstractmethod
    def sample_reconstructions(self, x: torch.Tensor, n_per_image: int = 1, y=None, **options): ...


class ImportanceWeighted(ABC):
    """Importance weights of a latent-variable model: ``log_weights(x, k, y=None, generator=None)``
    -> (k, B) log p(x, z_i) - log q(z_i | x), for the ELBO and the IWAE bound."""

    @abstractmethod
    def log_weights(self, x: torch.Tensor, k: int, y=None, generator=None) -> torch.Tensor: ...


# ---------------------------------------------------------------------- helpers every model uses
def merge_options(given, defaults: dict, what: str) -> dict:
    """``defaults`` updated by the dict ``given`` (None: the defaults), deep-copied; a key that
    ``defaults`` lacks, or a ``given`` that is not a dict, is a ConfigError naming ``what``."""
    if given is None:
        return copy.deepcopy(defaults)
    if not isinstance(given, dict):
        raise ConfigError(f"{what} must be a dict of options, got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {unknown}; valid: {sorted(defaults)}")
    return {**copy.deepcopy(defaults), **copy.deepcopy(given)}


def _same_splits(splits, cache_dir=None, write_cache=True):
    return splits


@dataclass
class Unit:
    """One thing to train.

    ``module``: its parameters are what the optimizer updates (and what its checkpoint, Polyak
    weights and evaluation hold). ``data(splits, cache_dir, write_cache)``: the ``DataSplits`` it
    trains and is evaluated on (``extras`` go to ``loss`` as keyword arguments). ``loss(x, y,
    **extras) -> {"loss": scalar, ...}``: None means ``module.loss``, looked up at each step.
    ``directory``: relative to the run directory. ``on_images``: ``data`` gives the run's images as
    they are, without extras (so the training-memory estimate traces the unit on a batch of them);
    always so for the default ``data``.
    """

    name: str | None
    module: nn.Module
    data: Callable = _same_splits
    loss: Callable | None = None
    directory: str = "."
    on_images: bool = False

    @property
    def trains_on_images(self) -> bool:
        return self.on_images or self.data is _same_splits

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


class PixelzooModel(Part):
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
