"""Training a composite model part by part, stage by stage, each part in its own sub-run.

``RUN/parts/NAME/`` holds a part's checkpoint, metrics and samples exactly like a plain run
directory; the parts of one stage are independent (train them in parallel processes with
``--part``), and a later stage starts from the trained (Polyak) weights of the earlier ones. A run
resumes part by part: finished parts are skipped, interrupted ones continue from their checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..errors import ConfigError, TrainingError
from ..evaluation.likelihood import dataset_bits_per_dim_parts
from ..imaging import save_grid
from ..pretrained import load_state_strict
from .checkpoint import CHECKPOINT_NAME, evaluation_weights, read_checkpoint
from .config import TrainConfig
from .logger import MetricsLogger
from .trainer import Trainer


def part_dir(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "parts" / name


def part_train_config(config: dict, name: str) -> TrainConfig:
    """The run's ``train`` section, overridden by ``train_parts[name]``."""
    return TrainConfig.from_dict({**config.get("train", {}), **config.get("train_parts", {}).get(name, {})})


def load_part_weights(model, run_dir: str | Path, names) -> None:
    """Load the evaluation weights of the named parts from their sub-runs into the composite."""
    for name in names:
        path = part_dir(run_dir, name) / CHECKPOINT_NAME
        if not path.is_file():
            raise TrainingError(f"part {name!r} has not been trained yet: {path} is missing")
        load_state_strict(model.parts[name], evaluation_weights(path), str(path))


class CompositeTrainer:
    """Trains the parts of a ``CompositeModel`` stage by stage with the generic ``Trainer``."""

    def __init__(self, model, splits, config: dict, run_dir: str | Path, parts: list[str] | None = None,
                 progress: bool = True, tensorboard: bool = True):
        unknown = sorted(set(parts or []) - set(model.part_names))
        if unknown:
            raise ConfigError(f"unknown part(s) {unknown}; this model's parts are {model.part_names}")
        for name in config.get("train_parts", {}):
            if name not in model.part_names:
                raise ConfigError(f"train_parts names {name!r}, which is not a part of this model ({model.part_names})")
        self.model = model
        self.splits = splits
        self.config = config
        self.run_dir = Path(run_dir)
        self.only = list(parts) if parts else None
        self.progress = progress
        self.tensorboard = tensorboard
        self.cfg = part_train_config(config, model.part_names[0])

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "parts"

    def part_done(self, name: str) -> bool:
        path = part_dir(self.run_dir, name) / CHECKPOINT_NAME
        return path.is_file() and read_checkpoint(path)[0] >= part_train_config(self.config, name).steps

    def train_part(self, name: str) -> dict:
        cfg = part_train_config(self.config, name)
        data = self.model.part_data(name, self.splits, self.run_dir / "cache")
        directory = part_dir(self.run_dir, name)
        directory.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        trainer = Trainer(self.model.parts[name], data, cfg, directory, progress=self.progress, tensorboard=self.tensorboard)
        if trainer.checkpoint_path.is_file():
            trainer.resume()
        if self.progress:
            print(f"part {name}: step {trainer.step} of {cfg.steps}")
        return trainer.train()

    def train(self) -> dict:
        start = time.perf_counter()
        result: dict = {"parts": {}}
        for k, stage in enumerate(self.model.stages):
            if k:
                earlier = [n for s in self.model.stages[:k] for n in s]
                todo = [n for n in stage if (self.only is None or n in self.only) and not self.part_done(n)]
                if todo:
                    load_part_weights(self.model, self.run_dir, earlier)
            for name in stage:
                if self.only is not None and name not in self.only:
                    continue
                if self.part_done(name):
                    result["parts"][name] = {"skipped": "already trained"}
                    continue
                result["parts"][name] = self.train_part(name)
        result["train_seconds"] = round(time.perf_counter() - start, 2)
        unfinished = [n for n in self.model.part_names if not self.part_done(n)]
        if unfinished:  # e.g. stopped by train.time_budget, or --part trained only some
            result["unfinished_parts"] = unfinished
        else:
            result.update(self.finish())
        result["checkpoint"] = str(self.checkpoint_path)
        return result

    def finish(self) -> dict:
        """With every part trained: the whole model's test bits/dim (in total and per part) and samples."""
        load_part_weights(self.model, self.run_dir, self.model.part_names)
        model = self.model.eval()
        out: dict = {}
        test = self.splits.test
        logger = MetricsLogger(self.run_dir, self.tensorboard)
        if model.has_likelihood:
            parts = dataset_bits_per_dim_parts(model, test, self.cfg.eval_batch_size, None, progress=self.progress)
            out["test_bpd_parts"] = parts
            out["test_bpd"] = sum(parts.values())  # the bound: its parts add up to it (tested)
            logger.log(0, test_bpd_full=out["test_bpd"], **{f"test_bpd_{n}": v for n, v in out["test_bpd_parts"].items()})
        n = self.cfg.num_samples
        if n:
            y = torch.arange(n) % model.num_classes if model.num_classes else None
            x = model.sample(n, y=y, generator=torch.Generator().manual_seed(self.cfg.seed), progress=self.progress)
            path = self.run_dir / "samples" / "final.png"
            save_grid(x, model.num_levels, path, ncol=model.num_classes if model.num_classes and n % model.num_classes == 0 else None)
            out["samples"] = str(path)
        logger.close()
        return out
