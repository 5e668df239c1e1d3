"""Implicit quantile head of PixelIQN (Ostrovski, Dabney, Munos 2018): one real value per sub-pixel,
Q(tau_i | x_<i), trained by the Huber quantile loss instead of a likelihood.

The quantile target ``tau`` is a per-position *input* (``extra_inputs = ("tau",)``, see
``pixelzoo.heads.base``): the head draws it (``sampling_inputs``: tau ~ U[0.5 - t/2, 0.5 + t/2] for
the temperature t in [0, 1]; ``training_inputs``: tau ~ U[0, 1]), embeds it for the network
(``embed_inputs``), maps the network's raw output to Q on the data's scale, gives the loss and the
draw (Q rounded to the level grid, or Q itself for a ``continuous`` level). The autoregressive model
routes the embedding of tau through the trunk and the output layer (``pixelzoo.models.autoregressive.pixeliqn``).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..views import has_values
from .base import Head, full_precision

TAU_EMBEDDINGS = ("cosine", "linear")

NO_LIKELIHOOD = ("PixelIQN has no likelihood, so there is no log_prob or bits/dim: it is trained by the quantile "
                 "loss (model.loss) and judged by sample metrics (FID, IS, precision/recall)")


def huber_quantile_loss(u: torch.Tensor, tau: torch.Tensor, kappa: float) -> torch.Tensor:
    """The Huber quantile loss of the paper's eq. (2), elementwise.

    ``rho_tau^kappa(u) = |tau - 1{u <= 0}| * L_kappa(u) / kappa`` with ``L_kappa(u) = u^2 / 2`` if
    ``|u| <= kappa`` else ``kappa (|u| - kappa / 2)``, for the error ``u = x - Q(tau)`` (positive when
    Q under-estimates). ``kappa = 0`` is the plain quantile loss ``(tau - 1{u <= 0}) u``. The expected
    loss over x is minimised by the tau-quantile of x: under-estimates cost tau, over-estimates 1 - tau.
    """
    if kappa < 0:
        raise ConfigError(f"kappa must be >= 0, got {kappa}")
    weight = (tau - (u <= 0).to(u.dtype)).abs()
    a = u.abs()
    if kappa == 0:
        return weight * a
    return weight * torch.where(a <= kappa, 0.5 * u * u / kappa, a - 0.5 * kappa)


class QuantileHead(Head):
    """Q in level units (``0 .. K-1`` as reals) from a raw output in the [-1, 1] input scale.

    Args:
        kappa: the Huber threshold in levels (0: plain quantile loss).
        tau_embedding: ``"cosine"`` (``cos(pi k tau)``, ``k = 1 .. n_cos``, as in IQN) or ``"linear"``
            (``2 tau - 1``), per sub-pixel; the embedding of channel ``c`` is colour group ``c``.
        n_cos: number of cosine features per sub-pixel.
        continuous: a continuous level: Q is the raw output itself, on the level's own real scale,
            and ``sample`` returns it as a float, neither rounded nor clipped (``num_levels`` is then
            unused by the head).

    Not a likelihood head: ``log_prob`` raises; ``training_loss`` is the Huber quantile loss.
    """

    has_likelihood = False
    extra_inputs = ("tau",)
    loss_name = "quantile_loss"
    no_likelihood_message = NO_LIKELIHOOD

    def __init__(self, num_levels: int, channels: int, kappa: float = 1.0, tau_embedding: str = "cosine",
                 n_cos: int = 16, continuous: bool = False):
        super().__init__(num_levels, channels)
        self.continuous = bool(continuous)
        if tau_embedding not in TAU_EMBEDDINGS:
            raise ConfigError(f"tau_embedding must be one of {TAU_EMBEDDINGS}, got {tau_embedding!r}")
        if kappa < 0:
            raise ConfigError(f"kappa must be >= 0, got {kappa}")
        if tau_embedding == "cosine" and int(n_cos) < 1:
            raise ConfigError(f"n_cos must be >= 1, got {n_cos}")
        self.kappa = float(kappa)
        self.tau_embedding = tau_embedding
        self.tau_features = int(n_cos) if tau_embedding == "cosine" else 1
        self.register_buffer("frequencies", math.pi * torch.arange(1, self.tau_features + 1).float(),
                             persistent=False)

    def num_params(self) -> int:
        return self.channels

    def param_groups(self) -> torch.Tensor:
        return torch.arange(self.channels)

    def tau_groups(self) -> torch.Tensor:
        """Colour group of each embedding channel: channel ``c``'s features are group ``c``."""
        return torch.arange(self.channels).repeat_interleave(self.tau_features)

    def input_channels(self) -> int:
        return self.channels * self.tau_features

    def input_groups(self) -> torch.Tensor:
        return self.tau_groups()

    def embed_inputs(self, tau: torch.Tensor) -> torch.Tensor:
        return self.embed_tau(tau)

    def check_inputs(self, inputs: dict, x: torch.Tensor) -> None:
        """tau: a float tensor of ``x``'s shape with values in [0, 1]."""
        tau = inputs.get("tau")
        if tau is None:
            raise ConfigError("PixelIQN needs tau, the quantile targets: a tensor of x's shape with values in [0, 1]")
        super().check_inputs(inputs, x)
        if tuple(tau.shape) != tuple(x.shape) or not tau.is_floating_point():
            raise ConfigError(f"tau must be a float tensor of the images' shape {tuple(x.shape)}, got "
                              f"{tuple(tau.shape)} {tau.dtype}")
        if has_values(tau) and (float(tau.detach().min()) < 0 or float(tau.detach().max()) > 1):
            raise ConfigError("tau values must lie in [0, 1]")

    def sampling_inputs(self, shape, temperature: float = 1.0, generator: torch.Generator | None = None) -> dict:
        """tau ~ U[0.5 - t/2, 0.5 + t/2] per sub-pixel, t = ``temperature`` in [0, 1] (the tau range;
        t = 0: every sub-pixel its conditional median)."""
        t = float(temperature)
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"for PixelIQN the temperature is the tau range and must lie in [0, 1], got {t}")
        u = torch.rand(tuple(shape), generator=generator)
        return {"tau": 0.5 + t * (u - 0.5)}

    def training_inputs(self, x: torch.Tensor) -> dict:
        """tau ~ U[0, 1] per sub-pixel, from the global generator on ``x``'s device."""
        return {"tau": torch.rand(x.shape, device=x.device)}

    def embed_tau(self, tau: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C * tau_features, H, W), channel-major."""
        if self.tau_embedding == "linear":
            return 2.0 * tau - 1.0
        b, c, h, w = tau.shape
        feats = torch.cos(tau.unsqueeze(2) * self.frequencies.to(tau.dtype)[None, None, :, None, None])
        return feats.reshape(b, c * self.tau_features, h, w)

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) raw in the [-1, 1] scale -> Q in levels, (B, C, 1, H, W); for a continuous
        level Q is ``raw`` itself."""
        q = full_precision(raw)
        if not self.continuous:
            q = (q + 1.0) * (0.5 * (self.num_levels - 1))
        return q.unsqueeze(2)

    def loss(self, sp: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """rho_tau^kappa(x - Q(tau)) per sub-pixel (B, C, H, W), in levels."""
        return huber_quantile_loss(x.to(sp.dtype) - sp[:, :, 0], tau.to(sp.dtype), self.kappa)

    def training_loss(self, sp: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        return self.loss(sp, x, tau)

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise ConfigError("the quantile head has no likelihood: there is no log_prob or bits/dim "
                          "(its training loss is the quantile loss)")

    def draw(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
             **options) -> torch.Tensor:
        """Q rounded and clipped to the level grid, (N,) long; for a continuous level Q itself, (N,)
        float. The randomness is tau, an input drawn before sampling (``sampling_inputs``:
        ``temperature`` is applied there, as the tau range)."""
        if options:
            raise ConfigError(f"unknown sampling options {sorted(options)} for the quantile head; it has none")
        if self.continuous:
            return sp[:, 0]
        return sp[:, 0].round().clamp(0, self.num_levels - 1).long()
