"""Commands that evaluate: a run directory (``pixelzoo evaluate``), the real-vs-real floor (``pixelzoo evaluate
--real``) and training a feature network (``pixelzoo train-classifier``)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import load_dataset
from ..devices import resolve_device
from ..data.npz import check_npz_archive
from ..errors import CheckpointError, ConfigError, DataError, StorageError
from ..evaluation.classifier import (cache_root, canonical_data_name, data_fingerprint, feature_id_for, get_feature_network,
                         load_classifier, save_classifier, train_classifier)
from ..evaluation.latent_bounds import dataset_latent_bounds
from ..training.held_out import dataset_bits_per_dim
from ..evaluation.sample_quality import (SAMPLE_METRICS, as_images, classification_accuracy_score, compute_features, fid_star,
                             feature_network_id, nearest_neighbour_grid, real_vs_real, sample_quality)
from ..io import atomic_write_json, atomic_write_npz, check_writable, read_metadata
from ..training import load_data, load_run_model
from ..training.run import new_run_dir
from ..zoo import card as zoo_card, is_zoo_name, local_dir
from ..models.base import ImportanceWeighted, Reconstructs, SamplesImages

RUN_METRICS = ("bpd", "iwae", "fid", "is", "kid", "pr", "cas", "nn", "fid_star")
_ALIASES = {"fid*": "fid_star", "fidstar": "fid_star", "precision": "pr", "recall": "pr", "bits": "bpd"}
EVAL_NAME = "eval.json"


def parse_metrics(text: str | list[str] | None, default=("bpd",), allowed=RUN_METRICS) -> list[str]:
    """``"bpd,fid,is"`` -> ``["bpd", "fid", "is"]`` (order kept, duplicates dropped, names checked)."""
    if text is None:
        return list(default)
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        name = _ALIASES.get(item.strip().lower(), item.strip().lower())
        if not name:
            continue
        if name not in allowed:
            raise ConfigError(f"unknown metric {item.strip()!r}; valid: {', '.join(allowed)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"no metric given; valid: {', '.join(allowed)}")
    return out


def _feature_net(feature_net, data_name: str, splits, cache_dir, progress: bool, device="cpu"):
    """A saved classifier directory (checked against the data), a ready network, or the cached /
    newly trained one of the data set; the first and the last on ``device``."""
    if feature_net is None:
        return get_feature_network(data_name, splits=splits, cache_dir=cache_dir, progress=progress, device=device)
    if isinstance(feature_net, (str, Path)):
        return load_classifier(feature_net, fingerprint=data_fingerprint(data_name, splits), map_location=device)
    return feature_net


# --------------------------------------------------------------------------------------- samples
def draw_samples(model, n: int, batch_size: int = 256, seed: int = 0, temperature: float = 1.0,
                 progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples (long) of ``model``, in batches; a class-conditional model gets labels balanced
    over the classes (``i % num_classes``). Returns ``(images, labels or None)``."""
    if not isinstance(model, SamplesImages):
        raise ConfigError(f"{type(model).__name__} has no sample method: sample metrics need a generative model")
    if n < 1:
        raise ConfigError(f"-n must be >= 1 to draw samples, got {n}")
    classes = model.num_classes
    y = torch.arange(n) % classes if classes else None
    g = torch.Generator().manual_seed(seed)
    parts = []
    for s in tqdm(range(0, n, batch_size), desc=f"drawing {n} samples", disable=not progress):
        e = min(s + batch_size, n)
        parts.append(model.sample(e - s, y=None if y is None else y[s:e], temperature=temperature,
                                  generator=g, progress=progress).long().cpu())
    return torch.cat(parts), y


