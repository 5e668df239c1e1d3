"""The pieces a chain is made of: a ``Level`` (a name, a shape, a domain), the makers of a level
from the level below (``View``, a fixed function; ``TrainedMaker``, a trained part), and the
``Link`` that says which part models a level given which levels above it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Level:
    """A level of the chain: ``shape`` (C, H, W); ``num_levels`` K for a discrete level, None for a
    continuous one; ``shown``: drawn as an image in level grids (code maps are not; a shown
    continuous level holds values on the data's [-1, 1] scale and is drawn on the data's levels)."""

    name: str
    shape: tuple
    num_levels: int | None
    shown: bool = True

    @property
    def discrete(self) -> bool:
        return self.num_levels is not None


@dataclass(frozen=True)
class View:
    """A fixed maker: ``target = fn(source)``, for integer tensors (B, C, H, W)."""

    source: str
    target: str
    fn: Callable

    @property
    def targets(self) -> tuple:
        return (self.target,)


@dataclass(frozen=True)
class TrainedMaker:
    """A trained maker: ``getattr(parts[part], method)(source)`` gives the ``targets`` in order
    (each (B, C, H, W), or (B, H, W) for a one-channel map); run in eval mode without gradients."""

    source: str
    targets: tuple
    part: str
    method: str = "encode"


@dataclass(frozen=True)
class Link:
    """The model of ``level``: the part ``part`` given the levels ``given`` (none: a prior);
    ``condition`` maps the given tensors (a list, in ``given``'s order) to the part's ``cond``
    (default: the single given tensor, or the list of them); ``method`` is the part's sampling
    method (default ``sample``)."""

    part: str
    level: str
    given: tuple = ()
    condition: Callable | None = None
    method: str = "sample"

    def cond(self, tensors: list):
        if self.condition is not None:
            return self.condition(tensors)
        return tensors[0] if len(tensors) == 1 else list(tensors)
