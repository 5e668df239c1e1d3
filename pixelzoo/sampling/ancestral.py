"""Ancestral sampling, one sub-pixel at a time in raster order, with inpainting.

Naive mode: a full forward pass per sub-pixel. When the trunk does not mask colour channels, its
output at a pixel does not depend on that pixel, so the trunk runs once per pixel and only the head
(which then orders the pixel's channels itself) runs once per channel. For ``row_causal`` trunks
only the rows up to the current one are fed, which gives the same parameters for less work.

Row-cached mode (trunks with ``row_cache``, e.g. Gated PixelCNN; in the spirit of Ramachandran et
al. 2017): per row i the vertical stack runs once on rows 0..i-1 and each layer keeps what it passes
down to row i; per sub-pixel only the horizontal stack runs, on row i, columns 0..j. Both are exact
crops of the full forward pass (see ``GatedPixelCNNTrunk.vertical_row_cache``), and the sampler
makes the same head draws in the same order, so it gives the naive sampler's images.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError


def _labels(y, n: int, model) -> torch.Tensor | None:
    if y is None:
        return None
    if model.num_classes is None:
        raise ConfigError("this model is not class-conditional; sample with y=None")
    y = torch.as_tensor(y, dtype=torch.long)
    if y.dim() == 0:
        y = y.expand(n)
    if y.shape != (n,):
        raise ConfigError(f"labels must be a scalar or a ({n},) tensor, got shape {tuple(y.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= model.num_classes:
        raise ConfigError(f"labels must lie in [0, {model.num_classes})")
    return y.clone()


def _repeat_to(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
    b = t.shape[0]
    if n % b:
        raise ConfigError(f"n = {n} is not a multiple of the {b} {what} given")
    return t.repeat_interleave(n // b, dim=0)


def prepare_known(model, n: int, known: torch.Tensor | None, mask: torch.Tensor | None):
    """Start image (n, C, H, W) and a bool mask of the sub-pixels that are given (kept as they are).

    ``known`` has B images with B dividing n (each gives n / B completions); ``mask`` (True = known)
    broadcasts to ``known``: (H, W), (C, H, W) or (B, C, H, W).
    """
    shape = (n, *model.image_shape)
    if known is None and mask is None:
        return torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.bool)
    if known is None or mask is None:
        raise ConfigError("inpainting needs both `known` (images) and `mask` (True where known)")
    known = torch.as_tensor(known)
    if known.dim() == 3:
        known = known.unsqueeze(0)
    if tuple(known.shape[1:]) != tuple(model.image_shape) or known.is_floating_point():
        raise ConfigError(f"`known` must be integer images of shape (B, {model.image_shape}), got {tuple(known.shape)} {known.dtype}")
    if int(known.min()) < 0 or int(known.max()) >= model.num_levels:
        raise ConfigError(f"`known` values must lie in [0, {model.num_levels})")
    mask = torch.as_tensor(mask, dtype=torch.bool)
    try:
        mask = mask.expand(known.shape)
    except RuntimeError as e:
        raise ConfigError(f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(known.shape)}") from e
    known = _repeat_to(known.long(), n, "known images")
    mask = _repeat_to(mask, n, "masks")
    return torch.where(mask, known, torch.zeros_like(known)), mask.clone()


@torch.no_grad()
def ancestral_sample(model, n: int, y=None, temperature: float = 1.0, known=None, mask=None, spatial=None,
                     generator: torch.Generator | None = None, progress: bool = False,
                     head_options: dict | None = None, cached: bool | None = None) -> torch.Tensor:
    """Draw ``n`` images from ``model`` (an ``AutoregressiveModel``); returns long (n, C, H, W).

    Sub-pixels where ``mask`` is True are copied from ``known`` and never resampled; all others are
    drawn from the model given everything before them, known sub-pixels included. ``head_options``
    are passed to ``model.head.sample`` (e.g. ``{"mode": "map"}``). ``cached``: None uses row-cached
    sampling where the model allows it (a ``row_cache`` trunk that masks colour channels), False
    forces the naive sampler, True requires the cached one; both give the same images.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    head_options = dict(head_options or {})
    y = _labels(y, n, model)
    x, given = prepare_known(model, n, known, mask)
    device = next(model.parameters()).device
    x, given = x.to(device), given.to(device)
    if y is not None:
        y = y.to(device)
    if spatial is not None:
        spatial = _repeat_to(spatial.to(device), n, "spatial maps")
    c_count, height, width = model.image_shape
    per_pixel = model.trunk_once_per_pixel
    inputs = {k: v.to(device) for k, v in model.sampling_inputs(n, temperature, generator).items()}
    crop = model.trunk.row_causal
    head = model.head
    can_cache = bool(getattr(model.trunk, "row_cache", False)) and not per_pixel
    if cached and not can_cache:
        raise ConfigError(f"row-cached sampling needs a row_cache trunk that masks colour channels; "
                          f"{type(model.trunk).__name__} in {type(model).__name__} is not one")
    was_training = model.training
    model.eval()
    try:
        steps = tqdm(total=height * width, desc="sampling", disable=not progress, leave=False)
        if can_cache and cached is not False:
            _sample_rows_cached(model, x, given, y, spatial, inputs, temperature, generator, head_options, steps)
            steps.close()
            return x
        for i in range(height):
            rows = i + 1 if crop else height
            sp_cond = spatial[..., :rows, :] if spatial is not None else None
            inputs_rows = {k: v[..., :rows, :] for k, v in inputs.items()}
            for j in range(width):
                steps.update(1)
                if bool(given[:, :, i, j].all()):
                    continue
                raw = None
                for c in range(c_count):
                    if bool(given[:, c, i, j].all()):
                        continue
                    if per_pixel:
                        # the trunk's output at (i, j) does not depend on pixel (i, j): run it once per
                        # pixel, and only the head (which orders the channels) once per channel
                        if raw is None:
                            raw = model.raw_params(model.scale(x[:, :, :rows]), y, sp_cond)[:, :, i : i + 1, j : j + 1]
                        sp = head.subpixel_params(raw, model.scale(x[:, :, i : i + 1, j : j + 1]))[:, c, :, 0, 0]
                    else:
                        sp = model.conditional_params(x[:, :, :rows], y, sp_cond, **inputs_rows)[:, c, :, i, j]
                    draw = head.sample(sp, temperature=temperature, generator=generator, **head_options)
                    x[:, c, i, j] = torch.where(given[:, c, i, j], x[:, c, i, j], draw)
        steps.close()
    finally:
        model.train(was_training)
    return x


