"""Diagonal Gaussian latents: the reparameterised draw, log-densities and the KL to the standard
normal prior, the pieces of a VAE's bound (AGAVE, Lucas & Verbeek 2018; AIQN over latents)."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None,
                   samples: int | None = None) -> torch.Tensor:
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I): differentiable in ``mean`` and ``log_var``.
    ``samples``: that many draws stacked in a new first dimension."""
    shape = mean.shape if samples is None else (int(samples), *mean.shape)
    eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(0.5 * log_var) * eps


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(log_var))) per element (broadcasting); sum over the latent dimensions
    for the density of a latent vector."""
    return -0.5 * (LOG_2PI + log_var + (z - mean) ** 2 * torch.exp(-log_var))


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, 1) per element."""
    return -0.5 * (LOG_2PI + z * z)


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) per element, analytically:
    (mean^2 + exp(log_var) - 1 - log_var) / 2; sum over the latent dimensions for a latent vector."""
    return 0.5 * (mean * mean + torch.exp(log_var) - 1.0 - log_var)
