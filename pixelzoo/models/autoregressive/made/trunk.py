"""MADE (Germain et al. 2015) as a trunk: masked fully-connected layers over a whole (C, H, W) map
read as one flat vector of D = C * H * W dimensions, for small maps such as a VAE's latent vector
(Ostrovski et al. 2018 propose an AIQN over a VAE's latent dimensions: ``made`` with the continuous
quantile head).

**Order.** The library's order of sub-pixels, the sampler's: rows, columns, then channels. So
dimension ``(c, i, j)`` is number ``d = (i * W + j) * C + c`` (``raster_index``); a latent vector of
C dimensions is a (C, 1, 1) map and its dimensions are modelled in channel order.

**Masks.** Every unit has a *reach*, the first dimension allowed to depend on it
(``pixelzoo.nn.masked_linear``): input ``x_d`` has reach ``d + 1``; a spatial-map channel of colour
group ``g`` at pixel ``p`` (the head's per-position inputs such as tau_d, or a conditioning map) has
reach ``p * C + g``, so tau_d reaches output ``d`` itself; hidden units of every layer get reaches
spread evenly over ``0 .. D - 1`` (``hidden >= D`` is required, so every dimension has units that
see all of its past); the ``features`` outputs of dimension ``d`` have reach ``d``. A connection is
kept iff the reach does not decrease, so the features of dimension ``d`` depend on ``x_<d`` only.
The class label (a learned embedding added to every hidden layer) reaches everything.

**As a trunk.** ``forward(x, y, spatial)`` gives features (B, C * features, H, W): at pixel ``p``,
feature group ``c`` holds dimension ``(c, p)``'s features (``channel_masked``: group ``c`` sees channels
``< c`` of its pixel). The trunk is ``causal_spatial``, so a head's per-position inputs (tau) pass
through every layer. It is not row-causal (its layers are fully connected over the map, so it takes
maps of exactly its shape), and its exact incremental stepper (``pixelzoo.models.autoregressive.made.stepper``)
computes each hidden unit once per sample call, when its inputs are final.

``pixelzoo.create_model("made", shape, K, head=...)`` builds it with any head (categorical by
default; ``quantile`` with ``continuous=True`` or ``gaussian_mixture`` for a continuous level), as an
AGAVE ``latent_prior``: ``{"name": "made", "head": "quantile", "head_options": {"continuous": true}}``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ....errors import ConfigError
from ....nn.masked_linear import MaskedLinear, spread_reaches
from ....registry import register_model
from ..model import AutoregressiveModel, build_autoregressive
from .stepper import MADEStepper
from ..trunks import Trunk, register_trunk


def raster_index(shape) -> torch.Tensor:
    """(C, H, W) long: the number of each sub-pixel in the sampler's order (rows, columns, channels)."""
    c, h, w = (int(s) for s in shape)
    return torch.arange(c * h * w).view(h, w, c).permute(2, 0, 1)


def flatten_raster(t: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) -> (B, H * W * K), pixel-major: element (k, i, j) at ``(i * W + j) * K + k``."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)


def _positive(name: str, v) -> int:
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ConfigError(f"made: {name} must be a positive integer, got {v!r}")
    return int(v)


