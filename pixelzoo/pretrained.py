"""``save_pretrained`` / ``load_pretrained``: one mechanism for every model, never a pickle.

A model saves ``config.json`` (the config it recorded at construction) and its weights as
``model.safetensors``. A model whose state lies in parts (a chain) saves ``config.json`` and one
folder per part, ``parts/NAME/model.safetensors`` (with the part's own ``config.json`` when the part
is a registered model, so that folder loads alone with ``load_pretrained``). The writing is
``PixelzooModel.save_pretrained``; this module adds the function form and the loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .devices import resolve_device
from .errors import CheckpointError
from .io import load_state_strict, load_tensors
from .models.base import CONFIG_NAME, PARTS_DIR, WEIGHTS_NAME, PixelzooModel
from .registry import create_model
from .zoo import CHECKSUMS, is_zoo_name, verify, zoo_entry


def save_pretrained(model: PixelzooModel, directory: str | os.PathLike) -> None:
    """``model.save_pretrained(directory)``, for any pixelzoo model."""
    if not isinstance(model, PixelzooModel):
        raise CheckpointError(f"{type(model).__name__} is not a pixelzoo model: build it with pixelzoo.create_model, "
                              "a registered builder or a registered class to save it")
    model.save_pretrained(directory)


def check_tensors(module: torch.nn.Module, state: dict, path, half_stored: bool = False) -> dict:
    """``state`` unchanged when every tensor has the dtype of the ``module``'s tensor of that name and
    every floating tensor is finite; else a CheckpointError naming the file and the tensor (a weight
    file written as int64, truncating every weight, or holding NaN loads without complaint otherwise).
    With ``half_stored``, float16 tensors where the module has float32 are accepted and widened (the
    zoo's half-precision weights). Missing and unexpected names are ``load_state_strict``'s to report."""
    own = module.state_dict()
    if half_stored:
        state = {k: v.float() if k in own and v.dtype == torch.float16 and own[k].dtype == torch.float32 else v
                 for k, v in state.items()}
    for name, tensor in state.items():
        if name in own and tensor.dtype != own[name].dtype:
            raise CheckpointError(f"{path}: tensor {name!r} is {tensor.dtype}, the model's is {own[name].dtype}: "
                                  "the file was not written by this model's save_pretrained")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: tensor {name!r} holds {bad} NaN or infinite value(s) of "
                                  f"{tensor.numel()}: the weights are broken")
    return state


def load_pretrained(directory: str | os.PathLike, map_location: str | torch.device = "cpu",
                    half_stored: bool = False) -> PixelzooModel:
    """The model saved in ``directory``, in eval mode on ``map_location`` ("cpu", "cuda", "cuda:N",
    "auto", a ``torch.device``; None: ``$PIXELZOO_DEVICE`` or auto), wherever it was saved from.
    ``half_stored``: float16 weights of float32 tensors are widened (:func:`check_tensors`).
    ``"zoo:NAME"`` loads a model of the zoo (``pixelzoo.zoo``), its checksums verified first, as does
    the folder of an entry (one holding the zoo's checksum file), wherever it is."""
    if is_zoo_name(directory):
        directory, half_stored = zoo_entry(str(directory)), True  # its checksums verified
    directory = Path(directory)
    if (directory / CHECKSUMS).is_file():  # a zoo entry given by its folder (a copy, or one just exported)
        verify(directory)
        half_stored = True
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
    parts = model.saved_parts()
    if parts is None:
        path = directory / WEIGHTS_NAME
        load_state_strict(model, check_tensors(model, load_tensors(path, device), path, half_stored), str(path))
    else:
        for part_name, part in parts.items():
            path = directory / PARTS_DIR / part_name / WEIGHTS_NAME
            load_state_strict(part, check_tensors(part, load_tensors(path, device), path, half_stored), str(path))
    model.eval()
    return model
