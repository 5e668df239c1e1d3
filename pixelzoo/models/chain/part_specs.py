"""The parts of a composite from their specs in the config: a dict of hyper-parameters over the
builder's defaults, and the autoregressive parts built by name through the registry."""

from __future__ import annotations

import copy

from ...errors import ConfigError
from ...registry import create_model
from ..autoregressive.model import AutoregressiveModel


def part_spec(given, default: dict, what: str) -> dict:
    """``default`` updated by ``given``; when ``given`` names another model, ``default``'s
    hyper-parameters (which belong to the default model) are not used."""
    if given is None:
        return copy.deepcopy(default)
    if not isinstance(given, dict):
        raise ConfigError(f"{what} must be a dict of hyper-parameters, got {type(given).__name__}")
    name = given.get("name", default.get("name"))
    base = copy.deepcopy(default) if name == default.get("name") else {"name": name}
    base.update(copy.deepcopy(given))
    return base


def build_ar_part(spec: dict, image_shape, num_levels: int, num_classes, what: str, spatial_channels: int = 0):
    """An autoregressive part (a registered trunk + head model) from its ``spec`` (``name`` and
    hyper-parameters); ``spatial_channels``: the channels of the conditioning map its trunk takes."""
    hp = dict(spec)
    name = hp.pop("name", None)
    if not name:
        raise ConfigError(f"{what}: give the trunk's registered model name, e.g. {{'name': 'gated_pixelcnn'}}")
    if spatial_channels:
        if "spatial_channels" in hp:
            raise ConfigError(f"{what}: spatial_channels is set from the embedding's out_channels; do not give it")
        hp["spatial_channels"] = spatial_channels
    model = create_model(name, image_shape, num_levels, num_classes, **hp)
    if not isinstance(model, AutoregressiveModel):
        raise ConfigError(f"{what}: {name!r} is not an autoregressive model (trunk + head)")
    return model
