"""The page's computations, each run as a job of the work queue (``jobs.py``) on a loaded model:
sample, inpaint, colourise, upscale, reconstruct, and the surprise map. Each reports its progress
row by row where the model samples row by row (the picture so far, as a PNG data URI the page shows
at once) and returns its result: a grid of pictures with a caption saying what each column is.

Values arrive already checked (``requests.py``); what only the model can refuse (an image it cannot
take) is a PixelzooError, which the job reports as its message."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from ..errors import ConfigError
from ..evaluation.scoring import surprise_maps
from ..imaging import make_grid
from ..models.base import Reconstructs, SamplesReconstructions
from ..models.chain import Chain
from ..sampling.labels import expand_labels
from ..views import gray_to_image, stretch_levels, upsample_nearest
from .jobs import Job


def png_uri(rgb: np.ndarray) -> str:
    """A uint8 (H, W, 3) array as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def grid_uri(images: torch.Tensor, num_levels: int, ncol: int, padding: int = 1) -> str:
    """Images (N, C, H, W) of ``num_levels`` levels as one grid at their own size (the page enlarges
    it); ``padding=0`` for one image exactly as it is (a picture to draw a mask on)."""
    return png_uri(make_grid(images.detach().cpu().long(), num_levels, ncol=ncol, scale=1, padding=padding))


