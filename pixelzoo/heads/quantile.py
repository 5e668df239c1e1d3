"""Implicit quantile head of PixelIQN (Ostrovski, Dabney, Munos 2018): one real value per sub-pixel,
Q(tau_i | x_<i), trained by the Huber quantile loss instead of a likelihood.

The quantile target ``tau`` is an *input* (see ``pixelzoo.models.pixeliqn``); this head holds what is
per sub-pixel: the embedding of tau fed to the network, the map from the network's raw output to the
data's level scale, the loss, and the draw (rounding to the level grid).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import Head, full_precision

TAU_EMBEDDINGS = ("cosine", "linear")


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

    Not a likelihood head: ``log_prob`` raises. It is not in ``HEADS`` because tau must reach the
    network; ``pixeliqn`` builds it with the model that feeds tau in.
    """

    has_likelihood = False
    # On a trunk that does not mask colour channels, the PixelIQN output layer reads the pixel's
    # earlier channels (see ``QuantileOutput``), so colour stays autoregressive on every trunk.
    models_channel_order = True

    def __init__(self, num_levels: int, channels: int, kappa: float = 1.0, tau_embedding: str = "cosine",
                 n_cos: int = 16):
        super().__init__(num_levels, channels)
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

    def embed_tau(self, tau: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C * tau_features, H, W), channel-major."""
        if self.tau_embedding == "linear":
            return 2.0 * tau - 1.0
        b, c, h, w = tau.shape
        feats = torch.cos(tau.unsqueeze(2) * self.frequencies.to(tau.dtype)[None, None, :, None, None])
        return feats.reshape(b, c * self.tau_features, h, w)

    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) raw in the [-1, 1] scale -> Q in levels, (B, C, 1, H, W)."""
        q = (full_precision(raw) + 1.0) * (0.5 * (self.num_levels - 1))
        return q.unsqueeze(2)

    def loss(self, sp: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """rho_tau^kappa(x - Q(tau)) per sub-pixel (B, C, H, W), in levels."""
        return huber_quantile_loss(x.to(sp.dtype) - sp[:, :, 0], tau.to(sp.dtype), self.kappa)

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise ConfigError("the quantile head has no likelihood: there is no log_prob or bits/dim "
                          "(its training loss is the quantile loss)")

    def sample(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               **options) -> torch.Tensor:
        """Q rounded and clipped to the level grid, (N,). The randomness is tau, an input drawn by the
        model before sampling (``temperature`` is applied there, as the tau range)."""
        if options:
            raise ConfigError(f"unknown sampling options {sorted(options)} for the quantile head; it has none")
        return sp[:, 0].round().clamp(0, self.num_levels - 1).long()
