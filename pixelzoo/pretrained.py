"""``save_pretrained`` / ``load_pretrained``: one mechanism for every model, never a pickle.

A model saves ``config.json`` (the config it recorded at construction) and its weights as
``model.safetensors``. A chain (a composite) saves ``config.json`` and one folder per part,
``parts/NAME/model.safetensors`` (with the part's own ``config.json`` when the part is a registered
model, so that folder loads alone with ``load_pretrained``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from .devices import resolve_device
from .errors import CheckpointError
from .io import atomic_write_json, load_tensors, save_tensors
from .models.chain.chain import Chain

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PARTS_DIR = "parts"


def _parts(model: nn.Module):
    """The parts of a chain (which hold all its state), else None."""
    return model.parts if isinstance(model, Chain) else None


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> None:
    if not getattr(model, "config", None):
        raise CheckpointError(f"{type(model).__name__} has no config: build it with pixelzoo.create_model, a "
                              "registered builder or a registered class to save it")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts = _parts(model)
    if parts is None:
        save_tensors(model.state_dict(), directory / WEIGHTS_NAME)
    else:
        for name, part in parts.items():
            save_tensors(part.state_dict(), directory / PARTS_DIR / name / WEIGHTS_NAME)
            if getattr(part, "config", None):
                atomic_write_json(part.config, directory / PARTS_DIR / name / CONFIG_NAME)
    atomic_write_json(model.config, directory / CONFIG_NAME)


def load_state_strict(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model``, naming missing, unexpected and mis-shaped keys on failure."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    badshape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or badshape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if badshape:
            parts.append(f"wrong shape {[(k, tuple(tensors[k].shape), tuple(own[k].shape)) for k in badshape[:5]]}")
        raise CheckpointError(f"{source} does not match the model: {'; '.join(parts)}")
    model.load_state_dict(tensors, strict=True)


def load_pretrained(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The model saved in ``directory``, in eval mode on ``map_location`` ("cpu", "cuda", "cuda:N",
    "auto", a ``torch.device``; None: ``$PIXELZOO_DEVICE`` or auto), wherever it was saved from."""
    from .registry import create_model

    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} not found: not a pretrained pixelzoo directory")
    try:
        config = json.loads(config_path.read_text())
        name = config.pop("name")
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
        raise CheckpointError(f"{config_path} is not a valid model config: {e}") from e
    device = resolve_device(map_location)
    model = create_model(name, **config).to(device)
    parts = _parts(model)
    if parts is None:
        load_state_strict(model, load_tensors(directory / WEIGHTS_NAME, device), str(directory / WEIGHTS_NAME))
    else:
        for part_name, part in parts.items():
            path = directory / PARTS_DIR / part_name / WEIGHTS_NAME
            load_state_strict(part, load_tensors(path, device), str(path))
    model.eval()
    return model