def load_samples(path, image_shape, num_levels: int, num_classes: int | None, n: int | None = None):
    """Samples from an ``.npz`` with ``images`` (N, C, H, W) and ``labels`` (as ``pixelzoo sample``
    writes), checked against the data; the first ``n`` when given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    check_npz_archive(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            images = f["images"]
            labels = f["labels"] if "labels" in f.files else np.zeros(0, np.int64)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not an .npz with an 'images' array ({e})") from e
    if images.ndim >= 1 and images.shape[0] == 0:
        raise DataError(f"{path} holds no images (its 'images' array has shape {images.shape})")
    x = as_images(images, f"{path}: images")
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(f"{path}: images have shape {tuple(x.shape[1:])}, the data set {tuple(image_shape)}")
    if int(x.min()) < 0 or int(x.max()) >= num_levels:
        raise DataError(f"{path}: image values must lie in [0, {num_levels})")
    y = torch.as_tensor(labels).long().flatten() if labels.size else None
    if y is not None and y.shape[0] != x.shape[0]:
        raise DataError(f"{path}: {x.shape[0]} images but {y.shape[0]} labels")
    if n is not None:
        if n > x.shape[0]:
            raise DataError(f"{path} holds {x.shape[0]} samples, fewer than -n {n}")
        x, y = x[:n], (None if y is None else y[:n])
    return x, y


def _checkpoint_step(run_dir: Path):
    """The training step of the run's checkpoint: an int, or for a run trained in parts (one
    checkpoint per part) a dict ``{part: step}``; None when there is no readable checkpoint."""
    steps = {}
    for path in sorted(run_dir.rglob("checkpoint.safetensors")):
        try:
            steps[str(path.parent.relative_to(run_dir))] = int(read_metadata(path).get("step"))
        except (CheckpointError, TypeError, ValueError):
            continue
    if not steps:
        return None
    return steps["."] if list(steps) == ["."] else steps


def _step_tag(step) -> str:
    if step is None or isinstance(step, int):
        return str(step)
    return "-".join(f"{v}" for _, v in sorted(step.items()))


# --------------------------------------------------------------------------------------- run
def evaluate_run(run_dir, metrics=("bpd",), n: int | None = None, *, batch_size: int = 256, progress: bool = True,
                 feature_net=None, cache_dir=None, seed: int = 0, temperature: float = 1.0, samples=None,
                 cas_steps: int | None = None, nn_k: int = 5, nn_rows: int = 10, write: bool = True,
                 iwae_samples: int = 150, device=None) -> dict:
    """Evaluate the model of ``run_dir`` and write ``RUN_DIR/eval.json`` (merged with an existing one
    of the same checkpoint step).

    * ``bpd``: test bits/dim (the first ``n`` test images when ``n`` is given), only for a model
      with a likelihood (otherwise reported as skipped).
    * ``iwae``: a latent-variable model's (AGAVE's) ELBO and importance-weighted bound with
      ``iwae_samples`` draws per image, the KL, reconstruction and auxiliary terms, on the same images
      as ``bpd`` (``pixelzoo.evaluation.latent_bounds``).
    * ``fid``, ``is``, ``kid``, ``pr``, ``fid_star``, ``cas``, ``nn``: on ``n`` samples (default:
      as many as test images) drawn with ``seed`` and ``temperature`` (class-conditional: labels
      balanced over the classes), or read from ``samples`` (an ``.npz``). Drawn samples are kept in
      ``RUN_DIR/eval/`` and reused by a later evaluation with the same n, seed, temperature and
      checkpoint step. FID, KID, precision/recall and FID* compare with the whole real test set;
      CAS tests on it; ``nn`` compares with the training set.
    * The feature network is ``feature_net`` (a saved classifier directory, checked against the
      data, or a network), else the data set's cached one (trained on first use).
    * Everything runs on ``device`` ("auto", "cpu", "cuda", "cuda:N"; None: ``$PIXELZOO_DEVICE`` or
      auto), whichever device the run trained on.
    """

    wanted = parse_metrics(metrics)
    source, run_dir = run_dir, local_dir(run_dir)  # a zoo model's outputs go to ./zoo-NAME
    device = resolve_device(device)
    model, config = load_run_model(source, device)
    data_name = canonical_data_name(config["data"]["name"])
    splits = load_data(config["data"])
    test = splits.test
    step = zoo_card(source).get("steps") if is_zoo_name(source) else _checkpoint_step(run_dir)
    result: dict = {"data": test.name, "step": step}
    notes: list[str] = []

    # refuse impossible requests before any long computation
    sample_wanted = [m for m in wanted if m not in ("bpd", "iwae")]
    if "iwae" in wanted and not isinstance(model, ImportanceWeighted):
        raise ConfigError(f"the iwae metric needs a latent-variable model (AGAVE); {type(model).__name__} is not one")
    if "cas" in wanted and not model.num_classes:
        raise ConfigError("CAS trains a classifier on class-conditional samples; this model is not class-conditional")
    if "cas" in wanted and test.labels is None:
        raise ConfigError(f"CAS needs a labelled test set; {test.name} has no labels")
    if "fid_star" in wanted and not isinstance(model, Reconstructs):
        raise ConfigError(f"FID* needs a model with a deterministic reconstruct(x) (an autoencoder such as VQ-VAE-2); "
                          f"{type(model).__name__} has none")
    if sample_wanted and samples is None and not isinstance(model, SamplesImages):
        raise ConfigError(f"{type(model).__name__} has no sample method: {', '.join(sample_wanted)} need samples")
    if "nn" in wanted:
        check_writable(run_dir / "eval", "the nn metric writes its grids there")

    if "bpd" in wanted:
        if model.has_likelihood:
            result["test_bpd"] = dataset_bits_per_dim(model, test, batch_size, n, progress=progress)
            result["test_images"] = len(test) if n is None else min(n, len(test))
        else:
            notes.append("bpd skipped: the model has no likelihood")
            result["bpd_skipped"] = "the model has no likelihood"

    if "iwae" in wanted:
        bounds = dataset_latent_bounds(model, test, iwae_samples, min(batch_size, 64), n, seed, progress)
        result.update({f"test_{k}" if k.endswith("_bpd") else k: v for k, v in bounds.items()})
        notes.append(f"iwae: ELBO and IWAE bound with k = {bounds['iwae_samples']} draws per image on the first "
                     f"{bounds['bound_images']} test images (seed {seed}), in bits per dimension of x")

    if sample_wanted:
        net = _feature_net(feature_net, data_name, splits, cache_dir, progress, device)
        net_id = feature_network_id(net)
        result["feature_net"] = net_id
        if isinstance(feature_net, (str, Path)):
            result["feature_net_dir"] = str(feature_net)
        x, y = _get_samples(model, run_dir, samples, n if n is not None else len(test), step, splits,
                            batch_size, seed, temperature, progress, notes)
        result.update({"num_samples": int(x.shape[0]), "sample_seed": seed, "temperature": temperature})
        if samples is not None:
            result["samples_file"] = str(samples)
        ref = f"the {len(test)} images of the {data_name} test set"
        fake_f = None
        quality = [m for m in wanted if m in SAMPLE_METRICS]
        if set(quality) - {"is"} or "fid_star" in wanted:
            fake_f = compute_features(net, x, batch_size, progress)
        if quality:
            real_f = compute_features(net, test.images, batch_size, progress) if set(quality) - {"is"} else None
            result.update(sample_quality(x, test.images, net, quality, batch_size=batch_size, progress=progress,
                                         real_features=real_f, generated_features=fake_f, seed=seed))
            if set(quality) - {"is"}:
                notes.append(f"FID/KID/precision/recall: {x.shape[0]} samples against {ref}")
                result["reference"] = ref
        if "fid_star" in wanted:
            result.update(fid_star(model, None, test.images, net, batch_size=batch_size, progress=progress,
                                   sample_features=fake_f))
            notes.append(f"FID*: samples against the model's reconstructions of {ref}")
        if "cas" in wanted:
            if y is None:
                raise ConfigError("CAS needs the samples' class labels; the samples file has none")
            result.update(classification_accuracy_score(x, y, test, net=net, steps=cas_steps, data_name=data_name,
                                                        progress=progress, seed=seed, device=device))
            notes.append(f"CAS: a classifier trained only on the {x.shape[0]} samples, tested on {ref}; "
                         "real_top1: the feature network (trained on real data) on the same test set")
        if "nn" in wanted:
            out_dir = run_dir / "eval"
            rows = min(nn_rows, x.shape[0])
            k = min(nn_k, len(splits.train))
            pix = nearest_neighbour_grid(x, splits.train.images, splits.num_levels, out_dir / "nn-pixel.png",
                                         k=k, rows=rows)
            feat = nearest_neighbour_grid(x, splits.train.images, splits.num_levels,
                                          out_dir / f"nn-feature-{net_id}.png", k=k, rows=rows, net=net,
                                          batch_size=batch_size, progress=progress)
            result["nn_pixel_grid"] = str(pix["path"].relative_to(run_dir))
            result[f"nn_feature_grid[{net_id}]"] = str(feat["path"].relative_to(run_dir))
            notes.append(f"nearest neighbours: each row a sample, then its {k} nearest training images "
                         f"(pixel space: {result['nn_pixel_grid']}; feature space: {result[f'nn_feature_grid[{net_id}]']})")
    result["notes"] = notes
    if write:
        write_eval(run_dir, result)
    return result


def write_eval(run_dir, result: dict) -> Path:
    """Write ``result`` to ``RUN_DIR/eval.json``, merged with an existing one of the same checkpoint
    step; StorageError naming the file when it cannot be written (the old one kept whole)."""
    path = local_dir(run_dir) / EVAL_NAME
    merged = result
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (ValueError, OSError):
            old = None
        if isinstance(old, dict) and old.get("step") == result.get("step"):
            merged = {**old, **result, "notes": list(dict.fromkeys(old.get("notes", []) + result.get("notes", [])))}
    atomic_write_json(merged, path)
    return path


def _get_samples(model, run_dir, samples, n, step, splits, batch_size, seed, temperature, progress, notes):
    if samples is not None:
        x, y = load_samples(samples, splits.image_shape, splits.num_levels, splits.num_classes, n)
        notes.append(f"samples read from {samples}")
        return x, y
    cache = run_dir / "eval" / f"samples-n{n}-seed{seed}-t{temperature:g}-step{_step_tag(step)}.npz"
    if cache.is_file():
        try:
            x, y = load_samples(cache, splits.image_shape, splits.num_levels, splits.num_classes, n)
            notes.append(f"samples reused from {cache.relative_to(run_dir)}")
            return x, y
        except DataError:
            pass
    t0 = time.perf_counter()
    x, y = draw_samples(model, n, batch_size, seed, temperature, progress)
    try:
        atomic_write_npz(cache, images=x.numpy().astype(np.uint8),
                         labels=y.numpy() if y is not None else np.zeros(0, np.int64))
        notes.append(f"{n} samples drawn in {time.perf_counter() - t0:.0f} s, kept in {cache.relative_to(run_dir)}")
    except StorageError as e:  # a read-only run: the samples serve this evaluation only
        notes.append(f"{n} samples drawn in {time.perf_counter() - t0:.0f} s, not kept ({e})")
    return x, y


# --------------------------------------------------------------------------------------- real vs real
def evaluate_real(data_name: str, data_dir=None, metrics=("fid", "is", "kid", "pr"), n: int | None = None, *,
                  feature_net=None, cache_dir=None, batch_size: int = 256, progress: bool = True, seed: int = 0,
                  out=None, device=None, data_options: dict | None = None) -> dict:
    """The real-vs-real floor of a data set: the test set against an equally large random training
    subset, with the data set's feature network (or ``feature_net``) on ``device``. Written to
    ``out`` if given. ``data_options`` go to the data set (``{"pad_to": 32}``: the padded images, and
    the feature network of that shape, as a run on them is measured with)."""

    wanted = parse_metrics(metrics, allowed=SAMPLE_METRICS)
    splits = load_dataset(data_name, data_dir, **(data_options or {}))
    name = canonical_data_name(data_name)
    net = _feature_net(feature_net, name, splits, cache_dir, progress, resolve_device(device))
    values = real_vs_real(splits, net, wanted, n=n, seed=seed, batch_size=batch_size, progress=progress)
    k = values.pop("n")
    result = {"data": name, "feature_net": feature_network_id(net), "n": k, **values,
              "reference": f"{k} test images of {name} against {k} random training images (seed {seed}); "
                           "is: of the training images",
              "notes": [f"real-vs-real floor: {k} test images of {name} against {k} random training images "
                        "treated as samples"]}
    if out is not None:
        atomic_write_json(result, out)
    return result


# --------------------------------------------------------------------------------------- train-classifier
def train_feature_network(data_name: str, data_dir=None, steps: int | None = None, out=None, *,
                          batch_size: int = 128, progress: bool = True, install: bool = False, device=None):
    """Train the LeNet feature network of a data set and save it in ``out`` (default
    ``classifiers/<data>-lenet``; a taken directory gets a ``-1``, ``-2`` ... suffix); with
    ``install`` also into the cache that :func:`get_feature_network` reads; trained on ``device``.
    Returns ``(model, directory, seconds)``."""

    device = resolve_device(device)  # a bad or absent device fails before anything is made
    name = canonical_data_name(data_name)
    splits = load_dataset(name, data_dir)
    directory = new_run_dir(out if out is not None else Path("classifiers") / f"{name}-lenet")
    t0 = time.perf_counter()
    model = train_classifier(splits, name, steps=steps, batch_size=batch_size, progress=progress, log_dir=directory,
                             device=device)
    seconds = time.perf_counter() - t0
    save_classifier(model, directory)
    if install:
        fp = model.config["fingerprint"]
        save_classifier(model, cache_root() / f"{feature_id_for(name)}-{fp['hash'][:10]}")
    return model, directory, seconds


# --------------------------------------------------------------------------------------- printing
def format_table(result: dict) -> str:
    """The numbers of an evaluation as a two-column table, then the notes."""
    rows = [(k, v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("step", "sample_seed")]
    rows += [(k, v) for k, v in result.items() if isinstance(v, str) and (k.startswith("nn_") or k == "feature_net")]
    width = max([len(k) for k, _ in rows] + [6])
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4f}" if math.isfinite(v) and abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
        lines.append(f"{k:<{width}}  {v}")
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    """``pixelzoo evaluate``'s parser."""
    from .options import COUNT, POSITIVE, SEED, TEMPERATURE, add_device_option, add_progress_option

    e = subparsers.add_parser("evaluate", help="evaluate a trained run (bits/dim, sample metrics); writes RUN_DIR/eval.json",
                              description="Evaluate a run: test bits/dim and sample metrics (FID, IS, KID, precision/recall, "
                                          "CAS, FID*, nearest neighbours) in the feature space of a classifier trained on the "
                                          "run's data set (trained and cached on first use). Or, with --real DATA, the "
                                          "real-vs-real floor: the test set against an equally large training subset.")
    e.add_argument("run_dir", nargs="?", help="run directory (omit with --real)")
    e.add_argument("--metrics", help="comma-separated: bpd,iwae,fid,is,kid,pr,cas,nn,fid_star (default bpd; "
                                     "with --real: fid,is,kid,pr); iwae: a latent-variable model's (AGAVE) ELBO, "
                                     "IWAE bound and their terms")
    e.add_argument("-n", type=COUNT, default=None,
                   help="samples to draw for sample metrics (default: as many as test images); bpd and iwae use "
                        "only the first N test images (default all)")
    e.add_argument("--iwae-samples", type=POSITIVE, default=150, metavar="K",
                   help="importance samples per image of the iwae metric (default 150, the AGAVE paper's)")
    e.add_argument("--batch-size", type=POSITIVE, default=256, help="evaluation and sampling batch size")
    e.add_argument("--feature-net", metavar="DIR", help="a saved classifier (pixelzoo train-classifier) instead of "
                                                        "the cached one of the data set")
    e.add_argument("--samples", metavar="NPZ", help="use these samples (images, labels; as `pixelzoo sample` writes) "
                                                    "instead of drawing new ones")
    e.add_argument("--seed", type=SEED, default=0, help="random seed of the samples (and of --real's subset)")
    e.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature")
    e.add_argument("--cas-steps", type=POSITIVE, help="training steps of the CAS classifier (default: the feature network's)")
    e.add_argument("--real", metavar="DATA", help="no run: the real-vs-real floor of data set DATA")
    e.add_argument("--data-dir", help="with --real: folder the data set is read from")
    e.add_argument("--out", help="with --real: also write the result to this JSON file")
    add_progress_option(e)
    add_device_option(e)
    return e


