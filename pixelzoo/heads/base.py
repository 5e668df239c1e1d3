"""The output distribution of one autoregressive step, separate from the network that feeds it.

A head turns the trunk's raw output ``raw`` (B, num_params(C), H, W) into *sub-pixel parameters*
``sp`` (B, C, P, H, W): ``sp[:, c, :, i, j]`` fully describes the distribution of sub-pixel
``(i, j, c)`` given everything before it in raster order (earlier pixels, then channels ``< c`` of
the same pixel). ``log_prob`` scores integer images under those parameters and ``sample`` draws one
sub-pixel from them. Every raw parameter channel belongs to one colour group (``param_groups``): the
group of the first sub-pixel whose distribution uses it, which the output layer's channel mask obeys.

``subpixel_params`` acts on each pixel separately (the sampler calls it on one pixel at a time). A head
with ``models_channel_order`` makes channel ``c``'s parameters depend on the same pixel's channels
``< c`` itself (through ``x_scaled``), so it is valid on trunks that do not mask colour channels.

**Per-position inputs.** A head may declare inputs it needs besides the image, one value per
sub-pixel, which it draws itself (``extra_inputs``, e.g. PixelIQN's quantile targets ``("tau",)``):
``sampling_inputs`` draws them for a sample run (the randomness of sampling then lies in them),
``training_inputs`` for a training step, ``embed_inputs`` maps them to features (B, E, H, W) with a
colour group per feature channel (``input_groups``), and ``check_inputs`` validates given ones. The
autoregressive model routes the embedding to the network (``pixelzoo.models.autoregressive.model``): through
the trunk's causal spatial conditioning where the trunk has it, and through the output layer at the
sub-pixel's own position. Such inputs are ordered like the image: sub-pixel ``i``'s parameters may
depend on the inputs at and before ``i``, never after.

**No likelihood.** A head with ``has_likelihood = False`` is trained by ``training_loss`` (per
sub-pixel, reported under ``loss_name``); ``log_prob`` raises.

**Continuous levels.** A head with ``continuous = True`` models a real-valued level: its images are
floats on the level's own scale, fed to the network unscaled, and ``sample`` returns floats.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16 / bfloat16 (e.g. a trunk run under autocast): the heads'
    probabilities (differences of sigmoids, log-softmax over many levels) need the precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Head(nn.Module):
    """Base class of output heads over ``num_levels`` integer levels ``0 .. num_levels - 1``."""

    #: True when ``log_prob`` is a log-likelihood (bits/dim is defined).
    has_likelihood = True
    #: True when ``subpixel_params`` itself orders the channels of a pixel (see the module docstring).
    models_channel_order = False
    #: names of the per-position inputs the head draws and the network reads (module docstring).
    extra_inputs: tuple[str, ...] = ()
    #: True when the level is continuous (floats on its own scale, no rounding), module docstring.
    continuous = False
    #: the metric the training loss is reported under, for a head without likelihood.
    loss_name = "loss"
    #: the error for ``log_prob`` / bits/dim of a model with this head, when it has no likelihood.
    no_likelihood_message = "this head has no likelihood, so there is no log_prob or bits/dim"

    def __init__(self, num_levels: int, channels: int):
        super().__init__()
        self.num_levels = int(num_levels)
        self.channels = int(channels)

    def num_params(self) -> int:
        raise NotImplementedError

    def param_groups(self) -> torch.Tensor:
        raise NotImplementedError

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, num_params, H, W) -> (B, C, P, H, W); ``x_scaled`` is the input in [-1, 1] for heads
        that model the order of channels within a pixel themselves."""
        raise NotImplementedError

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_i | x_<i) in nats, (B, C, H, W), for integer ``x`` (B, C, H, W)."""
        raise NotImplementedError

    def step_params(self, raw: torch.Tensor, c: int, pixel) -> torch.Tensor:
        """One sampling step's parameters (N, P) of sub-pixel ``c`` from one pixel's raw parameters
        ``raw`` (N, num_params): ``subpixel_params(raw, x_scaled)[:, c]`` at that pixel. ``pixel()``
        gives the pixel's scaled values (N, C), called only when the head reads them; a head may
        compute just what channel ``c`` needs."""
        return self.subpixel_params(raw[:, :, None, None], pixel()[:, :, None, None])[:, c, :, 0, 0]

    def draw(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
             **options) -> torch.Tensor:
        """Draw integer levels (N,) from sub-pixel parameters (N, P) (floats for a ``continuous``
        head). ``options`` are head-specific sampling options (e.g. ``mode="map"``); a head rejects
        options it does not know."""
        raise NotImplementedError

    def training_loss(self, sp: torch.Tensor, x: torch.Tensor, **inputs) -> torch.Tensor:
        """The loss to minimise per sub-pixel (B, C, H, W): the negative log-likelihood in nats for a
        likelihood head; heads without likelihood override it."""
        return -self.log_prob(sp, x)

    # ------------------------------------------------------------------ per-position inputs
    def input_channels(self) -> int:
        """E, the channels of ``embed_inputs``."""
        return 0

    def input_groups(self) -> torch.Tensor:
        """Colour group of each of the E embedding channels: features of colour group ``c`` may read
        an embedding channel of group ``g <= c`` at their own pixel."""
        return torch.zeros(0, dtype=torch.long)

    def embed_inputs(self, **inputs) -> torch.Tensor | None:
        """The inputs (each (B, C, H, W)) -> features (B, E, H, W); None for a head without inputs."""
        return None

    def check_inputs(self, inputs: dict, x: torch.Tensor) -> None:
        """Raise ConfigError unless ``inputs`` are exactly the head's ``extra_inputs``, valid for the
        images ``x`` (B, C, H, W) (or their scaled form)."""
        missing = [k for k in self.extra_inputs if inputs.get(k) is None]
        unknown = sorted(set(inputs) - set(self.extra_inputs))
        if unknown:
            raise ConfigError(f"{type(self).__name__} takes the per-position inputs {list(self.extra_inputs)}, "
                              f"got unknown {unknown}")
        if missing:
            raise ConfigError(f"{type(self).__name__} needs the per-position inputs {missing}")

    def sampling_inputs(self, shape: tuple[int, ...], temperature: float = 1.0,
                        generator: torch.Generator | None = None) -> dict:
        """The per-position inputs for sampling ``shape`` = (n, C, H, W) images at ``temperature``,
        drawn (on the CPU, from ``generator``) before the first step; {} for a head without inputs."""
        return {}

    def training_inputs(self, x: torch.Tensor) -> dict:
        """The per-position inputs of a training step on images ``x``; {} for a head without inputs."""
        return {}
