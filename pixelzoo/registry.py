"""Models by name, and presets (named configurations) from the JSON files in ``pixelzoo/configs``.

A model registers itself where it is defined, with the decorator ``@register_model("name")`` on its
builder: a function ``(image_shape, num_levels, num_classes, **hparams) -> nn.Module`` or a class
with that constructor. The decorator makes the builder record the model's ``config`` (its name and
every argument) at construction, so ``save_pretrained`` works on a model however it was built:
``create_model``, the builder called directly, or the class constructed directly.

A preset file holds ``{"model": {"name": ..., hyper-parameters}, "data": {"name": ..., options},
"train": {trainer options}}``; the image shape, levels and classes come from the data set.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import numbers
from importlib import resources
from typing import Callable

import torch.nn as nn

from . import threads  # noqa: F401  (records PyTorch's thread count at import: threads.user_choice)
from .errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def model_config(name: str, image_shape, num_levels, num_classes=None, **hparams) -> dict:
    """The config a registered model records: what ``create_model(**config)`` rebuilds it from."""
    return {"name": name, "image_shape": [int(s) for s in image_shape], "num_levels": int(num_levels),
            "num_classes": None if num_classes is None else int(num_classes), **copy.deepcopy(hparams)}


def _bound_arguments(signature: inspect.Signature, args, kwargs, skip_self: bool) -> dict:
    bound = signature.bind(*((None,) if skip_self else ()), *args, **kwargs)
    out = {}
    for key, value in list(bound.arguments.items())[1 if skip_self else 0:]:
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            raise ConfigError(f"registered models take no *args; got {value}")
        else:
            out[key] = value
    return out


def _recording_class(name: str, cls: type) -> type:
    original = cls.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if type(self) is cls:  # a subclass registered under its own name records its own config
            self.config = model_config(name, **_bound_arguments(signature, args, kwargs, skip_self=True))

    cls.__init__ = __init__
    cls.registered_name = name
    return cls


def _recording_function(name: str, fn: Callable) -> Callable:
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, **kwargs):
        model = fn(*args, **kwargs)
        model.config = model_config(name, **_bound_arguments(signature, args, kwargs, skip_self=False))
        return model

    return build


def register_model(name: str, builder: Callable[..., nn.Module] | None = None):
    """Register ``builder`` as model ``name``: ``@register_model("name")`` on a builder function or
    class, or ``register_model("name", builder)``. Returns the recording builder."""
    def decorate(b):
        if name in _MODELS:
            raise ConfigError(f"model {name!r} is registered twice")
        recording = _recording_class(name, b) if isinstance(b, type) else _recording_function(name, b)
        _MODELS[name] = recording
        return recording

    return decorate if builder is None else decorate(builder)


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, image_shape, num_levels: int = 256, num_classes: int | None = None, **hparams) -> nn.Module:
    """Build the registered model ``name`` for images of ``image_shape`` (C, H, W)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}{did_you_mean(name, list_models())}; registered: "
                          f"{', '.join(list_models())}")
    image_shape, num_levels, num_classes = check_model_args(image_shape, num_levels, num_classes)
    try:
        return _MODELS[name](image_shape, num_levels, num_classes, **hparams)
    except TypeError as e:
        raise ConfigError(f"bad hyper-parameters for model {name!r}: {e}") from e


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, numbers.Integral)) or \
        (isinstance(value, float) and value.is_integer())


def check_model_args(image_shape, num_levels, num_classes) -> tuple:
    """``(image_shape, num_levels, num_classes)`` checked as the command line checks them: a (C, H, W)
    of positive integers, at least 2 levels, None or at least 1 class; anything else a ConfigError."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        raise ConfigError(f"image_shape must be (C, H, W), got {image_shape!r}") from None
    if len(shape) != 3 or not all(_is_int(s) and s >= 1 for s in shape):
        raise ConfigError(f"image_shape must be (C, H, W) of three positive integers, got {image_shape!r}")
    if not _is_int(num_levels) or num_levels < 2:
        raise ConfigError(f"num_levels must be an integer >= 2 (the values a sub-pixel takes), got {num_levels!r}")
    if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
        raise ConfigError(f"num_classes must be a positive integer, or None for an unconditional model; "
                          f"got {num_classes!r}")
    return (tuple(int(s) for s in shape), int(num_levels), None if num_classes is None else int(num_classes))


def did_you_mean(name: str, choices) -> str:
    """``"; did you mean a, b?"`` with the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


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
        raise ConfigError(f"unknown preset {name!r}{did_you_mean(name, list_presets())}; see `pixelzoo presets`")
    family, leaf = name.split("/", 1)
    text = (_preset_root() / family / f"{leaf}.json").read_text()
    config = json.loads(text)
    config["preset"] = name
    return config
