"""The models a page serves: the zoo's (``zoo:NAME``) and the run directories under one folder
(named by their path relative to it), with what each can do, its card, its curves and its test
images. Models load on first use and stay loaded, the ``loaded`` most recently used of them."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..commands.evaluate import EVAL_NAME
from ..commands.plot import run_curves
from ..errors import CheckpointError, ConfigError, PixelzooError
from ..models.chain import Chain
from ..models.composites.grayscale_pyramid import GrayscalePixelCNN, PyramidPixelCNN
from ..models.base import ImportanceWeighted, Reconstructs, SamplesReconstructions, has_likelihood
from ..training import load_data, load_run_model
from ..training.logger import parse_rows
from ..training.run import RUN_CONFIG as TRAINING_CONFIG, read_run_config
from ..zoo import CARD, RUN_CONFIG, is_zoo_name, list_zoo, read_json, zoo_entry

METRICS_FILE = "metrics.jsonl"
MAX_DEPTH = 4  # run directories are looked for this deep under the folder
CURVE_POINTS = 400  # a curve sent to the page has at most this many points (evenly thinned)


class UnknownModel(PixelzooError):
    """A model name that is neither a zoo model nor a run under the served folder."""


def capabilities(model) -> list[str]:
    """What the page offers for ``model``, from the capabilities it declares."""
    caps = ["sample"]
    if not isinstance(model, Chain):
        caps.append("inpaint")  # a chain samples from the top down: no pixel-level inpainting
    if isinstance(model, GrayscalePixelCNN):
        caps.append("colorize")
    if isinstance(model, PyramidPixelCNN):
        caps.append("upscale")
    if isinstance(model, (Reconstructs, SamplesReconstructions)):
        caps.append("reconstruct")
    if has_likelihood(model) and not isinstance(model, ImportanceWeighted):
        caps.append("surprise")
    return caps


def _is_run(folder: Path) -> bool:
    """Whether ``folder`` is a run directory: its configuration has the sections ``pixelzoo train`` writes."""
    try:
        config = json.loads((folder / TRAINING_CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and all(isinstance(config.get(k), dict) for k in ("model", "data", "train"))


def _thin(points: list, most: int) -> list:
    if len(points) <= most:
        return points
    step = len(points) / most
    return [points[int(k * step)] for k in range(most - 1)] + [points[-1]]


class Catalogue:
    """The served models. ``runs_dir`` None: the zoo only."""

    def __init__(self, runs_dir=None, device="cpu", loaded: int = 2):
        self.runs_dir = None if runs_dir is None else Path(runs_dir).resolve()
        if self.runs_dir is not None and not self.runs_dir.is_dir():
            raise ConfigError(f"{runs_dir}: no such folder (give a folder holding run directories)")
        self.device, self.most_loaded = device, loaded
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._test: dict[str, object] = {}

    # ------------------------------------------------------------------ names
    def runs(self) -> list[str]:
        """The run directories under the folder, at most ``MAX_DEPTH`` deep, as relative paths (hidden
        folders and a run's own part folders left out)."""
        if self.runs_dir is None:
            return []
        found = []
        for root, dirs, files in os.walk(self.runs_dir):
            rel = Path(root).relative_to(self.runs_dir)
            if TRAINING_CONFIG in files and rel.parts and _is_run(Path(root)):
                found.append(rel.as_posix())
                dirs[:] = []  # a composite's parts are inside its run, not runs of their own
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if len(rel.parts) < MAX_DEPTH else []
        return sorted(found)

    def names(self) -> list[str]:
        return [f"zoo:{n}" for n in list_zoo()] + self.runs()

    def folder(self, name: str) -> Path:
        """The folder of a served model; UnknownModel for any other name (no path outside the folder is reachable)."""
        if not isinstance(name, str) or not name:
            raise UnknownModel("no model named")
        if is_zoo_name(name):
            if name[4:] not in list_zoo():
                raise UnknownModel(f"{name}: no such zoo model (the zoo has {', '.join(list_zoo()) or 'none'})")
            return zoo_entry(name, check=False)
        if name not in self.runs():  # only names the listing gives: "..", absolute paths never match
            raise UnknownModel(f"{name}: no such run under the served folder")
        return self.runs_dir / name

    def config(self, name: str) -> dict:
        folder = self.folder(name)
        return read_json(folder, RUN_CONFIG) if is_zoo_name(name) else read_run_config(folder)

    # ------------------------------------------------------------------ models
    def model(self, name: str):
        """The loaded model of ``name`` (loading it if needed, evicting the least recently used)."""
        self.folder(name)
        with self._lock:
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # two requests for a model not loaded yet load it once
            with self._lock:
                if name in self._loaded:
                    self._loaded.move_to_end(name)
                    return self._loaded[name]
            model, _ = load_run_model(name if is_zoo_name(name) else self.runs_dir / name, self.device)
            with self._lock:
                self._loaded[name] = model
                while len(self._loaded) > self.most_loaded:
                    self._loaded.popitem(last=False)
        return model

    def test_images(self, name: str):
        """The test split of the model's data set (loaded once per model)."""
        with self._lock:
            if name in self._test:
                return self._test[name]
        test = load_data(self.config(name)["data"]).test
        with self._lock:
            self._test[name] = test
        return test

    # ------------------------------------------------------------------ what the page shows
    def info(self, name: str) -> dict:
        """The model's card: what it is, how it was trained, how good it is, and what it can do."""
        folder = self.folder(name)
        config = self.config(name)
        model = self.model(name)
        c, h, w = model.image_shape
        info = {"name": name, "model": config["model"].get("name"), "preset": config.get("preset"),
                "data": config["data"].get("name"), "image_shape": [c, h, w], "num_levels": model.num_levels,
                "num_classes": model.num_classes, "capabilities": capabilities(model),
                "parameters": sum(p.numel() for p in model.parameters()),
                "level_names": list(getattr(model, "level_order", []))}
        if is_zoo_name(name):
            card = read_json(folder, CARD)
            info["card"] = {k: card[k] for k in ("steps", "images_seen", "wall_seconds", "cores", "test_bpd_full",
                                                 "weights", "commit", "command", "sample_seconds") if k in card}
            info["sample_metrics"] = card.get("sample_metrics")
        rows = self._metric_rows(folder / METRICS_FILE)
        if rows:
            info.setdefault("card", {})["steps"] = info.get("card", {}).get("steps", rows[-1].get("step"))
            tests = [r for r in rows if "test_bpd" in r]
            if tests and "test_bpd_full" not in info["card"]:  # a zoo card has the whole test set's
                info["card"]["test_bpd"] = tests[-1]["test_bpd"]
        evaluation = folder / EVAL_NAME
        if evaluation.is_file():
            try:
                info["evaluation"] = {k: v for k, v in json.loads(evaluation.read_text()).items()
                                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
            except ValueError:
                info["evaluation"] = {}
        return info

    @staticmethod
    def _metric_rows(path: Path) -> list[dict]:
        if not path.is_file():
            return []
        try:
            return parse_rows(path)[0]
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read it ({e})") from None

    def curves(self, name: str) -> dict:
        """{series: {metric: [[step, value], ...]}}: the run's curves as ``pixelzoo plot`` reads them
        (``commands.plot.run_curves``: a composite's parts, each a series named for the part); empty
        when the run has logged nothing yet."""
        try:
            series, _ = run_curves(self.folder(name), label="run")
        except ConfigError:  # no metrics.jsonl yet
            return {"series": {}}
        return {"series": {label.removeprefix("run/"): {k: _thin([list(p) for p in zip(*v)], CURVE_POINTS)
                                                        for k, v in metrics.items()}
                           for label, metrics in series.items()}}
