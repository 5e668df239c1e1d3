"""A run's configuration, parsed once: the trainer options (checked by name and type) and the run
configuration that holds them (``RunConfig``: what ``config.json`` holds)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from ..devices import PRECISIONS
from ..errors import ConfigError
from ..threads import apply_policy


OPTIMIZERS = ("adam", "adamax")
#: random seeds: what torch.Generator.manual_seed takes
MAX_SEED = 2 ** 63 - 1
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
    lr_decay: float = 1.0          # learning rate at step t: lr * lr_decay ** t (see learning_rate)
    warmup_steps: int = 0          # a linear warm-up: the rate times (t + 1) / warmup_steps for t < warmup_steps
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
    # DataLoader worker processes reading the batches of a data set streamed from its shards (a prepared
    # data set, data.stream); 0: the training process reads them. Data in memory needs none.
    workers: int = 2

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
        for name in ("eval_every", "sample_every", "num_samples", "seed", "workers", "warmup_steps"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"train.{name} must be an integer >= 0, got {getattr(cfg, name)!r}")
        for name in ("eval_images", "final_eval_images", "grad_clip", "time_budget"):
            value = getattr(cfg, name)
            if value is not None and not value > 0:
                raise ConfigError(f"train.{name} must be > 0 or null, got {value!r}")
        if cfg.seed > MAX_SEED:
            raise ConfigError(f"train.seed must be at most 2**63 - 1 (the largest seed), got {cfg.seed}")
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

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based): ``lr * lr_decay ** step``, times
        ``(step + 1) / warmup_steps`` while ``step < warmup_steps`` (a linear warm-up from lr / warmup_steps)."""
        rate = self.lr * self.lr_decay ** step
        return rate * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: the sections of a run configuration that ``RunConfig`` parses; any other top-level entry (a
#: preset's ``description``) is kept as written
SECTIONS = ("model", "data", "train", "train_parts")


@dataclass
class RunConfig:
    """A run's configuration, parsed once where it enters (``start_run``, ``resume_run``, the command
    line): ``{"model": {...}, "data": {...}, "train": {...}, "train_parts": {NAME: {...}}}``.

    ``model`` and ``data`` stay dicts (the model's and the data set's arguments; ``start_run`` fills
    the model's image shape, levels and classes in from the data); ``train`` is the run's
    ``TrainConfig`` and ``parts`` a composite's per-part ``TrainConfig`` (``train`` merged with
    ``train_parts[name]``); ``train_for(name)`` gives a unit's. ``to_dict()`` is ``config.json``."""

    model: dict
    data: dict
    train: TrainConfig = field(default_factory=TrainConfig)
    parts: dict[str, TrainConfig] = field(default_factory=dict)  # per part named in train_parts
    train_parts: dict[str, dict] | None = None  # the per-part overrides as written (None: no such section)
    extra: dict = field(default_factory=dict)    # other top-level entries, as written
    order: tuple[str, ...] = SECTIONS[:3]        # the top-level keys in the order config.json writes them

    @classmethod
    def from_dict(cls, config: dict) -> "RunConfig":
        """Parse a run configuration (a preset, a config file, a run's ``config.json``); a bad
        ``train`` or ``train_parts`` value is a ConfigError naming it."""
        if not isinstance(config, dict) or "model" not in config or "data" not in config:
            raise ConfigError("a run config needs 'model' and 'data' sections")
        apply_policy()  # every run starts or resumes here: the command line's thread policy from Python too
        train = TrainConfig.from_dict(config.get("train", {}))
        overrides = config.get("train_parts")
        if overrides is not None and not (isinstance(overrides, dict)
                                          and all(isinstance(v, dict) for v in overrides.values())):
            raise ConfigError(f"train_parts must map part names to train options, got {overrides!r}")
        base = train.to_dict()
        parts = {name: TrainConfig.from_dict({**base, **options}) for name, options in (overrides or {}).items()}
        order = tuple(config) + (() if "train" in config else ("train",))
        return cls(model=copy.deepcopy(config["model"]), data=copy.deepcopy(config["data"]), train=train, parts=parts,
                   train_parts=copy.deepcopy(overrides), order=order,
                   extra={k: copy.deepcopy(v) for k, v in config.items() if k not in SECTIONS})

    def train_for(self, name: str | None) -> TrainConfig:
        """The ``TrainConfig`` of unit ``name``: ``train`` overridden by ``train_parts[name]`` for a
        composite's part (None, a plain model's one unit: ``train``)."""
        return self.parts.get(name, self.train) if name is not None else self.train

    def with_model(self, model: dict) -> "RunConfig":
        """The same configuration with ``model`` as the model's arguments (e.g. resolved from the data)."""
        return dataclasses.replace(self, model=model)

    def with_steps(self, steps: int) -> "RunConfig":
        """The same configuration trained to ``steps``, every part included (a ``train_parts`` entry's
        own steps are replaced too, as written in ``train_parts``: ``--steps`` reaches every part)."""
        parts = {name: dataclasses.replace(cfg, steps=steps) for name, cfg in self.parts.items()}
        train_parts = None if self.train_parts is None else {
            name: ({**options, "steps": steps} if "steps" in options else dict(options))
            for name, options in self.train_parts.items()}
        return dataclasses.replace(self, train=dataclasses.replace(self.train, steps=steps), parts=parts,
                                   train_parts=train_parts)

    def part_steps(self, names) -> dict:
        """``{part: steps}`` for the units ``names`` (None, a plain model's one unit, included)."""
        return {name: self.train_for(name).steps for name in names}

    def to_dict(self) -> dict:
        """The configuration as ``config.json`` holds it (the top-level keys in their given order)."""
        sections = {"model": self.model, "data": self.data, "train": self.train.to_dict(), **self.extra}
        if self.train_parts is not None:
            sections["train_parts"] = self.train_parts
        keys = [k for k in self.order if k in sections] + [k for k in sections if k not in self.order]
        return copy.deepcopy({k: sections[k] for k in keys})


def set_steps(config: dict, steps: int) -> dict:
    """A run configuration dict (a preset, a config file) set to train ``steps`` steps: ``train.steps``
    and every ``train_parts.PART.steps`` (a composite's parts would otherwise keep their own); a copy."""
    config = copy.deepcopy(config)
    config.setdefault("train", {})["steps"] = steps
    parts = config.get("train_parts")
    if isinstance(parts, dict):
        for options in parts.values():
            if isinstance(options, dict) and "steps" in options:
                options["steps"] = steps
    return config
