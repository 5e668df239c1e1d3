"""The chain of levels: one generic composite model for every model with auxiliary structure.

A chain has *levels* x_0 (the data), x_1, ..., each with a shape and a domain (discrete with K
values, or continuous). A level above the data is made by a *maker* from a level below it:

* ``View``: a fixed function (a 4-bit gray view, a 2x downsampling, a quantisation);
* ``TrainedMaker``: a trained part that maps a level to one or more levels (the VQ-VAE-2 encoder maps
  the pixels to its code maps); what it makes is computed once per data set and kept in the
  fingerprinted ``LevelCache``.

Every level is modelled by one *link*: a part with a prior over the level (no ``given``) or a
conditional model of the level given levels above it (``given``; ``condition`` maps those to the
part's ``cond`` input). A part follows one protocol: ``loss(x, y, [cond=])``, ``log_prob(x, y,
[cond=])`` per dimension (likelihood parts), ``sample(n, y=, [cond=,] temperature=, head_options=,
generator=, progress=)``. The chain gives, for any such model:

* ``part_data``: the data every part trains on (its level, with ``extras["cond"]`` the
  conditioning levels; an encoder part trains on its source level). Data streamed from a prepared
  data set's shards stays streamed where a part reads the pixels; the levels made from them (views,
  codes) are computed in chunks and held in memory, the level cache keyed by the shards' checksums;
* ``log_prob_parts`` / ``bits_per_dim_parts`` and the joint bound -log p(x, levels above) >=
  -log p(x), each part's share in bits per dimension *of x* so that the shares add up;
* ancestral sampling from the top down with a temperature and head options per part, and
  ``sample(n, given={level: tensor})`` to start from any given levels (colourise, upscale and
  decode-given-codes are this);
* its training plan: the parts, stage by stage, each a unit in ``RUN/parts/NAME``.

A composite (Grayscale, Pyramid PixelCNN, VQ-VAE-2) is a short builder of a chain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from ...data.dataset import DataSplits, as_input, image_dtype_for
from ...data.shards import MappedRows, ShardedImages, dataset_of
from ...devices import module_device
from ...errors import ConfigError
from ...nn.levels import unscale_levels
from ...nn.modes import eval_mode
from ...sampling.labels import expand_labels
from ...threads import apply_policy
from ...views import has_values
from ..base import PixelzooModel, SamplesImages, SamplesLevels, TrainingPlan, Unit
from .level_cache import LevelCache, cache_file, fingerprint
from .level_shards import shards_dir
from .links import Level, Link, TrainedMaker, View

CHUNK = 256  # images per chunk when a maker runs over a whole data set, at most ...
CHUNK_PIXELS = 1 << 16  # ... and at most this many pixels (H x W) of them: 4 images of 128x128, 1 of 1024x1024


def chunk_rows(shape) -> int:
    """Rows per chunk when a maker runs over a data set of rows of ``shape`` (C, H, W): an encoder at the
    paper's sizes (512 channels at full resolution) holds hundreds of MB of activations per image."""
    return max(1, min(CHUNK, CHUNK_PIXELS // max(1, shape[-1] * shape[-2])))


@dataclass(frozen=True, eq=False)
class SampledLevels(Mapping):
    """What top-down sampling drew, with the given levels: a read-only mapping from level name to
    tensor, in the chain's order (bottom first). ``images``: the data level; ``top_down()``: the
    tensors, top (lowest resolution) first."""

    tensors: dict
    data: str

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def images(self) -> torch.Tensor:
        if self.data not in self.tensors:
            raise ConfigError(f"the data level {self.data!r} was not sampled; levels: {list(self.tensors)}")
        return self.tensors[self.data]

    def top_down(self) -> list[torch.Tensor]:
        return list(reversed(self.tensors.values()))


class Chain(PixelzooModel, SamplesImages, SamplesLevels):
    """The generic composite (see the module docstring).

    ``levels`` bottom first (``levels[0]`` is the data: ``image_shape``, ``num_levels``);
    ``makers`` the views and encoders of every level above the data; ``links`` one per level;
    ``parts`` the modules; ``stages`` the part names stage by stage (every part once).
    """

    def __init__(self, levels: list[Level], makers: list, links: list[Link], parts: dict[str, nn.Module],
                 stages: list[list[str]], num_classes: int | None = None):
        super().__init__()
        self.levels = {lv.name: lv for lv in levels}
        self.level_order = [lv.name for lv in levels]           # bottom first
        data = levels[0]
        self.image_shape = tuple(int(s) for s in data.shape)
        self.num_levels = data.num_levels
        self.num_classes = int(num_classes) if num_classes else None
        self.parts = nn.ModuleDict(parts)
        self.stages = [list(s) for s in stages]
        self.makers = list(makers)
        self.links = {link.level: link for link in links}
        self.level_cache = LevelCache()
        self._check_structure(links)

    def _check_structure(self, links) -> None:
        names = self.level_order
        if len(set(names)) != len(names):
            raise ConfigError(f"level names repeat: {names}")
        made = {}
        for m in self.makers:
            for t in m.targets:
                if t in made or t == names[0] or t not in self.levels:
                    raise ConfigError(f"level {t!r} is made twice, is the data, or is not a level of {names}")
                if m.source not in self.levels or names.index(m.source) >= names.index(t):
                    raise ConfigError(f"level {t!r} must be made from a level below it, not {m.source!r}")
                made[t] = m
        missing = [n for n in names[1:] if n not in made]
        if missing:
            raise ConfigError(f"no view or encoder makes level(s) {missing}")
        if len(self.links) != len(links) or set(self.links) != set(names):
            raise ConfigError(f"every level needs exactly one model; levels {names}, modelled {[l.level for l in links]}")
        for link in links:
            if link.part not in self.parts:
                raise ConfigError(f"level {link.level!r} is modelled by {link.part!r}, which is not a part")
            for g in link.given:
                if g not in self.levels or names.index(g) <= names.index(link.level):
                    raise ConfigError(f"level {link.level!r} may be conditioned on levels above it only, not {g!r}")
        flat = [p for s in self.stages for p in s]
        if sorted(flat) != sorted(self.parts):
            raise ConfigError(f"the stages {self.stages} must name every part {sorted(self.parts)} once")
        for m in self.makers:
            if isinstance(m, TrainedMaker) and m.part not in self.parts:
                raise ConfigError(f"encoder part {m.part!r} is not a part")
        self._makers = made

    # ------------------------------------------------------------------ structure
    def saved_parts(self) -> dict[str, nn.Module]:
        return dict(self.parts)

    @property
    def part_names(self) -> list[str]:
        return [name for stage in self.stages for name in stage]

    def maker_of(self, level: str):
        return self._makers[level]

    def encoder_parts(self) -> set[str]:
        return {m.part for m in self.makers if isinstance(m, TrainedMaker)}

    def link_of_part(self, part: str) -> Link | None:
        for link in self.links.values():
            if link.part == part:
                return link
        return None

    @property
    def has_likelihood(self) -> bool:
        return all(self.parts[l.part].has_likelihood for l in self.links.values())

    # ------------------------------------------------------------------ levels of given data
    def make(self, name: str, known: dict) -> torch.Tensor:
        """Level ``name`` from the levels in ``known`` (computing and adding the ones between)."""
        if name in known:
            return known[name]
        maker = self.maker_of(name)
        src = self.make(maker.source, known)
        if isinstance(maker, View):
            known[name] = maker.fn(src)
        else:
            for t, v in zip(maker.targets, self._encode(maker, src)):
                known[t] = v
        return known[name]

    def levels_of(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every level of the data ``x``, by name."""
        known = {self.level_order[0]: x}
        for name in self.level_order[1:]:
            self.make(name, known)
        return known

    @torch.no_grad()
    def _encode(self, maker: TrainedMaker, x: torch.Tensor) -> list[torch.Tensor]:
        part = self.parts[maker.part]
        with eval_mode(part):
            out = getattr(part, maker.method)(x)
        return [o if o.dim() == 4 else o.unsqueeze(1) for o in out]

    def _cond_kwargs(self, link: Link, known: dict) -> dict:
        if not link.given:
            return {}
        cond = link.cond([known[g] for g in link.given])
        return {"cond": cond.to(module_device(self)) if isinstance(cond, torch.Tensor) else cond}

    # ------------------------------------------------------------------ the bound
    def log_prob_maps(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per likelihood part, log p in nats of every element of its level given the levels above,
        (B, *level shape); the part modelling the image itself (level ``level_order[0]``) gives a map of
        x's sub-pixels."""
        if not self.has_likelihood:
            raise ConfigError(f"{type(self).__name__} has no likelihood: a part ({', '.join(self._no_likelihood())}) "
                              "is not a likelihood model")
        self._check_labels(y, "log_prob", [l.part for l in self.links.values()])
        known = self.levels_of(x.long())
        out = {}
        for name in self.part_names:
            link = self.link_of_part(name)
            if link is not None:
                out[name] = self.parts[name].log_prob(known[link.level], y, **self._cond_kwargs(link, known))
        return out

    def log_prob_parts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per likelihood part, the log-probability in nats of each image's share, (B,); their sum
        is log p(x, levels above)."""
        return {name: lp.flatten(1).sum(1) for name, lp in self.log_prob_maps(x, y).items()}

    def _check_labels(self, y, what: str, parts) -> None:
        """Labels are needed where one of ``parts`` is class-conditional: y=None is then an error, never a
        silent unconditional run (decoding given every code level samples no conditional part)."""
        conditional = [p for p in parts if getattr(self.parts[p], "num_classes", None) is not None]
        if y is None and conditional:
            raise ConfigError(f"{type(self).__name__} is class-conditional ({', '.join(conditional)} take "
                              f"{self.num_classes} classes): {what} needs labels y, a class or one per image in "
                              f"[0, {self.num_classes})")

    def _no_likelihood(self) -> list[str]:
        return [l.part for l in self.links.values() if not self.parts[l.part].has_likelihood]

    @torch.no_grad()
    def bits_per_dim_parts(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each part's bits per dimension *of x*, (B,): they add up to ``bits_per_dim`` (an evaluation:
        no gradient)."""
        dims = math.prod(self.image_shape) * math.log(2.0)
        return {k: -v / dims for k, v in self.log_prob_parts(x, y).items()}

    @torch.no_grad()
    def bits_per_dim(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """-log2 p(x, levels above) / dims of x: an upper bound on -log2 p(x) / dims, (B,) (no gradient)."""
        return sum(self.bits_per_dim_parts(x, y).values())

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, levels above) in nats per image, (B,)."""
        return sum(self.log_prob_parts(x, y).values())

    # ------------------------------------------------------------------ data of the parts
    def level_data(self, name: str, splits, cache_dir: Path | None = None, write_cache: bool = True,
                   memo: dict | None = None) -> dict:
        """``{"train": tensor, "test": tensor}``: level ``name`` of every image of ``splits``
        (``memo``: levels already computed in this call, by name)."""
        memo = {} if memo is None else memo
        if name not in memo:
            if name == self.level_order[0]:
                memo[name] = {"train": splits.train.images, "test": splits.test.images}
            else:
                maker = self.maker_of(name)
                src = self.level_data(maker.source, splits, cache_dir, write_cache, memo)
                if isinstance(maker, View):
                    memo[name] = {k: self._map(lambda x: [maker.fn(x)], v, [name])[name] for k, v in src.items()}
                else:
                    memo.update(self._encoded(maker, splits, src, cache_dir, write_cache))
        return memo[name]

    def _map(self, fn, images: torch.Tensor, names, levels: dict | None = None) -> dict[str, torch.Tensor]:
        """``fn`` (-> a list of levels in ``names``' order) over a data set in chunks, each level in
        the smallest dtype that holds it (``levels``: the ``Level`` of each name, default the chain's)."""
        device = module_device(self)
        levels = self.levels if levels is None else levels
        out: dict[str, list] = {n: [] for n in names}
        rows = chunk_rows(images.shape)
        for s in range(0, max(images.shape[0], 1), rows):
            chunk = as_input(images[s:s + rows]).to(device)
            for n, v in zip(names, fn(chunk)):
                lv = levels[n]
                out[n].append(v.to("cpu", self._level_dtype(lv)))
        return {n: torch.cat(v) for n, v in out.items()}

    def _encoded(self, maker: TrainedMaker, splits, src: dict, cache_dir, write_cache, outputs: dict | None = None,
                 slot: str | None = None) -> dict:
        """``{target: {"train": tensor, "test": tensor}}``: what ``maker`` makes of the ``src`` level of
        both splits, through the level cache. ``outputs``: the ``Level`` of each target when the
        targets are not levels of the chain (an encoder's other outputs, e.g. a posterior's
        variances), cached under their own ``slot`` (default the maker's part) so that they never
        replace the part's levels in the cache."""
        levels = self.levels if outputs is None else outputs
        slot = maker.part if slot is None else slot
        part = self.parts[maker.part]
        key = fingerprint(part, {f"{k}.source": v for k, v in src.items()} |
                          {f"{k}.labels": d.labels for k, d in (("train", splits.train), ("test", splits.test))
                           if d.labels is not None},
                          {"train": splits.train.name, "test": splits.test.name, "method": maker.method,
                           "targets": ",".join(maker.targets)})
        shapes = {f"{k}.{t}": (v.shape[0], *levels[t].shape) for k, v in src.items() for t in maker.targets}

        def compute():
            return {f"{k}.{t}": lv for k, v in src.items()
                    for t, lv in self._map(partial(self._encode, maker), v, list(maker.targets), levels).items()}

        n_train, n_test = (len(v) for v in src.values())
        what = f"levels {', '.join(maker.targets)} of {n_train} training and {n_test} test images with the trained {maker.part}"
        if cache_dir is not None and write_cache and any(isinstance(v, ShardedImages) for v in src.values()):
            # streamed data: the levels stream too, written shard by shard in one pass, read by memory map
            specs = {name: (shape[0], tuple(shape[1:]), self._level_dtype(levels[name.split(".", 1)[1]]))
                     for name, shape in shapes.items()}

            def encode(rows):
                return self._map(partial(self._encode, maker), rows, list(maker.targets), levels)

            flat = self.level_cache.get_streamed(slot, key, specs, src, encode, shards_dir(cache_dir, slot),
                                                  CHUNK, what)
        else:
            path = Path(cache_dir) / cache_file(slot) if cache_dir is not None else None
            flat = self.level_cache.get(slot, key, shapes, compute, path, write_cache, what=what)
        return {t: {k: flat[f"{k}.{t}"] for k in src} for t in maker.targets}

    @staticmethod
    def _level_dtype(level: Level) -> torch.dtype:
        """How a level is stored: the smallest dtype of its levels, or float32 when continuous."""
        return image_dtype_for(level.num_levels) if level.discrete else torch.float32

    def part_data(self, name: str, splits, cache_dir: Path | None = None, write_cache: bool = True):
        """The ``DataSplits`` part ``name`` trains and is evaluated on: an encoder part its source
        level; a modelling part its level, with ``extras["cond"]`` its conditioning levels."""
        self._check_splits(splits)
        if name not in self.parts:
            raise ConfigError(f"unknown part {name!r}; this model's parts are {self.part_names}")
        encoders = [m for m in self.makers if isinstance(m, TrainedMaker) and m.part == name]
        if encoders:
            level, given, link = encoders[0].source, (), None
        else:
            link = self.link_of_part(name)
            level, given = link.level, link.given
        if level == self.level_order[0] and not given:
            return splits
        memo: dict = {}
        data = {n: self.level_data(n, splits, cache_dir, write_cache, memo) for n in (level, *given)}
        lv = self.levels[level]
        tag = "" if level == self.level_order[0] else f"/{level}"

        def split(which, d):
            extras = {"cond": self._cond_rows(link, [data[g][which] for g in given])} if given else {}
            return dataset_of(d.name + tag, data[level][which], d.labels, lv.num_levels, d.num_classes,
                              f"level {level!r} of {d.name}" if tag else d.source, extras)

        return DataSplits(split("train", splits.train), split("test", splits.test))

    @staticmethod
    def _cond_rows(link: Link, given: list):
        """``link.cond`` of the given levels of a data set: computed in memory for levels in memory; for
        levels read from shards, the level itself (a single given level) or rows made a batch at a time."""
        if not any(isinstance(g, ShardedImages) for g in given):
            return link.cond(given)
        if len(given) == 1 and link.condition is None:
            return given[0]
        first = link.cond([g[0:1] for g in given])
        return MappedRows(link.cond, given, (len(given[0]), *first.shape[1:]))

    def _check_splits(self, splits) -> None:
        if tuple(splits.image_shape) != tuple(self.image_shape) or splits.num_levels != self.num_levels:
            raise ConfigError(f"data {splits.train.name!r} has images {splits.image_shape} with {splits.num_levels} "
                              f"levels; the model was built for {self.image_shape} with {self.num_levels}")

    def training_plan(self) -> TrainingPlan:
        return TrainingPlan([[Unit(name, self.parts[name], partial(self.part_data, name), None, f"parts/{name}",
                                   self.trains_on_images(name)) for name in stage] for stage in self.stages])

    def trains_on_images(self, name: str) -> bool:
        """Whether part ``name`` trains on the data's images as they are (``part_data`` gives the splits
        unchanged): an encoder of the pixels, or a prior over the pixels given nothing."""
        encoders = [m for m in self.makers if isinstance(m, TrainedMaker) and m.part == name]
        if encoders:
            return encoders[0].source == self.level_order[0]
        link = self.link_of_part(name)
        return link is not None and link.level == self.level_order[0] and not link.given

    # ------------------------------------------------------------------ sampling
    def sampling_options(self, temperature, head_options, names) -> tuple[dict, dict]:
        """Per part in ``names``: a temperature (a float for every part, or ``{part: t}``, missing
        parts 1.0) and head options (``{part: {option: value}}``)."""
        parts = self.part_names
        try:
            return self._sampling_options(temperature, head_options, names, parts)
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:  # float() of something that is not a number
            raise ConfigError(f"temperature must be a number >= 0 or {{part: number}}, got {temperature!r}") from e

    def _sampling_options(self, temperature, head_options, names, parts) -> tuple[dict, dict]:
        if isinstance(temperature, dict):
            unknown = sorted(set(temperature) - set(parts))
            if unknown:
                raise ConfigError(f"temperatures for unknown prior(s) or part(s) {unknown}; the parts are {parts}")
            temps = {n: float(temperature.get(n, 1.0)) for n in names}
        else:
            temps = {n: float(temperature) for n in names}
        bad = {n: t for n, t in temps.items() if not (t >= 0 and math.isfinite(t))}
        if bad:
            raise ConfigError(f"temperatures must be finite numbers >= 0, got {bad}")
        ho = head_options or {}
        if not isinstance(ho, dict) or any(k not in parts or not isinstance(v, dict) for k, v in ho.items()):
            raise ConfigError(f"head_options must map part names {parts} to option dicts, e.g. "
                              f"{{'{parts[-1]}': {{'mode': 'map'}}}}; got {ho!r}")
        return temps, {n: dict(ho.get(n) or {}) for n in names}

    def check_level(self, name: str, t) -> None:
        """Raise ConfigError unless ``t`` is a batch (B, *shape) of level ``name`` (integers in [0, K)
        for a discrete level)."""
        if name not in self.levels:
            raise ConfigError(f"{name!r} is not a level; levels: {self.level_order}")
        lv = self.levels[name]
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or tuple(t.shape[1:]) != tuple(lv.shape) or \
                (lv.discrete and t.is_floating_point()):
            kind = "integer images" if lv.discrete else "tensors"
            raise ConfigError(f"level {name!r}: expected {kind} of shape (B, {', '.join(map(str, lv.shape))}), "
                              f"got {getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
        if lv.discrete and has_values(t) and (int(t.min()) < 0 or int(t.max()) >= lv.num_levels):
            raise ConfigError(f"level {name!r}: values must lie in [0, {lv.num_levels}), "
                              f"got [{int(t.min())}, {int(t.max())}]")

    def _check_given(self, given: dict, n: int) -> dict:
        out = {}
        for name, t in (given or {}).items():
            if name not in self.levels or name == self.level_order[0]:
                raise ConfigError(f"given level {name!r} is not a level above the data; levels: {self.level_order[1:]}")
            self.check_level(name, t)
            if n % t.shape[0]:
                raise ConfigError(f"n = {n} is not a multiple of the {t.shape[0]} given {name!r} images")
            out[name] = (t.long() if self.levels[name].discrete else t).repeat_interleave(n // t.shape[0], dim=0)
        return out

    def level_of_shape(self, shape) -> str:
        """The name of the level whose tensors are (B, *shape), the lowest such level (the data
        first); ConfigError naming the levels' shapes when there is none."""
        shape = tuple(int(s) for s in shape)
        for name in self.level_order:
            if tuple(self.levels[name].shape) == shape:
                return name
        raise ConfigError(f"no level of {type(self).__name__} has shape {shape}; levels: "
                          f"{ {n: tuple(self.levels[n].shape) for n in self.level_order} }")

    def sampled_parts(self, given) -> list[str]:
        """The parts that sample, top first, when the levels named in ``given`` are given."""
        return [self.links[name].part for name in self.needed(set(given))]

    def needed(self, given, targets=None) -> list[str]:
        """The levels to sample, top first, to reach ``targets`` (default: the data) from the
        ``given`` ones."""
        need: set[str] = set()

        def visit(name):
            if name in given or name in need:
                return
            need.add(name)
            for g in self.links[name].given:
                visit(g)

        for name in targets or (self.level_order[0],):
            visit(name)
        return [n for n in reversed(self.level_order) if n in need]

    @torch.no_grad()
    def sample_levels(self, n: int, y=None, temperature=1.0, head_options: dict | None = None,
                      generator: torch.Generator | None = None, progress: bool = False,
                      given: dict | None = None, targets=None) -> SampledLevels:
        """Ancestral sampling from the top down: every level needed for ``targets`` (default: the
        data), by name (the ``given`` ones, each repeated ``n / B`` times, included). ``y`` a scalar
        or (n,) labels. ``progress``: True for progress bars, or a callable
        ``progress(rows_done, rows_total, t, level=NAME)`` called after each row of a level sampled
        row by row, and once with ``rows_done == rows_total`` when each level is complete (its
        exceptions stop the sampling, see ``ancestral_sample``)."""
        if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        n = int(n)
        apply_policy()  # the command line's thread policy, once, unless the user set threads
        known = self._check_given(given or {}, n)
        unknown = [t for t in targets or () if t not in self.levels]
        if unknown:
            raise ConfigError(f"unknown level(s) {unknown}; levels: {self.level_order}")
        order = self.needed(known, targets)
        temps, ho = self.sampling_options(temperature, head_options, [self.links[l].part for l in order])
        self._check_labels(y, "sample", [self.links[l].part for l in order])
        y = expand_labels(y, n)
        observer = progress if callable(progress) else None
        for name in order:
            link = self.links[name]
            part_progress = progress if observer is None else partial(observer, level=name)
            known[name] = getattr(self.parts[link.part], link.method)(
                n, y=y, temperature=temps[link.part], head_options=ho[link.part], generator=generator,
                progress=part_progress, **self._cond_kwargs(link, known))
            if observer is not None:
                rows = known[name].shape[-2] if known[name].dim() >= 3 else 1
                observer(rows, rows, known[name], level=name)
        return SampledLevels({name: known[name] for name in self.level_order if name in known}, self.level_order[0])

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature=1.0, head_options: dict | None = None,
               generator: torch.Generator | None = None, progress: bool = False, known=None, mask=None,
               given: dict | None = None):
        """``n`` images (the data level), drawn from the top down (see ``sample_levels``)."""
        if known is not None or mask is not None:
            raise ConfigError(f"inpainting (known/mask) is not supported by {type(self).__name__}: it samples its "
                              "levels from the top down; start from given levels with sample(given={level: tensor})")
        return self.sample_levels(n, y, temperature, head_options, generator, progress, given).images

    def level_grid(self, n: int, **sample_options) -> list:
        """[(level, K), ...] of ``n`` samples, the top shown level first and the data last (the rows
        of Kolesnikov & Lampert's Fig. 2 and Fig. 6)."""
        shown = [name for name in reversed(self.level_order) if self.levels[name].shown]
        if len(shown) < 2:
            raise ConfigError(f"{type(self).__name__} has no auxiliary levels shown as images")
        lv = self.sample_levels(n, **sample_options)
        return [self.shown(name, lv[name]) for name in shown if name in lv]

    def shown(self, name: str, t: torch.Tensor) -> tuple:
        """(image, K) of a shown level: a continuous one holds values on the data's [-1, 1] scale
        (a VAE's means) and is shown on the data's levels."""
        level = self.levels[name]
        if level.discrete:
            return t, level.num_levels
        return unscale_levels(t, self.num_levels), self.num_levels
