"""Bounds of a latent-variable model (AGAVE) over a data set: the ELBO and the importance-weighted
bound (IWAE, Burda et al. 2016) in bits per dimension of x, with the ELBO's decomposition (the
paper's Fig. 4): the KL, the pixel decoder's reconstruction term, the auxiliary term and the VAE's
own bound on y.

The model gives ``log_weights(x, k, y, generator)`` -> (k, B) importance log-weights
ln p(x | z_i) + ln p(z_i) - ln q(z_i | x), and ``objective_terms(x, y, generator)`` -> nats per
image of one draw (``pixel_nll``, ``aux_nll``, ``kl``); the draws come from ``seed``, so two
evaluations see the same z."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..devices import module_device, to_device
from ..errors import ConfigError
from ..models.base import ImportanceWeighted
from ..nn.modes import eval_mode
from .bounds import elbo, iwae_bound


@torch.no_grad()
def dataset_latent_bounds(model, dataset, k: int = 150, batch_size: int = 32, max_images: int | None = None,
                          seed: int = 0, progress: bool = False) -> dict:
    """Over the first ``max_images`` images of ``dataset`` (all by default), in bits per dimension of
    x: ``elbo_bpd`` and ``iwae_bpd`` from the same ``k`` draws per image (IWAE <= ELBO in bits),
    ``kl_bpd``, ``pixel_recon_bpd`` (-E_q ln p(x | z), one draw) and ``aux_bpd`` (-E_q ln p(y | z));
    ``vae_bound_y_bpd``: the VAE's own bound on y, (aux + KL) per dimension of y."""
    if not isinstance(model, ImportanceWeighted):
        raise ConfigError(f"{type(model).__name__} is not a latent-variable model: the IWAE bound needs log_weights")
    if int(k) != k or k < 1:
        raise ConfigError(f"the number of importance samples k must be a positive integer, got {k!r}")
    n = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    if n < 1:
        raise ConfigError("no images to evaluate the bounds on")
    device = module_device(model)
    g = torch.Generator(device=device).manual_seed(seed)
    sums = {"elbo": 0.0, "iwae": 0.0, "kl": 0.0, "pixel_nll": 0.0, "aux_nll": 0.0}
    with eval_mode(model):
        for start in tqdm(range(0, n, batch_size), desc=f"ELBO and IWAE (k={k})", disable=not progress, leave=False):
            stop = min(start + batch_size, n)
            x = to_device(dataset.images[start:stop].long(), device)
            y = None
            if model.num_classes and dataset.labels is not None:
                y = to_device(dataset.labels[start:stop], device)
            log_w = model.log_weights(x, int(k), y, generator=g)
            sums["elbo"] += elbo(log_w).double().sum().item()
            sums["iwae"] += iwae_bound(log_w).double().sum().item()
            terms = model.objective_terms(x, y, generator=g)
            for name in ("kl", "pixel_nll", "aux_nll"):
                sums[name] += terms[name].double().sum().item()
    bits = n * math.prod(dataset.image_shape) * math.log(2.0)
    y_dims = math.prod(model.vae.aux_shape)
    return {"elbo_bpd": -sums["elbo"] / bits, "iwae_bpd": -sums["iwae"] / bits, "iwae_samples": int(k),
            "bound_images": n, "kl_bpd": sums["kl"] / bits, "pixel_recon_bpd": sums["pixel_nll"] / bits,
            "aux_bpd": sums["aux_nll"] / bits,
            "vae_bound_y_bpd": (sums["aux_nll"] + sums["kl"]) / (n * y_dims * math.log(2.0))}
