"""One trainer for one unit of a training plan: a module and its loss ``(x, y, **extras) -> {"loss": scalar, ...}``.

Deterministic on CPU and exactly resumable: the batch of step ``t`` and every random draw inside
the step are functions of (seed, t) alone, and a checkpoint holds weights, Polyak weights and
optimizer state, so a run stopped and resumed ends with the same weights as one never stopped.
Under ``torchrun`` it trains data-parallel (see ``distributed``): only process 0 writes.

It trains on the device of its module (or moves the module to ``device``). The batch of a step is
drawn on the CPU by the data's ``BatchPlan`` (the same batch on every device, in memory or streamed)
and moved to the device; to a GPU through pinned memory without blocking. A data set held in memory
is one indexing away, so its batches are taken in the training process; a prepared data set read
from its shards (``data.stream``) is read ahead by ``train.workers`` DataLoader workers
(``pixelzoo.data.loader``). ``train.precision`` is resolved for the device
(``pixelzoo.devices.resolve_precision``) and recorded with the device in every training row of
``metrics.jsonl`` and in the result; ``train.compile`` runs the loss through ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.batches import BatchPlan, step_seed, take_batch
from ..data.dataset import as_input
from ..data.loader import StreamingLoader
from ..data.shards import is_streamed
from ..devices import autocast, describe_device, module_device, resolve_precision, to_device
from ..errors import TrainingError
from ..imaging import write_sample_grid
from ..models.base import SamplesImages, takes_labels
from . import distributed
from .held_out import held_out_figure
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .logger import MetricsLogger
from .polyak import Polyak
from .signals import StopSignals


class Trainer:
    def __init__(self, model, splits, config: TrainConfig, run_dir: str | Path, progress: bool = True,
                 tensorboard: bool = True, loss=None, device: torch.device | None = None):
        """``model``: the module trained (its parameters, checkpoint, Polyak weights); ``config``: its
        parsed options; ``loss``: the unit's loss, or None for ``model.loss`` (looked up at every step);
        ``device``: the ``torch.device`` to train on (resolved by the caller, e.g. with
        ``pixelzoo.devices.resolve_device``; None: where the module is)."""
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig (TrainConfig.from_dict(options)), got {type(config).__name__}")
        if device is not None and not isinstance(device, torch.device):
            raise TypeError(f"device must be a torch.device (pixelzoo.devices.resolve_device) or None, got {device!r}")
        self.device = module_device(model) if device is None else device
        self.model = model.to(self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.loss_fn = loss
        self.splits = splits
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.optimizer = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}[config.optimizer](
            model.parameters(), lr=config.lr)
        self.polyak = Polyak(model, config.polyak) if config.polyak else None
        self.step = 0
        self.is_main = distributed.is_main()
        self.logger = MetricsLogger(self.run_dir, tensorboard) if self.is_main else _NoLogger()
        if self.is_main:  # a checkpoint half-written by a killed process: this process is the run's one writer
            for stale in self.run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)
        self.uses_labels = takes_labels(model) and splits.train.labels is not None
        self.batch_plan = BatchPlan(len(splits.train), config.batch_size, config.seed, config.flip)
        self.streams = is_streamed(splits)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def resume(self) -> int:
        """Continue from the checkpoint (if any; else from step 0): metrics logged past its step go."""
        if self.checkpoint_path.is_file():
            self.step = load_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.polyak)
        self.logger.keep_until(self.step)
        return self.step

    def save(self) -> None:
        if not self.is_main:
            return
        save_checkpoint(self.checkpoint_path, self.step, self.model, self.optimizer, self.polyak)

    # ------------------------------------------------------------------ data
    def batch(self, step: int):
        """This process's part of ``global_batch(step)`` (all of it without torchrun), on the device."""
        return self._on_device(*take_batch(self.splits.train, self.batch_plan, step, self._rows(), self.uses_labels))

    def global_batch(self, step: int):
        """The training batch of ``step`` (see ``pixelzoo.data.batches``: epochs are seeded permutations,
        the last partial batch dropped), on the CPU."""
        x, y, extras = take_batch(self.splits.train, self.batch_plan, step, labels=self.uses_labels)
        return as_input(x), y, extras

    def _rows(self) -> slice:
        """This process's rows of every global batch."""
        return distributed.shard(self.batch_plan.batch_size) if distributed.world_size() > 1 else slice(None)

    def _on_device(self, x, y, extras):
        dev = self.device
        return as_input(to_device(x, dev)), to_device(y, dev), {k: to_device(v, dev) for k, v in extras.items()}

    def batches(self):
        """The batches of steps ``self.step``, ``self.step + 1``, ... on the device: taken here from data
        in memory, read ahead by the streaming loader's workers from a prepared data set's shards."""
        if not self.streams:
            while True:
                yield self.batch(self.step)
        loader = StreamingLoader(self.splits.train, self.batch_plan, rows=self._rows(), labels=self.uses_labels,
                                 workers=self.cfg.workers, pin_memory=self.device.type == "cuda")
        for x, y, extras in loader.batches(self.step, self.cfg.steps):
            yield self._on_device(x, y, extras)

    def loss(self, x, y, **extras) -> dict:
        return (self.loss_fn or self.model.loss)(x, y, **extras)

    # ------------------------------------------------------------------ evaluation and samples
    def evaluation_model(self):
        return self.polyak.applied() if self.polyak else contextlib.nullcontext(self.model)

    def held_out(self, max_images: int | None) -> dict:
        """``test_bpd`` on the test set, or for a model without a likelihood ``test_loss`` (its mean
        training loss on the test set, e.g. PixelIQN's quantile loss)."""
        with self.evaluation_model() as m:
            return held_out_figure(m, self.splits.test, self.cfg.eval_batch_size, max_images, self.cfg.seed,
                                   loss=self.loss_fn)

    @property
    def draws_samples(self) -> bool:
        """Sample grids are drawn when asked for (``num_samples``), the unit samples, and its level is
        an image (a continuous level, a VAE's latents, is not shown)."""
        return bool(self.cfg.num_samples) and isinstance(self.model, SamplesImages) and self.splits.num_levels is not None

    def write_samples(self, name: str) -> Path:
        n = self.cfg.num_samples
        y = torch.arange(n) % self.model.num_classes if self.model.num_classes else None
        g = torch.Generator().manual_seed(step_seed(self.cfg.seed, -7))
        test = self.splits.test
        extras = {k: v[torch.arange(n) % len(test)] for k, v in test.extras.items()}
        with self.evaluation_model() as m:
            x = m.sample(n, y=y, generator=g, progress=self.progress, **extras).cpu()
        path = self.run_dir / "samples" / f"{name}.png"
        write_sample_grid(x, y, self.splits.num_levels, path)  # with classes: one per column, labelled
        return path

    # ------------------------------------------------------------------ loop
    def train(self, stop: StopSignals | None = None) -> dict:
        """Train to ``cfg.steps``. SIGTERM, SIGINT and SIGUSR1 (see ``signals``) finish the step, write
        the checkpoint and raise ``TrainingStopped``; ``stop``: the runner's (else this trainer's own)."""
        if stop is None:
            import shlex

            stop = StopSignals(f"pixelzoo train --resume {shlex.quote(str(self.run_dir))}")
        with stop:
            return self._train(stop)

    def _train(self, stop: StopSignals) -> dict:
        cfg = self.cfg
        stop.abort_at_once = False
        precision_ctx = autocast(self.device, self.precision)
        loss_fn = torch.compile(self.loss) if cfg.compile else self.loss
        where = {"device": str(self.device), "precision": self.precision}
        if self.progress and self.is_main:
            asked = "" if cfg.precision == self.precision else f" (train.precision {cfg.precision!r})"
            print(f"training on {describe_device(self.device)} in {self.precision}{asked}"
                  + (", compiled" if cfg.compile else ""), flush=True)
        start_time = time.perf_counter()
        window_t, window_n, window = time.perf_counter(), 0, {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", disable=not self.progress or not self.is_main,
                   dynamic_ncols=True)
        self.model.train()
        stopped_early = False
        signum = None
        batches = self.batches()
        try:
            while self.step < cfg.steps:
                signum = stop.agreed()  # every process takes part, every step: they stop on the same step
                if signum:
                    break
                if cfg.time_budget is not None and distributed.any_process(
                        time.perf_counter() - start_time >= cfg.time_budget):
                    stopped_early = True
                    break
                x, y, extras = next(batches)
                torch.manual_seed(step_seed(cfg.seed, self.step) + distributed.rank())
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.learning_rate(self.step)
                with precision_ctx:
                    out = loss_fn(x, y, **extras)
                loss = out["loss"]
                logged = distributed.average_scalars(out)  # over processes: the global batch's values
                if not torch.isfinite(logged["loss"]):  # every process sees the same value and stops
                    self._fail(f"loss is {float(logged['loss'].detach())}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                distributed.average_gradients(self.model)
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
                if not torch.isfinite(norm):
                    self._fail(f"gradient norm is {norm.item()}")
                self.optimizer.step()
                self.step += 1
                if self.polyak:
                    self.polyak.update(self.step)
                bar.update(1)
                window_n += x.shape[0] * distributed.world_size()
                for k, v in logged.items():
                    window.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    means = {k: sum(v) / len(v) for k, v in window.items()}
                    ips = window_n / max(now - window_t, 1e-9)
                    self.logger.log(self.step, **{f"train_{k}": v for k, v in means.items()}, images_per_s=ips,
                                    lr=self.optimizer.param_groups[0]["lr"], **where)
                    bar.set_postfix({**{k: f"{v:.3f}" for k, v in means.items()}, "img/s": f"{ips:.0f}"})
                    window_t, window_n, window = now, 0, {}
                if not self.is_main:
                    continue  # evaluations, samples and checkpoints: process 0 only
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    self.logger.log(self.step, **self.held_out(cfg.eval_images))
                if cfg.sample_every and self.draws_samples and self.step % cfg.sample_every == 0 and self.step < cfg.steps:
                    self.write_samples(f"step_{self.step:07d}")
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
        finally:
            batches.close()  # the streaming loader's workers stop
        bar.close()
        if not signum and not stopped_early:
            signum = stop.agreed()  # a signal during the last step: stop before the final evaluation
        if signum and window:  # the steps since the last row, logged so the metrics reach the checkpoint
            means = {k: sum(v) / len(v) for k, v in window.items()}
            self.logger.log(self.step, **{f"train_{k}": v for k, v in means.items()},
                            images_per_s=window_n / max(time.perf_counter() - window_t, 1e-9),
                            lr=self.optimizer.param_groups[0]["lr"], **where)
        self.save()
        if signum:
            distributed.barrier()  # process 0 has written the checkpoint
            self.logger.close()
            raise stop.stopped(signum, self.step, cfg.steps, self.checkpoint_path)
        stop.abort_at_once = True  # the checkpoint is written: a signal from here on stops at once
        result = {"step": self.step, "stopped_by_time_budget": stopped_early,
                  "train_seconds": round(time.perf_counter() - start_time, 2), **where}
        if not self.is_main:
            result.update(process=distributed.rank(), checkpoint=str(self.checkpoint_path))
            return result
        held_out = self.held_out(cfg.final_eval_images)
        result.update(held_out)
        self.logger.log_final(self.step, **{f"{k}_full": v for k, v in held_out.items()})
        if self.draws_samples:
            result["samples"] = str(self.write_samples(f"step_{self.step:07d}"))
        self.logger.close()
        result["checkpoint"] = str(self.checkpoint_path)
        return result

    def _fail(self, what: str):
        last = f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path.is_file() else "no checkpoint was written yet"
        raise TrainingError(f"training stopped at step {self.step}: {what}; {last}. Lower train.lr or set train.grad_clip.")



class _NoLogger:
    """The logger of processes other than 0: they write nothing."""

    def log(self, step: int, **values) -> None:
        pass

    def log_final(self, step: int, **values) -> None:
        pass

    def keep_until(self, step: int) -> int:
        return 0

    def close(self) -> None:
        pass
