"""PixelIQN: autoregressive implicit quantile networks (Ostrovski, Dabney, Munos 2018).

The network maps the image x and a map tau of quantile targets, one per sub-pixel (tau_i ~ U[0, 1]),
to Q(tau_i | x_<i) for every sub-pixel i, trained by the Huber quantile loss (eq. 2) towards the
observed x_i. Sampling feeds the rounded output back, one sub-pixel at a time: x_i = Q(tau_i | x_<i).

tau reaches the network in two places:

* through the trunk's per-position conditioning input, the path class-location conditioning takes
  (the paper's Fig. 2), on trunks whose spatial conditioning is causal (``Trunk.causal_spatial``:
  Gated PixelCNN, PixelSNAIL). The 1x1 projections are channel-masked so the features of colour
  group ``c`` see the taus of channels ``<= c`` of the pixel (and all taus of earlier pixels);
* through the output layer at the sub-pixel's own position (as in IQN), on every trunk. On a trunk
  whose conditioning is not causal per position (PixelCNN++: its streams read the same row), this is
  the only path, and the output layer also reads the pixel's earlier channels to keep colour ordered.

So Q_i depends on tau_i, on x_<i and on tau_<i (nuisance inputs the loss teaches it to ignore, since
they carry nothing about x_i beyond x_<i), never on anything after i; the registry's causality test
checks it with tau as an extra input. The temperature of sampling is the tau range: tau ~
U[0.5 - t/2, 0.5 + t/2], t in [0, 1] (t = 0: every sub-pixel its conditional median).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model
from ..errors import ConfigError
from ..heads.quantile import QuantileHead
from ..nn import GroupedPointwise, feature_groups
from .autoregressive import AutoregressiveModel, Trunk
from .gated_pixelcnn import GatedPixelCNNTrunk
from .pixelcnnpp import PixelCNNPPTrunk
from .pixelsnail import PixelSNAILTrunk


NO_LIKELIHOOD = ("PixelIQN has no likelihood, so there is no log_prob or bits/dim: it is trained by the quantile "
                 "loss (model.loss) and judged by sample metrics (FID, IS, precision/recall)")


class QuantileOutput(nn.Module):
    """[ReLU(features), tau embedding, (pixel's own channels)] -> 1x1 -> ReLU -> 1x1 -> raw Q per channel.

    Channel ``c``'s hidden group reads feature groups ``<= c``, the tau embeddings of channels
    ``<= c`` and, with ``read_pixel`` (trunks that do not mask colour), the pixel's channels ``< c``.
    """

    def __init__(self, feat_channels: int, feat_groups: torch.Tensor, channels: int, tau_groups: torch.Tensor,
                 hidden: int, read_pixel: bool):
        super().__init__()
        in_groups = [feat_groups, tau_groups]
        if read_pixel:
            in_groups.append(torch.arange(channels) + 1)  # x_c is visible to groups > c only
        in_groups = torch.cat(in_groups)
        hidden_groups = feature_groups(hidden, channels)
        self.read_pixel = read_pixel
        self.hidden = GroupedPointwise(len(in_groups), hidden, in_groups, hidden_groups)
        self.out = GroupedPointwise(hidden, channels, hidden_groups, torch.arange(channels))

    def forward(self, feats: torch.Tensor, tau_emb: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        parts = [F.relu(feats), tau_emb.to(feats.dtype)]
        if self.read_pixel:
            parts.append(x_scaled.to(feats.dtype))
        return self.out(F.relu(self.hidden(torch.cat(parts, dim=1))))


class QuantileModel(AutoregressiveModel):
    """An autoregressive implicit quantile network over integer images (see the module docstring).

    ``quantile(x, tau, y)`` gives Q (B, C, H, W) in levels; ``loss`` draws tau and returns the mean
    Huber quantile loss; ``sample`` draws tau and generates; ``quantile_density`` is dQ_i/dtau_i.
    There is no likelihood: ``log_prob`` and ``bits_per_dim`` raise.
    """

    def __init__(self, trunk: Trunk, head: QuantileHead, image_shape, num_levels: int, num_classes: int | None = None,
                 spatial_channels: int = 0, out_hidden: int | None = None, tau_in_trunk: bool = True):
        if not isinstance(head, QuantileHead):
            raise ConfigError("QuantileModel needs a QuantileHead")
        self.tau_in_trunk = bool(tau_in_trunk)
        super().__init__(trunk, head, image_shape, num_levels, num_classes, spatial_channels, out_hidden)

    def _build_output(self, hidden: int) -> nn.Module:
        trunk = self.trunk
        feat_groups = trunk.out_groups if trunk.channel_masked else torch.zeros(trunk.out_channels, dtype=torch.long)
        return QuantileOutput(trunk.out_channels, feat_groups, self.image_shape[0], self.head.tau_groups(), hidden,
                              read_pixel=not trunk.channel_masked)

    # ------------------------------------------------------------------ core
    def check_tau(self, tau: torch.Tensor | None, x: torch.Tensor) -> None:
        if tau is None:
            raise ConfigError("PixelIQN needs tau, the quantile targets: a tensor of x's shape with values in [0, 1]")
        if tuple(tau.shape) != tuple(x.shape) or not tau.is_floating_point():
            raise ConfigError(f"tau must be a float tensor of the images' shape {tuple(x.shape)}, got "
                              f"{tuple(tau.shape)} {tau.dtype}")
        if tau.numel() and (float(tau.detach().min()) < 0 or float(tau.detach().max()) > 1):
            raise ConfigError("tau values must lie in [0, 1]")

    def params_from_scaled(self, x_scaled, y=None, spatial=None, tau=None) -> torch.Tensor:
        """Q in levels, (B, C, 1, H, W); differentiable in ``x_scaled`` and ``tau``."""
        self.check_tau(tau, x_scaled)
        feats = self.trunk(x_scaled, y, self.trunk_spatial(spatial, tau=tau))
        return self.params_from_features(feats, x_scaled, tau=tau)

    def trunk_spatial(self, spatial, tau=None):
        if not self.tau_in_trunk:
            return spatial
        emb = self.head.embed_tau(tau)
        return emb if spatial is None else torch.cat([spatial.to(emb.dtype), emb], dim=1)

    def params_from_features(self, feats, x_scaled, tau=None):
        emb = self.head.embed_tau(tau.to(x_scaled.dtype))
        return self.head.subpixel_params(self.output(feats, emb, x_scaled), x_scaled)

    def raw_params(self, x_scaled, y=None, spatial=None):
        raise ConfigError("PixelIQN's output needs tau: use quantile(x, tau) or params_from_scaled(..., tau=tau)")

    def conditional_params(self, x, y=None, spatial=None, tau=None) -> torch.Tensor:
        return self.params_from_scaled(self.scale(x), y, spatial, tau)

    def quantile(self, x: torch.Tensor, tau: torch.Tensor, y: torch.Tensor | None = None,
                 spatial: torch.Tensor | None = None) -> torch.Tensor:
        """Q(tau_i | x_<i) for every sub-pixel, (B, C, H, W), in levels (reals on the 0 .. K-1 scale)."""
        self.check_input(x, y)
        return self.conditional_params(x, y, spatial, tau)[:, :, 0]

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, spatial: torch.Tensor | None = None) -> dict:
        """tau ~ U[0, 1] per sub-pixel; ``loss`` = ``quantile_loss`` = mean rho_tau^kappa(x - Q(tau)) in
        levels per sub-pixel (computed in float32 under autocast)."""
        self.check_input(x, y)
        tau = torch.rand(x.shape, device=x.device)
        sp = self.conditional_params(x, y, spatial, tau)
        value = self.head.loss(sp.float(), x, tau).mean()
        return {"loss": value, "quantile_loss": value.detach()}

    def log_prob(self, x, y=None, spatial=None):
        raise ConfigError(NO_LIKELIHOOD)

    def bits_per_dim(self, x, y=None, spatial=None):
        raise ConfigError(NO_LIKELIHOOD)

    @torch.no_grad()
    def quantile_density(self, x: torch.Tensor, tau: torch.Tensor, y: torch.Tensor | None = None,
                         spatial: torch.Tensor | None = None) -> torch.Tensor:
        """dQ_i / dtau_i at every sub-pixel, (B, C, H, W), in levels per unit of tau, by autograd
        (paper section 3.2). Its reciprocal is the implied density p(Q_i | x_<i) on the level scale.

        Q_i also depends on earlier taus, so the derivative of the summed output is not the diagonal:
        this takes one backward pass per sub-pixel (C*H*W of them), fine for interrogating a model,
        too slow for training (as the paper notes)."""
        self.check_input(x, y)
        self.check_tau(tau, x)
        out = torch.zeros(x.shape, dtype=tau.dtype, device=x.device)
        with torch.enable_grad():
            t = tau.detach().clone().requires_grad_(True)
            q = self.conditional_params(x, y, spatial, t)[:, :, 0]
            c_count, height, width = self.image_shape
            for c, i, j in itertools.product(range(c_count), range(height), range(width)):
                (g,) = torch.autograd.grad(q[:, c, i, j].sum(), t, retain_graph=True)
                out[:, c, i, j] = g[:, c, i, j]
        return out

    # ------------------------------------------------------------------ sampling
    @property
    def trunk_once_per_pixel(self) -> bool:
        return False  # tau of each channel enters the network, so every sub-pixel needs its own pass

    def sampling_inputs(self, n: int, temperature: float, generator: torch.Generator | None) -> dict:
        """tau ~ U[0.5 - t/2, 0.5 + t/2] per sub-pixel, t = ``temperature`` in [0, 1] (the tau range)."""
        t = float(temperature)
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"for PixelIQN the temperature is the tau range and must lie in [0, 1], got {t}")
        u = torch.rand((n, *self.image_shape), generator=generator)
        return {"tau": 0.5 + t * (u - 0.5)}


def _build_trunk(name: str, image_shape, num_classes, spatial_channels: int, spatial_groups, options: dict) -> Trunk:
    c = image_shape[0]
    if name == "gated_pixelcnn":
        return GatedPixelCNNTrunk(c, num_classes=num_classes, spatial_channels=spatial_channels,
                                  spatial_groups=spatial_groups, **options)
    if name == "pixelsnail":
        return PixelSNAILTrunk(c, num_classes=num_classes, spatial_channels=spatial_channels,
                               spatial_groups=spatial_groups, **options)
    if name == "pixelcnnpp":
        return PixelCNNPPTrunk(c, image_shape[1:], num_classes=num_classes, spatial_channels=spatial_channels,
                               **options)
    raise ConfigError(f"unknown trunk {name!r} for pixeliqn; choose one of {sorted(PIXELIQN_TRUNKS)}")


PIXELIQN_TRUNKS = {"gated_pixelcnn": True, "pixelsnail": True, "pixelcnnpp": False}  # name -> tau in every layer


@register_model("pixeliqn")
def build_pixeliqn(image_shape, num_levels, num_classes=None, trunk="gated_pixelcnn", kappa=1.0,
                   tau_embedding="cosine", n_cos=16, out_hidden=None, spatial_channels=0,
                   **trunk_options) -> QuantileModel:
    """PixelIQN on ``trunk`` (``gated_pixelcnn`` as in the paper, ``pixelsnail`` or ``pixelcnnpp``);
    ``trunk_options`` are that trunk's hyper-parameters (e.g. ``channels``, ``n_layers``)."""
    if trunk not in PIXELIQN_TRUNKS:
        raise ConfigError(f"unknown trunk {trunk!r} for pixeliqn; choose one of {sorted(PIXELIQN_TRUNKS)}")
    c = image_shape[0]
    head = QuantileHead(num_levels, c, kappa=kappa, tau_embedding=tau_embedding, n_cos=n_cos)
    tau_in_trunk = PIXELIQN_TRUNKS[trunk]
    if tau_in_trunk:
        groups = torch.cat([torch.zeros(spatial_channels, dtype=torch.long), head.tau_groups()])
        net = _build_trunk(trunk, image_shape, num_classes, len(groups),
                           groups, trunk_options)
    else:
        net = _build_trunk(trunk, image_shape, num_classes, spatial_channels, None, trunk_options)
    return QuantileModel(net, head, image_shape, num_levels, num_classes, spatial_channels, out_hidden, tau_in_trunk)