def _sample_rows_cached(model, x, given, y, spatial, inputs, temperature, generator, head_options, steps) -> None:
    """The row-cached loop of ``ancestral_sample``: fills ``x`` in place with the same draws, in the
    same order, as the naive loop. The trunk sees the same (cropped) inputs: its spatial map
    ``model.trunk_spatial`` of the cropped ``spatial`` and ``inputs``; ``model.params_from_features``
    turns the features at (i, j) into that sub-pixel's parameters."""
    trunk, head = model.trunk, model.head
    c_count, height, width = model.image_shape

    def crop_inputs(rows, cols=slice(None)):
        return {k: v[..., rows, cols] for k, v in inputs.items()}

    def trunk_spatial(rows):
        return model.trunk_spatial(None if spatial is None else spatial[..., rows, :], **crop_inputs(rows))

    for i in range(height):
        cache = None
        for j in range(width):
            steps.update(1)
            if bool(given[:, :, i, j].all()):
                continue
            if cache is None:  # once per row, at its first pixel to sample
                sp_above = trunk_spatial(slice(0, i)) if i else None  # row 0 has nothing above
                cache = trunk.vertical_row_cache(model.scale(x[:, :, :i]), y, sp_above, trunk_spatial(slice(i, i + 1)))
            inputs_ij = crop_inputs(slice(i, i + 1), slice(j, j + 1))
            for c in range(c_count):
                if bool(given[:, c, i, j].all()):
                    continue
                feats = trunk.horizontal_row(model.scale(x[:, :, i : i + 1, : j + 1]), cache)[..., j : j + 1]
                sp = model.params_from_features(feats, model.scale(x[:, :, i : i + 1, j : j + 1]),
                                                **inputs_ij)[:, c, :, 0, 0]
                draw = head.sample(sp, temperature=temperature, generator=generator, **head_options)
                x[:, c, i, j] = torch.where(given[:, c, i, j], x[:, c, i, j], draw)
