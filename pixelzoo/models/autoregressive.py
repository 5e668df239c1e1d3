"""An autoregressive image model = trunk + output layer + head (+ conditioning inputs).

The trunk maps the scaled image (and class / spatial conditioning) to features whose colour groups
respect raster order; two masked 1x1 convolutions map them to the head's raw parameters; the head
turns those into one distribution per sub-pixel. Any head fits on any trunk: where a trunk does not
mask colour channels within a pixel, the head itself models their order (the logistic mixture always
does; the categorical head is switched to it with ``enable_channel_order``), and the output layer
then has a single channel group.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..heads import Head
from ..nn import GroupedPointwise, feature_groups
from .levels import check_levels, scale_levels
from .plan import PixelzooModel


class Trunk(nn.Module):
    """Base class of causal trunks.

    ``forward(x_scaled, y, spatial)`` returns features (B, out_channels, H, W); feature group ``g``
    (``out_groups``) at pixel ``p`` depends only on pixels before ``p`` and, if ``channel_masked``,
    on channels ``< g`` of ``p``. ``row_causal`` trunks never let output row ``i`` see input rows
    after ``i``, so feeding the first ``i + 1`` rows gives the first ``i + 1`` output rows exactly.
    ``causal_spatial`` trunks take ``spatial_groups`` (a colour group per spatial channel) and then
    let the spatial map at pixel ``q`` reach outputs at pixels after ``q`` and, at ``q`` itself, only
    feature groups ``>=`` the channel's group: a map given per sub-pixel (PixelIQN's tau) is then an
    autoregressive input like the image.
    ``row_cache`` trunks offer ``vertical_row_cache`` and ``horizontal_row`` (see
    ``GatedPixelCNNTrunk``) for exact row-cached sampling.
    """

    channel_masked: bool = True
    row_causal: bool = False
    causal_spatial: bool = False
    row_cache: bool = False
    out_channels: int
    out_groups: torch.Tensor


class AutoregressiveModel(PixelzooModel):
    """p(x | y, spatial) = prod_i p(x_i | x_<i, y, spatial) over sub-pixels in raster order."""

    def __init__(
        self,
        trunk: Trunk,
        head: Head,
        image_shape: tuple[int, int, int],
        num_levels: int,
        num_classes: int | None = None,
        spatial_channels: int = 0,
        out_hidden: int | None = None,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes) if num_classes else None
        self.spatial_channels = int(spatial_channels)
        channels = self.image_shape[0]
        if channels > 1 and not trunk.channel_masked and not head.models_channel_order:
            if not hasattr(head, "enable_channel_order"):
                raise ConfigError(
                    f"trunk {type(trunk).__name__} does not mask colour channels within a pixel and head "
                    f"{type(head).__name__} does not model their order: colour would not be autoregressive"
                )
            head.enable_channel_order()  # e.g. the categorical head: logits of c also see x_<c
        self.trunk = trunk
        self.head = head
        self.output = self._build_output(out_hidden or trunk.out_channels)
        self.config: dict = {}

    def _build_output(self, hidden: int) -> nn.Module:
        """The output layer: trunk features -> the head's raw parameters, with colour-group masks."""
        trunk, head = self.trunk, self.head
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

    # ------------------------------------------------------------------ inputs
    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels [0, K) -> floats in [-1, 1]."""
        return scale_levels(x, self.num_levels)

    def check_input(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        check_levels(x, self.image_shape, self.num_levels)
        if y is not None:
            if self.num_classes is None:
                raise ConfigError("this model is not class-conditional; pass y=None")
            if y.shape != (x.shape[0],) or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes)):
                raise ConfigError(f"labels must be a ({x.shape[0]},) tensor in [0, {self.num_classes})")

    # ------------------------------------------------------------------ core
    def params_from_scaled(
        self, x_scaled: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Sub-pixel parameters (B, C, P, H, W) from the scaled image; differentiable in ``x_scaled``
        (the causality tests take gradients through it)."""
        return self.head.subpixel_params(self.raw_params(x_scaled, y, spatial), x_scaled)

    def raw_params(
        self, x_scaled: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The head's raw parameters (B, num_params, H, W): trunk + output layer."""
        return self.output(self.trunk(x_scaled, y, spatial))

    # The two halves of ``params_from_scaled``, for samplers that run the trunk piece by piece:
    # ``trunk(x_scaled, y, trunk_spatial(spatial, **inputs))`` gives features, which
    # ``params_from_features`` turns into sub-pixel parameters at the same positions.
    def trunk_spatial(self, spatial: torch.Tensor | None, **inputs) -> torch.Tensor | None:
        """The per-position map the trunk's conditioning receives."""
        return spatial

    def params_from_features(self, feats: torch.Tensor, x_scaled: torch.Tensor, **inputs) -> torch.Tensor:
        """Trunk features (B, F, h, w) -> sub-pixel parameters (B, C, P, h, w); ``x_scaled`` and any
        per-position ``inputs`` cover the same positions."""
        return self.head.subpixel_params(self.output(feats), x_scaled)

    def conditional_params(
        self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.params_from_scaled(self.scale(x), y, spatial)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for every sub-pixel, (B, C, H, W)."""
        self.check_input(x, y)
        return self.head.log_prob(self.conditional_params(x, y, spatial), x)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> dict:
        """``loss``: mean negative log-likelihood in nats per dimension; ``bpd``: the same in bits."""
        nll = -self.log_prob(x, y, spatial).mean()
        return {"loss": nll, "bpd": nll.detach() / math.log(2.0)}

    def bits_per_dim(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> torch.Tensor:
        """Exact bits per dimension of each image, (B,): -log2 p(x) / (C * H * W)."""
        lp = self.log_prob(x, y, spatial)
        return -lp.flatten(1).sum(1) / (lp[0].numel() * math.log(2.0))

    # ------------------------------------------------------------------ sampling and saving
    @property
    def trunk_once_per_pixel(self) -> bool:
        """True when the sampler may run the trunk once per pixel and only the head once per channel
        (the trunk does not mask colour channels, so its output at a pixel ignores that pixel)."""
        return not self.trunk.channel_masked

    def sampling_inputs(self, n: int, temperature: float, generator: torch.Generator | None) -> dict:
        """Per-position inputs (n, *, H, W) the sampler draws before the first step and passes, cropped
        like the image, to ``conditional_params`` as keyword arguments; none for a likelihood model."""
        return {}

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
    ) -> torch.Tensor:
        """``n`` images (n, C, H, W) of dtype long; see ``pixelzoo.sampling.ancestral_sample``.
        ``head_options`` go to the head's ``sample`` (e.g. ``{"mode": "map"}``, or for the logistic
        mixture ``{"log_scale_shift": 0.5}``)."""
        from ..sampling import ancestral_sample

        return ancestral_sample(
            self, n, y=y, temperature=temperature, known=known, mask=mask, spatial=spatial,
            generator=generator, progress=progress, head_options=head_options,
        )
