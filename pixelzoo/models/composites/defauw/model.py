"""Hierarchical autoregressive image models with auxiliary decoders (De Fauw, Dieleman & Simonyan
2019) as a chain of levels.

**A level** (``DeFauwLevel``, one part, one training unit) turns its input x_l (the pixels, or the
codes of the level below) into codes x_{l+1} and models x_l given them:

* the encoder E_l (``CodeEncoder``): x_l one-hot, a 3x3 convolution, a pre-activation ResNet
  (``n_blocks`` of ReLU, 3x3, ReLU, 1x1; no batch norm), ReLU and stride-2 4x4 convolutions at its end
  down to 1/``factor`` of the resolution, into a VQ bottleneck of ``code_channels`` channels of
  ``num_codes`` (2^``bits``) codes, one ``VectorQuantizer`` per channel (EMA codebook, commitment
  loss, straight-through);
* the auxiliary decoder A_l, which alone trains the encoder: ``"ff"`` (``FeedForwardDecoder``: MSE
  on the pixels at level 1, categorical NLL of the codes below above it) or ``"msp"``
  (``MSPDecoder``: a teacher T_l predicts the middle of masked regions, the student's decoder
  matches it from the codes of the unmasked input by KL(p_T || p_A));
* the autoregressive decoder D_l = the modulator (``Modulator``: the codes one-hot, a sub-pixel
  convolution up to x_l's resolution at its start, a ResNet, a 1x1 convolution to
  ``out_channels`` maps) + the local model (a Gated PixelCNN; the modulator's maps reach every
  layer through the layer's own 1x1 projection, so each layer gets its own bias map from the codes).
  Over a code map the local model embeds each code (``CodeGatedTrunk``; ``code_embedding`` 0 reads
  the scaled index instead). The decoders are not class-conditional (appendix A: only the prior is).

The three train simultaneously as one unit (``LevelUnit``), the loss
``aux + commitment + NLL(x_l | codes)``, with the stop-gradient of section 4: the AR decoder reads
the *integer* codes, so no gradient of its loss reaches the encoder (nor the auxiliary decoder or
the teacher); the auxiliary loss trains the encoder through the straight-through quantised vectors.
The level part is the ``ConditionalAR`` of D_l (what the chain samples and scores) holding E_l and
A_l (and T_l) besides; ``encode`` gives its codes.

**The chain** (Algorithm 1): levels ``image``, ``codes1``, ..., made bottom-up by the level parts
(``TrainedMaker`` makers: level l+1 trains on the codes of the trained level l, read through the level
cache, so it is a later stage); links: each level part models its input given its codes, the
``prior`` (a class-conditional PixelSNAIL-style model, ``vqvae2.build_code_prior``) the top codes.
Stages ``[["level1"], ["level2"], ..., ["prior"]]``. ``sample`` is Algorithm 4 (top codes from the
prior, then each level given the codes above, a temperature per part); ``reconstruct`` samples the
levels below the codes of given images; ``log_prob_parts`` / ``bits_per_dim_parts`` are the joint
NLL of appendix F, -log p(x, z_2, ..., z_L) >= -log p(x), each part's share in bits per dimension
of x.

Paper naming: the paper's "2-level model" (pixels and one code map) is ``levels`` with one entry
here, its "3-level model" two entries.

Choices where the paper is silent: a code map of several channels has one codebook per channel; the
encoder's strided convolutions are 4x4 (as in VQ-VAE); the MSE is on pixels scaled to [-1, 1]; MSP
regions are centred uniformly (distinct centres per image, clipped at the borders) and a teacher
whose 3x3 convolutions cannot reach past its mask's radius is refused; the modulator reaches each
layer through that layer's 1x1 projection of its output maps; the local model over codes embeds
them; the loss terms of a unit are summed with weight 1 (the commitment with the quantiser's beta).
The paper trains the autoencoders on 64x64 crops; there is no crop option here (whole images).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn

from ....errors import ConfigError
from ....heads import create_head
from ....nn.quantizer import VectorQuantizer
from ....registry import register_model
from ...autoregressive.model import AutoregressiveModel
from .aux_decoders import FeedForwardDecoder, MSPDecoder
from ...autoregressive.conditional import ConditionalAR
from ...autoregressive.gated_pixelcnn.trunk import GatedLayer, GatedPixelCNNTrunk
from ...chain.chain import Chain, SampledLevels
from ...chain.links import Level, Link, TrainedMaker
from ....nn.levels import check_levels, one_hot_levels
from ....nn.residual import ResidualStack, SubPixelResNet, log2_factor
from ...chain.part_specs import build_ar_part, part_spec
from ...autoregressive.pixelsnail.trunk import build_pixelsnail
from ....sampling.labels import expand_labels, per_image
from ...base import Encodes, Part, SamplesReconstructions, TrainingPlan, Unit, merge_options
from ..code_prior import TOP_PRIOR_DEFAULTS, CodeEmbedding, build_code_prior

AUX_KINDS = ("ff", "msp")
ENCODER = {"hidden": 64, "res_hidden": 32, "n_blocks": 4}
AUX_DECODER = {"hidden": 64, "res_hidden": 32, "n_blocks": 2}
TEACHER = {"hidden": 64, "res_hidden": 32, "n_blocks": 4}
MODULATOR = {"hidden": 64, "res_hidden": 32, "n_blocks": 4, "out_channels": 32}
LOCAL_MODEL = {"name": "gated_pixelcnn", "channels": 64, "n_layers": 8, "kernel_size": 3, "first_kernel_size": 7,
               "code_embedding": 16}
VQ = {"dim": 32, "beta": 0.25, "decay": 0.99, "restart_after": 100}
#: a level's options and their defaults (``num_codes`` 64 unless ``bits`` is given)
LEVEL = {"aux": "ff", "factor": 2, "code_channels": 1, "num_codes": None, "bits": None, "encoder": ENCODER,
         "aux_decoder": AUX_DECODER, "teacher": None, "mask_size": None, "masks_per_image": None,
         "modulator": MODULATOR, "local_model": LOCAL_MODEL, "vq": VQ}
MSP_ONLY = ("teacher", "mask_size", "masks_per_image")


# --------------------------------------------------------------------------------------- encoder
class CodeEncoder(nn.Module):
    """E_l and its VQ bottleneck: integer inputs (B, C, H, W) with ``num_levels`` values -> codes
    (B, code_channels, H / factor, W / factor) (see the module docstring)."""

    def __init__(self, input_shape, num_levels: int, factor: int, code_channels: int, num_codes: int,
                 hidden: int = 64, res_hidden: int = 32, n_blocks: int = 4, vq: dict | None = None):
        super().__init__()
        vq = merge_options(vq, VQ, "vq")
        dim = int(vq.pop("dim"))
        if code_channels < 1 or num_codes < 2 or dim < 1:
            raise ConfigError(f"code_channels must be >= 1, num_codes >= 2 and vq.dim >= 1; got {code_channels}, "
                              f"{num_codes}, {dim}")
        if min(hidden, res_hidden) < 1 or n_blocks < 0:
            raise ConfigError(f"encoder: hidden and res_hidden must be >= 1 and n_blocks >= 0, got {hidden}, "
                              f"{res_hidden}, {n_blocks}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_levels = int(num_levels)
        self.code_channels, self.num_codes, self.dim = int(code_channels), int(num_codes), dim
        steps = log2_factor(factor, "encoder")
        c = self.input_shape[0]
        layers: list[nn.Module] = [nn.Conv2d(c * self.num_levels, hidden, 3, padding=1),
                                   ResidualStack(hidden, res_hidden, n_blocks)]  # ends with a ReLU
        out = self.code_channels * dim
        if steps == 0:
            layers.append(nn.Conv2d(hidden, out, 3, padding=1))
        for s in range(steps):  # the strided convolutions at the end, ReLU between
            layers.append(nn.Conv2d(hidden, out if s == steps - 1 else hidden, 4, stride=2, padding=1))
            if s < steps - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        try:
            self.quantizers = nn.ModuleList(VectorQuantizer(self.num_codes, dim, **vq) for _ in range(self.code_channels))
        except TypeError as e:
            raise ConfigError(f"vq: bad options: {e}") from e

    def forward(self, x: torch.Tensor) -> dict:
        """``z_q`` (B, code_channels * dim, h, w): the quantised vectors, straight-through; ``codes``
        (B, code_channels, h, w) long; ``commitment`` (summed over channels); ``perplexity`` and
        ``usage`` (means over channels, detached)."""
        check_levels(x, self.input_shape, self.num_levels)
        z = self.net(one_hot_levels(x, self.num_levels))
        outs = [q(part) for q, part in zip(self.quantizers, z.split(self.dim, dim=1))]
        return {"z_q": torch.cat([o[0] for o in outs], dim=1), "codes": torch.stack([o[1] for o in outs], dim=1),
                "commitment": sum(o[2]["commitment"] for o in outs),
                "perplexity": torch.stack([o[2]["perplexity"] for o in outs]).mean(),
                "usage": torch.stack([o[2]["usage"] for o in outs]).mean()}


# --------------------------------------------------------------------------------------- AR decoder
class Modulator(nn.Module):
    """The AR decoder's modulator: codes (B, code_channels, h, w) one-hot -> ``SubPixelResNet`` ->
    (B, out_channels, factor h, factor w), the map every layer of the local model projects to its
    own bias. Non-causal: the codes are given, not modelled."""

    def __init__(self, code_shape, num_codes: int, factor: int, hidden: int = 64, res_hidden: int = 32,
                 n_blocks: int = 4, out_channels: int = 32):
        super().__init__()
        if out_channels < 1:
            raise ConfigError(f"modulator: out_channels must be >= 1, got {out_channels}")
        self.code_shape = tuple(int(s) for s in code_shape)
        self.num_codes = int(num_codes)
        self.out_channels = int(out_channels)
        self.net = SubPixelResNet(self.code_shape[0] * self.num_codes, self.out_channels, factor, hidden, res_hidden,
                                  n_blocks, "modulator")

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if codes is None or codes.dim() != 4 or tuple(codes.shape[1:]) != self.code_shape or codes.is_floating_point():
            raise ConfigError(f"the AR decoder is conditioned on integer codes of shape (B, "
                              f"{', '.join(map(str, self.code_shape))}), got "
                              f"{getattr(codes, 'dtype', None)} {tuple(getattr(codes, 'shape', ()))}")
        check_levels(codes, self.code_shape, self.num_codes)
        return self.net(one_hot_levels(codes, self.num_codes))


class CodeGatedTrunk(GatedPixelCNNTrunk):
    """The Gated PixelCNN over a map of codes: each channel's code is embedded (``CodeEmbedding``, one
    table per channel, differentiable in the scaled index so the causality checks see through it)
    and the first layer reads channel c's ``code_embedding`` features as colour group c (mask A).
    Everything else, the incremental stepper included, is ``GatedPixelCNNTrunk``."""

    def __init__(self, num_codes: int, code_embedding: int, image_channels: int = 1, channels: int = 64,
                 n_layers: int = 8, kernel_size: int = 3, first_kernel_size: int = 7, num_classes=None,
                 spatial_channels: int = 0, dropout: float = 0.0):
        super().__init__(image_channels, channels, n_layers, kernel_size, first_kernel_size, num_classes,
                         spatial_channels, dropout)
        c, e = int(image_channels), int(code_embedding)
        self.embeddings = nn.ModuleList(CodeEmbedding(num_codes, e) for _ in range(c))
        self.layers[0] = GatedLayer(c * e, channels, first_kernel_size, torch.arange(c).repeat_interleave(e), c, True,
                                    num_classes, spatial_channels, dropout)

    def input_features(self, x):
        return torch.cat([emb(x[:, i : i + 1]) for i, emb in enumerate(self.embeddings)], dim=1)


def build_local_model(spec: dict, input_shape, num_levels: int, spatial_channels: int, codes: bool):
    """The local model of a level: ``spec`` names a registered autoregressive model (a Gated PixelCNN
    by default) with ``spatial_channels`` of conditioning; over a code map (``codes``) with the Gated
    PixelCNN and ``code_embedding`` > 0, the ``CodeGatedTrunk`` with a categorical head."""
    hp = dict(spec)
    emb = hp.pop("code_embedding", 0)
    if not codes or not emb:
        return build_ar_part(hp, input_shape, num_levels, None, "local_model", spatial_channels=spatial_channels)
    if hp.pop("name", None) != "gated_pixelcnn":
        raise ConfigError("local_model: code_embedding applies to the gated_pixelcnn; give code_embedding 0 for "
                          "another model over codes")
    head, out_hidden = hp.pop("head", "categorical"), hp.pop("out_hidden", None)
    if head != "categorical":
        raise ConfigError(f"local_model: codes have no order, so a code level takes the categorical head, not {head!r}")
    if hp.pop("head_options", None):
        raise ConfigError("local_model: the categorical head over codes takes no head_options")
    try:
        trunk = CodeGatedTrunk(num_levels, emb, int(input_shape[0]), spatial_channels=spatial_channels, **hp)
    except TypeError as e:
        raise ConfigError(f"local_model: bad hyper-parameters: {e}") from e
    head = create_head("categorical", num_levels, int(input_shape[0]))
    return AutoregressiveModel(trunk, head, input_shape, num_levels, None, spatial_channels, out_hidden)


# --------------------------------------------------------------------------------------- one level
class DeFauwLevel(ConditionalAR):
    """One level (see the module docstring): the AR decoder D_l (this ``ConditionalAR``: ``ar`` the
    local model, ``cond_net`` the modulator) with the ``encoder`` E_l and the ``aux`` decoder A_l
    (with the teacher T_l for MSP) it trains with. ``log_prob`` / ``sample`` are D_l's, given codes
    (``cond``); the decoder is not class-conditional, so a label ``y`` is ignored."""

    def __init__(self, encoder: CodeEncoder, aux: nn.Module, ar: AutoregressiveModel, modulator: Modulator):
        super().__init__(ar, modulator)
        self.encoder = encoder
        self.aux = aux

    @property
    def aux_kind(self) -> str:
        return "msp" if isinstance(self.aux, MSPDecoder) else "ff"

    @property
    def code_shape(self) -> tuple:
        return self.cond_net.code_shape

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The level's codes of ``x``, ``[codes]`` (B, code_channels, h, w) long (the chain's maker;
        it runs it in eval mode, where the codebooks do not change)."""
        return [self.encoder(x.long())["codes"]]

    def terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """The unit's loss terms, each a scalar with its gradient: ``decoder_nll`` (-log p_D(x | codes),
        nats per dimension of x; the codes are integers, so nothing of it reaches E_l), ``commitment``,
        the auxiliary decoder's (``aux_mse`` or ``aux_nll``; MSP: ``teacher_nll`` and ``distill_kl``),
        and detached codebook statistics ``perplexity`` and ``usage``."""
        x = x.long()
        enc, t = self._code_terms(x, generator)
        return {"decoder_nll": -self.log_prob(x, cond=enc["codes"].detach()).mean(), **t,
                "perplexity": enc["perplexity"].detach(), "usage": enc["usage"].detach()}

    def _code_terms(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[dict, dict]:
        """The encoder's output and the terms that train the codes: ``commitment`` and the auxiliary
        decoder's."""
        enc = self.encoder(x)
        aux = self.aux.terms(x, enc["z_q"], generator) if isinstance(self.aux, MSPDecoder) else \
            self.aux.terms(x, enc["z_q"])
        return enc, {"commitment": enc["commitment"], **aux}

    def joint_loss(self, x: torch.Tensor, y=None) -> dict:
        """The unit's objective: ``loss`` = aux + commitment + decoder NLL (nats), with ``bpd`` (the AR
        decoder's bits per dimension of x given the codes) and every term logged apart."""
        t = self.terms(x)
        loss = sum(v for k, v in t.items() if k not in ("perplexity", "usage"))
        return {"loss": loss, "bpd": t["decoder_nll"].detach() / math.log(2.0),
                **{k: v.detach() for k, v in t.items()}}

    def aux_loss(self, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> dict:
        """The objective of E_l and A_l (and T_l) alone, the AR decoder never run: ``loss`` =
        commitment + the auxiliary decoder's terms (nats), each of them (``terms`` less ``decoder_nll``)
        and the codebook's ``perplexity`` and ``usage`` reported detached beside it. By the
        stop-gradient, ``joint_loss`` gives these networks the same gradients (only the global
        gradient-norm clipping of a unit also counts D_l's), so this trains the codes of a level
        without the cost of its decoder (``benchmarks/aux_decoders.py``). A label ``y`` is ignored."""
        enc, t = self._code_terms(x.long(), generator)
        return {"loss": sum(t.values()), **{k: v.detach() for k, v in t.items()},
                "perplexity": enc["perplexity"].detach(), "usage": enc["usage"].detach()}

    def labels(self, y):
        """None: the decoders are not class-conditional (appendix A: only the prior is)."""
        return None


class LevelUnit(Part):
    """The training unit of one level: E_l, A_l (T_l) and D_l trained simultaneously on
    ``DeFauwLevel.joint_loss``; evaluated by the AR decoder's bits/dim of the level's input given its
    own codes. It draws no samples while training (the decoder samples given codes from above)."""

    has_likelihood = True
    num_classes = None

    def __init__(self, level: DeFauwLevel):
        super().__init__()
        self.level = level

    def loss(self, x, y=None) -> dict:
        return self.level.joint_loss(x)

    def log_prob(self, x, y=None) -> torch.Tensor:
        return self.level.log_prob(x, cond=self.level.encode(x)[0])


def build_level(index: int, cfg: dict, input_shape, num_levels: int) -> DeFauwLevel:
    """Level ``index`` (1 = on the pixels) from its options (``LEVEL``), for inputs of ``input_shape``
    with ``num_levels`` values."""
    what = f"levels[{index - 1}]"
    cfg = merge_options(cfg, LEVEL, what)
    aux = cfg["aux"]
    if aux not in AUX_KINDS:
        raise ConfigError(f"{what}.aux must be one of {list(AUX_KINDS)}, got {aux!r}")
    if aux == "ff":
        stray = [k for k in MSP_ONLY if cfg[k] is not None]
        if stray:
            raise ConfigError(f"{what}: {stray} apply to the masked self-prediction decoder (aux 'msp'), not 'ff'")
    if cfg["num_codes"] is not None and cfg["bits"] is not None:
        raise ConfigError(f"{what}: give num_codes or bits, not both")
    if cfg["bits"] is not None:
        if not isinstance(cfg["bits"], int) or not 1 <= cfg["bits"] <= 16:
            raise ConfigError(f"{what}.bits must be an integer in [1, 16], got {cfg['bits']!r}")
        num_codes = 2 ** cfg["bits"]
    else:
        num_codes = 64 if cfg["num_codes"] is None else cfg["num_codes"]
    factor, cc = cfg["factor"], cfg["code_channels"]
    log2_factor(factor, f"{what}.factor")
    c, h, w = (int(s) for s in input_shape)
    if h % factor or w % factor:
        raise ConfigError(f"{what}: the input's size {h}x{w} is not divisible by the factor {factor}")
    if not isinstance(cc, int) or cc < 1:
        raise ConfigError(f"{what}.code_channels must be a positive integer, got {cc!r}")
    if not isinstance(num_codes, int) or num_codes < 2:
        raise ConfigError(f"{what}.num_codes must be an integer >= 2, got {num_codes!r}")
    code_shape = (cc, h // factor, w // factor)
    enc = merge_options(cfg["encoder"], ENCODER, f"{what}.encoder")
    encoder = CodeEncoder(input_shape, num_levels, factor, cc, num_codes, vq=cfg["vq"], **enc)
    dec = merge_options(cfg["aux_decoder"], AUX_DECODER, f"{what}.aux_decoder")
    code_dim = cc * encoder.dim
    if aux == "ff":
        target = "mse" if index == 1 else "categorical"
        aux_decoder = FeedForwardDecoder(code_dim, input_shape, num_levels, factor, target, **dec)
    else:
        teacher = merge_options(cfg["teacher"], TEACHER, f"{what}.teacher")
        aux_decoder = MSPDecoder(code_dim, input_shape, num_levels, factor,
                                 3 if cfg["mask_size"] is None else cfg["mask_size"], cfg["masks_per_image"],
                                 teacher, dec)
    mod = merge_options(cfg["modulator"], MODULATOR, f"{what}.modulator")
    modulator = Modulator(code_shape, num_codes, factor, **mod)
    local = part_spec(cfg["local_model"], LOCAL_MODEL, f"{what}.local_model")
    ar = build_local_model(local, input_shape, num_levels, modulator.out_channels, codes=index > 1)
    return DeFauwLevel(encoder, aux_decoder, ar, modulator)


# --------------------------------------------------------------------------------------- the chain
class DeFauw(Chain, Encodes, SamplesReconstructions):
    """See the module docstring. Build it with ``pixelzoo.create_model("defauw", ...)``."""

    def __init__(self, image_shape, num_levels: int, levels: list[DeFauwLevel], prior: AutoregressiveModel,
                 num_classes=None):
        names = ["image"] + [f"codes{l}" for l in range(1, len(levels) + 1)]
        chain_levels = [Level("image", tuple(image_shape), int(num_levels))]
        makers, links, parts = [], [], {}
        for l, level in enumerate(levels, start=1):
            part = f"level{l}"
            chain_levels.append(Level(names[l], level.code_shape, level.encoder.num_codes, shown=False))
            makers.append(TrainedMaker(names[l - 1], (names[l],), part))
            links.append(Link(part, names[l - 1], (names[l],)))
            parts[part] = level
        parts["prior"] = prior
        links.append(Link("prior", names[-1]))
        stages = [[f"level{l}"] for l in range(1, len(levels) + 1)] + [["prior"]]
        super().__init__(chain_levels, makers, links, parts, stages, num_classes)
        self.code_levels = names[1:]

    @property
    def level_parts(self) -> list[DeFauwLevel]:
        return [self.parts[f"level{l}"] for l in range(1, len(self.code_levels) + 1)]

    def training_plan(self) -> TrainingPlan:
        """One unit per level (E_l + A_l (+ T_l) + D_l jointly, ``LevelUnit``), stage by stage (level
        l + 1 reads the codes of the trained level l through the level cache), then the prior."""
        stages = [[Unit(name, LevelUnit(self.parts[name]), partial(self.part_data, name), None, f"parts/{name}",
                        self.trains_on_images(name))]
                  for name in (f"level{l}" for l in range(1, len(self.code_levels) + 1))]
        stages.append([Unit("prior", self.parts["prior"], partial(self.part_data, "prior"), None, "parts/prior")])
        return TrainingPlan(stages)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The code maps of images ``x``, by level name (``codes1`` ...), each (B, C_l, h_l, w_l) long."""
        check_levels(x, self.image_shape, self.num_levels)
        known = self.levels_of(x.long())
        return {name: known[name] for name in self.code_levels}

    @torch.no_grad()
    def sample_reconstructions(self, x: torch.Tensor, n_per_image: int = 1, y=None, temperature=1.0,
                               head_options=None, generator: torch.Generator | None = None,
                               progress: bool = False, from_level: str | None = None) -> SampledLevels:
        """Sampled reconstructions: the codes of ``x`` at ``from_level`` (default the top codes), then
        every level below sampled given them (``n_per_image`` per image, image-major); every level."""
        m = per_image(n_per_image)
        level = from_level or self.code_levels[-1]
        if level not in self.code_levels:
            raise ConfigError(f"from_level must be a code level {self.code_levels}, got {level!r}")
        codes = self.encode(x.to(next(self.parameters()).device))[level]
        return self.sample_levels(codes.shape[0] * m, expand_labels(y, codes.shape[0], m), temperature, head_options,
                                  generator, progress, given={level: codes})


@register_model("defauw")
def build_defauw(image_shape, num_levels, num_classes=None, levels: list | None = None,
                 prior: dict | None = None) -> DeFauw:
    """De Fauw et al.'s hierarchy (see the module docstring): ``levels`` one dict of options per code
    level, bottom first (1 to 3 of them; default one level with the feed-forward decoder): ``aux``
    ("ff" or "msp"), ``factor`` (downsampling, a power of 2), ``code_channels``, ``num_codes`` or
    ``bits``, ``encoder`` / ``aux_decoder`` / ``teacher`` / ``modulator`` widths (``hidden``,
    ``res_hidden``, ``n_blocks``; the modulator's ``out_channels``), ``mask_size`` and
    ``masks_per_image`` (MSP), ``local_model`` (a registered autoregressive model's hyper-parameters,
    ``gated_pixelcnn`` by default, with ``code_embedding`` over codes), ``vq`` (``dim``, ``beta``,
    ``decay``, ``restart_after``, ...). ``prior``: the top prior's options (``vqvae2.TOP_PRIOR_DEFAULTS``),
    class-conditional when ``num_classes`` is given."""
    levels = [{}] if levels is None else levels
    if not isinstance(levels, (list, tuple)) or not 1 <= len(levels) <= 3:
        raise ConfigError(f"levels must be a list of 1 to 3 level option dicts (bottom first), got {levels!r}")
    shape, k = tuple(int(s) for s in image_shape), int(num_levels)
    parts = []
    for index, cfg in enumerate(levels, start=1):
        level = build_level(index, cfg, shape, k)
        parts.append(level)
        shape, k = level.code_shape, level.encoder.num_codes
    prior_cfg = merge_options(prior, TOP_PRIOR_DEFAULTS, "prior")
    if shape[0] != 1 and prior_cfg["code_embedding"]:
        raise ConfigError(f"the top codes have {shape[0]} channels; the prior embeds one-channel codes only: give "
                          "prior.code_embedding 0 (the scaled index) or one code channel at the top level")
    try:
        top = build_code_prior(shape[1:], k, num_classes, **prior_cfg) if shape[0] == 1 else \
            _multi_channel_prior(shape, k, num_classes, prior_cfg)
    except TypeError as e:
        raise ConfigError(f"prior: bad hyper-parameters: {e}") from e
    return DeFauw(image_shape, num_levels, parts, top, num_classes)


def _multi_channel_prior(shape, num_codes: int, num_classes, cfg: dict) -> AutoregressiveModel:
    """A prior over top codes of several channels: the PixelSNAIL-style model on the scaled index."""
    cfg = dict(cfg)
    cfg.pop("code_embedding")
    return build_pixelsnail(shape, num_codes, num_classes, **cfg)
