"""Sample-quality metrics on images, through a feature network.

Images are integer tensors (or arrays) ``(N, C, H, W)`` in ``[0, K)``; a *feature network* is
anything that maps such a batch to ``(N, D)`` features: a pixelzoo classifier (its ``features``
method is used, its ``probs`` method gives the Inception Score), or any ``nn.Module`` / callable
(then pass ``probs=`` for the Inception Score). The numbers themselves come from
:mod:`pixelzoo.evaluation.metrics`.

Every metric name carries the feature network's id, e.g. ``fid[fashion-mnist-lenet-128]``: a
number computed with one feature network is not comparable with one computed with another.

* :func:`sample_quality` -- FID, IS, KID, improved precision/recall of generated vs real images.
* :func:`classification_accuracy_score` -- CAS (Ravuri & Vinyals 2019).
* :func:`fid_star` -- FID* (Razavi et al. 2019, sec. 5.3.1): samples vs reconstructions.
* :func:`nearest_neighbour_grid` -- each sample next to its nearest training images, as a PNG.
* :func:`real_vs_real` -- the floor: the real test set against a training subset of equal size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from . import metrics as M
from ..nn.modes import eval_mode
from ..models.base import Reconstructs

SAMPLE_METRICS = ("fid", "is", "kid", "pr")


# --------------------------------------------------------------------------------------- helpers
def feature_network_id(net, name: str | None = None) -> str:
    """The id that metric names carry: ``name`` if given, else the network's ``feature_id``
    (pixelzoo classifiers: ``<data>-lenet-128``), else its class name."""
    if name:
        return str(name)
    fid_name = getattr(net, "feature_id", None) or (getattr(net, "config", None) or {}).get("feature_id")
    if fid_name:
        return str(fid_name)
    return str(getattr(net, "__name__", None) or type(net).__name__)


def metric_key(metric: str, net_id: str) -> str:
    return f"{metric}[{net_id}]"


def as_images(images, what: str = "images") -> torch.Tensor:
    """A long tensor (N, C, H, W) from an integer tensor or array; floats are refused."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise DataError(f"{what} must be integer levels (uint8 or long), got dtype {x.dtype}")
    if x.dim() != 4:
        raise DataError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise DataError(f"{what} is empty")
    return x.long()


