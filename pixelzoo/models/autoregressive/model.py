"""An autoregressive image model = trunk + output layer + head (+ conditioning inputs).

The trunk maps the scaled image (and class / spatial conditioning) to features whose colour groups
respect raster order; two masked 1x1 convolutions map them to the head's raw parameters; the head
turns those into one distribution per sub-pixel. Any head fits on any trunk: where a trunk does not
mask colour channels within a pixel, the head itself models their order (the logistic mixture always
does; the categorical head is switched to it with ``enable_channel_order``), and the output layer
then has a single channel group.

Two seams:

* **Heads with per-position inputs** (``Head.extra_inputs``, e.g. the quantile head's tau). The model
  routes the head's embedding of them generically: through the trunk's causal spatial conditioning
  when the trunk has ``causal_spatial`` (concatenated to the spatial map, with ``spatial_groups`` so
  features of colour group ``c`` see only the inputs of channels ``<= c`` at their own pixel;
  ``build_autoregressive`` builds the trunk so), and always through the output layer at the
  sub-pixel's own position (``InputOutput``, which on a trunk that does not mask colour also reads the
  pixel's earlier channels, keeping colour ordered). The loss draws them (``Head.training_inputs``),
  the sampler too (``sampling_inputs``); every method that computes parameters takes them as keyword
  arguments (``params_from_scaled(xs, y, spatial, tau=tau)``).
* **Steppers** (``pixelzoo.models.autoregressive.steppers``): ``stepper`` gives the sampler the source of each
  sub-pixel's parameters: the trunk's incremental stepper where it has one, else the full forward pass.

``build_autoregressive`` builds any registered trunk (``pixelzoo.models.autoregressive.trunks``) with any head.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...devices import full_precision_region
from ...errors import ConfigError
from ...heads import Head, create_head
from ...nn import GroupedPointwise, feature_groups
from ...nn.levels import check_levels, scale_levels
from ...views import has_values
from ..base import PixelzooModel, SamplesImages
from .steppers import FullForwardStepper, Stepper
from .trunks import Trunk, trunk_class

__all__ = ["AutoregressiveModel", "InputOutput", "Trunk", "build_autoregressive"]


class InputOutput(nn.Module):
    """The output layer of a head with per-position inputs:
    [ReLU(features), input embedding, (pixel's own channels)] -> 1x1 -> ReLU -> 1x1 -> raw parameters.

    Hidden group ``g`` (one per parameter group of the head) reads feature groups ``<= g``, the input
    embedding's channels of groups ``<= g`` and, with ``read_pixel`` (trunks that do not mask colour),
    the pixel's channels ``< g``.
    """

    def __init__(self, feat_channels: int, feat_groups: torch.Tensor, input_groups: torch.Tensor, hidden: int,
                 param_groups: torch.Tensor, channels: int, read_pixel: bool):
        super().__init__()
        in_groups = [feat_groups, input_groups]
        if read_pixel:
            in_groups.append(torch.arange(channels) + 1)  # x_c is visible to groups > c only
        in_groups = torch.cat(in_groups)
        hidden_groups = feature_groups(hidden, int(param_groups.max()) + 1)
        self.read_pixel = read_pixel
        self.hidden = GroupedPointwise(len(in_groups), hidden, in_groups, hidden_groups)
        self.out = GroupedPointwise(hidden, len(param_groups), hidden_groups, param_groups)

    def forward(self, feats: torch.Tensor, emb: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        parts = [F.relu(feats), emb.to(feats.dtype)]
        if self.read_pixel:
            parts.append(x_scaled.to(feats.dtype))
        return self.out(F.relu(self.hidden(torch.cat(parts, dim=1))))


class AutoregressiveModel(PixelzooModel, SamplesImages):
    """p(x | y, spatial) = prod_i p(x_i | x_<i, y, spatial) over sub-pixels in raster order.

    With a head that has per-position inputs (module docstring) every sub-pixel's parameters also
    depend on its own inputs and those before it. A head without likelihood (the quantile head) has
    no ``log_prob`` / ``bits_per_dim`` (they raise its ``no_likelihood_message``); ``loss`` is then
    its training loss. The quantile head adds ``quantile`` and ``quantile_density``.
    """

    def __init__(
        self,
        trunk: Trunk,
        head: Head,
        image_shape: tuple[int, int, int],
        num_levels: int,
        num_classes: int | None = None,
        spatial_channels: int = 0,
        out_hidden: int | None = None,
        fp32_output: bool = False,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes) if num_classes else None
        self.spatial_channels = int(spatial_channels)
        channels = self.image_shape[0]
        #: the head's per-position inputs, and whether they also pass through the trunk (its causal
        #: spatial conditioning; the trunk must then take ``spatial_channels + head.input_channels()``
        #: spatial channels with their groups, as ``build_autoregressive`` builds it)
        self.extra_inputs = tuple(head.extra_inputs)
        self.inputs_in_trunk = bool(self.extra_inputs) and bool(trunk.causal_spatial)
        reads_pixel = bool(self.extra_inputs) and not trunk.channel_masked  # see InputOutput
        if channels > 1 and not trunk.channel_masked and not head.models_channel_order and not reads_pixel:
            if not hasattr(head, "enable_channel_order"):
                raise ConfigError(
                    f"trunk {type(trunk).__name__} does not mask colour channels within a pixel and head "
                    f"{type(head).__name__} does not model their order: colour would not be autoregressive"
                )
            head.enable_channel_order()  # e.g. the categorical head: logits of c also see x_<c
        self.trunk = trunk
        self.head = head
        self.output = self._build_output(out_hidden or trunk.out_channels)
        #: the output layer computes in float32 even under autocast (the trunk's features are cast up)
        self.fp32_output = bool(fp32_output)
        self.config: dict = {}

    def _build_output(self, hidden: int) -> nn.Module:
        """The output layer: trunk features -> the head's raw parameters, with colour-group masks."""
        trunk, head = self.trunk, self.head
        if self.extra_inputs:
            feat_groups = trunk.out_groups if trunk.channel_masked else torch.zeros(trunk.out_channels, dtype=torch.long)
            return InputOutput(trunk.out_channels, feat_groups, head.input_groups(), hidden, head.param_groups(),
                               self.image_shape[0], read_pixel=not trunk.channel_masked)
        if trunk.channel_masked:
            # as many hidden groups as the head's parameters use: C for a head whose channel c reads
            # feature group c, one for a head that computes every parameter from the strict past
            param_groups = head.param_groups()
            hidden_groups = feature_groups(hidden, int(param_groups.max()) + 1)
        else:
            # the trunk's features all see only earlier pixels: one group; the head orders channels
            param_groups = torch.zeros(head.num_params(), dtype=torch.long)
            hidden_groups = torch.zeros(hidden, dtype=torch.long)
        return nn.Sequential(
            nn.ReLU(),
            GroupedPointwise(trunk.out_channels, hidden, trunk.out_groups, hidden_groups),
            nn.ReLU(),
            GroupedPointwise(hidden, head.num_params(), hidden_groups, param_groups),
        )

    @property
    def has_likelihood(self) -> bool:
        """True when ``log_prob`` is a log-likelihood, so bits/dim exist."""
        return self.head.has_likelihood

    @property
    def continuous(self) -> bool:
        """True when the level is continuous: images are floats on their own scale (the head's)."""
        return bool(self.head.continuous)

    @property
    def tau_in_trunk(self) -> bool:
        """True when a quantile head's tau also passes through the trunk (not only the output layer)."""
        return "tau" in self.extra_inputs and self.inputs_in_trunk

    # ------------------------------------------------------------------ inputs
    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels [0, K) -> floats in [-1, 1]; a continuous level's values as they are."""
        if self.continuous:
            return x if x.is_floating_point() else x.float()
        return scale_levels(x, self.num_levels)

    def check_input(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        if self.continuous:
            if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape or not x.is_floating_point():
                raise ConfigError(f"a continuous level takes float tensors of shape (B, {self.image_shape}), "
                                  f"got {tuple(x.shape)} {x.dtype}")
        else:
            check_levels(x, self.image_shape, self.num_levels)
        if y is None and self.num_classes is not None:
            raise ConfigError(f"this model is class-conditional ({self.num_classes} classes): pass labels y, a "
                              f"({x.shape[0]},) long tensor in [0, {self.num_classes})")
        if y is not None:
            if self.num_classes is None:
                raise ConfigError("this model is not class-conditional; pass y=None")
            if y.shape != (x.shape[0],) or (has_values(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes)):
                raise ConfigError(f"labels must be a ({x.shape[0]},) tensor in [0, {self.num_classes})")

    # ------------------------------------------------------------------ core
    def params_from_scaled(
        self, x_scaled: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None, **inputs
    ) -> torch.Tensor:
        """Sub-pixel parameters (B, C, P, H, W) from the scaled image and the head's per-position
        ``inputs`` (e.g. ``tau=``); differentiable in ``x_scaled`` and the inputs (the causality tests
        take gradients through it)."""
        self.head.check_inputs(inputs, x_scaled)
        return self.params_from_features(self.trunk_features(x_scaled, y, spatial, **inputs), x_scaled, **inputs)

    def raw_params(
        self, x_scaled: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None, **inputs
    ) -> torch.Tensor:
        """The head's raw parameters (B, num_params, H, W): trunk + output layer."""
        self.head.check_inputs(inputs, x_scaled)
        return self.output_params(self.trunk_features(x_scaled, y, spatial, **inputs), x_scaled, **inputs)

    # The two halves of ``params_from_scaled``, for steppers that run the trunk piece by piece:
    # ``trunk(x_scaled, y, trunk_spatial(spatial, **inputs))`` (= ``trunk_features``) gives features,
    # which ``params_from_features`` turns into sub-pixel parameters at the same positions.
    def trunk_spatial(self, spatial: torch.Tensor | None, **inputs) -> torch.Tensor | None:
        """The per-position map the trunk's conditioning receives: ``spatial``, followed by the
        embedding of the head's inputs when they pass through the trunk."""
        if not self.inputs_in_trunk:
            return spatial
        emb = self.head.embed_inputs(**inputs)
        return emb if spatial is None else torch.cat([spatial.to(emb.dtype), emb], dim=1)

    def trunk_features(self, x_scaled: torch.Tensor, y: torch.Tensor | None = None,
                       spatial: torch.Tensor | None = None, **inputs) -> torch.Tensor:
        """The trunk's features (B, F, H, W) given the image, the conditioning and the head's inputs."""
        return self.trunk(x_scaled, y, self.trunk_spatial(spatial, **inputs))

    def output_params(self, feats: torch.Tensor, x_scaled: torch.Tensor, **inputs) -> torch.Tensor:
        """Trunk features -> the head's raw parameters, through the output layer (which also reads
        the head's inputs, and the pixel's own channels where ``InputOutput`` says so). With
        ``fp32_output`` it runs in float32 with autocast off, whatever precision the trunk ran in."""
        if self.fp32_output and torch.is_autocast_enabled(feats.device.type):
            with full_precision_region(feats.device):
                return self._output_params(feats.float(), x_scaled.float(), inputs)
        return self._output_params(feats, x_scaled, inputs)

    def _output_params(self, feats: torch.Tensor, x_scaled: torch.Tensor, inputs: dict) -> torch.Tensor:
        if not self.extra_inputs:
            return self.output(feats)
        emb = self.head.embed_inputs(**{k: v.to(x_scaled.dtype) for k, v in inputs.items()})
        return self.output(feats, emb, x_scaled)

    def params_from_features(self, feats: torch.Tensor, x_scaled: torch.Tensor, **inputs) -> torch.Tensor:
        """Trunk features (B, F, h, w) -> sub-pixel parameters (B, C, P, h, w); ``x_scaled`` and any
        per-position ``inputs`` cover the same positions."""
        return self.head.subpixel_params(self.output_params(feats, x_scaled, **inputs), x_scaled)

    def conditional_params(
        self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None, **inputs
    ) -> torch.Tensor:
        return self.params_from_scaled(self.scale(x), y, spatial, **inputs)

    def _no_likelihood(self) -> None:
        if not self.has_likelihood:
            raise ConfigError(self.head.no_likelihood_message)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None,
                 **inputs) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for every sub-pixel, (B, C, H, W)."""
        self._no_likelihood()
        self.check_input(x, y)
        return self.head.log_prob(self.conditional_params(x, y, spatial, **inputs), x)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> dict:
        """With a likelihood: ``loss``, the mean negative log-likelihood in nats per dimension, and
        ``bpd``, the same in bits. Without (the quantile head): ``loss`` = the head's mean training
        loss per sub-pixel (computed in float32 under autocast), also reported under the head's
        ``loss_name`` (``quantile_loss``). The head's per-position inputs are drawn by
        ``Head.training_inputs`` (tau ~ U[0, 1] from the global generator on ``x``'s device)."""
        self.check_input(x, y)
        inputs = self.head.training_inputs(x)
        if self.has_likelihood:
            nll = -self.log_prob(x, y, spatial, **inputs).mean()
            return {"loss": nll, "bpd": nll.detach() / math.log(2.0)}
        sp = self.conditional_params(x, y, spatial, **inputs)
        value = self.head.training_loss(sp.float(), x, **inputs).mean()
        return {"loss": value, self.head.loss_name: value.detach()}

    @torch.no_grad()
    def bits_per_dim(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None,
                     **inputs) -> torch.Tensor:
        """Exact bits per dimension of each image, (B,): -log2 p(x) / (C * H * W) (an evaluation: no
        gradient; ``log_prob`` keeps one)."""
        self._no_likelihood()
        lp = self.log_prob(x, y, spatial, **inputs)
        return -lp.flatten(1).sum(1) / (lp[0].numel() * math.log(2.0))

    # ------------------------------------------------------------------ the quantile head's API
    def _needs_tau(self, what: str) -> None:
        if "tau" not in self.extra_inputs:
            raise ConfigError(f"{what} needs a quantile head (tau as an input); this model's head is "
                              f"{type(self.head).__name__}")

    def quantile(self, x: torch.Tensor, tau: torch.Tensor, y: torch.Tensor | None = None,
                 spatial: torch.Tensor | None = None) -> torch.Tensor:
        """Q(tau_i | x_<i) for every sub-pixel, (B, C, H, W), in levels (reals on the 0 .. K-1 scale;
        a continuous level's own scale)."""
        self._needs_tau("quantile")
        self.check_input(x, y)
        return self.conditional_params(x, y, spatial, tau=tau)[:, :, 0]

    @torch.no_grad()
    def quantile_density(self, x: torch.Tensor, tau: torch.Tensor, y: torch.Tensor | None = None,
                         spatial: torch.Tensor | None = None) -> torch.Tensor:
        """dQ_i / dtau_i at every sub-pixel, (B, C, H, W), in levels per unit of tau, by autograd
        (PixelIQN, section 3.2). Its reciprocal is the implied density p(Q_i | x_<i) on the level scale.

        Q_i also depends on earlier taus, so the derivative of the summed output is not the diagonal:
        this takes one backward pass per sub-pixel (C*H*W of them), fine for interrogating a model,
        too slow for training (as the paper notes)."""
        self._needs_tau("quantile_density")
        self.check_input(x, y)
        self.head.check_inputs({"tau": tau}, x)
        out = torch.zeros(x.shape, dtype=tau.dtype, device=x.device)
        with torch.enable_grad():
            t = tau.detach().clone().requires_grad_(True)
            q = self.conditional_params(x, y, spatial, tau=t)[:, :, 0]
            c_count, height, width = self.image_shape
            for c, i, j in itertools.product(range(c_count), range(height), range(width)):
                (g,) = torch.autograd.grad(q[:, c, i, j].sum(), t, retain_graph=True)
                out[:, c, i, j] = g[:, c, i, j]
        return out

    # ------------------------------------------------------------------ sampling and saving
    def sampling_inputs(self, n: int, temperature: float, generator: torch.Generator | None) -> dict:
        """The head's per-position inputs (n, C, H, W) for sampling ``n`` images (e.g. tau, whose range
        is the temperature), drawn before the first step; {} for a head without inputs."""
        return self.head.sampling_inputs((int(n), *self.image_shape), temperature, generator)

    def stepper(self, n: int, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None,
                inputs: dict | None = None, cached: bool | None = None) -> Stepper:
        """The source of each sub-pixel's parameters for one sample call (``pixelzoo.models.autoregressive.steppers``).

        ``cached`` None: the trunk's incremental stepper where it has one, else the full-forward one;
        False: the full-forward stepper; True: the trunk's incremental stepper, or ConfigError."""
        if cached is not False:
            stepper = self.trunk.incremental_stepper(self, n, y, spatial, inputs)
            if stepper is not None:
                return stepper
            if cached:
                raise ConfigError(
                    f"cached sampling needs a trunk with an incremental stepper (the registered trunks have one: "
                    f"the Gated PixelCNN's per-layer queues, PixelCNN++'s and PixelSNAIL's per-layer caches); "
                    f"{type(self.trunk).__name__} in {type(self).__name__} has none: sample with cached=None or cached=False")
        return FullForwardStepper(self, n, y, spatial, inputs)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        known: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        spatial: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        head_options: dict | None = None,
        cached: bool | None = None,
    ) -> torch.Tensor:
        """``n`` images (n, C, H, W) of dtype long (float for a continuous level); see
        ``pixelzoo.sampling.ancestral_sample``. ``head_options`` go to the head's ``sample`` (e.g.
        ``{"mode": "map"}``, or for the logistic mixture ``{"log_scale_shift": 0.5}``); ``cached`` picks
        the stepper (``stepper``)."""
        from ...sampling import ancestral_sample

        return ancestral_sample(
            self, n, y=y, temperature=temperature, known=known, mask=mask, spatial=spatial,
            generator=generator, progress=progress, head_options=head_options, cached=cached,
        )



def build_autoregressive(trunk: str, image_shape, num_levels: int, num_classes: int | None = None,
                         head: str | Head = "categorical", head_options: dict | None = None,
                         out_hidden: int | None = None, spatial_channels: int = 0, fp32_output: bool = False,
                         **trunk_options) -> AutoregressiveModel:
    """The registered trunk ``trunk`` (``pixelzoo.models.autoregressive.trunks``) with its ``trunk_options``, the
    head ``head`` (a name in ``pixelzoo.heads.HEADS`` with ``head_options``, or a built head) and the
    output layer between them (``out_hidden`` channels, default the trunk's; in float32 under autocast
    with ``fp32_output``).

    A head with per-position inputs (e.g. ``"quantile"``'s tau) gets them through every layer of a
    ``causal_spatial`` trunk: the trunk takes ``spatial_channels`` + the head's embedding channels of
    spatial conditioning, with their colour groups; on other trunks only the output layer reads them.
    """
    c = int(image_shape[0])
    if not isinstance(head, Head):
        head = create_head(head, num_levels, c, **(head_options or {}))
    elif head_options:
        raise ConfigError("head_options apply to a head given by name, not to a built head")
    cls = trunk_class(trunk)
    if head.extra_inputs and cls.causal_spatial:
        groups = torch.cat([torch.zeros(int(spatial_channels), dtype=torch.long), head.input_groups()])
        net = cls.from_shape(image_shape, num_classes, len(groups), groups, **trunk_options)
    else:
        net = cls.from_shape(image_shape, num_classes, spatial_channels, None, **trunk_options)
    return AutoregressiveModel(net, head, image_shape, num_levels, num_classes, spatial_channels, out_hidden,
                               fp32_output)
