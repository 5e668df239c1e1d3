"""VQ-VAE-2 (Razavi et al. 2019) as a composite model: a hierarchical VQ-VAE (stage 1) and
autoregressive priors over its code maps (stage 2).

Parts (``stages = [["autoencoder"], [<level>_prior, ...]]``, priors top first):

* ``autoencoder``: :class:`~pixelzoo.models.composites.vqvae2.autoencoder.VQVAE2` (Algorithm 1), trained on the pixels.
* ``top_prior``: p(e_top | class), a PixelSNAIL-style model (gated causal convolutions, causal
  multi-head attention every ``attention_every`` blocks, dropout, a stack of 1x1 residual blocks on
  top, categorical head over the K codes) on the top code map (1, H_top, W_top).
* ``bottom_prior`` (and ``middle_prior`` with three levels, ``middle<i>_prior`` with more):
  p(e_l | e_above, class), a :class:`~pixelzoo.models.autoregressive.conditional.ConditionalAR` whose AR model is the
  same trunk without attention (by default) and whose ``cond_net`` is a :class:`ConditioningStack`:
  a deep, non-causal residual network over the embedded codes of *every* level above, upsampled to
  this level's size and fed to every gated block as a spatial bias.

Stage 2 trains on codes, not pixels (Algorithm 2): ``part_data`` encodes the training and test sets
once with the trained encoder (eval mode, the codebooks never change), caches the code maps in the
run's ``cache/`` directory as a safetensors file stamped with a fingerprint of the autoencoder's
weights and of the data (a changed autoencoder or data set recomputes them, a stale cache is never
used), and returns data sets whose images are the code map of the prior's level (uint8, or int16 for
more than 256 codes) and whose ``extras["cond"]`` hold the levels above.

A prior's test bits/dim, as the Trainer reports it, is therefore the NLL in **bits per code** (one
dimension = one code of its map), the number of the paper's Table 1 (there in an unstated unit).
The composite has no likelihood of pixels (the decoder is deterministic and trained by MSE), so it
defines no ``log_prob_parts`` and ``has_likelihood`` is False.

Sampling is ancestral: top codes from the top prior, each lower map from its conditional prior given
the maps above, pixels from the feed-forward decoder (class and temperature per level);
``sample_levels`` returns the code maps too, under their level names (``lv["top"]``, (n, 1, H, W)),
and ``sample(n, given={"top": codes})`` decodes given codes.

Choices where the paper is silent or ambiguous:

* A prior's input is the code *index*; an index has no order, so the trunk first maps it to a
  learned vector (``code_embedding`` dims; :class:`CodeEmbedding`, linear interpolation between
  neighbouring table rows so that the input stays differentiable for the causality tests). With
  ``code_embedding=0`` the prior is exactly ``build_pixelsnail`` (the index scaled to [-1, 1]).
* A lower prior is conditioned on all levels above it (not only the next one), each nearest-upsampled
  to the resolution of the level directly above and embedded with its own table.
* The conditioning stack runs at the resolution of the level above and is then upsampled by
  stride-2 4x4 transposed convolutions (as the VQ-VAE decoder does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ....registry import register_model
from ....devices import module_device
from ....errors import ConfigError
from ....nn.residual import ResidualStack, log2_factor
from ....views import has_values
from ...autoregressive.conditional import ConditionalAR
from ...base import Encodes, Reconstructs, merge_options
from ...chain.chain import Chain
from ...chain.links import Level, Link, TrainedMaker
from ...chain.level_cache import cache_file
from ..code_prior import TOP_PRIOR_DEFAULTS, build_code_prior
from .autoencoder import VQVAE2

CODES_FILE = cache_file("autoencoder")  # the code cache in RUN/cache/

#: defaults of a conditional (lower) prior: no attention, a deep conditioning stack
LOWER_PRIOR_DEFAULTS = dict(TOP_PRIOR_DEFAULTS, attention_every=0, out_res_blocks=0, cond_embedding=32,
                            cond_channels=64, cond_res_channels=32, cond_blocks=4, spatial_channels=32)
_COND_KEYS = ("cond_embedding", "cond_channels", "cond_res_channels", "cond_blocks", "spatial_channels")


class ConditioningStack(nn.Module):
    """The non-causal conditioning network of a lower prior: f(codes above) -> (B, out_channels, H, W).

    Input ``cond``: integer codes (B, n_maps, H_a, W_a), one channel per level above, each at the
    resolution of the level directly above (``VQVAE2Model.condition`` builds it). Each map is
    embedded with its own table, concatenated, then a 3x3 convolution, ``n_blocks`` residual blocks
    (``x + 1x1(relu(3x3(relu(x))))``), ``log2(factor)`` stride-2 4x4 transposed convolutions up to
    this level's resolution, and a 1x1 convolution to ``out_channels``. Every output position may
    see every input code: the receptive field grows by 2 per residual block.
    """

    def __init__(self, num_codes: int, n_maps: int, above_shape, factor: int, embed_dim: int = 32,
                 channels: int = 64, res_channels: int = 32, n_blocks: int = 4, out_channels: int = 32):
        super().__init__()
        if n_blocks < 0 or min(embed_dim, channels, res_channels, out_channels) < 1:
            raise ConfigError("the conditioning stack needs positive widths and n_blocks >= 0, got "
                              f"embed_dim={embed_dim}, channels={channels}, res_channels={res_channels}, "
                              f"n_blocks={n_blocks}, out_channels={out_channels}")
        self.num_codes = int(num_codes)
        self.n_maps = int(n_maps)
        self.above_shape = tuple(int(s) for s in above_shape)
        self.embeddings = nn.ModuleList(nn.Embedding(num_codes, embed_dim) for _ in range(n_maps))
        self.inp = nn.Conv2d(n_maps * embed_dim, channels, 3, padding=1)
        self.res = ResidualStack(channels, res_channels, n_blocks)
        ups: list[nn.Module] = []
        for s in range(log2_factor(factor, "each level's downsampling", minimum=2)):
            ups += [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(channels, out_channels, 1)

    def embed(self, cond: torch.Tensor) -> torch.Tensor:
        """Integer codes (B, n_maps, H_a, W_a) -> concatenated embeddings (B, n_maps * E, H_a, W_a)."""
        want = (self.n_maps, *self.above_shape)
        if cond is None:
            raise ConfigError(f"this prior is conditioned on the codes above it: pass cond of shape (B, {want})")
        if cond.dim() != 4 or tuple(cond.shape[1:]) != want or cond.is_floating_point():
            raise ConfigError(f"cond must be integer codes of shape (B, {', '.join(map(str, want))}), "
                              f"got {tuple(cond.shape)} {cond.dtype}")
        cond = cond.long()
        if has_values(cond) and (int(cond.min()) < 0 or int(cond.max()) >= self.num_codes):
            raise ConfigError(f"cond codes must lie in [0, {self.num_codes}), got [{int(cond.min())}, {int(cond.max())}]")
        return torch.cat([emb(cond[:, i]).permute(0, 3, 1, 2) for i, emb in enumerate(self.embeddings)], dim=1)

    def from_embedded(self, e: torch.Tensor) -> torch.Tensor:
        """The stack after the embedding (differentiable in ``e``; the tests take gradients here)."""
        return self.out(self.up(self.res(self.inp(e))))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.from_embedded(self.embed(cond))


# --------------------------------------------------------------------------------------- the chain
@dataclass(frozen=True)
class CodeCondition:
    """The ``cond`` of level ``level`` (top = 0) from the code maps above it (each (B, H_j, W_j) or
    (B, 1, H_j, W_j), top first): nearest-upsampled to the resolution of level ``level - 1`` and stacked,
    (B, level, H, W). A picklable function of the shapes alone (DataLoader workers make it for the
    batches they read from a streamed level cache); it computes where the maps are (a map on an
    accelerator, e.g. one just sampled, brings the others there)."""

    code_shapes: tuple
    level_names: tuple
    level: int

    def __call__(self, codes_above: list[torch.Tensor]) -> torch.Tensor:
        level = self.level
        if level < 1 or len(codes_above) != level:
            raise ConfigError(f"level {level} is conditioned on the {level} code map(s) above it, got {len(codes_above)}")
        h, w = self.code_shapes[level - 1]
        device = next((c.device for c in codes_above if c.device.type != "cpu"), torch.device("cpu"))
        maps = []
        for j, c in enumerate(codes_above):
            if c.dim() == 4 and c.shape[1] == 1:
                c = c[:, 0]
            hj, wj = self.code_shapes[j]
            if tuple(c.shape[1:]) != (hj, wj):
                raise ConfigError(f"code map of level {self.level_names[j]} must be (B, {hj}, {wj}), got {tuple(c.shape)}")
            maps.append(c.to(device).repeat_interleave(h // hj, dim=1).repeat_interleave(w // wj, dim=2))
        return torch.stack(maps, dim=1)


@register_model("vqvae2")
class VQVAE2Model(Chain, Encodes, Reconstructs):
    """VQ-VAE-2: hierarchical VQ-VAE + one autoregressive prior per code map (see the module docstring).

    A chain: level ``image`` and one code level per VQ level (``top``, ``bottom``, ...), all made
    by the encoder part ``autoencoder`` (cached per data set and encoder weights); the image is
    modelled by the autoencoder's decoder given every code map (deterministic, no likelihood),
    each code map by its prior.

    Args:
        image_shape, num_levels, num_classes: the data (the priors are class-conditional when
            ``num_classes`` is given; the autoencoder never is).
        autoencoder: options of :class:`~pixelzoo.models.composites.vqvae2.autoencoder.VQVAE2` (``levels``, ``num_codes``, ...).
        top_prior: options of the top prior (``TOP_PRIOR_DEFAULTS``).
        bottom_prior, middle_prior, middle<i>_prior: options of the conditional priors
            (``LOWER_PRIOR_DEFAULTS``: the trunk's, plus the conditioning stack's ``cond_*`` and
            ``spatial_channels``).
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, autoencoder: dict | None = None,
                 top_prior: dict | None = None, bottom_prior: dict | None = None, middle_prior: dict | None = None,
                 **level_priors):
        ae_cfg = dict(autoencoder or {})
        if "num_classes" in ae_cfg or "image_shape" in ae_cfg or "num_levels" in ae_cfg:
            raise ConfigError("autoencoder options must not set image_shape, num_levels or num_classes (they come from the data)")
        image_shape = tuple(int(s) for s in image_shape)
        num_classes = int(num_classes) if num_classes else None
        ae = VQVAE2(image_shape, int(num_levels), **ae_cfg)
        names: list[str] = list(ae.names)          # top first
        shapes: list[tuple[int, int]] = ae.code_shapes()
        prior_names = [f"{n}_prior" for n in names]
        given = {"top_prior": top_prior, "bottom_prior": bottom_prior, "middle_prior": middle_prior, **level_priors}
        stray = sorted(k for k, v in given.items() if v is not None and k not in prior_names)
        if stray:
            raise ConfigError(f"option(s) {stray} do not apply: this model's levels are {names}, its priors {prior_names}")
        parts: dict[str, nn.Module] = {"autoencoder": ae}
        links = [Link("autoencoder", "image", tuple(names), method="decode_given")]
        for l, name in enumerate(prior_names):
            if l == 0:
                cfg = merge_options(given.get(name), TOP_PRIOR_DEFAULTS, name)
                parts[name] = build_code_prior(shapes[0], ae.num_codes, num_classes, **cfg)
                links.append(Link(name, names[0]))
                continue
            cfg = merge_options(given.get(name), LOWER_PRIOR_DEFAULTS, name)
            cond = {k: cfg.pop(k) for k in _COND_KEYS}
            above, here = shapes[l - 1], shapes[l]
            net = ConditioningStack(ae.num_codes, l, above, here[0] // above[0], cond["cond_embedding"],
                                    cond["cond_channels"], cond["cond_res_channels"], cond["cond_blocks"],
                                    cond["spatial_channels"])
            ar = build_code_prior(here, ae.num_codes, num_classes, spatial_channels=cond["spatial_channels"], **cfg)
            parts[name] = ConditionalAR(ar, net)
            links.append(Link(name, names[l], tuple(names[:l]), CodeCondition(tuple(shapes), tuple(names), l)))
        levels = [Level("image", image_shape, int(num_levels))]
        levels += [Level(n, (1, *s), ae.num_codes, shown=False) for n, s in reversed(list(zip(names, shapes)))]
        super().__init__(levels, [TrainedMaker("image", tuple(names), "autoencoder")], links, parts,
                         [["autoencoder"], prior_names], num_classes)
        self.level_names = names
        self.code_shapes = shapes
        self.num_codes = ae.num_codes
        self.prior_names = prior_names

    @property
    def autoencoder(self) -> VQVAE2:
        return self.parts["autoencoder"]

    @property
    def last_codes_source(self) -> str | None:
        """Where the last ``part_data`` found the codes: "computed", "cache" or "memory"."""
        return self.level_cache.last_source

    # ------------------------------------------------------------------ codes
    def condition(self, codes_above: list[torch.Tensor], level: int) -> torch.Tensor:
        """The ``cond`` of level ``level`` (top = 0): the code maps of levels ``< level`` (each (B, H_j, W_j)
        or (B, 1, H_j, W_j), top first), nearest-upsampled to the resolution of level ``level - 1``,
        stacked (B, level, H, W), on the model's device."""
        return CodeCondition(tuple(self.code_shapes), tuple(self.level_names), level)(codes_above).to(module_device(self))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Code maps (B, H_l, W_l) long, top first (the autoencoder in eval mode; codebooks unchanged)."""
        return [c[:, 0] for c in self._encode(self.makers[0], x)]

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Code maps, top first ((B, H, W) or (B, 1, H, W)) -> integer images (B, C, H, W) long."""
        return self.autoencoder.decode_to_levels(codes)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> codes -> images, (B, C, H, W) long in [0, K)."""
        return self.decode(self.encode(x))
