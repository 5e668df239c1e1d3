"""``pixelzoo reconstruct``: sampled reconstructions of given images by a model that has them
(``SamplesReconstructions``): AGAVE (z ~ q(z | x), then x sampled given f(z)) and De Fauw et al.'s
hierarchies (the top codes of x, then every level below sampled given them); a PNG grid with, per
given image, a row for each auxiliary level shown as an image (AGAVE's f(z)) and a row of the samples
below, each row starting with the image itself, and an .npz."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..imaging import save_grid
from ..models.base import SamplesReconstructions
from ..training import load_run_model
from ..views import upsample_nearest
from .colorize_upscale import _labels_for, given_images


def reconstruct_command(run_dir, images: str, count: int = 8, per_image: int = 4, cls=None,
                        temperature: float = 1.0, seed: int = 0, out=None, progress: bool = True,
                        device=None) -> dict:
    """See the module docstring; sampled on ``device`` (None: ``$PIXELZOO_DEVICE`` or auto)."""
    model, config = load_run_model(run_dir, device)
    if not isinstance(model, SamplesReconstructions):
        raise ConfigError(f"{run_dir} is a {config['model']['name']} run; reconstruct needs a model with sampled "
                          "reconstructions (agave, defauw)")
    x, y = given_images(images, config, count, seed)
    model.check_level("image", x)
    y = _labels_for(model, y, cls, x.shape[0])
    lv = model.sample_reconstructions(x, per_image, y=y, temperature=temperature,
                                      generator=torch.Generator().manual_seed(seed), progress=progress)
    samples = lv.images.cpu()
    shown = []  # the auxiliary levels shown as images, at the image's size and on its levels
    for name in reversed(model.level_order[1:]):
        if model.levels[name].shown and name in lv:
            v, k = model.shown(name, lv[name].cpu())
            if k != model.num_levels:
                v = (v.float() * ((model.num_levels - 1) / (k - 1))).round().long()
            factor = model.image_shape[-1] // v.shape[-1]
            shown.append(upsample_nearest(v, factor) if factor > 1 else v)
    rows = []
    for i in range(x.shape[0]):
        block = slice(i * per_image, (i + 1) * per_image)
        for v in shown:
            rows += [x[i], *v[block]]
        rows += [x[i], *samples[block]]
    out = Path(out) if out else Path(run_dir) / "samples" / f"reconstruct-{time.strftime('%Y%m%d-%H%M%S')}.png"
    out = out.with_suffix(".png")
    save_grid(torch.stack(rows), model.num_levels, out, ncol=per_image + 1)
    np.savez_compressed(out.with_suffix(".npz"), images=samples.numpy().astype(np.uint8),
                        labels=np.zeros(0, np.int64) if y is None else y.repeat_interleave(per_image).numpy(),
                        given=x.numpy().astype(np.uint8))
    return {"png": str(out), "npz": str(out.with_suffix(".npz")), "images": int(x.shape[0]), "per_image": per_image,
            "shown_levels": [name for name in reversed(model.level_order[1:]) if model.levels[name].shown]}
