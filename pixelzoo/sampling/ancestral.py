"""Ancestral sampling, one sub-pixel at a time in raster order, with inpainting.

The sampler knows no trunk: once per call it draws the head's per-position inputs up front
(``model.sampling_inputs``: e.g. PixelIQN's tau, whose range is the temperature), asks the model for a
stepper (``model.stepper(n, y, spatial, inputs, cached)``, see ``pixelzoo.models.autoregressive.steppers``) and then,
for every sub-pixel that is not given, in raster order, takes its parameters from the stepper and
draws it with ``model.head.draw``. The default stepper crops and runs the full forward pass; a
trunk may supply an incremental one (e.g. the Gated PixelCNN's per-layer queues), which gives the same
parameters, so with the same head draws in the same order it gives the same images.

It runs on the model's device and returns the images there. The draws come from ``generator`` on
its own device: with a CPU generator (``torch.Generator()``) the parameters of each sub-pixel are
copied to the CPU for the draw, so a seed gives the same draws on every device; a generator on the
model's GPU (``torch.Generator("cuda")``) draws there; without one, the global generator of the
model's device draws.
"""

from __future__ import annotations

import contextlib
import math

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..threads import apply_policy, numpy_blas_one_thread
from ..nn.modes import eval_mode
from .labels import expand_labels


def _labels(y, n: int, model) -> torch.Tensor | None:
    if y is None:
        if model.num_classes is not None:
            raise ConfigError(f"this model is class-conditional ({model.num_classes} classes): sample with labels y, "
                              f"a class or ({n},) classes in [0, {model.num_classes})")
        return None
    if model.num_classes is None:
        raise ConfigError("this model is not class-conditional; sample with y=None")
    y = expand_labels(y, n)
    if int(y.min()) < 0 or int(y.max()) >= model.num_classes:
        raise ConfigError(f"labels must lie in [0, {model.num_classes})")
    return y.clone()


