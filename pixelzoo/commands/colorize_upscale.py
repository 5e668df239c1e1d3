"""``pixelzoo colorize`` and ``pixelzoo upscale``: sample a composite's image given one of its levels
(a gray view; a lower resolution), as a PNG grid with a row per given image and an .npz."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.npz import check_npz_archive
from ..errors import ConfigError
from ..imaging import save_grid
from ..io import atomic_write_npz, check_writable, output_paths
from ..sampling.labels import expand_labels
from ..models.composites.grayscale_pyramid import GrayscalePixelCNN, PyramidPixelCNN
from ..zoo import local_dir
from ..training import load_data, load_run_model
from ..views import gray_to_image, upsample_nearest


DEFAULT_COUNT = 8  # colorize's, upscale's and reconstruct's -n when not given: 8, or all the input holds when fewer


def given_images(images: str, config: dict, count: int | None, seed: int):
    """Images (long) and labels (or None) from the command line's IMAGES argument: ``test`` for
    ``count`` random test images of the run's data set, or an .npz with ``images`` (and ``labels``)
    as ``pixelzoo sample`` writes (its first ``count``). A ``count`` beyond the images there is a
    ConfigError naming both numbers; ``count=None`` (-n not given) takes ``DEFAULT_COUNT`` images, or
    all there are when fewer."""
    if count is not None and (int(count) != count or count < 1):
        raise ConfigError(f"-n must be a positive integer, got {count!r}")
    if images == "test":
        test = load_data(config["data"]).test
        if count is not None and count > len(test):
            raise ConfigError(f"-n {count} asks for more images than the {len(test)} test images of "
                              f"{test.name}; give -n {len(test)} or fewer")
        idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:count or DEFAULT_COUNT]
        return test.images[idx].long(), (None if test.labels is None else test.labels[idx])
    path = Path(images)
    if not path.is_file():
        raise ConfigError(f"{images}: no such file; give an .npz written by `pixelzoo sample`, or `test`")
    check_npz_archive(path, ConfigError)
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # not a zip, truncated, ...
        raise ConfigError(f"{path}: cannot read it as .npz ({type(e).__name__}: {e})") from e
    if "images" not in arrays or arrays["images"].ndim != 4 or arrays["images"].dtype.kind not in "ui":
        raise ConfigError(f"{path}: expected an integer array 'images' of shape (N, C, H, W), as `pixelzoo sample` writes")
    if arrays["images"].shape[0] == 0:
        raise ConfigError(f"{path} holds no images (its 'images' array has shape {arrays['images'].shape})")
    if count is not None and count > len(arrays["images"]):
        raise ConfigError(f"{path}: -n {count} asks for more images than the {len(arrays['images'])} it holds; "
                          f"give -n {len(arrays['images'])} or fewer")
    count = count or DEFAULT_COUNT
    x = torch.from_numpy(arrays["images"].astype(np.int64))[:count]
    lab = arrays.get("labels")
    y = torch.from_numpy(lab.astype(np.int64))[:count] if lab is not None and len(lab) >= len(arrays["images"]) else None
    return x, y


def class_option(model, cls) -> int | None:
    """The command line's ``--class``, checked against the model's classes."""
    if cls is None:
        return None
    if not model.num_classes:
        raise ConfigError("this model is not class-conditional: --class does not apply")
    if not 0 <= int(cls) < model.num_classes:
        raise ConfigError(f"--class must lie in [0, {model.num_classes}) for this model's {model.num_classes} "
                          f"classes, got {cls}")
    return int(cls)


def _labels_for(model, y, cls, n):
    cls = class_option(model, cls)
    if not model.num_classes:
        return None
    if cls is not None:
        return torch.full((n,), cls, dtype=torch.long)
    if y is None:
        raise ConfigError("this model is class-conditional and the images carry no labels: give --class")
    return y


def _head_options(map_sampling: bool, log_scale_shift):
    opts = {}
    if map_sampling:
        opts["mode"] = "map"
    if log_scale_shift is not None:
        opts["log_scale_shift"] = float(log_scale_shift)
    return opts


def output_files(run_dir, out, what: str) -> tuple[Path, Path]:
    """The PNG and .npz a command writes: ``out`` as given (``x.v1.final`` -> ``x.v1.final.png`` and
    ``.npz``; ``x.png`` -> ``x.png`` and ``x.npz``), else ``RUN_DIR/samples/WHAT-TIME``; their folder is
    checked writable now, before any sampling (StorageError naming it)."""
    out = Path(out) if out else local_dir(run_dir) / "samples" / f"{what}-{time.strftime('%Y%m%d-%H%M%S')}"
    png, npz = output_paths(out, ".png", ".npz")
    check_writable(png.parent, f"where the {what} output goes")
    return png, npz


def check_count(model, count: int | None, per_image: int) -> None:
    """Refuse, before sampling, ``count`` (None: ``DEFAULT_COUNT``) x ``per_image`` samples that cannot fit in memory."""
    from .options import MAX_COUNT, check_sample_memory

    count = count or DEFAULT_COUNT
    if count * per_image > MAX_COUNT:
        raise ConfigError(f"-n {count} x --per-image {per_image} = {count * per_image} samples, more than pixelzoo's "
                          f"cap of {MAX_COUNT} images per command")
    check_sample_memory(model, count * per_image, "-n x --per-image")


def _write_given_grid(model, files, what: str, original, shown, samples, per_image: int, y, **given) -> dict:
    """The PNG of ``colorize`` / ``upscale``: a row per given image [original (when known), the given
    level as shown, ``per_image`` samples]; and an .npz of the samples, their labels and ``given``
    (``files``: the two paths, from :func:`output_files`)."""
    png, npz = files
    rows = []
    for k in range(shown.shape[0]):
        rows += ([original[k]] if original is not None else []) + [shown[k], *samples[k * per_image:(k + 1) * per_image]]
    save_grid(torch.stack(rows), model.num_levels, png, ncol=per_image + (2 if original is not None else 1))
    atomic_write_npz(npz, images=samples.numpy().astype(np.uint8),
                     labels=np.zeros(0, np.int64) if y is None else y.repeat_interleave(per_image).numpy(),
                     **{k: v.numpy().astype(np.uint8) for k, v in given.items()})
    return {"png": str(png), "npz": str(npz)}


def _sample_given(model, given: dict, per_image: int, y, temperature: float, head_options: dict, seed: int,
                  progress: bool) -> torch.Tensor:
    """``per_image`` samples of the chain ``model`` given each of the B tensors of one level
    (``given``: {level: tensor}), image-major: ``model.sample(B * per_image, given=given)`` with the
    head options for every part that samples."""
    b = next(iter(given.values())).shape[0]
    options = {part: dict(head_options) for part in model.sampled_parts(given)}
    return model.sample(b * per_image, y=expand_labels(y, b, per_image), temperature=temperature, head_options=options,
                        generator=torch.Generator().manual_seed(seed), progress=progress, given=given).cpu()


def colorize_command(run_dir, images: str, count: int | None = None, per_image: int = 4, gray_given: bool = False,
                     cls=None, temperature: float = 1.0, map_sampling: bool = False, log_scale_shift=None,
                     seed: int = 0, out=None, progress: bool = True, device=None) -> dict:
    """``pixelzoo colorize``: a PNG grid with one row per given image, [original (when known), its
    gray view, ``per_image`` colourisations], and an .npz of the colourisations; sampled on ``device``
    (None: ``$PIXELZOO_DEVICE`` or auto)."""
    model, config = load_run_model(run_dir, device)
    if not isinstance(model, GrayscalePixelCNN):
        raise ConfigError(f"{run_dir} is a {config['model']['name']} run; colorize needs a grayscale_pixelcnn run")
    check_count(model, count, per_image)
    files = output_files(run_dir, out, "colorize")
    x, y = given_images(images, config, count, seed)
    gray_shape = tuple(model.levels["gray"].shape)
    if gray_given or (tuple(x.shape[1:]) != model.image_shape and tuple(x.shape[1:]) == gray_shape):
        original, gray = None, x
    elif tuple(x.shape[1:]) == model.image_shape:
        model.check_level("image", x)
        original, gray = x, model.make("gray", {"image": x})
    else:
        raise ConfigError(f"images of shape {tuple(x.shape[1:])} are neither images {model.image_shape} nor gray views "
                          f"{gray_shape} of this model")
    y = _labels_for(model, y, cls, gray.shape[0])
    options = _head_options(map_sampling, log_scale_shift)
    samples = _sample_given(model, {"gray": gray}, per_image, y, temperature, options, seed, progress)
    agreement = float(model.view_agreement(samples, gray.repeat_interleave(per_image, 0)).mean())
    shown = gray_to_image(gray, model.gray_levels, model.num_levels, model.image_shape[0])
    written = _write_given_grid(model, files, "colorize", original, shown, samples, per_image, y, gray=gray)
    return {**written, "agreement": agreement, "with_original": original is not None, "images": int(gray.shape[0]),
            "per_image": per_image}


def upscale_command(run_dir, images: str, count: int | None = None, per_image: int = 4, from_size: int | None = None,
                    cls=None, temperature: float = 1.0, map_sampling: bool = False, log_scale_shift=None,
                    seed: int = 0, out=None, progress: bool = True, device=None) -> dict:
    """``pixelzoo upscale``: a PNG grid with one row per given image, [original (when known), its
    low-resolution level (enlarged), ``per_image`` upscalings], and an .npz of the upscalings;
    sampled on ``device`` (None: ``$PIXELZOO_DEVICE`` or auto)."""
    model, config = load_run_model(run_dir, device)
    if not isinstance(model, PyramidPixelCNN):
        raise ConfigError(f"{run_dir} is a {config['model']['name']} run; upscale needs a pyramid_pixelcnn run")
    check_count(model, count, per_image)
    files = output_files(run_dir, out, "upscale")
    x, y = given_images(images, config, count, seed)
    names = model.level_order  # the image first, the lowest resolution last
    shapes = [tuple(model.levels[n].shape) for n in names]
    if tuple(x.shape[1:]) not in shapes:
        raise ConfigError(f"images of shape {tuple(x.shape[1:])} are not a level of this pyramid ({shapes})")
    given = model.level_of_shape(x.shape[1:])
    sizes = {shape[1]: name for shape, name in zip(shapes, names)}
    start = names[-1] if from_size is None else sizes.get(from_size)
    if start is None or start == names[0] or names.index(start) < names.index(given):
        allowed = [shape[1] for shape in shapes[max(names.index(given), 1):]]
        raise ConfigError(f"--from-size must be one of {allowed} for these {x.shape[-2]}-pixel images")
    model.check_level(given, x)
    original = x if given == names[0] else None
    low = model.make(start, {given: x.long()})
    y = _labels_for(model, y, cls, low.shape[0])
    options = _head_options(map_sampling, log_scale_shift)
    samples = _sample_given(model, {start: low}, per_image, y, temperature, options, seed, progress)
    shown = upsample_nearest(low, model.image_shape[-1] // low.shape[-1])
    written = _write_given_grid(model, files, "upscale", original, shown, samples, per_image, y, low=low)
    return {**written, "from_size": int(low.shape[-2]), "with_original": original is not None,
            "images": int(low.shape[0]), "per_image": per_image}