def run(args) -> int:
    """``pixelzoo evaluate``: a run (``evaluate_run``) or, with ``--real``, the real-vs-real floor."""
    from ..errors import PixelzooError

    progress = not args.no_progress
    if args.real:
        if args.run_dir:
            raise PixelzooError("give either RUN_DIR or --real DATA, not both")
        result = evaluate_real(args.real, args.data_dir, args.metrics or "fid,is,kid,pr", args.n,
                               feature_net=args.feature_net, batch_size=args.batch_size, progress=progress,
                               seed=args.seed, out=args.out, device=args.device)
        print(f"real-vs-real floor of {result['data']} with feature network {result['feature_net']}")
    else:
        if not args.run_dir:
            raise PixelzooError("give a run directory to evaluate, or --real DATA for the real-vs-real floor")
        if args.data_dir or args.out:
            raise PixelzooError("--data-dir and --out apply to --real only (a run evaluation writes RUN_DIR/eval.json)")
        writable = True
        try:
            check_writable(local_dir(args.run_dir), f"{EVAL_NAME} goes there")
        except StorageError as e:  # evaluate all the same, show the result, then say it is not saved
            writable = False
            print(f"pixelzoo evaluate: warning: {e}; the result will be shown but not saved", file=sys.stderr)
        result = evaluate_run(args.run_dir, args.metrics or "bpd", args.n, batch_size=args.batch_size,
                              progress=progress, feature_net=args.feature_net, seed=args.seed,
                              temperature=args.temperature, samples=args.samples, cas_steps=args.cas_steps,
                              iwae_samples=args.iwae_samples, device=args.device, write=False)
        print(f"evaluation of {args.run_dir} (step {result['step']})")
        print(format_table(result), flush=True)  # shown before writing: a failed write loses nothing
        try:
            path = write_eval(args.run_dir, result)
        except StorageError as e:
            print(f"pixelzoo evaluate: error: {e}; the result above is not saved"
                  + ("" if writable else " (the run directory is not writable)"), file=sys.stderr)
            return 1
        print(f"written to {path}")
        return 0
    print(format_table(result))
    return 0
