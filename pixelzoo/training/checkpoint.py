"""Training checkpoints: one safetensors file holding the weights, the Polyak weights and the
optimizer state, with the step and the optimizer's non-tensor state as JSON metadata. Written to a
temporary file and renamed, so the previous checkpoint survives any interruption. Tensors are
written from the CPU and read onto it, then copied to the device of the objects they restore."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..io import load_tensors, read_metadata, save_tensors
from ..io import load_state_strict

CHECKPOINT_NAME = "checkpoint.safetensors"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        plain["state"][str(idx)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain["state"][str(idx)][key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state = {int(idx): dict(entry) for idx, entry in plain["state"].items()}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(path: str | os.PathLike, step: int, model, optimizer, polyak=None) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if polyak is not None:
        tensors.update({f"ema.{k}": v for k, v in polyak.shadow.items()})
    opt_tensors, opt_plain = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    metadata = {"step": str(step), "optimizer": json.dumps(opt_plain), "format": "pixelzoo-checkpoint-1"}
    save_tensors(tensors, path, metadata)


def read_checkpoint(path: str | os.PathLike) -> tuple[int, dict[str, dict[str, torch.Tensor]], dict]:
    """(step, {"model": ..., "ema": ..., "optim": ...} tensors, optimizer JSON state)."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != "pixelzoo-checkpoint-1":
        raise CheckpointError(f"{path} is not a pixelzoo training checkpoint")
    try:
        step = int(meta["step"])
        opt_plain = json.loads(meta["optimizer"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: {e}") from e
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}}
    for name, value in load_tensors(path).items():
        prefix, rest = name.split(".", 1)
        if prefix not in groups:
            raise CheckpointError(f"{path}: unexpected tensor {name!r}")
        groups[prefix][rest if prefix != "optim" else name] = value
    return step, groups, opt_plain


def load_checkpoint(path, model, optimizer=None, polyak=None) -> int:
    """Restore a checkpoint into the given objects, on whatever device they are (a checkpoint
    written on one device loads on any other); returns its step."""
    step, groups, opt_plain = read_checkpoint(path)
    load_state_strict(model, groups["model"], str(path))
    if polyak is not None:
        if set(groups["ema"]) != set(polyak.shadow):
            raise CheckpointError(f"{path} has no matching Polyak weights but the run uses them")
        # on the device of the weights they average (the checkpoint is read onto the CPU)
        polyak.shadow = {k: groups["ema"][k].to(v.device, copy=True) for k, v in polyak.shadow.items()}
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_unflatten_optimizer(groups["optim"], opt_plain))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match the model: {e}") from e
    return step


def evaluation_weights(path) -> dict[str, torch.Tensor]:
    """The weights to evaluate and sample with: the Polyak average when the run kept one."""
    _, groups, _ = read_checkpoint(path)
    return groups["ema"] or groups["model"]