@register_trunk("made")
class MADETrunk(Trunk):
    """See the module docstring. ``hidden`` units per layer (at least C * H * W), ``n_layers`` hidden
    layers (ELU: no unit is ever cut off from its inputs, as a ReLU's can be with few units per
    reach), ``features`` output features per dimension."""

    channel_masked = True
    row_causal = False
    causal_spatial = True

    @classmethod
    def from_shape(cls, image_shape, num_classes=None, spatial_channels: int = 0, spatial_groups=None,
                   **options) -> "MADETrunk":
        return cls(image_shape, num_classes=num_classes, spatial_channels=spatial_channels,
                   spatial_groups=spatial_groups, **options)

    def __init__(self, image_shape, hidden: int = 512, n_layers: int = 2, features: int = 16, num_classes=None,
                 spatial_channels: int = 0, spatial_groups=None):
        super().__init__()
        c, h, w = (_positive("image_shape", s) for s in image_shape)
        self.shape = (c, h, w)
        dims = c * h * w
        hidden, n_layers, features = (_positive(k, v) for k, v in
                                      (("hidden", hidden), ("n_layers", n_layers), ("features", features)))
        if hidden < dims:
            raise ConfigError(f"made: hidden ({hidden}) must be at least the number of dimensions C*H*W = {dims} "
                              f"of the {c}x{h}x{w} map, so that every dimension has hidden units seeing all of its past")
        self.spatial_channels = int(spatial_channels)
        groups = torch.zeros(self.spatial_channels, dtype=torch.long) if spatial_groups is None \
            else torch.as_tensor(spatial_groups, dtype=torch.long)
        if len(groups) != self.spatial_channels or (len(groups) and not 0 <= int(groups.min()) <= int(groups.max()) < c):
            raise ConfigError(f"made: need one colour group in [0, {c}) per spatial channel "
                              f"({self.spatial_channels}), got {groups.tolist()}")
        pixel_first = torch.arange(h * w)[:, None] * c  # the number of each pixel's first sub-pixel
        in_reach = torch.cat([torch.arange(dims) + 1, (pixel_first + groups[None, :]).flatten()])
        hidden_reach = spread_reaches(hidden, dims)
        self.layers = nn.ModuleList([MaskedLinear(in_reach if k == 0 else hidden_reach, hidden_reach)
                                     for k in range(n_layers)])
        self.to_features = MaskedLinear(hidden_reach, torch.arange(dims).repeat_interleave(features))
        self.embeddings = nn.ModuleList([nn.Embedding(int(num_classes), hidden) for _ in range(n_layers)]) \
            if num_classes else None
        self.register_buffer("hidden_reach", hidden_reach, persistent=False)
        self.features = features
        self.out_channels = c * features
        self.register_buffer("out_groups", torch.arange(c).repeat_interleave(features), persistent=False)

    # ------------------------------------------------------------------ pieces (shared with the stepper)
    def flat_inputs(self, x: torch.Tensor, spatial: torch.Tensor | None) -> torch.Tensor:
        """The first layer's input (B, D + H * W * S): the map, then the spatial map, pixel-major."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ConfigError(f"the MADE trunk is fully connected over its {self.shape} map and takes maps of "
                              f"exactly that shape, got {tuple(x.shape)}")
        if not self.spatial_channels:
            return flatten_raster(x)
        if spatial is None:
            raise ConfigError("this model was built with spatial conditioning; pass the conditioning map")
        if tuple(spatial.shape[1:]) != (self.spatial_channels, *self.shape[1:]):
            raise ConfigError(f"spatial conditioning map is {tuple(spatial.shape[1:])}, the trunk takes "
                              f"{(self.spatial_channels, *self.shape[1:])}")
        return torch.cat([flatten_raster(x), flatten_raster(spatial.to(x.dtype))], dim=1)

    def hidden(self, k: int, h: torch.Tensor, y: torch.Tensor | None, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Units ``lo .. hi - 1`` of hidden layer ``k`` from the previous layer's units ``h``."""
        hi = len(self.hidden_reach) if hi is None else hi
        pre = self.layers[k].rows(h, lo, hi)
        if self.embeddings is not None and y is not None:
            pre = pre + self.embeddings[k](y)[:, lo:hi].to(pre.dtype)
        return F.elu(pre)

    def units_of_reaches(self, first: int, stop: int) -> tuple[int, int]:
        """The hidden units (a range: reaches are sorted) whose reach lies in ``first .. stop - 1``."""
        r = self.hidden_reach
        return int(torch.searchsorted(r, first)), int(torch.searchsorted(r, stop))

    def to_map(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D * features) in dimension order -> (B, C * features, H, W), group ``c`` = channel ``c``."""
        c, h, w = self.shape
        return feats.view(-1, h, w, c * self.features).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> torch.Tensor:
        h = self.flat_inputs(x, spatial)
        for k in range(len(self.layers)):
            h = self.hidden(k, h, y)
        return self.to_map(self.to_features(h))

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None) -> MADEStepper:
        return MADEStepper(model, n, y, spatial, inputs)


@register_model("made")
def build_made(image_shape, num_levels, num_classes=None, hidden: int = 512, n_layers: int = 2, features: int = 16,
               out_hidden=None, spatial_channels=0, head="categorical", head_options=None) -> AutoregressiveModel:
    """A MADE (``MADETrunk``) with the categorical head by default; any head fits (``quantile`` with
    ``head_options={"continuous": True}``: the AIQN over a latent vector; ``gaussian_mixture``)."""
    return build_autoregressive("made", image_shape, num_levels, num_classes, head=head, head_options=head_options,
                                out_hidden=out_hidden, spatial_channels=spatial_channels, hidden=hidden,
                                n_layers=n_layers, features=features)
