"""Models by name, and presets (named configurations) from the JSON files in ``pixelzoo/configs``.

A preset file holds ``{"model": {"name": ..., hyper-parameters}, "data": {"name": ..., options},
"train": {trainer options}}``; the image shape, levels and classes come from the data set.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Callable

import torch.nn as nn

from .errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    if name in _MODELS:
        raise ConfigError(f"model {name!r} is registered twice")
    _MODELS[name] = builder


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, image_shape, num_levels: int = 256, num_classes: int | None = None, **hparams) -> nn.Module:
    """Build the registered model ``name`` for images of ``image_shape`` (C, H, W)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (C, H, W), got {image_shape}")
    try:
        model = _MODELS[name](image_shape, int(num_levels), num_classes, **hparams)
    except TypeError as e:
        raise ConfigError(f"bad hyper-parameters for model {name!r}: {e}") from e
    model.config = {
        "name": name,
        "image_shape": list(image_shape),
        "num_levels": int(num_levels),
        "num_classes": num_classes,
        **copy.deepcopy(hparams),
    }
    return model


def _preset_root():
    return resources.files("pixelzoo") / "configs"


def list_presets() -> list[str]:
    names = []
    for family in _preset_root().iterdir():
        if family.is_dir():
            names += [f"{family.name}/{f.name[:-5]}" for f in family.iterdir() if f.name.endswith(".json")]
    return sorted(names)


def load_preset(name: str) -> dict:
    """The configuration dict of preset ``name`` (e.g. ``gated_pixelcnn/digits``)."""
    if name not in list_presets():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    family, leaf = name.split("/", 1)
    text = (_preset_root() / family / f"{leaf}.json").read_text()
    config = json.loads(text)
    config["preset"] = name
    return config


def _register_builtin() -> None:
    from .models import build_gated_pixelcnn, build_pixelcnnpp
    from .models.pixelsnail import build_pixelsnail

    register_model("gated_pixelcnn", build_gated_pixelcnn)
    register_model("pixelcnnpp", build_pixelcnnpp)
    register_model("pixelsnail", build_pixelsnail)

    from .models.pixeliqn import build_pixeliqn

    register_model("pixeliqn", build_pixeliqn)

    from .models.vqvae2 import build_vqvae2_model

    register_model("vqvae2", build_vqvae2_model)

    from .models.aux_pixelcnn import build_grayscale_pixelcnn, build_pyramid_pixelcnn

    register_model("grayscale_pixelcnn", build_grayscale_pixelcnn)
    register_model("pyramid_pixelcnn", build_pyramid_pixelcnn)


_register_builtin()
