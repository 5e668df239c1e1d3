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
from ..io import _size, atomic_write_json, check_writable, read_json, storage_error
from ..registry import create_model, did_you_mean, list_presets, load_preset
from ..zoo import is_zoo_name, run_config as zoo_run_config
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
    """The model of a configuration's model section; its top-level values checked against the types the
    model takes (``--set model.channels=abc`` names the key), and its parameters' memory against the
    machine's (estimated on the meta device, before anything is allocated)."""
    cfg = dict(model_cfg)
    name = cfg.pop("name")
    check_model_types(name, cfg)
    check_model_memory(name, cfg)
    return create_model(name, **cfg)


_KINDS = {bool: ("a boolean (true/false)", (bool,)), int: ("an integer", (int,)), float: ("a number", (int, float)),
          str: ("a string", (str,)), dict: ("an object", (dict,)), list: ("a list", (list, tuple))}
_ANNOTATIONS = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict, "list": list}


def _expected_type(param):
    """The type a model argument takes: its default's (not None), else its annotation's (``int | None``)."""
    import inspect

    if param.default is not inspect.Parameter.empty and param.default is not None:
        return type(param.default) if type(param.default) in _KINDS else None
    ann = param.annotation
    if isinstance(ann, str):
        ann = ann.split("|")[0].strip()
        return _ANNOTATIONS.get(ann)
    return ann if ann in _KINDS else None


def check_model_types(name: str, cfg: dict) -> None:
    """ConfigError naming ``model.KEY``, the type it takes and the value given, for a top-level model
    value of the wrong type (e.g. a string where an integer goes)."""
    import inspect

    from ..registry import _MODELS

    builder = _MODELS.get(name)
    if builder is None:
        return  # create_model names the unknown model
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return
    for key, value in cfg.items():
        if key not in params or value is None:
            continue
        kind = _expected_type(params[key])
        if kind is None:
            continue
        what, accepted = _KINDS[kind]
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"model.{key} must be {what}, got {value!r}")


def _count_parameters(name: str, cfg: dict, everything_on_meta: bool) -> tuple[int, int]:
    """(parameters, bytes) of the model, built with its parameters on the meta device; with
    ``everything_on_meta`` every tensor the builder makes is on it too (nothing allocated, ever, but a
    builder that reads a value it computed stops there: the count so far, a lower bound)."""
    import contextlib

    import torch

    from ..nn.meta import meta_parameters

    with meta_parameters() as registered:
        try:
            with torch.random.fork_rng(devices=[]), (torch.device("meta") if everything_on_meta
                                                     else contextlib.nullcontext()):
                create_model(name, **cfg)
        except ConfigError:
            raise
        except Exception:  # its own error comes when it is built for real
            pass
    unique = {id(p): p for p in registered}.values()
    return sum(p.numel() for p in unique), sum(p.numel() * p.element_size() for p in unique)


def check_model_memory(name: str, cfg: dict) -> None:
    """ConfigError with the estimate when the model's parameters need more memory than the machine
    has available, found before anything is allocated (``pixelzoo.nn.meta``): first a lower bound
    from a build with everything on the meta device, then the full count, parameters on the meta
    device and the builder's small tensors real."""
    from ..threads import check_memory

    remedy = ("make it smaller (e.g. --set model.channels=...); training needs about 4 times as much "
              "(gradients, Adam's two moments) and the activations of a batch")
    count, nbytes = _count_parameters(name, cfg, everything_on_meta=True)
    check_memory(nbytes, f"model {name!r} with at least {count:,} parameters", remedy)
    count, nbytes = max((count, nbytes), _count_parameters(name, cfg, everything_on_meta=False))
    check_memory(nbytes, f"model {name!r} with {count:,} parameters", remedy)


