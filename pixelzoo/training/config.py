"""Trainer options, checked by name and type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..devices import PRECISIONS
from ..errors import ConfigError


OPTIMIZERS = ("adam", "adamax")
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_type(name: str, value, annotation: str) -> None:
    """``value`` of option ``train.name`` against its annotation (``int``, ``float | None``, ...)."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return
    for kind in kinds:
        ok = _TYPES.get(kind, ())
        if isinstance(value, ok) and not (kind != "bool" and isinstance(value, bool)):
            return
    want = " or ".join({"int": "an integer", "float": "a number", "bool": "true/false", "str": "a string",
                        "None": "null"}.get(k, k) for k in kinds)
    raise ConfigError(f"train.{name} must be {want}, got {value!r}")


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"        # "adam" or "adamax" (Kingma & Ba 2015, the infinity-norm variant; AGAVE's)
    lr_decay: float = 1.0          # learning rate at step t: lr * lr_decay ** t
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    polyak: float | None = None    # decay of the Polyak (EMA) weights used to evaluate and sample
    flip: bool = False             # random horizontal flips of training images
    seed: int = 0
    # "bf16": bfloat16 autocast for the training forward pass (evaluation stays fp32); "auto": bf16 where
    # the device runs it natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX), else fp32 (the run's
    # metrics record which); unset means fp32, the same arithmetic on every machine
    precision: str = "fp32"
    compile: bool = False          # torch.compile the unit's loss (see benchmarks/device.py for whether it helps)
    log_every: int = 50
    eval_every: int = 500          # 0: only at the end
    eval_images: int | None = 1000  # test images for the evaluations during training
    final_eval_images: int | None = None  # test images for the evaluation at the end (null: all)
    eval_batch_size: int = 32  # large CPU batches of 28x28 feature maps spend their time in memory allocation
    sample_every: int = 0          # 0: only at the end
    num_samples: int = 64
    checkpoint_every: int = 500
    time_budget: float | None = None  # seconds; stop early once spent (benchmarks)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown train options {unknown}; valid: {sorted(names)}")
        for f in dataclasses.fields(cls):
            if f.name in d:
                _check_type(f.name, d[f.name], f.type)
        cfg = cls(**d)
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "eval_batch_size"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {getattr(cfg, name)!r}")
        for name in ("eval_every", "sample_every", "num_samples", "seed"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"train.{name} must be an integer >= 0, got {getattr(cfg, name)!r}")
        for name in ("eval_images", "final_eval_images", "grad_clip", "time_budget"):
            value = getattr(cfg, name)
            if value is not None and not value > 0:
                raise ConfigError(f"train.{name} must be > 0 or null, got {value!r}")
        if not 0 < cfg.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay must lie in (0, 1], got {cfg.lr_decay}")
        if cfg.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {list(PRECISIONS)}, got {cfg.precision!r}")
        if cfg.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer must be one of {list(OPTIMIZERS)}, got {cfg.optimizer!r}")
        if not cfg.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {cfg.lr}")
        if cfg.polyak is not None and not 0 < cfg.polyak < 1:
            raise ConfigError(f"train.polyak must lie in (0, 1), got {cfg.polyak}")
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