def _shown(model, level: str | None, t: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """(images, levels) to show for a sampled tensor: the data itself, a chain's level shown as an
    image (enlarged to the data's size), or None for a level that is not an image."""
    if level is None or not isinstance(model, Chain) or level == model.level_order[0]:
        return t, model.num_levels
    if not model.levels[level].shown:
        return None
    v, k = model.shown(level, t)
    factor = model.image_shape[-1] // v.shape[-1]
    return (upsample_nearest(v, factor) if factor > 1 else v), k


def _observer(job: Job, model, ncol: int):
    """A sampler's ``progress`` callable that reports each row's picture to ``job`` (and stops it when asked)."""
    def observe(done, total, x, level=None):
        job.check_stopped()
        shown = _shown(model, level, x)
        picture = grid_uri(shown[0], shown[1], ncol) if shown is not None else None
        job.report(done, total, level=level, image=picture)
    return observe


def _on_model(model, image: torch.Tensor) -> torch.Tensor:
    """``image`` (C, H, W) as a batch of one on the model's device."""
    return image[None].to(next(model.parameters()).device)


def _labels(model, cls, n: int, image_labels=None):
    """Labels for ``n`` samples of a class-conditional model: the chosen class, else the images' own
    labels (each repeated over its samples), else classes in turn."""
    if not model.num_classes:
        return None
    if cls is not None:
        return torch.full((n,), int(cls), dtype=torch.long)
    if image_labels is not None:
        return expand_labels(image_labels, len(image_labels), n // len(image_labels))
    return torch.arange(n) % model.num_classes


def _on_data_levels(model, shown: tuple[torch.Tensor, int]) -> torch.Tensor:
    """A shown level's images on the data's levels and channels (a 4-level gray view of a colour
    image drawn as the data's grays), to sit in one grid with the images."""
    v = stretch_levels(*shown, model.num_levels)
    return v.expand(-1, model.image_shape[0], -1, -1) if v.shape[1] != model.image_shape[0] else v


def sample(job: Job, model, count: int, cls, temperature: float, seed: int) -> dict:
    """``count`` samples; for a chain, every level shown as an image above them (top first, one
    row of ``count`` per level), as Kolesnikov & Lampert's and Razavi et al.'s figures show them."""
    ncol = min(count, 8)
    y = _labels(model, cls, count)
    options = dict(y=y, temperature=temperature, generator=torch.Generator().manual_seed(seed),
                   progress=_observer(job, model, ncol))
    caption = f"{count} samples, temperature {temperature:g}, seed {seed}"
    if y is not None:
        caption += ", class " + (str(cls) if cls is not None else "0, 1, ... in turn")
    if not isinstance(model, Chain):
        x = model.sample(count, **options)
        return {"image": grid_uri(x, model.num_levels, ncol), "caption": caption}
    lv = model.sample_levels(count, **options)
    names = [name for name in reversed(model.level_order[1:]) if name in lv and model.levels[name].shown]
    rows = [_on_data_levels(model, _shown(model, name, lv[name])).cpu() for name in names] + [lv.images.cpu()]
    grid = torch.cat(rows) if count == 1 else torch.stack(rows, 1).flatten(0, 1)  # image-major: its levels, then it
    if names:
        caption += f"; per sample, left to right: {', '.join(names)} (top first), then the image"
    return {"image": grid_uri(grid, model.num_levels, len(rows) * min(count, 4)), "caption": caption}


def inpaint(job: Job, model, image: torch.Tensor, label, mask: torch.Tensor, completions: int, cls,
            temperature: float, seed: int) -> dict:
    """Completions of ``image`` (C, H, W) keeping the pixels where ``mask`` (H, W) is True."""
    if not bool(mask.any()):
        raise ConfigError("the mask keeps no pixel: draw over the part of the image to keep")
    y = _labels(model, cls, completions, None if label is None else torch.tensor([label]))
    if model.num_classes and cls is None and label is None:
        raise ConfigError("this model is class-conditional and an uploaded image has no label: choose a class")
    x = model.sample(completions, y=y, known=_on_model(model, image), mask=mask.to(image.device), temperature=temperature,
                     generator=torch.Generator().manual_seed(seed), progress=_observer(job, model, completions))
    kept = torch.where(mask, image, torch.zeros_like(image))
    result = torch.cat([image[None], kept[None], x.cpu()])
    return {"image": grid_uri(result, model.num_levels, completions + 2),
            "caption": f"the image, the pixels kept ({int(mask.sum())} of {mask.numel()}), {completions} completions",
            "kept_equal": bool((x.cpu()[:, :, mask] == image[:, mask]).all())}


def _given_labels(model, cls, label, n):
    if not model.num_classes:
        return None
    if cls is None and label is None:
        raise ConfigError("this model is class-conditional and an uploaded image has no label: choose a class")
    return torch.full((n,), int(cls if cls is not None else label), dtype=torch.long)


def colorize(job: Job, model, image: torch.Tensor, label, per_image: int, cls, temperature: float, seed: int) -> dict:
    x = _on_model(model, image)
    model.check_level("image", x)
    gray = model.make("gray", {"image": x})
    y = _given_labels(model, cls, label, per_image)
    samples = model.sample(per_image, y=y, temperature=temperature, given={"gray": gray},
                           generator=torch.Generator().manual_seed(seed), progress=_observer(job, model, per_image))
    shown = gray_to_image(gray, model.gray_levels, model.num_levels, model.image_shape[0])
    grid = torch.cat([x.cpu(), shown.cpu(), samples.cpu()])
    return {"image": grid_uri(grid, model.num_levels, per_image + 2),
            "caption": f"the image, its gray view (given), {per_image} colourisations"}


def upscale(job: Job, model, image: torch.Tensor, label, per_image: int, cls, temperature: float, seed: int) -> dict:
    x = _on_model(model, image)
    model.check_level("image", x)
    start = model.level_order[-1]  # the lowest resolution
    low = model.make(start, {"image": x})
    y = _given_labels(model, cls, label, per_image)
    samples = model.sample(per_image, y=y, temperature=temperature, given={start: low},
                           generator=torch.Generator().manual_seed(seed), progress=_observer(job, model, per_image))
    shown = upsample_nearest(low, model.image_shape[-1] // low.shape[-1])
    grid = torch.cat([x.cpu(), shown.cpu(), samples.cpu()])
    return {"image": grid_uri(grid, model.num_levels, per_image + 2),
            "caption": f"the image, its {low.shape[-1]}x{low.shape[-2]} level (given, enlarged), {per_image} upscalings"}


def reconstruct(job: Job, model, image: torch.Tensor, label, per_image: int, cls, temperature: float,
                seed: int) -> dict:
    """The image's levels as the encoder gives them (each shown level a row) and its reconstructions:
    sampled (AGAVE, De Fauw: ``per_image`` of them) or decoded (VQ-VAE-2: one)."""
    x = _on_model(model, image)
    model.check_level("image", x)
    rows, names = [], []
    for name, t in model.levels_of(x).items():
        shown = _shown(model, name, t) if name != model.level_order[0] else None
        if shown is not None:
            rows.append(_on_data_levels(model, shown).cpu())
            names.append(name)
    if isinstance(model, SamplesReconstructions):
        y = _given_labels(model, cls, label, 1)
        lv = model.sample_reconstructions(x, per_image, y=y, temperature=temperature,
                                          generator=torch.Generator().manual_seed(seed),
                                          progress=_observer(job, model, per_image))
        out, how = lv.images.cpu(), f"{per_image} sampled reconstructions"
    elif isinstance(model, Reconstructs):
        out, how = model.reconstruct(x).cpu(), "its decoded reconstruction"
    else:
        raise ConfigError(f"{type(model).__name__} has no reconstructions")
    ncol = max(out.shape[0], 1) + 1
    cells = [x[0].cpu()] + [r[0] for r in rows] + list(out)
    positions = [(0, 0)] + [(0, k + 1) for k in range(len(rows))] + [(1, k + 1) for k in range(out.shape[0])]
    grid = png_uri(make_grid(torch.stack(cells), model.num_levels, scale=1, cells=positions))
    return {"image": grid, "ncol": max(ncol, len(rows) + 1),
            "caption": f"top row: the image, then its levels as the encoder gives them ({', '.join(names) or 'none shown'}); "
                       f"below: {how}"}


def surprise(job: Job, model, image: torch.Tensor, label, cls) -> dict:
    """-log2 p of each pixel given those before it, as a heat map beside the image."""
    job.report(0, 1)
    x = image[None]  # surprise_maps moves each batch to the model's device
    y = None
    use = model.num_classes and (cls is not None or label is not None)
    if use:
        y = torch.tensor([int(cls if cls is not None else label)])
    bits = surprise_maps(model, x, y, use_labels=bool(use))[0]
    top = float(bits.max())
    heat = colormaps["magma"]((bits / max(top, 1e-9)).numpy())[..., :3]
    heat = (heat * 255).round().astype(np.uint8)
    picture = make_grid(x.cpu().long(), model.num_levels, scale=1)
    side = np.full((heat.shape[0] + 2, heat.shape[1] + 2, 3), 255, np.uint8)
    side[1:-1, 1:-1] = heat
    both = np.concatenate([picture, side[:, 1:]], axis=1)
    dims = math.prod(model.image_shape)
    return {"image": png_uri(both), "bits_per_dim": float(bits.sum()) / dims, "max_bits": top,
            "caption": f"the image and -log2 p of each pixel (black 0 bits, yellow {top:.1f} bits); "
                       f"{float(bits.sum()) / dims:.3f} bits/dim" + (" given its class" if use else
                                                                       (", class marginalised" if model.num_classes else ""))}
