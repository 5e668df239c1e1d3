"""A VAE with a diagonal Gaussian posterior over a spatial latent map and a per-pixel logistic
decoder of an auxiliary image (AGAVE's VAE, Lucas & Verbeek 2018, section 4.1).

* **Encoder** q(z | x): the image on the [-1, 1] scale -> a strided-convolution ResNet (the
  VQ-VAE's encoder: ``log2(factor)`` stride-2 convolutions, then residual blocks) -> a 1x1
  convolution to the mean and log-variance of ``latent_channels`` maps at 1/``factor`` of the image's
  size. Draws are reparameterised (``pixelzoo.nn.gaussian``).
* **Decoder** f(z): a 3x3 convolution, residual blocks and transposed convolutions up to the
  auxiliary image's size, giving per-pixel, per-channel logistic *means* on the data's [-1, 1] scale;
  the *scales* are learned per channel and shared over all pixels (the paper's section 4.1).
* **The auxiliary image** y (``aux_image``): x downsampled ``aux_factor`` times by 2 (2x2 block means,
  ``pixelzoo.views.downsample2x``; 1: x's size) and quantised to ``aux_bins`` colour bins
  (``pixelzoo.views.quantize``; the number of levels: y = x). p(y | z) is eq. 8: a logistic per
  sub-pixel over those bins, end bins open (``binned_logistic_log_prob``, exact masses).
* **Prior** p(z) = N(0, I) (``StandardNormalPrior``); the KL is analytic.

Alone (the pretraining unit of AGAVE) it minimises ``-ln p(y | z) + kl_weight * KL(q(z | x) || p(z))``
for one draw of z per image, reported in bits per dimension of x.

The paper's VAE is the IAF-VAE of Kingma et al. 2016 (a ladder of latent layers with inverse
autoregressive flows); ours is one latent layer with a diagonal Gaussian q, as the issue asks; the
paper-size preset takes that model's sizes (160 hidden channels, 32 latent channels at 16x16).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ....errors import ConfigError
from ....devices import full_precision_region
from ....heads import binned_logistic_log_prob
from ....heads.base import full_precision
from ....nn.gaussian import kl_to_standard_normal, reparameterise, standard_normal_log_prob
from ....views import downsample2x, quantize
from ....nn.levels import check_levels, scale_levels, unscale_levels
from ....nn.conv_autoencoder import ConvDecoder, ConvEncoder
from ....nn.modes import eval_mode
from ...base import Part, SamplesImages

MIN_LOG_SCALE = -7.0  # PixelCNN++'s floor on the logistic log-scales


def _positive_int(name: str, v) -> int:
    if int(v) != v or v < 1:
        raise ConfigError(f"vae: {name} must be a positive integer, got {v!r}")
    return int(v)


class StandardNormalPrior(Part, SamplesImages):
    """p(z) = N(0, I) over latents of ``shape`` (C, H, W); no parameters. ``sample`` draws with the
    standard deviation scaled by the temperature (the usual temperature of a Gaussian prior)."""

    has_likelihood = True
    num_classes = None

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def log_prob(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """log N(z; 0, I) per element (nats)."""
        return standard_normal_log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature: float = 1.0, head_options=None, generator=None,
               progress: bool = False) -> torch.Tensor:
        """``n`` draws (on the CPU, where the generator is)."""
        if head_options:
            raise ConfigError(f"the standard normal prior takes no head options, got {head_options}")
        return torch.randn((int(n), *self.shape), generator=generator) * float(temperature)


class GaussianVAE(Part, SamplesImages):
    """q(z | x), f(z) and p(y | z) (see the module docstring). ``image_shape`` (C, H, W) and
    ``num_levels`` K of the data; ``factor``: the image's size over the latent map's (a power of 2);
    ``aux_factor``: the image's size over y's (1: y at x's size; a power of 2 below ``factor``);
    ``aux_bins``: y's colour bins (dividing K; default K); ``kl_weight``: lambda."""

    num_classes = None  # unsupervised

    def __init__(self, image_shape, num_levels: int, latent_channels: int = 8, factor: int = 4, hidden: int = 64,
                 res_channels: int = 32, n_res_blocks: int = 2, aux_factor: int = 1, aux_bins: int | None = None,
                 kl_weight: float = 1.0, init_log_scale: float = -2.0):
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        self.image_shape, self.num_levels = (c, h, w), int(num_levels)
        latent_channels, factor = _positive_int("latent_channels", latent_channels), _positive_int("factor", factor)
        aux_factor = _positive_int("aux_factor", aux_factor)
        self.aux_bins = int(aux_bins) if aux_bins is not None else self.num_levels
        if self.aux_bins < 2 or self.num_levels % self.aux_bins:
            raise ConfigError(f"vae: aux_bins must be >= 2 and divide the {self.num_levels} levels "
                              f"(c = {self.num_levels}/b levels per bin, eq. 8), got {aux_bins}")
        for name, f in (("factor", factor), ("aux_factor", aux_factor)):
            if f & (f - 1):
                raise ConfigError(f"vae: {name} must be a power of 2, got {f}")
            if h % f or w % f:
                raise ConfigError(f"vae: {name} {f} does not divide the {h}x{w} image")
        if aux_factor >= factor:
            raise ConfigError(f"vae: the auxiliary image (1/{aux_factor} of the image) must be larger than the "
                              f"latent map (1/{factor})")
        if not kl_weight >= 0:
            raise ConfigError(f"vae: kl_weight (lambda) must be >= 0, got {kl_weight}")
        self.factor, self.aux_factor, self.kl_weight = factor, aux_factor, float(kl_weight)
        self.latent_shape = (latent_channels, h // factor, w // factor)
        self.aux_shape = (c, h // aux_factor, w // aux_factor)
        self.encoder = nn.Sequential(ConvEncoder(c, hidden, res_channels, n_res_blocks, factor),
                                     nn.Conv2d(hidden, 2 * latent_channels, 1))
        self.decoder = ConvDecoder(latent_channels, hidden, res_channels, n_res_blocks, c, factor // aux_factor)
        self.log_scales = nn.Parameter(torch.full((c,), float(init_log_scale)))

    # ------------------------------------------------------------------ the three maps
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_var) of q(z | x), each (B, *latent_shape)."""
        check_levels(x, self.image_shape, self.num_levels)
        mean, log_var = self.encoder(scale_levels(x, self.num_levels).to(self.log_scales.dtype)).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """f(z): the logistic means of y on the data's [-1, 1] scale, (B, *aux_shape)."""
        if z.dim() != 4 or tuple(z.shape[1:]) != self.latent_shape:
            raise ConfigError(f"latents must have shape (B, {', '.join(map(str, self.latent_shape))}), "
                              f"got {tuple(z.shape)}")
        return self.decoder(z)

    def aux_image(self, x: torch.Tensor) -> torch.Tensor:
        """y: x downsampled by ``aux_factor`` and quantised to ``aux_bins`` bins (integers)."""
        y = x.long()
        for _ in range(int(math.log2(self.aux_factor))):
            y = downsample2x(y)
        return quantize(y, self.num_levels, self.aux_bins)

    def aux_log_prob(self, y_bins: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """log p(y | z) in nats per image, (B,): eq. 8 per sub-pixel, summed; in float32 outside
        autocast (in bf16 the bins' log-masses of a 3x32x32 image overflow the sum to inf)."""
        with full_precision_region(means.device):
            means = full_precision(means)
            log_s = self.log_scales.clamp(min=MIN_LOG_SCALE).view(1, -1, 1, 1).to(means.dtype)
            return binned_logistic_log_prob(y_bins, means, log_s, self.num_levels, self.aux_bins).flatten(1).sum(1)

    # ------------------------------------------------------------------ objective
    def terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """For one reparameterised draw z ~ q(z | x) per image: ``z``, ``means`` = f(z), ``aux_nll`` =
        -ln p(y | z) and ``kl`` = KL(q(z | x) || N(0, I)) in nats per image (B,)."""
        mean, log_var = self.posterior(x)
        z = reparameterise(mean, log_var, generator)
        means = self.decode(z)
        return {"z": z, "means": means, "aux_nll": -self.aux_log_prob(self.aux_image(x), means),
                "kl": kl_to_standard_normal(mean, log_var).flatten(1).sum(1)}

    def loss(self, x: torch.Tensor, y=None) -> dict:
        """The VAE alone: ``-ln p(y | z) + lambda KL``, in bits per dimension of x (one draw per image)."""
        t = self.terms(x)
        dims = math.prod(self.image_shape) * math.log(2.0)
        aux, kl = t["aux_nll"].mean() / dims, t["kl"].mean() / dims
        return {"loss": aux + self.kl_weight * kl, "aux_bpd": aux.detach(), "kl_bpd": kl.detach()}

    # ------------------------------------------------------------------ levels and pictures
    @torch.no_grad()
    def encode_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[f(mean of q(z | x)), mean of q(z | x)]: the chain's levels ``means`` and ``z`` of x."""
        mean, _ = self.posterior(x)
        return [self.decode(mean), mean]

    @torch.no_grad()
    def decode_means(self, n: int, y=None, cond=None, temperature: float = 1.0, head_options=None,
                     generator=None, progress: bool = False) -> torch.Tensor:
        """The chain's link to level ``means``: f(z) of the given latents ``cond`` (deterministic)."""
        if cond is None:
            raise ConfigError("f(z) needs the latents: pass cond=z")
        if head_options:
            raise ConfigError(f"the VAE decoder takes no head options, got {head_options}")
        with eval_mode(self):
            return self.decode(cond.to(self.log_scales))

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature: float = 1.0, generator=None, progress: bool = False) -> torch.Tensor:
        """f(z) for z ~ N(0, I) as images (the means on the level grid, ``unscale_levels``): the VAE's
        own samples, shown while it trains alone (at y's size)."""
        z = torch.randn((int(n), *self.latent_shape), generator=generator) * float(temperature)
        with eval_mode(self):
            return unscale_levels(self.decode(z.to(self.log_scales)), self.num_levels)
