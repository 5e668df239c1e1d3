"""Training: the runner of training plans, the trainer of one unit, its options, checkpoints, Polyak
weights and run directories."""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig
from .run import apply_overrides, load_config, load_run_model, read_run_config
from .runner import PlanRunner
from .session import load_data, resume_run, start_run
from .trainer import Trainer

__all__ = [
    "PlanRunner",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "apply_overrides",
    "load_checkpoint",
    "load_config",
    "load_data",
    "load_run_model",
    "read_run_config",
    "resume_run",
    "save_checkpoint",
    "start_run",
]