def check_temperature(temperature) -> float:
    """A sampling temperature: a finite number >= 0 (the head may narrow the range further)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return float(temperature)


def _repeat_to(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
    b = t.shape[0]
    if n % b:
        raise ConfigError(f"n = {n} is not a multiple of the {b} {what} given")
    return t.repeat_interleave(n // b, dim=0)


def prepare_known(model, n: int, known: torch.Tensor | None, mask: torch.Tensor | None):
    """Start image (n, C, H, W) and a bool mask of the sub-pixels that are given (kept as they are).

    ``known`` has B images with B dividing n (each gives n / B completions); ``mask`` (True = known)
    broadcasts to ``known``: (H, W), (C, H, W) or (B, C, H, W). Images are integer levels, or floats
    for a model of a continuous level (its head is ``continuous``).
    """
    shape = (n, *model.image_shape)
    continuous = model.head.continuous
    dtype = torch.get_default_dtype() if continuous else torch.long
    if known is None and mask is None:
        return torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=torch.bool)
    if known is None or mask is None:
        raise ConfigError("inpainting needs both `known` (images) and `mask` (True where known)")
    known = torch.as_tensor(known)
    if known.dim() == 3:
        known = known.unsqueeze(0)
    what = "float images" if continuous else "integer images"
    if tuple(known.shape[1:]) != tuple(model.image_shape) or known.is_floating_point() != continuous:
        raise ConfigError(f"`known` must be {what} of shape (B, {model.image_shape}), got {tuple(known.shape)} {known.dtype}")
    if not continuous and (int(known.min()) < 0 or int(known.max()) >= model.num_levels):
        raise ConfigError(f"`known` values must lie in [0, {model.num_levels})")
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ConfigError(f"the mask must be a boolean tensor (True where known), got {mask.dtype}: a float mask is "
                          "not read as a threshold; pass e.g. mask > 0.5")
    try:
        mask = mask.expand(known.shape)
    except RuntimeError as e:
        raise ConfigError(f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(known.shape)}") from e
    known = _repeat_to(known.to(dtype), n, "known images")
    mask = _repeat_to(mask, n, "masks")
    return torch.where(mask, known, torch.zeros_like(known)), mask.clone()


@torch.no_grad()
def ancestral_sample(model, n: int, y=None, temperature: float = 1.0, known=None, mask=None, spatial=None,
                     generator: torch.Generator | None = None, progress: bool = False,
                     head_options: dict | None = None, cached: bool | None = None) -> torch.Tensor:
    """Draw ``n`` images from ``model`` (an autoregressive model: ``image_shape``, ``num_levels``,
    ``num_classes``, ``head``, ``sampling_inputs`` and ``stepper``); returns long (n, C, H, W), or
    float for a continuous level.

    Sub-pixels where ``mask`` is True are copied from ``known`` and never resampled; all others are
    drawn from the model given everything before them, known sub-pixels included. ``head_options``
    are passed to ``model.head.draw`` (e.g. ``{"mode": "map"}``). ``cached`` picks the stepper: None
    the trunk's incremental one where it has one, False the full-forward one, True requires the
    incremental one (ConfigError otherwise); all give the same images. ``progress``: True for a
    progress bar, or a callable ``progress(rows_done, rows_total, x)`` called after each row with the
    images so far (rows below ``rows_done`` drawn; e.g. a page showing rows as they form); an exception
    it raises stops the sampling and propagates (nothing is returned).
    """
    if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    check_temperature(temperature)
    apply_policy()  # the command line's thread policy, once, unless the user set threads
    head_options = dict(head_options or {})
    y = _labels(y, n, model)
    x, given = prepare_known(model, n, known, mask)
    device = next(model.parameters()).device
    x, given = x.to(device), given.to(device)
    if y is not None:
        y = y.to(device)
    if spatial is not None:
        spatial = _repeat_to(spatial.to(device), n, "spatial maps")
    inputs = {k: v.to(device) for k, v in model.sampling_inputs(n, temperature, generator).items()}
    with eval_mode(model):
        _draw(model, stepper_args=dict(y=y, spatial=spatial, inputs=inputs, cached=cached), x=x, given=given,
              temperature=temperature, generator=generator, head_options=head_options, progress=progress)
    return x


@torch.inference_mode()
def _draw(model, stepper_args: dict, x, given, temperature, generator, head_options, progress) -> None:
    """The loop of ``ancestral_sample``: draws into ``x`` in place. Under inference mode (no autograd
    bookkeeping per operation: a step is a hundred small operations); ``x``, made outside, stays a
    normal tensor, and nothing made here outlives the call but what is written into it."""
    device = x.device
    draw_device = device if generator is None else generator.device
    move = draw_device != device  # the draws are made on another device: parameters go there
    c_count, height, width = model.image_shape
    head = model.head
    stepper = model.stepper(x.shape[0], **stepper_args)
    # per sub-pixel, whether every image / some image has it given (read once, not per step)
    all_given, some_given = given.all(0).tolist(), given.any(0).tolist()
    # per sub-pixel, its column of ``x`` as a view made once (a copy into it is the cheapest write)
    columns = x.view(x.shape[0], -1).unbind(1) if x.is_contiguous() else None
    observer = progress if callable(progress) else None
    steps = tqdm(total=height * width, desc="sampling", leave=False) if progress and observer is None else None
    # a stepper on NumPy views (one image on the CPU): NumPy's BLAS on one thread for the loop
    with numpy_blas_one_thread() if stepper.on_host else contextlib.nullcontext():
        for i in range(height):
            for j in range(width):
                if steps is not None:
                    steps.update(1)
                for c in range(c_count):
                    if all_given[c][i][j]:
                        continue
                    sp = stepper.params(x, i, j, c)
                    if move:
                        sp = sp.to(draw_device)
                    draw = head.draw(sp, temperature=temperature, generator=generator, **head_options)
                    if some_given[c][i][j]:
                        draw = draw.to(device=device, dtype=x.dtype)
                        draw = torch.where(given[:, c, i, j], x[:, c, i, j], draw)
                    if columns is not None:  # copy_ casts and moves as .to(device, dtype) would
                        columns[(c * height + i) * width + j].copy_(draw)
                    else:
                        x[:, c, i, j] = draw.to(device=device, dtype=x.dtype)
            if observer is not None:
                observer(i + 1, height, x)
    if steps is not None:
        steps.close()
