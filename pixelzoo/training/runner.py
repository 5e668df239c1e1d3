"""The one runner: trains any model's training plan, unit by unit, stage by stage.

A plain model's plan is one unit trained in the run directory itself (``checkpoint.safetensors``,
``metrics.jsonl``, ``samples/``). A composite's units are its parts, each a run directory of its own
in ``RUN/parts/NAME/``; the units of one stage are independent (train them in parallel processes
with ``--part``), and a later stage starts from the trained (Polyak) weights of the earlier ones. A
run resumes unit by unit: finished units are skipped, interrupted ones continue from their
checkpoint. Every unit trains with the generic ``Trainer``, so every unit trains data-parallel under
``torchrun`` with the same guarantees; levels cached for a later stage are written by process 0.
The whole model moves to the run's device once, so every unit trains there and the encoders of a
later stage's levels run there; what goes to disk (checkpoints, the level cache) goes from the CPU.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import torch

from ..errors import ConfigError, TrainingError
from ..imaging import write_sample_grid
from ..io import load_state_strict
from ..threads import release_free_memory
from . import distributed
from .held_out import dataset_bits_per_dim_parts
from .checkpoint import CHECKPOINT_NAME, evaluation_weights, read_checkpoint
from .config import RunConfig
from .lock import RunLocks
from .logger import MetricsLogger
from .signals import StopSignals
from .trainer import Trainer


def load_plan_weights(plan, run_dir: str | Path, names=None) -> None:
    """Load the evaluation weights of the plan's units (those named, in plan order) from their
    directories into their modules."""
    for unit in plan.units:
        if names is not None and unit.name not in names:
            continue
        path = unit.path(run_dir) / CHECKPOINT_NAME
        if not path.is_file():
            what = f"part {unit.name!r} has not been trained yet" if unit.name else "no checkpoint"
            raise TrainingError(f"{what}: {path} is missing")
        load_state_strict(unit.module, evaluation_weights(path), str(path))


def check_parts(plan, run_config: RunConfig, parts: list[str] | None) -> None:
    """``--part`` names and the config's ``train_parts`` must name units of the plan."""
    names = plan.names
    if parts and plan.is_single:
        raise ConfigError(f"--part applies to composite models; {run_config.model['name']} has no parts")
    unknown = sorted(set(parts or []) - set(names))
    if unknown:
        raise ConfigError(f"unknown part(s) {unknown}; this model's parts are {names}")
    for name in run_config.train_parts or {}:
        if name not in names:
            raise ConfigError(f"train_parts names {name!r}, which is not a part of this model ({names})")


def unit_steps(plan, run_dir) -> dict:
    """The step each unit's checkpoint holds (0 without one); a corrupt checkpoint raises CheckpointError."""
    out = {}
    for unit in plan.units:
        path = unit.path(run_dir) / CHECKPOINT_NAME
        out[unit.name] = read_checkpoint(path)[0] if path.is_file() else 0
    return out


def plan_locks(plan, run_dir: str | Path, parts: list[str] | None = None) -> RunLocks:
    """The locks a process training ``parts`` (None: all) of ``plan`` in ``run_dir`` holds: a plain
    model's ``RUN/.lock``; a composite's ``RUN/parts/NAME/.lock`` of each part it trains, and
    ``RUN/.lock`` too when it trains them all (it writes the whole model's evaluation)."""
    run_dir = Path(run_dir)
    if plan.is_single:
        return RunLocks([run_dir])
    units = [u.path(run_dir) for u in plan.units if not parts or u.name in parts]
    return RunLocks(units if parts else [run_dir, *units])


def acquire_locks(locks: RunLocks) -> None:
    """Process 0 takes ``locks``; every process raises the same TrainingError when it could not
    (collective under torchrun)."""
    error = None
    if distributed.is_main():
        try:
            locks.acquire()
        except TrainingError as e:
            error = str(e)
    error = distributed.broadcast_object(error)
    if error:
        raise TrainingError(error)


