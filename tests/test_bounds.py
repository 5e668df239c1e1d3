"""Diagonal Gaussian latents (the reparameterised draw, densities, the analytic KL) and the bounds from
importance weights (ELBO, IWAE), checked on a linear-Gaussian model whose log p(x) is closed form."""

import math

import pytest
import torch

from pixelzoo.errors import ConfigError
from pixelzoo.evaluation import elbo, iwae_bound
from pixelzoo.nn.gaussian import (gaussian_log_prob, kl_to_standard_normal, reparameterise,
                                  standard_normal_log_prob)


def test_log_densities_match_torch_distributions():
    z, m, lv = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    ref = torch.distributions.Normal(m, torch.exp(0.5 * lv)).log_prob(z)
    torch.testing.assert_close(gaussian_log_prob(z, m, lv), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(standard_normal_log_prob(z), torch.distributions.Normal(0.0, 1.0).log_prob(z),
                               rtol=0, atol=1e-12)


def test_analytic_kl_against_monte_carlo():
    mean = torch.tensor([0.0, 1.5, -0.7, 0.3], dtype=torch.float64)
    log_var = torch.tensor([0.0, -1.0, 0.8, -3.0], dtype=torch.float64)
    kl = kl_to_standard_normal(mean, log_var)
    assert kl[0].item() == 0.0
    assert kl[1].item() == pytest.approx(0.5 * (1.5 ** 2 + math.exp(-1.0) - 1 + 1.0), abs=1e-14)  # by hand
    z = reparameterise(mean, log_var, torch.Generator().manual_seed(0), samples=400_000)
    terms = gaussian_log_prob(z, mean, log_var) - standard_normal_log_prob(z)
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(z.shape[0])
    assert ((mc - kl).abs() < 4 * se + 1e-3).all(), (mc, kl, se)


def test_the_reparameterisation_gradient():
    """d/dmean E[z^2] = 2 mean and d/dlog_var E[z^2] = var, through the draw."""
    mean = torch.tensor([0.5, -1.2], dtype=torch.float64, requires_grad=True)
    log_var = torch.tensor([-0.4, 0.9], dtype=torch.float64, requires_grad=True)
    z = reparameterise(mean, log_var, torch.Generator().manual_seed(1), samples=200_000)
    (z * z).mean(0).sum().backward()
    torch.testing.assert_close(mean.grad, 2 * mean.detach(), rtol=0, atol=0.02)
    torch.testing.assert_close(log_var.grad, torch.exp(log_var.detach()), rtol=0.02, atol=0)


# ---------------------------------------------------------------------- the linear-Gaussian toy
A, SIGMA = 1.7, 0.6   # z ~ N(0, 1), x | z ~ N(A z, SIGMA^2): p(x) = N(0, A^2 + SIGMA^2)
X = torch.tensor([0.9, -2.1, 0.0], dtype=torch.float64)
LOG_PX = -0.5 * (math.log(2 * math.pi * (A * A + SIGMA ** 2)) + X ** 2 / (A * A + SIGMA ** 2))
POST_VAR = 1.0 / (1.0 + A * A / SIGMA ** 2)
POST_MEAN = POST_VAR * A * X / SIGMA ** 2


def log_weights(q_mean, q_log_var, k, seed):
    z = reparameterise(q_mean, q_log_var, torch.Generator().manual_seed(seed), samples=k)
    log_joint = standard_normal_log_prob(z) + gaussian_log_prob(X, A * z, torch.tensor(2 * math.log(SIGMA), dtype=torch.float64))
    return log_joint - gaussian_log_prob(z, q_mean, q_log_var)


def test_iwae_with_one_draw_is_the_elbo_and_is_never_below_it():
    q_mean, q_log_var = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    one = log_weights(q_mean, q_log_var, 1, 0)
    torch.testing.assert_close(iwae_bound(one), elbo(one), rtol=0, atol=0)
    for seed in range(5):
        lw = log_weights(q_mean, q_log_var, 10, seed)
        assert (iwae_bound(lw) >= elbo(lw)).all()


def test_both_bounds_are_exact_with_the_true_posterior():
    lw = log_weights(POST_MEAN, torch.full((3,), math.log(POST_VAR), dtype=torch.float64), 7, 3)
    torch.testing.assert_close(elbo(lw), LOG_PX, rtol=0, atol=1e-12)
    torch.testing.assert_close(iwae_bound(lw), LOG_PX, rtol=0, atol=1e-12)


def test_iwae_does_not_decrease_with_k_and_stays_below_log_px():
    """With a poor proposal, E[IWAE_k] (averaged over 400 seeds) rises with k towards log p(x)."""
    q_mean, q_log_var = torch.zeros(3, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    means = []
    for k in (1, 4, 16, 64):
        vals = torch.stack([iwae_bound(log_weights(q_mean, q_log_var, k, 1000 * k + s)) for s in range(400)])
        means.append(vals.mean(0))
    for lo, hi in zip(means, means[1:]):
        assert (hi >= lo - 0.01).all(), means
    assert (means[-1] <= LOG_PX + 0.01).all() and (means[-1] - means[0] > 0.1).any()
    assert (LOG_PX - means[-1]).abs().max() < 0.15


def test_bad_log_weights_are_refused():
    with pytest.raises(ConfigError, match="k >= 1"):
        iwae_bound(torch.zeros(0, 3))
