"""Steppers: where the sampler gets the parameters of the next sub-pixel.

The sampler (``pixelzoo.sampling.ancestral_sample``) knows no trunk: once per sample call it asks the
model for a stepper, ``model.stepper(n, y, spatial, inputs, cached)``, and then, for every sub-pixel
it draws, in raster order (rows, columns, then channels), calls ``stepper.params(x, i, j, c)``.

* ``x`` (n, C, H, W) holds the images drawn so far: every sub-pixel before (c, i, j) is final (drawn
  or given), the rest is undefined. The sampler writes into the same tensor between calls.
* Sub-pixels and whole pixels that are given (inpainting) are skipped: the stepper is not called for
  them, but their values are in ``x``, so a stepper with per-position state (e.g. the per-layer
  caches of Ramachandran et al. 2017) catches up on the positions between two calls itself.
* ``y`` (n,), ``spatial`` (n, S, H, W) and ``inputs`` (the head's per-position inputs drawn up front,
  e.g. ``{"tau": (n, C, H, W)}``) are fixed for the run and given at creation, already repeated to
  ``n`` rows and on the model's device.
* ``params`` returns the sub-pixel's parameters (n, P), what ``model.head.draw`` draws from.

A stepper keeps whatever state it likes between calls. The default, ``FullForwardStepper``, keeps
only the last pixel's trunk features; a trunk may supply an incremental one
(``Trunk.incremental_stepper``, in each trunk's folder beside its network: the Gated PixelCNN's
per-layer queues, PixelCNN++'s per-map caches, PixelSNAIL's per-layer caches with a key/value cache,
MADE's per-unit stepper), which must give the same parameters as the default.
"""

from __future__ import annotations

import torch

from .step_output import StepOutput


class Stepper:
    """Base class: created once per sample call (see the module docstring)."""

    #: its steps run on NumPy views (one image on the CPU): the sampler runs them with NumPy's BLAS on
    #: one thread (``pixelzoo.threads.numpy_blas_one_thread``)
    on_host = False

    def __init__(self, model, n: int, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None,
                 inputs: dict | None = None):
        self.model = model
        self.n = int(n)
        self.y = y
        self.spatial = spatial
        self.inputs = dict(inputs or {})
        self._step_output: StepOutput | None = None  # the output layer and head of one step, built on first use

    def params(self, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """The parameters (n, P) of sub-pixel (c, i, j) given the images ``x`` drawn so far."""
        raise NotImplementedError

    # ------------------------------------------------------------------ crops of the fixed inputs
    def spatial_rows(self, rows: slice) -> torch.Tensor | None:
        return None if self.spatial is None else self.spatial[..., rows, :]

    def inputs_at(self, rows: slice, cols: slice = slice(None)) -> dict:
        return {k: v[..., rows, cols] for k, v in self.inputs.items()}

    # ------------------------------------------------------------------ the common tail of ``params``
    def params_from(self, feats: torch.Tensor, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """The parameters (n, P) of sub-pixel (c, i, j) from the trunk's features at pixel (i, j),
        ``feats`` (n, F) or (n, F, 1, 1): the output layer and the head at that pixel, the head's
        inputs there (``StepOutput``: folded once per stepper, only channel ``c``)."""
        if self._step_output is None:
            self._step_output = StepOutput(self.model)
        inputs = self.inputs_at(slice(i, i + 1), slice(j, j + 1)) if self.inputs else {}
        return self._step_output(feats if feats.dim() == 2 else feats.flatten(1), x, i, j, c, inputs)


class FullForwardStepper(Stepper):
    """The default: crops and runs the full forward pass.

    Row-causal trunks are fed the rows up to the current one only. A trunk that does not mask colour
    channels gives features at a pixel that ignore that pixel, so it runs once per pixel, and only
    the output layer and the head (which order the pixel's channels) run once per channel. Otherwise
    every sub-pixel gets its own forward pass.
    """

    def __init__(self, model, n, y=None, spatial=None, inputs=None):
        super().__init__(model, n, y, spatial, inputs)
        self.crop_rows = bool(model.trunk.row_causal)
        self.per_pixel = not model.trunk.channel_masked
        self._pixel: tuple[int, int] | None = None  # the pixel whose trunk features are held
        self._feats: torch.Tensor | None = None

    def params(self, x, i, j, c):
        model = self.model
        rows = slice(0, i + 1 if self.crop_rows else x.shape[-2])
        if not self.per_pixel:
            return model.conditional_params(x[:, :, rows], self.y, self.spatial_rows(rows),
                                            **self.inputs_at(rows))[:, c, :, i, j]
        if self._pixel != (i, j):
            feats = model.trunk_features(model.scale(x[:, :, rows]), self.y, self.spatial_rows(rows),
                                         **self.inputs_at(rows))
            self._feats, self._pixel = feats[..., i : i + 1, j : j + 1], (i, j)
        return self.params_from(self._feats, x, i, j, c)