class PlanRunner:
    """Trains ``model.training_plan()`` in ``run_dir`` on ``device`` (a ``torch.device``, resolved where
    the run starts: ``start_run``, ``resume_run``); ``run_config`` is the run's parsed configuration
    (``RunConfig``: each unit trains with ``run_config.train_for(name)``); ``parts`` limits training to
    the named units. A plain model's one unit is ``runner.single`` (its ``Trainer``: step, checkpoint,
    batches).

    One process writes a run: the runner holds the run's locks (``plan_locks``; those given, already
    held, by ``start_run``/``resume_run``, else taken here) until ``train()`` ends or ``close()``.
    ``train()`` stops on SIGTERM, SIGINT or SIGUSR1 (``signals``) with ``TrainingStopped``."""

    def __init__(self, model, splits, run_config: RunConfig, run_dir: str | Path, parts: list[str] | None = None, *,
                 device: torch.device, progress: bool = True, tensorboard: bool = True, locks: RunLocks | None = None):
        if not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a RunConfig (RunConfig.from_dict(config)), got {type(run_config).__name__}")
        if not isinstance(device, torch.device):
            raise TypeError(f"device must be a torch.device (pixelzoo.devices.resolve_device), got {device!r}")
        self.device = device
        self.model = model.to(self.device)
        self.plan = model.training_plan()
        self.splits = splits
        self.run_config = run_config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.tensorboard = tensorboard
        check_parts(self.plan, run_config, parts)
        self.only = list(parts) if parts else None
        self.locks = locks if locks is not None else plan_locks(self.plan, self.run_dir, self.only)
        self._locked = locks is not None
        self._trainers: dict = {}
        # the whole model's final evaluation and samples (``finish``) use the first unit's options
        self.cfg = run_config.train_for(self.plan.units[0].name)
        if self.plan.is_single:
            self._lock()
            try:
                self.trainer(None)  # built (and resumed) now: a bad checkpoint fails here, before any training
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ the lock
    def _lock(self) -> None:
        if not self._locked:
            acquire_locks(self.locks)
            self._locked = True

    def close(self) -> None:
        """Release the run's locks (``train()`` does when it ends; a later ``train()`` takes them again)."""
        if self._locked and distributed.is_main():
            self.locks.release()
        self._locked = False

    @property
    def resume_command(self) -> str:
        """The command that continues this run (with ``--part`` when this runner trains only some parts)."""
        parts = "".join(f" --part {shlex.quote(p)}" for p in self.only or [])
        return f"pixelzoo train --resume {shlex.quote(str(self.run_dir))}{parts}"

    # ------------------------------------------------------------------ units
    def trainer(self, name: str | None) -> Trainer:
        """The ``Trainer`` of unit ``name`` (built at first use, resumed from its checkpoint if any)."""
        if name not in self._trainers:
            unit = self.plan.unit(name)
            cfg = self.run_config.train_for(name)
            directory = unit.path(self.run_dir)
            data = unit.data(self.splits, self.run_dir / "cache", distributed.is_main())
            if unit.name is not None and distributed.is_main():
                directory.mkdir(parents=True, exist_ok=True)
            distributed.barrier()
            torch.manual_seed(cfg.seed)
            trainer = Trainer(unit.module, data, cfg, directory, progress=self.progress, tensorboard=self.tensorboard,
                              loss=unit.loss, device=self.device)
            trainer.resume()  # from its checkpoint if any; metrics logged past it go
            self._trainers[name] = trainer
        return self._trainers[name]

    @property
    def single(self) -> Trainer:
        """The trainer of a one-unit plan (a plain model)."""
        if not self.plan.is_single:
            raise ConfigError(f"{self.run_config.model['name']} trains several parts {self.plan.names}: "
                              "use runner.trainer(NAME)")
        return self.trainer(None)

    def unit_done(self, name: str | None) -> bool:
        path = self.plan.unit(name).path(self.run_dir) / CHECKPOINT_NAME
        return path.is_file() and read_checkpoint(path)[0] >= self.run_config.train_for(name).steps

    def status(self) -> str:
        if self.plan.is_single:
            return f"at step {self.single.step} of {self.single.cfg.steps}"
        done = [n for n in self.plan.names if self.unit_done(n)]
        return f"parts trained: {', '.join(done) or 'none'} of {', '.join(self.plan.names)}"

    # ------------------------------------------------------------------ training
    def train(self) -> dict:
        """Train the units (all, or those of ``parts``) holding the run's locks. A signal stops the run
        after checkpointing the unit in training (``TrainingStopped``, see ``signals``)."""
        self._lock()
        try:
            with StopSignals(self.resume_command) as stop:
                return self._train(stop)
        finally:
            self.close()

    def _train(self, stop: StopSignals) -> dict:
        if self.plan.is_single:
            return self.single.train(stop)
        start = time.perf_counter()
        result: dict = {"parts": {}}
        for k, stage in enumerate(self.plan.stages):
            todo = [u.name for u in stage if (self.only is None or u.name in self.only) and not self.unit_done(u.name)]
            if k and todo:
                load_plan_weights(self.plan, self.run_dir, [u.name for s in self.plan.stages[:k] for u in s])
            for unit in stage:
                if self.only is not None and unit.name not in self.only:
                    continue
                if unit.name not in todo:
                    result["parts"][unit.name] = {"skipped": "already trained"}
                    continue
                trainer = self.trainer(unit.name)
                if self.progress and distributed.is_main():
                    print(f"part {unit.name}: step {trainer.step} of {trainer.cfg.steps}")
                stop.where = f"part {unit.name}"
                result["parts"][unit.name] = trainer.train(stop)
                stop.where, stop.abort_at_once = "", False  # a signal before the next part stops at its first step
                if trainer.step >= trainer.cfg.steps:  # trained: its optimizer state, Polyak copy and gradients go
                    del self._trainers[unit.name], trainer   # (a paper-size prior's are 4x its weights)
                    unit.module.zero_grad(set_to_none=True)
                    release_free_memory()
                distributed.barrier()  # its checkpoint is written before any process reads it
        result["train_seconds"] = round(time.perf_counter() - start, 2)
        if not distributed.is_main():
            result.update(process=distributed.rank(), checkpoint=str(self.run_dir / "parts"))
            return result
        unfinished = [n for n in self.plan.names if not self.unit_done(n)]
        if unfinished:  # e.g. stopped by train.time_budget, or --part trained only some
            result["unfinished_parts"] = unfinished
        else:
            stop.abort_at_once = True  # every checkpoint is written: a signal stops the evaluation at once
            result.update(self.finish())
        result["checkpoint"] = str(self.run_dir / "parts")
        return result

    def finish(self) -> dict:
        """With every unit trained: the whole model's test bits/dim (in total and per part) and samples."""
        load_plan_weights(self.plan, self.run_dir)
        model = self.model.eval()
        out: dict = {}
        test = self.splits.test
        logger = MetricsLogger(self.run_dir, self.tensorboard)
        if model.has_likelihood:
            parts = dataset_bits_per_dim_parts(model, test, self.cfg.eval_batch_size, self.cfg.final_eval_images,
                                               progress=self.progress)
            out["test_bpd_parts"] = parts
            out["test_bpd"] = sum(parts.values())  # the bound: its parts add up to it (tested)
            logger.log_final(0, test_bpd_full=out["test_bpd"], **{f"test_bpd_{n}": v for n, v in out["test_bpd_parts"].items()})
        n = self.cfg.num_samples
        if n:
            y = torch.arange(n) % model.num_classes if model.num_classes else None
            x = model.sample(n, y=y, generator=torch.Generator().manual_seed(self.cfg.seed), progress=self.progress).cpu()
            path = self.run_dir / "samples" / "final.png"
            write_sample_grid(x, y, model.num_levels, path)  # with classes: one per column, labelled
            out["samples"] = str(path)
        logger.close()
        return out
