"""The feature network of the sample-quality metrics: a small LeNet-style classifier that pixelzoo
trains on each data set itself (pretrained ImageNet networks cannot be downloaded here).

Architecture (:class:`LeNetClassifier`): conv-conv-pool, conv-conv-pool (3x3 convolutions with
batch normalisation and ReLU, 2x2 max pooling, dropout), a fully connected *feature layer* of width 128 (ReLU), dropout, and a
fully connected layer to the class logits. Inputs are integer levels ``x`` in ``[0, K)`` scaled
to ``x / (K - 1) * 2 - 1``; any ``C`` and any ``H, W >= 8`` work.

The feature network's id is ``<data>-lenet-<feature_dim>`` (``fashion-mnist-lenet-128``); every
metric computed with it carries the id in its name, e.g. ``fid[fashion-mnist-lenet-128]``.

A saved classifier is a directory with ``config.json`` (architecture, the data-set *fingerprint*
it was trained on, its test accuracy) and ``model.safetensors``. :func:`load_classifier` with an
expected fingerprint refuses a classifier trained on other data, so it is never reused on the
wrong data set. :func:`get_feature_network` loads the cached classifier of a data set, or trains
and caches it on first use (cache: ``$PIXELZOO_CACHE/classifiers``, default
``~/.cache/pixelzoo/classifiers``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import CheckpointError, ConfigError, DataError
from ..io import atomic_write_json, load_tensors, save_tensors
from ..nn.modes import eval_mode
from ..models.base import Part

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FINGERPRINT_IMAGES = 1000
CACHE_ENV = "PIXELZOO_CACHE"
STEPS_ENV = "PIXELZOO_CLASSIFIER_STEPS"
NO_FLIP_DATA = ("digits", "mnist-idx")   # handwriting: a mirrored digit is another symbol

# keys of a classifier config.json that are records, not constructor arguments
_RECORD_KEYS = ("name", "fingerprint", "feature_id", "training", "test_accuracy", "test_top5")


# --------------------------------------------------------------------------------------- model
class LeNetClassifier(Part):
    """LeNet-style image classifier whose 128-wide hidden layer is the metrics' feature space.

    ``loss(x, y) -> {"loss", "accuracy"}`` (so the pixelzoo Trainer trains it), ``features(x)``
    ``(N, feature_dim)`` after the ReLU, ``logits(x)``, ``probs(x)``. ``x`` holds integer levels
    ``(N, C, H, W)`` in ``[0, num_levels)``.
    """

    has_likelihood = False   # no bits/dim: the Trainer only minimises the loss

    def __init__(self, image_shape, num_levels: int, num_classes: int, channels=(16, 32),
                 feature_dim: int = 128, dropout: float = 0.1, fc_dropout: float = 0.25, batch_norm: bool = True):
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        if h < 8 or w < 8 or c < 1:
            raise ConfigError(f"the LeNet classifier needs images of at least (1, 8, 8), got {(c, h, w)}")
        if not num_classes or int(num_classes) < 2:
            raise ConfigError(f"the LeNet classifier needs a labelled data set with >= 2 classes, got {num_classes!r}")
        if int(num_levels) < 2:
            raise ConfigError(f"num_levels must be >= 2, got {num_levels}")
        c1, c2 = (int(v) for v in channels)
        for name, p in (("dropout", dropout), ("fc_dropout", fc_dropout)):
            if not 0.0 <= float(p) < 1.0:
                raise ConfigError(f"{name} must lie in [0, 1), got {p}")
        self.image_shape = (c, h, w)
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)

        def conv(cin, cout):
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
            return layers + ([nn.BatchNorm2d(cout)] if batch_norm else []) + [nn.ReLU()]

        self.conv = nn.Sequential(
            *conv(c, c1), *conv(c1, c1), nn.MaxPool2d(2), nn.Dropout(dropout),
            *conv(c1, c2), *conv(c2, c2), nn.MaxPool2d(2), nn.Dropout(dropout),
        )
        self.fc_features = nn.Linear(c2 * (h // 4) * (w // 4), self.feature_dim)
        self.drop = nn.Dropout(fc_dropout)
        self.fc_logits = nn.Linear(self.feature_dim, self.num_classes)
        self.config: dict = {}

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise DataError(f"the classifier expects images of shape (N, {', '.join(map(str, self.image_shape))}), "
                            f"got {tuple(x.shape)}")
        if x.is_floating_point():
            raise DataError(f"the classifier expects integer levels in [0, {self.num_levels}), got dtype {x.dtype}")

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * (2.0 / (self.num_levels - 1)) - 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature layer, after its ReLU: (N, feature_dim)."""
        self.check_input(x)
        return F.relu(self.fc_features(self.conv(self.scale(x)).flatten(1)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_logits(self.drop(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=-1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        if y is None:
            raise DataError("the classifier is trained on labelled images; got no labels")
        logits = self.logits(x)
        return {"loss": F.cross_entropy(logits, y),
                "accuracy": (logits.argmax(-1) == y).float().mean().detach()}

    @property
    def feature_id(self) -> str | None:
        return self.config.get("feature_id")

    def save_pretrained(self, directory) -> None:
        save_classifier(self, directory)


_CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {"lenet": LeNetClassifier}


def register_classifier(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register a classifier architecture ``builder(image_shape, num_levels, num_classes, **hp)``."""
    if name in _CLASSIFIERS:
        raise ConfigError(f"classifier {name!r} is registered twice")
    _CLASSIFIERS[name] = builder


def list_classifiers() -> list[str]:
    return sorted(_CLASSIFIERS)


def create_classifier(name: str = "lenet", image_shape=(1, 28, 28), num_levels: int = 256,
                      num_classes: int = 10, **hparams) -> nn.Module:
    """Build the registered classifier ``name``; its ``config`` holds what rebuilds it."""
    if name not in _CLASSIFIERS:
        raise ConfigError(f"unknown classifier {name!r}; registered: {', '.join(list_classifiers())}")
    image_shape = [int(s) for s in image_shape]
    try:
        model = _CLASSIFIERS[name](tuple(image_shape), int(num_levels), num_classes, **hparams)
    except TypeError as e:
        raise ConfigError(f"bad hyper-parameters for classifier {name!r}: {e}") from e
    model.config = {"name": name, "image_shape": image_shape, "num_levels": int(num_levels),
                    "num_classes": num_classes, **copy.deepcopy(hparams)}
    return model


def feature_id_for(data_name: str, arch: str = "lenet", feature_dim: int = 128) -> str:
    return f"{canonical_data_name(data_name)}-{arch}-{int(feature_dim)}"


# --------------------------------------------------------------------------------------- saving
def save_classifier(model: nn.Module, directory) -> None:
    """``config.json`` + ``model.safetensors``; the weights are written first, so a directory with a
    config always has complete weights."""
    if not getattr(model, "config", None):
        raise CheckpointError("classifier has no config (build it with create_classifier to save it)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(model.state_dict(), directory / WEIGHTS_NAME)
    atomic_write_json(model.config, directory / CONFIG_NAME)


def read_classifier_config(directory) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {directory} is not a saved pixelzoo classifier "
                              "(train one with `pixelzoo train-classifier DATA`)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or config.get("name") not in _CLASSIFIERS:
        raise CheckpointError(f"{path} is not a classifier config (its 'name' must be one of {list_classifiers()})")
    return config


def fingerprint_mismatch(have: dict | None, want: dict) -> list[str]:
    """The fingerprint fields on which ``have`` differs from ``want`` (empty: they match)."""
    if not have:
        return ["fingerprint (none stored)"]
    return [k for k in sorted(want) if have.get(k) != want[k]]


def load_classifier(directory, fingerprint: dict | None = None, map_location="cpu") -> nn.Module:
    """The saved classifier in ``directory``, in eval mode on ``map_location`` (a device).

    With ``fingerprint`` (see :func:`data_fingerprint`), raise :class:`CheckpointError` unless the
    classifier was trained on exactly that data.
    """
    from ..io import load_state_strict

    directory = Path(directory)
    config = read_classifier_config(directory)
    if fingerprint is not None:
        bad = fingerprint_mismatch(config.get("fingerprint"), fingerprint)
        if bad:
            have = config.get("fingerprint") or {}
            raise CheckpointError(
                f"the classifier in {directory} was trained on other data: it differs in {', '.join(bad)} "
                f"(classifier: data {have.get('data')!r}, {have.get('n_train')} train / {have.get('n_test')} test, "
                f"hash {str(have.get('hash'))[:12]}; wanted: data {fingerprint.get('data')!r}, "
                f"{fingerprint.get('n_train')} train / {fingerprint.get('n_test')} test, hash {fingerprint['hash'][:12]}). "
                f"Train one for this data with `pixelzoo train-classifier {fingerprint.get('data')}`.")
    hparams = {k: v for k, v in config.items() if k not in _RECORD_KEYS}
    model = create_classifier(config["name"], **hparams)
    model.config = config
    device = resolve_device(map_location)
    model.to(device)
    load_state_strict(model, load_tensors(directory / WEIGHTS_NAME, device), str(directory / WEIGHTS_NAME))
    return model.eval()


# --------------------------------------------------------------------------------------- data
def canonical_data_name(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def data_fingerprint(data_name: str, splits) -> dict:
    """What identifies a data set: name, sizes, shape, levels, classes and a SHA-256 of the first
    1000 test images and labels (and of the first 1000 training labels)."""
    test, train = splits.test, splits.train
    h = hashlib.sha256()
    h.update(test.images[:FINGERPRINT_IMAGES].contiguous().numpy().tobytes())
    for labels in (test.labels, train.labels):
        if labels is not None:
            h.update(labels[:FINGERPRINT_IMAGES].contiguous().numpy().astype("<i8").tobytes())
    return {"data": canonical_data_name(data_name), "image_shape": list(splits.image_shape),
            "num_levels": int(splits.num_levels), "num_classes": splits.num_classes,
            "n_train": len(train), "n_test": len(test), "hash": h.hexdigest()}


def default_steps(n_train: int, batch_size: int = 128) -> int:
    """Training steps of the feature network: the env var ``PIXELZOO_CLASSIFIER_STEPS`` when set,
    else about 4 epochs, at least 600 and at most 2000 steps."""
    env = os.environ.get(STEPS_ENV)
    if env:
        try:
            steps = int(env)
        except ValueError:
            raise ConfigError(f"${STEPS_ENV} must be a positive integer, got {env!r}") from None
        if steps < 1:
            raise ConfigError(f"${STEPS_ENV} must be a positive integer, got {env!r}")
        return steps
    return int(min(2000, max(600, math.ceil(4 * n_train / batch_size))))


@torch.no_grad()
def classifier_accuracy(net, dataset, batch_size: int = 512, topk=(1, 5)) -> dict:
    """Top-k accuracies of ``net`` (``logits`` or ``probs`` method, or a callable giving logits) on a
    labelled dataset: ``{"top1": ..., "top5": ...}`` (top-k only for k <= number of classes)."""
    if dataset.labels is None:
        raise DataError(f"{dataset.name} has no labels: accuracy needs a labelled test set")
    fn = getattr(net, "logits", None) or getattr(net, "probs", None) or net
    correct = {k: 0 for k in topk}
    n = len(dataset)
    device = _device_of(net)
    with eval_mode(net):
        for s in range(0, n, batch_size):
            scores = fn(dataset.images[s:s + batch_size].long().to(device)).float().cpu()
            y = dataset.labels[s:s + batch_size]
            ranked = scores.argsort(dim=-1, descending=True)
            for k in topk:
                if k <= scores.shape[-1]:
                    correct[k] += int((ranked[:, :k] == y[:, None]).any(-1).sum())
    classes = dataset.num_classes or 0
    return {f"top{k}": correct[k] / n for k in topk if k <= classes}


def _device_of(net) -> torch.device:
    if isinstance(net, nn.Module):
        p = next(net.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------- training
def train_classifier(splits, data_name: str, steps: int | None = None, batch_size: int = 128,
                     lr: float = 2e-3, flip: bool | None = None, seed: int = 0, progress: bool = True,
                     log_dir=None, arch: str = "lenet", device=None, **hparams) -> nn.Module:
    """Train a classifier on ``splits.train`` with the pixelzoo Trainer on ``device``
    (``pixelzoo.devices.resolve_device``; None: ``$PIXELZOO_DEVICE`` or auto); return it in eval mode,
    on that device, with its config holding the data fingerprint, feature id and test accuracy.

    ``steps`` defaults to :func:`default_steps`; ``flip`` (random horizontal flips) defaults to off
    for digit data and on otherwise; the learning rate decays to a tenth over the run. The Trainer's
    ``metrics.jsonl`` goes to ``log_dir`` when given (else a temporary directory)."""
    from ..training import TrainConfig, Trainer

    if splits.num_classes is None:
        raise DataError(f"data set {data_name!r} has no labels: a classifier feature network cannot be trained on it; "
                        "pass your own feature network instead")
    data_name = canonical_data_name(data_name)
    steps = int(steps) if steps is not None else default_steps(len(splits.train), batch_size)
    if flip is None:
        flip = data_name not in NO_FLIP_DATA
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, lr_decay=0.1 ** (1.0 / steps), grad_clip=None,
                      polyak=None, flip=bool(flip), seed=seed, log_every=max(1, min(50, steps)), eval_every=0,
                      eval_images=None, sample_every=0, num_samples=0, checkpoint_every=steps)
    torch.manual_seed(seed)
    model = create_classifier(arch, splits.image_shape, splits.num_levels, splits.num_classes, **hparams)
    with tempfile.TemporaryDirectory(prefix="pixelzoo-classifier-") as tmp:
        trainer = Trainer(model, splits, cfg, tmp, progress=progress, tensorboard=False, device=resolve_device(device))
        result = trainer.train()
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / "metrics.jsonl", Path(log_dir) / "metrics.jsonl")
    model.eval()
    acc = classifier_accuracy(model, splits.test)
    model.config.update({
        "fingerprint": data_fingerprint(data_name, splits),
        "feature_id": feature_id_for(data_name, arch, getattr(model, "feature_dim", 0)),
        "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "flip": bool(flip), "seed": seed,
                     "seconds": result["train_seconds"]},
        "test_accuracy": acc["top1"],
        "test_top5": acc.get("top5"),
    })
    return model


# --------------------------------------------------------------------------------------- cache
def cache_root(cache_dir=None) -> Path:
    """Where feature networks are cached: ``cache_dir``, else ``$PIXELZOO_CACHE/classifiers``, else
    ``~/.cache/pixelzoo/classifiers``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    return (Path(env) if env else Path.home() / ".cache" / "pixelzoo") / "classifiers"


def get_feature_network(data_name: str, data_dir=None, cache_dir=None, train_if_missing: bool = True, *,
                        splits=None, data_options: dict | None = None, steps: int | None = None,
                        progress: bool = True, device=None) -> nn.Module:
    """The feature network of a data set: the cached classifier whose fingerprint matches the data,
    or, on first use (``train_if_missing``), one trained now and saved to the cache.

    ``splits`` (already loaded data) saves loading the data set again; ``data_options`` are
    :func:`pixelzoo.data.load_dataset` options (e.g. ``{"pad_to": 32}``). The cache holds one
    directory per data fingerprint, ``<data>-lenet-128-<hash>``; ``steps`` only applies when
    training (default :func:`default_steps`). The network is loaded onto (or trained on) ``device``
    (None: ``$PIXELZOO_DEVICE`` or auto).
    """
    if splits is None:
        from ..data import load_dataset

        splits = load_dataset(data_name, data_dir, **(data_options or {}))
    fp = data_fingerprint(data_name, splits)
    fid_name = feature_id_for(data_name)
    directory = cache_root(cache_dir) / f"{fid_name}-{fp['hash'][:10]}"
    if (directory / CONFIG_NAME).is_file():
        try:
            return load_classifier(directory, fingerprint=fp, map_location=resolve_device(device))
        except CheckpointError as e:
            if not train_if_missing:
                raise
            print(f"pixelzoo: cached feature network not usable ({e}); training a new one", file=sys.stderr)
    elif not train_if_missing:
        raise CheckpointError(f"no cached feature network for {fp['data']} in {directory}; "
                              f"train one with `pixelzoo train-classifier {fp['data']}` or pass train_if_missing=True")
    n_steps = int(steps) if steps is not None else default_steps(len(splits.train))
    print(f"pixelzoo: training the feature network {fid_name} on {len(splits.train)} {fp['data']} images "
          f"({n_steps} steps; once per data set, cached in {directory})", file=sys.stderr)
    model = train_classifier(splits, data_name, steps=n_steps, progress=progress, device=device)
    save_classifier(model, directory)
    print(f"pixelzoo: feature network {fid_name}: test accuracy {model.config['test_accuracy']:.4f}", file=sys.stderr)
    return model
