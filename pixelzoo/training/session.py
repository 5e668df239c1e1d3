"""Start or resume a training run from a configuration: data, model, run directory, trainer."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data import load_dataset
from ..devices import resolve_device
from ..errors import ConfigError
from . import distributed
from .config import TrainConfig
from .run import build_model, new_run_dir, read_run_config, resolve_model_config, write_run_config
from .runner import PlanRunner


def load_data(data_cfg: dict):
    cfg = dict(data_cfg)
    name = cfg.pop("name", None)
    if not name:
        raise ConfigError("the data section needs a 'name'")
    return load_dataset(name, cfg.pop("data_dir", None), **cfg)


def start_run(config: dict, out_dir: str | os.PathLike, parts: list[str] | None = None, progress: bool = True,
              tensorboard: bool = True, device=None):
    """A runner for a new run of ``config`` in a new directory ``out_dir`` (never overwriting one).
    For composite models, ``parts`` limits training to the named parts. ``device``: "auto", "cpu",
    "cuda" or "cuda:N" (None: ``$PIXELZOO_DEVICE`` or "auto"). Under ``torchrun`` every process calls
    it (every unit trains data-parallel; "auto" and "cuda" mean this process's GPU); process 0 makes
    the directory and the others use the same."""
    device = resolve_device(device)
    distributed.init_from_env(device)
    train_cfg = TrainConfig.from_dict(config.get("train", {}))
    splits = load_data(config["data"])
    resolved = {**config, "model": resolve_model_config(config["model"], splits), "train": train_cfg.to_dict()}
    torch.manual_seed(train_cfg.seed)  # the initial weights are part of what the seed fixes
    model = build_model(resolved["model"])
    run_dir = distributed.broadcast_object(str(new_run_dir(out_dir)) if distributed.is_main() else None)
    if distributed.is_main():
        write_run_config(run_dir, resolved)
    distributed.barrier()
    return PlanRunner(model, splits, resolved, run_dir, parts, progress=progress, tensorboard=tensorboard,
                      device=device)


def resume_run(run_dir: str | os.PathLike, steps: int | None = None, parts: list[str] | None = None,
               progress: bool = True, tensorboard: bool = True, device=None):
    """A runner that continues ``run_dir`` from its last checkpoint(s), optionally to a new step count,
    on ``device`` (as in ``start_run``; any device, whichever the run started on)."""
    device = resolve_device(device)
    distributed.init_from_env(device)
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    distributed.barrier()  # every process has read the config before process 0 rewrites it
    if steps is not None:
        config["train"]["steps"] = steps
        if distributed.is_main():
            write_run_config(run_dir, config)
    splits = load_data(config["data"])
    torch.manual_seed(config["train"].get("seed", 0))
    model = build_model(config["model"])
    return PlanRunner(model, splits, config, run_dir, parts, progress=progress, tensorboard=tensorboard,
                      device=device)