def _saved_for_backward(loss, x, y, exclude: set[int]) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``loss(x, y)`` (the step's
    activations; tensors in ``exclude``, the weights, not counted)."""
    import torch

    total = 0

    def pack(t):
        nonlocal total
        if id(t) not in exclude:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss(x, y)
    return total


def check_training_memory(run_config, splits) -> None:
    """ConfigError with the estimate when a training step cannot fit in the machine's available memory,
    before anything is allocated (the estimate of :func:`training_memory`, per part)."""
    from ..threads import available_memory, check_memory

    if available_memory() is None:
        return
    for need, what in training_memory(run_config, splits):
        check_memory(need, what, "lower train.batch_size or make the model smaller (e.g. --set model.channels=...)")


def training_memory(run_config, splits) -> list[tuple[int, str]]:
    """(bytes, what) per unit of the training plan: its weights, gradients, Adam's two moments and the
    Polyak copy, plus the activations one batch of ``train.batch_size`` saves for backward, measured by a
    forward pass on the meta device: the units trained on the run's images (an encoder of the pixels
    included) and a chain's parts trained on a level (priors over codes, decoders given the level above,
    on meta tensors of the levels' shapes); a unit trained jointly on several parts, or a forward the
    meta device cannot run, counts its weights only. Empty when the
    model cannot be built on the meta device (``check_model_memory`` has counted its weights)."""
    import torch

    from ..models.base import takes_labels
    from ..nn.meta import meta_parameters

    cfg = dict(run_config.model)
    name = cfg.pop("name")
    try:
        with torch.random.fork_rng(devices=[]), meta_parameters():
            model = create_model(name, **cfg).to("meta")
        plan = model.training_plan()
    except Exception:  # check_model_memory has counted its weights
        return []
    train = splits.train
    out = []
    for unit in plan.units:
        tc = run_config.train_for(unit.name)
        params = list(unit.module.parameters())
        weights = sum(p.numel() * p.element_size() for p in params)
        need = weights * (4 + (tc.polyak is not None))
        what = f"training {'part ' + repr(unit.name) + ' of ' if unit.name else ''}model {name!r}"
        bs = min(tc.batch_size, len(train))
        inputs = _meta_inputs(model, unit, train, bs)
        if inputs is not None:
            x, extras = inputs
            y = torch.zeros(bs, dtype=torch.long, device="meta") if takes_labels(unit.module) else None
            loss = unit.loss or unit.module.loss
            try:
                with torch.device("meta"):
                    saved = _saved_for_backward(lambda x, y: loss(x, y, **extras), x, y, {id(p) for p in params})
            except Exception:  # an operation the meta device cannot run (data-dependent): weights only
                saved = 0
            if saved:
                need += saved
                what += f" on batches of {bs} ({_size(saved)} of activations)"
        out.append((need, what))
    return out


def _meta_inputs(model, unit, train, bs: int):
    """(x, extras) of a batch of ``bs`` for ``unit`` as meta tensors: the run's images for a unit trained
    on them; for a chain's part trained on a level (a prior over codes, a decoder given the level
    above), that level and its conditioning made from meta tensors of the given levels' shapes; None
    when neither applies."""
    import torch

    from ..data.dataset import as_input, image_dtype_for
    from ..models.chain import Chain

    def batch(shape, num_levels):
        dtype = image_dtype_for(num_levels) if num_levels is not None else torch.float32
        return as_input(torch.zeros((bs, *shape), dtype=dtype, device="meta"))

    if unit.trains_on_images:
        return as_input(torch.zeros((bs, *train.images.shape[1:]), dtype=train.images.dtype, device="meta")), {}
    if not isinstance(model, Chain) or unit.name not in model.parts or unit.module is not model.parts[unit.name]:
        return None
    link = model.link_of_part(unit.name)
    if link is None:
        return None
    level = model.levels[link.level]
    x = batch(level.shape, level.num_levels)
    if not link.given:
        return x, {}
    try:
        with torch.device("meta"):
            cond = link.cond([batch(model.levels[g].shape, model.levels[g].num_levels) for g in link.given])
    except Exception:  # a conditioning the meta device cannot compute: weights only
        return None
    return x, {"cond": cond}


def new_run_dir(base: str | os.PathLike) -> Path:
    """``base`` if it is free, else ``base-1``, ``base-2``, ...: an existing run is never overwritten."""
    base = Path(base)
    path, k = base, 0
    while path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not path.is_dir() and path == base:
            raise ConfigError(f"{base} is a file, not a run directory: give --out a new directory name")
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(path, e, "cannot create the run directory") from None
    check_writable(path, "the run directory")
    return path


def read_run_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {run_dir} is not a pixelzoo run directory")
    config = read_json(path, CheckpointError)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config.get("data"), dict):
        got = type(config).__name__ if not isinstance(config, dict) else f"an object with keys {sorted(config)[:6]}"
        raise CheckpointError(f"{path}: expected a JSON object with 'model' and 'data' sections, as `pixelzoo train` "
                              f"writes; got {'a ' + got if not isinstance(config, dict) else got}")
    return config


def write_run_config(run_dir, config: dict) -> None:
    atomic_write_json(config, Path(run_dir) / RUN_CONFIG)


def load_run_model(run_dir: str | os.PathLike, device="cpu"):
    """The model of a run with its evaluation weights (Polyak average if kept), or of ``zoo:NAME``, in eval mode on
    ``device`` (``pixelzoo.devices.resolve_device``: "cpu", "cuda", "cuda:N", "auto"; None:
    ``$PIXELZOO_DEVICE`` or auto), whichever device it was trained on: every unit of its training plan
    from its directory."""
    device = resolve_device(device)  # a bad or absent device fails first
    if is_zoo_name(run_dir):  # a model of the zoo: its checksums verified, its weights widened to float32
        from ..pretrained import load_pretrained

        return load_pretrained(run_dir, device), zoo_run_config(run_dir)
    config = read_run_config(run_dir)
    model = build_model(config["model"]).to(device)
    load_plan_weights(model.training_plan(), run_dir)
    return model.eval(), config
