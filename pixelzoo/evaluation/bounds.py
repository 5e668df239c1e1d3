"""Bounds on log p(x) of latent-variable models from importance weights.

With draws z_1..z_k from a proposal q(z | x), the log-weights ``log w_i = log p(x, z_i) - log q(z_i |
x)`` give the evidence lower bound (ELBO, the mean of the log-weights) and the importance-weighted
bound of Burda et al. 2016 (IWAE), ``log (1/k) sum_i w_i``. IWAE with k = 1 is the ELBO on the same
draw; its expectation does not decrease with k and tends to log p(x); both are exact when q is the
true posterior (then every weight equals p(x)). The functions take the log-weights, so any model that
can score a draw uses them (AGAVE's VAE, a latent prior)."""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def _check(log_w: torch.Tensor) -> torch.Tensor:
    if not isinstance(log_w, torch.Tensor) or log_w.dim() < 1 or log_w.shape[0] < 1:
        raise ConfigError(f"log-weights must be a tensor (k, ...) with k >= 1 draws, got "
                          f"{tuple(getattr(log_w, 'shape', ()))}")
    return log_w


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """The evidence lower bound from log-weights (k, ...): their mean over the k draws."""
    return _check(log_w).mean(0)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound (Burda et al. 2016) from log-weights (k, ...):
    ``logsumexp_i(log w_i) - log k``, computed without overflow."""
    log_w = _check(log_w)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
