"""Run configurations and run directories.

A run configuration is ``{"model": {...}, "data": {...}, "train": {...}}`` (a preset, or a JSON
file of the same form). A run directory holds ``config.json`` (the resolved configuration, with the
model's image shape, levels and classes filled in from the data), ``checkpoint.safetensors``,
``metrics.jsonl``, ``samples/*.png`` and TensorBoard events.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from ..devices import resolve_device
from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json
from ..registry import create_model, did_you_mean, list_presets, load_preset
from .runner import load_plan_weights

RUN_CONFIG = "config.json"


def load_config(preset_or_path: str) -> dict:
    """A preset by name, or a JSON configuration file by path."""
    if preset_or_path in list_presets():
        return load_preset(preset_or_path)
    path = Path(preset_or_path)
    if not path.is_file():
        raise ConfigError(f"{preset_or_path!r} is neither a preset nor a config file"
                          f"{did_you_mean(preset_or_path, list_presets())}; see `pixelzoo presets`")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or "model" not in config or "data" not in config:
        raise ConfigError(f"{path}: a run config needs 'model' and 'data' sections")
    return config


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: dict, assignments: list[str]) -> dict:
    """``section.key=value`` assignments (value parsed as JSON when it parses, else a string); a
    composite's per-part trainer options are ``train_parts.PART.KEY=VALUE``."""
    config = copy.deepcopy(config)
    for item in assignments:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if (not sep or len(parts) < 2 or parts[0] not in ("model", "data", "train", "train_parts")
                or (parts[0] == "train_parts" and len(parts) != 3) or not all(parts)):
            raise ConfigError(f"--set {item!r}: expected model.KEY=VALUE, data.KEY=VALUE, train.KEY=VALUE or "
                              "train_parts.PART.KEY=VALUE")
        if config.get(parts[0]) is None:
            config[parts[0]] = {}
        node = config[parts[0]]
        for i, p in enumerate(parts[1:-1], 1):
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is {node!r}, not a section")
        node[parts[-1]] = _parse_value(value)
    return config


def resolve_model_config(model_cfg: dict, splits) -> dict:
    """Fill the data-dependent model arguments (image shape, levels, classes) from the data set.

    A value the configuration gives already must agree with the data's (else a ConfigError naming
    both). Classes: the data's labels unless ``class_conditional`` is false or ``num_classes`` is
    given as null (an unconditional model); a class-conditional model on data without labels is a
    ConfigError saying how to ask for an unconditional one."""
    cfg = dict(model_cfg)
    class_conditional = cfg.pop("class_conditional", True)
    name = getattr(getattr(splits, "train", None), "name", None)
    data = f"the data {name!r}" if name else "the data"
    given_shape = cfg.get("image_shape")
    if given_shape is not None and _as_list(given_shape) != list(splits.image_shape):
        raise ConfigError(f"model.image_shape {given_shape} disagrees with {data}, whose images are "
                          f"{list(splits.image_shape)}: leave model.image_shape out (it comes from the data)")
    given_levels = cfg.get("num_levels")
    if given_levels is not None and given_levels != splits.num_levels:
        raise ConfigError(f"model.num_levels {given_levels!r} disagrees with {data}, which has "
                          f"{splits.num_levels} levels: leave model.num_levels out (it comes from the data)")
    cfg["image_shape"] = list(splits.image_shape)
    cfg["num_levels"] = splits.num_levels
    if "num_classes" in cfg:
        given = cfg["num_classes"]
        if given is not None and (not class_conditional or given != splits.num_classes):
            has = (f"has {splits.num_classes} classes" if splits.num_classes is not None else "has no labels")
            why = "model.class_conditional is false" if not class_conditional else f"{data} {has}"
            raise ConfigError(f"model.num_classes {given!r} disagrees with the data: {why}; leave model.num_classes "
                              "out (it comes from the data) or set it to null for an unconditional model")
        return cfg  # null: asked for an unconditional model
    if class_conditional and splits.num_classes is None:
        raise ConfigError(f"this model is class-conditional but {data} has no labels; to train it unconditionally, "
                          "set model.num_classes to null (--set model.num_classes=null, or \"num_classes\": null "
                          "in the config's model section)")
    cfg["num_classes"] = splits.num_classes if class_conditional else None
    return cfg


def _as_list(value):
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        return value


def build_model(model_cfg: dict):
    cfg = dict(model_cfg)
    return create_model(cfg.pop("name"), **cfg)


def new_run_dir(base: str | os.PathLike) -> Path:
    """``base`` if it is free, else ``base-1``, ``base-2``, ...: an existing run is never overwritten."""
    base = Path(base)
    path, k = base, 0
    while path.exists() and any(path.iterdir()):
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_run_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {run_dir} is not a pixelzoo run directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


def write_run_config(run_dir, config: dict) -> None:
    atomic_write_json(config, Path(run_dir) / RUN_CONFIG)


def load_run_model(run_dir: str | os.PathLike, device="cpu"):
    """The model of a run with its evaluation weights (Polyak average if kept), in eval mode on
    ``device`` (``pixelzoo.devices.resolve_device``: "cpu", "cuda", "cuda:N", "auto"; None:
    ``$PIXELZOO_DEVICE`` or auto), whichever device it was trained on: every unit of its training plan
    from its directory."""
    device = resolve_device(device)  # a bad or absent device fails first
    config = read_run_config(run_dir)
    model = build_model(config["model"]).to(device)
    load_plan_weights(model.training_plan(), run_dir)
    return model.eval(), config
