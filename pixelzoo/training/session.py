"""Start or resume a training run from a configuration: data, model, run directory, trainer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..data import load_dataset
from ..devices import resolve_device
from ..errors import ConfigError, TrainingError
from ..io import check_writable
from . import distributed
from .config import RunConfig
from .run import build_model, new_run_dir, read_run_config, resolve_model_config, write_run_config
from .runner import PlanRunner, acquire_locks, check_parts, plan_locks, unit_steps


def load_data(data_cfg: dict):
    cfg = dict(data_cfg)
    name = cfg.pop("name", None)
    if not name:
        raise ConfigError("the data section needs a 'name'")
    return load_dataset(name, cfg.pop("data_dir", None), **cfg)


def start_run(config: dict, out_dir: str | os.PathLike, parts: list[str] | None = None, progress: bool = True,
              tensorboard: bool = True, device=None):
    """A runner for a new run of ``config`` in a new directory: ``out_dir``, or ``out_dir-1``, ... when
    ``out_dir`` holds a run already (never overwriting one; said on stderr). ``runner.run_dir`` is the
    directory used. For composite models, ``parts`` limits training to the named parts. ``device``:
    "auto", "cpu", "cuda" or "cuda:N" (None: ``$PIXELZOO_DEVICE`` or "auto"). Under ``torchrun`` every
    process calls it (every unit trains data-parallel; "auto" and "cuda" mean this process's GPU);
    process 0 makes the directory and the others use the same. The runner holds the run's lock
    (``pixelzoo.training.lock``) from here until its ``train()`` ends."""
    device = resolve_device(device)  # parsed once here: everything below receives the torch.device
    distributed.init_from_env(device)
    run_config = RunConfig.from_dict(config)  # ... and the RunConfig (every TrainConfig checked before the data loads)
    splits = load_data(run_config.data)
    run_config = run_config.with_model(resolve_model_config(run_config.model, splits))
    torch.manual_seed(run_config.train.seed)  # the initial weights are part of what the seed fixes
    model = build_model(run_config.model)
    plan = model.training_plan()
    check_parts(plan, run_config, parts)  # before anything is written
    for attempt in range(5):  # another process may take the directory between its choice and its lock
        run_dir = distributed.broadcast_object(str(new_run_dir(out_dir)) if distributed.is_main() else None)
        locks = plan_locks(plan, run_dir, parts)
        try:
            acquire_locks(locks)  # the directory now holds .lock: a later choice is another one
            break
        except TrainingError:
            if attempt == 4:
                raise
    try:
        if distributed.is_main():
            if Path(run_dir) != Path(out_dir):
                print(f"pixelzoo: {out_dir} holds a run already; this run is {run_dir}", file=sys.stderr)
            write_run_config(run_dir, run_config.to_dict())
        distributed.barrier()
        return PlanRunner(model, splits, run_config, run_dir, parts, progress=progress, tensorboard=tensorboard,
                          device=device, locks=locks)
    except BaseException:
        if distributed.is_main():
            locks.release()
        raise


def resume_run(run_dir: str | os.PathLike, steps: int | None = None, parts: list[str] | None = None,
               progress: bool = True, tensorboard: bool = True, device=None):
    """A runner that continues ``run_dir`` from its last checkpoint(s), optionally to a new step count,
    on ``device`` (as in ``start_run``; any device, whichever the run started on).

    Refused, with nothing written, when another process trains the run (its lock is held: the error
    names the holder), when a checkpoint is unreadable or when ``steps`` would train nothing (at or
    below the step every unit has reached); ``config.json`` is rewritten with the new ``steps`` only
    once the run is known to go on. The runner holds the run's lock until its ``train()`` ends."""
    device = resolve_device(device)
    distributed.init_from_env(device)
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    check_writable(run_dir, "a resumed run writes its checkpoints there")  # before any training
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    run_config = RunConfig.from_dict(config)
    if steps is not None:
        run_config = run_config.with_steps(steps)
    splits = load_data(run_config.data)
    torch.manual_seed(run_config.train.seed)
    model = build_model(run_config.model)
    plan = model.training_plan()
    check_parts(plan, run_config, parts)
    locks = plan_locks(plan, run_dir, parts)
    acquire_locks(locks)  # before anything is read that another process may be writing
    try:
        return _resume(model, plan, splits, run_config, run_dir, steps, parts, progress, tensorboard, device, locks)
    except BaseException:
        if distributed.is_main():
            locks.release()
        raise


def _resume(model, plan, splits, run_config, run_dir, steps, parts, progress, tensorboard, device, locks):
    reached = unit_steps(plan, run_dir)  # reads every checkpoint: a corrupt one fails here
    if steps is not None:
        targets = {u.name: run_config.train_for(u.name).steps for u in plan.units}
        if all(reached[n] >= targets[n] for n in targets):
            where = (f"step {reached[None]}" if plan.is_single else
                     "steps " + ", ".join(f"{n}: {s}" for n, s in reached.items()))
            raise ConfigError(f"{run_dir} is at {where}; --steps {steps} would train nothing: give more steps")
    runner = PlanRunner(model, splits, run_config, run_dir, parts, progress=progress, tensorboard=tensorboard,
                        device=device, locks=locks)
    distributed.barrier()  # every process has read the config before process 0 rewrites it
    if steps is not None and distributed.is_main():
        write_run_config(run_dir, run_config.to_dict())
    return runner