def _device_of(fn) -> torch.device:
    module = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    if isinstance(module, nn.Module):
        p = next(module.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def _batched(fn: Callable, images, batch_size: int, progress: bool, desc: str) -> np.ndarray:
    x = as_images(images)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    module = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    device = _device_of(fn)
    out = []
    with eval_mode(module):   # no dropout
        for s in tqdm(range(0, x.shape[0], batch_size), desc=desc, disable=not progress, leave=False):
            f = fn(x[s:s + batch_size].to(device))
            f = torch.as_tensor(f)
            if f.dim() != 2 or f.shape[0] != min(batch_size, x.shape[0] - s):
                raise DataError(f"{desc}: the network must map a batch of B images to (B, D), got {tuple(f.shape)}")
            out.append(f.detach().double().cpu().numpy())
    return np.concatenate(out)


def compute_features(net, images, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Features ``(N, D)`` (float64 numpy) of ``images``: ``net.features`` when the network has
    that method (pixelzoo classifiers: the 128-wide layer after its ReLU), else ``net(images)``.
    Batched, without gradients, with dropout off."""
    fn = getattr(net, "features", None)
    fn = fn if callable(fn) else net
    if not callable(fn):
        raise ConfigError(f"the feature network must be callable or have a features method, got {type(net).__name__}")
    return _batched(fn, images, batch_size, progress, "features")


def compute_probs(probs, images, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Class probabilities ``(N, K)`` of ``images``: ``probs`` is a network with a ``probs``
    method, or a callable returning probabilities."""
    fn = getattr(probs, "probs", None)
    fn = fn if callable(fn) else probs
    if not callable(fn):
        raise ConfigError("the Inception Score needs class probabilities: pass a network with a probs method "
                          "or a probs callable")
    return _batched(fn, images, batch_size, progress, "class probabilities")


def _probs_source(net, probs):
    if probs is not None:
        return probs
    if callable(getattr(net, "probs", None)):
        return net
    raise ConfigError(f"the Inception Score needs class probabilities: {type(net).__name__} has no probs method; "
                      "pass probs=<callable>")


# --------------------------------------------------------------------------------------- FID / IS / KID / PR
def sample_quality(generated, real, net, metrics: Iterable[str] = SAMPLE_METRICS, *, probs=None,
                   batch_size: int = 256, progress: bool = False, name: str | None = None,
                   real_features=None, generated_features=None, is_splits: int = 10,
                   kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3, seed: int = 0) -> dict:
    """FID, Inception Score, KID and improved precision/recall of ``generated`` against ``real``.

    ``metrics`` is any of ``"fid"``, ``"is"`` (of the generated images only), ``"kid"``, ``"pr"``.
    Features of each set are computed once (or passed precomputed). Returns a dict keyed
    ``fid[ID]``, ``is[ID]`` / ``is_std[ID]``, ``kid[ID]`` / ``kid_std[ID]``,
    ``precision[ID]`` / ``recall[ID]`` with ``ID`` = :func:`feature_network_id`.
    """
    wanted = [m.strip().lower() for m in metrics]
    unknown = sorted(set(wanted) - set(SAMPLE_METRICS))
    if unknown:
        raise ConfigError(f"unknown sample metric(s) {unknown}; valid: {list(SAMPLE_METRICS)}")
    net_id = feature_network_id(net, name)
    out: dict = {}
    needs_features = any(m in wanted for m in ("fid", "kid", "pr"))
    if needs_features:
        fake_f = generated_features if generated_features is not None else compute_features(net, generated, batch_size, progress)
        real_f = real_features if real_features is not None else compute_features(net, real, batch_size, progress)
    if "fid" in wanted:
        out[metric_key("fid", net_id)] = M.fid(real_f, fake_f)
    if "is" in wanted:
        p = compute_probs(_probs_source(net, probs), generated, batch_size, progress)
        # the splits must be random subsets: samples often come ordered (by class after rejection
        # sampling), and a split holding one class alone scores ~1
        p = p[np.random.default_rng(seed).permutation(p.shape[0])]
        mean, std = M.inception_score(p, splits=min(is_splits, p.shape[0]))
        out[metric_key("is", net_id)], out[metric_key("is_std", net_id)] = mean, std
    if "kid" in wanted:
        mean, std = M.kid(real_f, fake_f, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        out[metric_key("kid", net_id)], out[metric_key("kid_std", net_id)] = mean, std
    if "pr" in wanted:
        k = min(pr_k, len(real_f) - 1, len(fake_f) - 1)
        if k < 1:
            raise DataError("precision/recall needs at least 2 generated and 2 real images")
        pr = M.precision_recall(real_f, fake_f, k=k)
        out[metric_key("precision", net_id)], out[metric_key("recall", net_id)] = pr["precision"], pr["recall"]
    return out


# --------------------------------------------------------------------------------------- CAS
def classification_accuracy_score(samples, labels, test, *, net=None, steps: int | None = None,
                                  batch_size: int = 128, flip: bool | None = None, data_name: str | None = None,
                                  arch: dict | None = None, progress: bool = False, seed: int = 0,
                                  name: str | None = None, device=None) -> dict:
    """Classification Accuracy Score (Ravuri & Vinyals 2019): train the classifier architecture only
    on class-conditional ``samples`` with their conditioning ``labels``, and report its top-1 (and
    top-5, where there are >= 5 classes) accuracy on the real labelled ``test`` set.

    With ``net`` (the feature network, trained on real data) its accuracy on the same test set is
    reported next to it (``real_top1[ID]``), and its architecture, step count and flip setting are
    reused unless given; ``arch`` overrides the architecture (``{"name": "lenet", "channels": ...}``).
    Returns ``cas_top1[ID]``, ``cas_top5[ID]``, ``real_top1[ID]``, ``real_top5[ID]``. The classifier
    trains on ``device`` (None: the device of ``net``, else ``$PIXELZOO_DEVICE`` or auto).
    """
    from ..data import DataSplits, ImageDataset
    from .classifier import _RECORD_KEYS, classifier_accuracy, train_classifier

    x = as_images(samples, "samples")
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long().flatten()
    if test.labels is None or not test.num_classes:
        raise DataError(f"CAS needs a labelled test set; {test.name} has no labels")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"CAS: {x.shape[0]} samples but {y.shape[0]} labels")
    if tuple(x.shape[1:]) != test.image_shape:
        raise DataError(f"CAS: samples have shape {tuple(x.shape[1:])}, the test set {test.image_shape}")
    if int(x.min()) < 0 or int(x.max()) >= test.num_levels:
        raise DataError(f"CAS: sample values must lie in [0, {test.num_levels})")
    train = ImageDataset(name="samples", images=x.to(torch.uint8), labels=y, num_levels=test.num_levels,
                         num_classes=test.num_classes, source="generated samples")
    splits = DataSplits(train, test)
    config = dict(getattr(net, "config", None) or {}) if net is not None else {}
    if arch is None:
        arch = {k: v for k, v in config.items() if k not in _RECORD_KEYS + ("image_shape", "num_levels", "num_classes")}
        arch["name"] = config.get("name", "lenet") if config else "lenet"
    arch = dict(arch)
    arch_name = arch.pop("name", "lenet")
    training = config.get("training", {})
    if steps is None:
        steps = training.get("steps")
    if flip is None:
        flip = training.get("flip")
    data_name = data_name or (config.get("fingerprint") or {}).get("data") or test.name.split("/")[0]
    if device is None and isinstance(net, nn.Module):
        device = _device_of(net)
    clf = train_classifier(splits, data_name, steps=steps, batch_size=batch_size, flip=flip, seed=seed,
                           progress=progress, arch=arch_name, device=device, **arch)
    net_id = feature_network_id(net, name) if net is not None else (name or clf.config["feature_id"])
    out = {metric_key("cas_top1", net_id): clf.config["test_accuracy"]}
    if clf.config.get("test_top5") is not None:
        out[metric_key("cas_top5", net_id)] = clf.config["test_top5"]
    if net is not None and (callable(getattr(net, "logits", None)) or callable(getattr(net, "probs", None))):
        ref = classifier_accuracy(net, test)
        for k, v in ref.items():
            out[metric_key(f"real_{k}", net_id)] = v
    return out


# --------------------------------------------------------------------------------------- FID*
@torch.no_grad()
def reconstruct_images(model, images, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """``model.reconstruct`` over ``images`` in batches; raises ConfigError for a model that does not
    reconstruct (``pixelzoo.models.base.Reconstructs``)."""
    if not isinstance(model, Reconstructs):
        raise ConfigError(f"FID* compares samples with reconstructions of real images, so it needs a model with a "
                          f"deterministic reconstruct(x) (an autoencoder such as VQ-VAE-2); {type(model).__name__} "
                          "has none")
    x = as_images(images, "real images")
    device = _device_of(model)
    with eval_mode(model):
        parts = [as_images(model.reconstruct(x[s:s + batch_size].to(device)), "reconstructions").cpu()
                 for s in tqdm(range(0, x.shape[0], batch_size), desc="reconstructions", disable=not progress, leave=False)]
    return torch.cat(parts)


def fid_star(model, samples, real, net, *, batch_size: int = 256, progress: bool = False, name: str | None = None,
             sample_features=None) -> dict:
    """FID* (VQ-VAE-2, sec. 5.3.1): FID of ``samples`` against ``model.reconstruct(real)``, which
    factors out what the autoencoder cannot reconstruct. Returns ``{"fid_star[ID]": value}``."""
    recon = reconstruct_images(model, real, batch_size, progress)
    rec_f = compute_features(net, recon, batch_size, progress)
    fake_f = sample_features if sample_features is not None else compute_features(net, samples, batch_size, progress)
    return {metric_key("fid_star", feature_network_id(net, name)): M.fid(rec_f, fake_f)}


# --------------------------------------------------------------------------------------- nearest neighbours
def nearest_neighbour_grid(samples, references, num_levels: int, path, *, k: int = 5, rows: int | None = 10,
                           net=None, reference_features=None, batch_size: int = 256, progress: bool = False) -> dict:
    """A PNG grid: each row a sample followed by its ``k`` nearest ``references`` (training images),
    nearest first, in pixel space (``net`` None: Euclidean distance between the images' levels) or in
    the feature space of ``net``. The first ``rows`` samples are used (all when None).

    Returns ``{"path", "indices" (rows, k), "distances" (rows, k)}``.
    """
    x = as_images(samples, "samples")
    refs = as_images(references, "references")
    if tuple(x.shape[1:]) != tuple(refs.shape[1:]):
        raise DataError(f"samples {tuple(x.shape[1:])} and references {tuple(refs.shape[1:])} differ in shape")
    if rows is not None:
        x = x[:rows]
    if net is None:
        q, r = x.flatten(1).double().numpy(), refs.flatten(1).double().numpy()
    else:
        q = compute_features(net, x, batch_size, progress)
        r = reference_features if reference_features is not None else compute_features(net, refs, batch_size, progress)
    idx, dist = M.nearest_neighbours(q, r, k=k)
    from ..imaging import save_grid

    tiles = torch.cat([torch.cat([x[i:i + 1], refs[torch.as_tensor(idx[i])]]) for i in range(x.shape[0])])
    path = Path(path)
    save_grid(tiles, num_levels, path, ncol=k + 1)
    return {"path": path, "indices": idx, "distances": dist}


# --------------------------------------------------------------------------------------- floor
def real_vs_real(splits, net, metrics: Iterable[str] = SAMPLE_METRICS, *, n: int | None = None, seed: int = 0,
                 batch_size: int = 256, progress: bool = False, name: str | None = None) -> dict:
    """The real-vs-real floor of the sample metrics: the test set (or ``n`` random test images)
    against a random training subset of the same size, as if the training images were samples.
    The Inception Score is that of the training subset. Also returns ``n`` (images per set)."""
    test, train = splits.test, splits.train
    n = min(len(test), len(train)) if n is None else int(n)
    if n < 2 or n > min(len(test), len(train)):
        raise ConfigError(f"n must lie in [2, {min(len(test), len(train))}] (the smaller split), got {n}")
    g = torch.Generator().manual_seed(seed)
    real = test.images if n == len(test) else test.images[torch.randperm(len(test), generator=g)[:n]]
    fake = train.images[torch.randperm(len(train), generator=g)[:n]]
    out = sample_quality(fake, real, net, metrics, batch_size=batch_size, progress=progress, name=name, seed=seed)
    return {"n": n, **out}
