"""AGAVE: auxiliary guided autoregressive variational autoencoders (Lucas & Verbeek 2018).

A VAE (``GaussianVAE``: encoder q(z | x), decoder f(z) of an auxiliary image y) and an
autoregressive pixel decoder p(x_i | x_<i, z) that sees f(z) (upsampled to x's size when y is
smaller) through non-masked convolutions into every layer: a ``ConditionalAR`` whose non-causal
``MeansEmbedding`` feeds the trunk's spatial conditioning path (PixelCNN++ by default, any trunk).
The objective (eq. 7), per image, for one reparameterised z ~ q(z | x):

    E_q[sum_i ln p(x_i | x_<i, z)] + E_q[sum_j ln p(y_j | z)] - lambda KL(q(z | x) || p(z))

(``kl_weight`` = lambda; 1 and 2 are the paper's "x and y independent given z" and "two bounds
summed", its best CIFAR model uses 12). ``joint_loss`` is its negative in bits per dimension of x,
with the three terms logged apart (``pixel_bpd``, ``aux_bpd``, ``kl_bpd``; loss = pixel + aux +
lambda kl).

**A chain.** Levels: the image; ``means`` = f(z) (continuous, on the data's [-1, 1] scale, shown as
an image); ``z`` (continuous, not shown). The VAE part makes both from an image (``encode_levels``:
f and the mean of q, what the level cache holds); links: the prior part (``StandardNormalPrior``)
models z, the VAE maps z to f(z) (``decode_means``), the pixel decoder models the image given
``means``. So ``sample`` draws z ~ p(z), f(z), then x; ``sample(given={"z": z})`` decodes given
latents; ``pixelzoo sample RUN --levels`` shows f(z) above each x (the paper's Fig. 3 and 6);
``reconstruct`` draws z ~ q(z | x) and samples x given f(z).

**The bound** on -log p(x) is the ELBO of x under the pixel decoder, -E_q ln p(x | z) + KL (the
auxiliary term is not part of it): ``log_prob_parts`` gives its two shares for one draw of z
(``prior``: -KL, analytic; ``pixel_decoder``: ln p(x | f(z))), so bits/dim and the runner's report
work as for every chain. ``log_weights`` gives k importance log-weights per image for the IWAE
bound of Burda et al. (``pixelzoo.evaluation.latent_bounds``).

**A learned sampling prior** (``latent_prior``; Ostrovski et al. 2018's proposal to model a VAE's
latents with an AIQN): an autoregressive model with a continuous head over the z map (the implicit
quantile head with ``continuous=True``, or the ``gaussian_mixture`` likelihood head as its baseline),
trained in a last stage on latents of the training images from the trained encoder, read through
the level cache; ``sample`` then draws z from it instead of N(0, I). The bound stays the ELBO under
N(0, I), the prior the VAE was trained with. Any registered autoregressive model fits: a spatial trunk
over the z map (``gated_pixelcnn``, ...) or ``made`` over z as one flat vector (``pixelzoo.models.autoregressive.made.trunk``).
``latent_source`` says which latents: ``"mean"`` (default), the means of q(z | x), the chain's level
z; ``"sample"``, draws z ~ q(z | x), fresh at every training step (the unit's data holds the means and
log-variances of q, cached as the encoder's outputs under their own slot, ``vae-posterior``; the
step's seed draws eps, so a run resumes exactly). Held out, both score the prior on the means of
q(z | x) of the test images, so their numbers compare.

**Training plan** (section 4.1): stage 1, the VAE (auxiliary reconstruction + lambda KL) and the
pixel decoder pretrained apart, as independent units (parallel processes with ``--part``); the pixel
decoder then sees no f(z): its conditioning input is a constant (``pretrain_condition="none"``, an
unconditional PixelCNN) or the auxiliary image y itself at its bin centres (``"aux"``, a stand-in
for a perfect VAE); the paper does not say which, we default to the first. Stage 2, ``joint``:
everything trained together on eq. 7 (the paper: Adamax, lr 0.002, no decay; the presets set
``train.optimizer``).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn

from ....data.dataset import DataSplits
from ....data.shards import dataset_of
from ....errors import ConfigError
from ....nn.gaussian import gaussian_log_prob, kl_to_standard_normal, reparameterise, standard_normal_log_prob
from ....registry import register_model
from ....views import upsample_nearest
from ...autoregressive.model import AutoregressiveModel
from ...autoregressive.conditional import ConditionalAR
from ....nn.embedding_net import EmbeddingNet
from ...chain.chain import Chain, SampledLevels
from ...chain.links import Level, Link, TrainedMaker
from ....nn.levels import check_levels
from ...chain.part_specs import build_ar_part, part_spec
from ....nn.modes import eval_mode
from ....sampling.labels import expand_labels, per_image
from ...base import ImportanceWeighted, Part, SamplesReconstructions, TrainingPlan, Unit
from .vae import GaussianVAE, StandardNormalPrior

VAE = {"latent_channels": 8, "factor": 4, "hidden": 64, "res_channels": 32, "n_res_blocks": 2}
PIXEL_DECODER = {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 32, "dropout": 0.0,
                 "head": "logistic_mixture", "head_options": {"n_mix": 5}}
EMBEDDING = {"channels": 32, "n_blocks": 2, "out_channels": 32}
PRETRAIN_CONDITIONS = ("none", "aux")
LATENT_SOURCES = ("mean", "sample")
#: the encoder's posterior (means and log-variances of q(z | x)): the prior's data for latent_source "sample"
POSTERIOR = TrainedMaker("image", ("z", "z_log_var"), "vae", "posterior")


class MeansEmbedding(nn.Module):
    """The non-causal network from f(z) (B, C, h, w) on the [-1, 1] scale to the pixel decoder's
    conditioning map (B, out_channels, H, W): f(z) repeated ``factor`` x ``factor`` times to x's size,
    then an ``EmbeddingNet`` (plain "same" convolutions, so every output sees a square neighbourhood
    of f(z), which is given, not modelled)."""

    def __init__(self, channels: int, factor: int, spec: dict):
        super().__init__()
        self.factor = int(factor)
        try:
            self.net = EmbeddingNet(channels, 2, **spec)
        except TypeError as e:
            raise ConfigError(f"embedding: bad hyper-parameters: {e}") from e
        if self.net.scale_exponent:
            raise ConfigError("embedding: f(z) is upsampled to the image's size before it; give no down_after/up_after")

    def forward(self, means: torch.Tensor) -> torch.Tensor:
        if not means.is_floating_point():
            raise ConfigError(f"the pixel decoder's condition is f(z), a float map; got dtype {means.dtype}")
        return self.net.from_scaled(upsample_nearest(means, self.factor) if self.factor > 1 else means)


class PixelDecoderAlone(Part):
    """The pixel decoder's pretraining unit: the decoder with its condition made from x alone, either a
    constant map (``"none"``) or the auxiliary image at its bin centres (``"aux"``); no VAE involved."""

    has_likelihood = True

    def __init__(self, decoder: ConditionalAR, vae: GaussianVAE, condition: str):
        super().__init__()
        self.decoder = decoder
        self.condition = condition
        self._vae = [vae]  # used for y's view only, not a submodule: its weights are not this unit's

    @property
    def num_classes(self):
        return self.decoder.num_classes

    def cond(self, x: torch.Tensor) -> torch.Tensor:
        vae = self._vae[0]
        b, (c, h, w) = x.shape[0], vae.aux_shape
        if self.condition == "none":
            return torch.zeros(b, c, h, w, device=x.device)
        width = vae.num_levels // vae.aux_bins  # levels per bin; the centre of bin k is level width*k + (width-1)/2
        centres = vae.aux_image(x).float() * width + (width - 1) / 2.0
        return centres * (2.0 / (vae.num_levels - 1)) - 1.0

    def loss(self, x, y=None) -> dict:
        return self.decoder.loss(x, y, cond=self.cond(x))

    def log_prob(self, x, y=None) -> torch.Tensor:
        return self.decoder.log_prob(x, y, cond=self.cond(x))


class AGAVE(Chain, SamplesReconstructions, ImportanceWeighted):
    """See the module docstring. Build it with ``pixelzoo.create_model("agave", ...)``."""

    def __init__(self, vae: GaussianVAE, pixel_decoder: ConditionalAR, num_classes=None,
                 pretrain_condition: str = "none", latent_prior: AutoregressiveModel | None = None,
                 latent_source: str = "mean"):
        if pretrain_condition not in PRETRAIN_CONDITIONS:
            raise ConfigError(f"pretrain_condition must be one of {list(PRETRAIN_CONDITIONS)}, got {pretrain_condition!r}")
        if latent_source not in LATENT_SOURCES:
            raise ConfigError(f"latent_source must be one of {list(LATENT_SOURCES)} (the latents the latent_prior "
                              f"trains on: the means of q(z | x), or draws from it), got {latent_source!r}")
        if latent_source != "mean" and latent_prior is None:
            raise ConfigError(f"latent_source {latent_source!r} says what a learned latent_prior trains on; "
                              "without one the prior is N(0, I), which is not trained: give latent_prior")
        levels = [Level("image", vae.image_shape, vae.num_levels),
                  Level("means", vae.aux_shape, None, shown=True),
                  Level("z", vae.latent_shape, None, shown=False)]
        makers = [TrainedMaker("image", ("means", "z"), "vae", "encode_levels")]
        links = [Link("prior", "z"), Link("vae", "means", ("z",), method="decode_means"),
                 Link("pixel_decoder", "image", ("means",))]
        prior = StandardNormalPrior(vae.latent_shape) if latent_prior is None else latent_prior
        parts = {"prior": prior, "vae": vae, "pixel_decoder": pixel_decoder}
        super().__init__(levels, makers, links, parts, [["vae", "pixel_decoder"], ["prior"]], num_classes)
        self.pretrain_condition = pretrain_condition
        self.learned_prior = latent_prior is not None
        self.latent_source = latent_source

    @property
    def vae(self) -> GaussianVAE:
        return self.parts["vae"]

    @property
    def pixel_decoder(self) -> ConditionalAR:
        return self.parts["pixel_decoder"]

    @property
    def kl_weight(self) -> float:
        return self.vae.kl_weight

    @property
    def has_likelihood(self) -> bool:
        return True

    # ------------------------------------------------------------------ the objective
    def pixel_log_prob(self, x: torch.Tensor, means: torch.Tensor, y=None) -> torch.Tensor:
        """ln p(x | f(z)) in nats per image (B,), given ``means`` = f(z)."""
        return self.pixel_decoder.log_prob(x, y, cond=means).flatten(1).sum(1)

    def objective_terms(self, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> dict:
        """For one reparameterised z ~ q(z | x) per image, in nats per image (B,): ``pixel_nll`` =
        -ln p(x | f(z)), ``aux_nll`` = -ln p(y | z), ``kl`` = KL(q(z | x) || p(z))."""
        t = self.vae.terms(x, generator)
        return {"pixel_nll": -self.pixel_log_prob(x, t["means"], y),
                "aux_nll": t["aux_nll"], "kl": t["kl"]}

    def joint_loss(self, x: torch.Tensor, y=None) -> dict:
        """Minus eq. 7 in bits per dimension of x: ``pixel_bpd + aux_bpd + lambda * kl_bpd``."""
        t = self.objective_terms(x, y)
        dims = math.prod(self.image_shape) * math.log(2.0)
        pixel, aux, kl = (t[k].mean() / dims for k in ("pixel_nll", "aux_nll", "kl"))
        return {"loss": pixel + aux + self.kl_weight * kl, "pixel_bpd": pixel.detach(), "aux_bpd": aux.detach(),
                "kl_bpd": kl.detach()}

    # ------------------------------------------------------------------ the bound
    def log_prob_parts(self, x: torch.Tensor, y: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The ELBO's shares for one draw z ~ q(z | x), nats per image (B,): ``prior`` = -KL and
        ``pixel_decoder`` = ln p(x | f(z)); their sum is a lower bound on ln p(x) in expectation.
        The draw comes from ``generator``, by default one seeded with 0 at every call, so that the
        bits/dim of a model are reproducible (the same images give the same number); ``log_weights``
        gives many draws."""
        x = x.long()
        mean, log_var = self.vae.posterior(x)
        if generator is None:
            generator = torch.Generator(device=mean.device).manual_seed(0)
        means = self.vae.decode(reparameterise(mean, log_var, generator))
        return {"prior": -kl_to_standard_normal(mean, log_var).flatten(1).sum(1),
                "pixel_decoder": self.pixel_log_prob(x, means, y)}

    def log_weights(self, x: torch.Tensor, k: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(k, B) importance log-weights ln p(x | z_i) + ln p(z_i) - ln q(z_i | x), z_i ~ q(z | x):
        their mean is the ELBO, their log-mean-exp the IWAE bound (``pixelzoo.evaluation.bounds``)."""
        if int(k) != k or k < 1:
            raise ConfigError(f"the number of importance samples must be a positive integer, got {k!r}")
        x = x.long()
        mean, log_var = self.vae.posterior(x)
        out = []
        for _ in range(int(k)):
            z = reparameterise(mean, log_var, generator)
            log_q = gaussian_log_prob(z, mean, log_var).flatten(1).sum(1)
            log_p_z = standard_normal_log_prob(z).flatten(1).sum(1)  # the prior the VAE was trained with
            out.append(self.pixel_log_prob(x, self.vae.decode(z), y) + log_p_z - log_q)
        return torch.stack(out)

    # ------------------------------------------------------------------ training plan
    def training_plan(self) -> TrainingPlan:
        alone = PixelDecoderAlone(self.pixel_decoder, self.vae, self.pretrain_condition)
        stages = [[Unit("vae", self.vae, loss=self.vae.loss, directory="parts/vae"),
                   Unit("pixel_decoder", alone, loss=alone.loss, directory="parts/pixel_decoder")],
                  [Unit("joint", self, loss=self.joint_loss, directory="parts/joint")]]
        if self.learned_prior:  # on latents of the trained encoder, through the level cache
            if self.latent_source == "mean":
                unit = Unit("prior", self.parts["prior"], partial(self.part_data, "prior"), None, "parts/prior")
            else:
                unit = Unit("prior", self.parts["prior"], self.posterior_data, self.prior_loss_on_draws, "parts/prior")
            stages.append([unit])
        return TrainingPlan(stages)

    def posterior_data(self, splits, cache_dir=None, write_cache: bool = True) -> DataSplits:
        """The prior's data for ``latent_source="sample"``: the means of q(z | x) of the training images
        with their log-variances (``extras["log_var"]``, which ``prior_loss_on_draws`` draws from), and
        the means of the test images alone (held out, the prior is scored on them). Computed once by
        the trained encoder, cached (slot ``vae-posterior``)."""
        self._check_splits(splits)
        z = self.levels["z"]
        outputs = {"z": z, "z_log_var": Level("z_log_var", z.shape, None, shown=False)}
        src = {"train": splits.train.images, "test": splits.test.images}
        post = self._encoded(POSTERIOR, splits, src, cache_dir, write_cache, outputs, slot="vae-posterior")

        def split(d, which, extras):
            return dataset_of(f"{d.name}/z", post["z"][which], d.labels, None, d.num_classes,
                              f"means of q(z | x) of {d.name}", extras)

        return DataSplits(split(splits.train, "train", {"log_var": post["z_log_var"]["train"]}),
                          split(splits.test, "test", {}))

    def prior_loss_on_draws(self, z: torch.Tensor, y=None, log_var: torch.Tensor | None = None) -> dict:
        """The prior's loss on z ~ q(z | x) = N(``z``, exp(``log_var``)), drawn afresh at every call from
        the global generator (the trainer seeds it per step); without ``log_var`` (the test split),
        on ``z`` itself."""
        if log_var is not None:
            z = reparameterise(z, log_var)
        return self.parts["prior"].loss(z, y)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_reconstructions(self, x: torch.Tensor, n_per_image: int = 1, y=None, temperature=1.0,
                               head_options=None, generator: torch.Generator | None = None,
                               progress: bool = False) -> SampledLevels:
        """Sampled reconstructions: z ~ q(z | x) (``n_per_image`` draws per image, image-major), then x
        sampled given f(z); every level (the images under ``image``, f(z) under ``means``)."""
        m = per_image(n_per_image)
        check_levels(x, self.image_shape, self.num_levels)
        with eval_mode(self):
            mean, log_var = self.vae.posterior(x.long().to(self.vae.log_scales.device))
            eps = torch.randn((x.shape[0] * m, *mean.shape[1:]), generator=generator)
            mean, log_var = (t.repeat_interleave(m, dim=0) for t in (mean, log_var))
            z = mean + torch.exp(0.5 * log_var) * eps.to(mean)
        return self.sample_levels(z.shape[0], expand_labels(y, x.shape[0], m), temperature, head_options, generator,
                                  progress, given={"z": z})


def _latent_prior(spec: dict | None, vae: GaussianVAE, num_classes) -> AutoregressiveModel | None:
    """The learned sampling prior over z (an autoregressive model with a continuous head), or None."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"latent_prior must be a dict naming a registered autoregressive model, got {spec!r}")
    prior = build_ar_part(spec, vae.latent_shape, 2, num_classes, "latent_prior")  # 2 levels: unused, continuous
    if not prior.continuous:
        raise ConfigError("latent_prior: z is continuous; give a continuous head, e.g. "
                          "{'head': 'quantile', 'head_options': {'continuous': true}} or {'head': 'gaussian_mixture'}")
    return prior


def _pixel_decoder(spec: dict, emb_spec: dict, vae: GaussianVAE, num_classes) -> ConditionalAR:
    c, h, w = vae.image_shape
    embed = MeansEmbedding(c, vae.aux_factor, emb_spec)
    ar = build_ar_part(spec, (c, h, w), vae.num_levels, num_classes, "pixel_decoder",
                       spatial_channels=int(emb_spec["out_channels"]))
    return ConditionalAR(ar, embed)


@register_model("agave")
def build_agave(image_shape, num_levels, num_classes=None, kl_weight: float = 12.0, aux_bins: int | None = None,
                aux_factor: int = 1, vae: dict | None = None, pixel_decoder: dict | None = None,
                embedding: dict | None = None, pretrain_condition: str = "none",
                latent_prior: dict | None = None, latent_source: str = "mean") -> AGAVE:
    """AGAVE (see the module docstring): ``kl_weight`` lambda; y = x downsampled by ``aux_factor``
    (1, 2, 4, ...) and quantised to ``aux_bins`` colour bins (default: all levels); ``vae``,
    ``pixel_decoder`` (a registered autoregressive model, PixelCNN++ by default) and ``embedding``
    (the network from f(z) into the pixel decoder) are hyper-parameter dicts over small CPU defaults;
    ``latent_prior``: a learned sampling prior over z (a registered autoregressive model with a
    continuous head: the AIQN prior of Ostrovski et al. with ``head="quantile"``, or the likelihood
    baseline ``head="gaussian_mixture"``; over the z map with a spatial trunk, or over z as one flat
    vector with ``"name": "made"``), trained after the joint phase; None: N(0, I). ``latent_source``:
    what the prior trains on, ``"mean"`` (the means of q(z | x)) or ``"sample"`` (draws from q(z | x),
    fresh at every step)."""
    vae_spec = part_spec(vae, VAE, "vae")
    for key in ("kl_weight", "aux_bins", "aux_factor"):
        if key in vae_spec:
            raise ConfigError(f"vae: give {key} at the model's top level, not inside vae")
    try:
        vae_part = GaussianVAE(image_shape, num_levels, kl_weight=kl_weight, aux_bins=aux_bins,
                               aux_factor=aux_factor, **vae_spec)
    except TypeError as e:
        raise ConfigError(f"vae: bad hyper-parameters: {e}") from e
    decoder = _pixel_decoder(part_spec(pixel_decoder, PIXEL_DECODER, "pixel_decoder"),
                             part_spec(embedding, EMBEDDING, "embedding"), vae_part, num_classes)
    return AGAVE(vae_part, decoder, num_classes, pretrain_condition, _latent_prior(latent_prior, vae_part, num_classes),
                 latent_source)
