"""Hierarchical VQ-VAE, stage 1 of VQ-VAE-2 (Razavi et al. 2019): feed-forward encoders and decoder
around one vector quantiser per level.

Levels are numbered bottom (0, highest resolution) to top (L-1); ``levels`` gives each level's
downsampling factor relative to the level below it (the image for level 0): ``(4, 2)`` is the
ImageNet model (a 256x256 image gives 64x64 bottom and 32x32 top codes), ``(4, 2, 2)`` a three-level
model (the FFHQ-1024 model is ``(8, 2, 2)``: 128, 64, 32). Each factor must be a power of two: it is
made of that many stride-2 4x4 convolutions (and undone by stride-2 4x4 transposed convolutions).

Encoding (Algorithm 1, generalised to L levels)::

    f_0 = E_0(x);  f_l = E_l(f_{l-1})                              bottom-up features
    e_top = Q_top(1x1(f_top))                                       top code
    for l = L-2 .. 0:                                               top-down
        c_l = C_l(d_{l+1})        C_l: residual stack + transposed convs up to level l's resolution
        e_l = Q_l(1x1([f_l, c_l]))                                  level l sees the pixels and the levels above
    with d_top = e_top and d_{l} = [e_l, c_l] (so the level below l sees every level above it)

Decoding is feed-forward from all levels: each level's quantised map is upsampled to the bottom
resolution (stride-2 4x4 transposed convolutions), the maps are concatenated, then a 3x3 convolution,
a residual stack and transposed convolutions back to the image size. A residual stack is
``n_res_blocks`` of ``x + 1x1(relu(3x3(relu(x))))`` (``res_channels`` inside) and a final ReLU.

Loss: ``mse + sum_l commitment_l`` with the MSE on images scaled to [-1, 1] (``x / (K-1) * 2 - 1``)
and the commitment ``beta * ||z - sg(e)||^2`` of each level; the codebooks learn by EMA inside the
quantisers (they are buffers, not parameters).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ....devices import module_device
from ....errors import ConfigError
from ....nn.conv_autoencoder import ConvDecoder, ConvEncoder, upsampling_convs
from ....nn.quantizer import VectorQuantizer
from ....nn.residual import log2_factor
from ....nn.levels import check_levels, scale_levels
from ....nn.modes import eval_mode
from ...base import Part


def level_names(n: int) -> list[str]:
    """Names of ``n`` levels, top first: top / middle / bottom, or top, middle1.., bottom."""
    if n == 1:
        return ["top"]
    if n == 2:
        return ["top", "bottom"]
    if n == 3:
        return ["top", "middle", "bottom"]
    return ["top"] + [f"middle{i}" for i in range(1, n - 1)] + ["bottom"]


class VQVAE2(Part):
    """Hierarchical VQ-VAE with ``len(levels)`` code maps.

    Args:
        image_shape: (C, H, W); H and W must be divisible by the product of ``levels``.
        num_levels: intensity levels K of the images (integers in [0, K)).
        hidden: encoder/decoder channels.
        res_channels: channels inside the residual blocks.
        n_res_blocks: residual blocks per stack.
        embed_dim: codebook vector dimension.
        num_codes: codebook size (the same for every level).
        levels: downsampling factor of each level relative to the level below, bottom first.
        beta, decay, dead_code_restart, restart_after, eps: see ``VectorQuantizer``.
        num_classes: accepted for the registry's builder signature; stage 1 is unconditional.
    """

    #: trained by reconstruction (MSE + commitment): no likelihood of the pixels
    has_likelihood = False


    def __init__(self, image_shape, num_levels, hidden=128, res_channels=64, n_res_blocks=2, embed_dim=64,
                 num_codes=512, levels=(4, 2), beta=0.25, decay=0.99, dead_code_restart=True, restart_after=100,
                 eps=1e-5, num_classes=None):
        super().__init__()
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3:
            raise ConfigError(f"image_shape must be (C, H, W), got {image_shape}")
        levels = [int(f) for f in levels]
        if not levels:
            raise ConfigError("levels must list at least one downsampling factor")
        for f in levels:
            log2_factor(f, "each level's downsampling", minimum=2)
        total = math.prod(levels)
        c, h, w = image_shape
        if h % total or w % total:
            raise ConfigError(
                f"image size {h}x{w} is not divisible by the total downsampling {total} of levels {levels}"
            )
        if num_levels < 2:
            raise ConfigError(f"num_levels must be >= 2, got {num_levels}")
        self.image_shape = image_shape
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes) if num_classes else None
        self.levels = levels
        self.num_codes = int(num_codes)
        self.embed_dim = int(embed_dim)
        self.names = level_names(len(levels))  # top first
        n = len(levels)
        self.config = {
            "image_shape": list(image_shape), "num_levels": int(num_levels), "hidden": hidden,
            "res_channels": res_channels, "n_res_blocks": n_res_blocks, "embed_dim": embed_dim,
            "num_codes": num_codes, "levels": list(levels), "beta": beta, "decay": decay,
            "dead_code_restart": dead_code_restart, "restart_after": restart_after, "eps": eps,
            "num_classes": num_classes,
        }
        # bottom-up encoders, index 0 = bottom
        self.encoders = nn.ModuleList(
            ConvEncoder(c if l == 0 else hidden, hidden, res_channels, n_res_blocks, levels[l]) for l in range(n)
        )
        # top-down conditioning decoders C_l (l < top): from d_{l+1} to level l's resolution
        self.cond_decoders = nn.ModuleList(
            ConvDecoder(embed_dim * (1 if l + 1 == n - 1 else 2), hidden, res_channels, n_res_blocks, embed_dim,
                    levels[l + 1])
            for l in range(n - 1)
        )
        # pre-quantisation 1x1: features (plus the conditioning from above) -> embed_dim
        self.pre_quant = nn.ModuleList(
            nn.Conv2d(hidden + (embed_dim if l < n - 1 else 0), embed_dim, 1) for l in range(n)
        )
        self.quantizers = nn.ModuleList(
            VectorQuantizer(num_codes, embed_dim, beta=beta, decay=decay, eps=eps, restart_after=restart_after,
                            dead_code_restart=dead_code_restart)
            for _ in range(n)
        )
        # decoder: upsample level l (> 0) to the bottom resolution, then one decoder to pixels
        self.upsamplers = nn.ModuleList(
            nn.Identity() if l == 0 else nn.Sequential(*upsampling_convs(embed_dim, 2 * embed_dim, embed_dim, math.prod(levels[1 : l + 1])))
            for l in range(n)
        )
        self.decoder = ConvDecoder(embed_dim * n, hidden, res_channels, n_res_blocks, c, levels[0])

    # ------------------------------------------------------------------ shapes and scaling
    def code_shapes(self) -> list[tuple[int, int]]:
        """(H_l, W_l) of each code map, top first."""
        _, h, w = self.image_shape
        shapes = []
        f = 1
        for factor in self.levels:
            f *= factor
            shapes.append((h // f, w // f))
        return shapes[::-1]

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels [0, K) -> floats in [-1, 1]."""
        return scale_levels(x, self.num_levels)

    def check_input(self, x: torch.Tensor) -> None:
        check_levels(x, self.image_shape, self.num_levels)

    # ------------------------------------------------------------------ core
    def quantize(self, x_scaled: torch.Tensor, update: bool | None = None):
        """Algorithm 1: returns (quantised maps, codes, infos), each a list indexed bottom (0) to top."""
        n = len(self.levels)
        feats = []
        h = x_scaled
        for enc in self.encoders:
            h = enc(h)
            feats.append(h)
        quantised: list = [None] * n
        codes: list = [None] * n
        infos: list = [None] * n
        z = self.pre_quant[n - 1](feats[n - 1])
        quantised[n - 1], codes[n - 1], infos[n - 1] = self.quantizers[n - 1](z, update)
        d = quantised[n - 1]
        for l in range(n - 2, -1, -1):
            c_l = self.cond_decoders[l](d)
            z = self.pre_quant[l](torch.cat([feats[l], c_l], dim=1))
            quantised[l], codes[l], infos[l] = self.quantizers[l](z, update)
            d = torch.cat([quantised[l], c_l], dim=1)
        return quantised, codes, infos

    def decode(self, quantised: list[torch.Tensor]) -> torch.Tensor:
        """Quantised maps (bottom first) -> reconstruction in the [-1, 1] scale (not clamped)."""
        ups = [up(q) for up, q in zip(self.upsamplers, quantised)]
        return self.decoder(torch.cat(ups, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (unclamped, [-1, 1] scale) of integer images ``x``."""
        self.check_input(x)
        quantised, _, _ = self.quantize(self.scale(x))
        return self.decode(quantised)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        """``loss`` = ``mse`` + ``commitment`` (summed over levels), plus ``perplexity_<level>`` and
        ``usage_<level>`` of each level (top, [middle,] bottom). ``y`` is ignored (stage 1 is
        unconditional)."""
        self.check_input(x)
        xs = self.scale(x)
        quantised, _, infos = self.quantize(xs)
        recon = self.decode(quantised)
        mse = F.mse_loss(recon, xs)
        commitment = sum(info["commitment"] for info in infos)
        out = {"loss": mse + commitment, "mse": mse.detach(), "commitment": commitment.detach()}
        for name, info in zip(self.names, infos[::-1]):
            out[f"perplexity_{name}"] = info["perplexity"]
            out[f"usage_{name}"] = info["usage"]
        return out

    # ------------------------------------------------------------------ codes
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Code maps (B, H_l, W_l) long, top first. Never updates the codebooks."""
        self.check_input(x)
        _, codes, _ = self.quantize(self.scale(x), update=False)
        return codes[::-1]

    def lookup(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Code maps, top first -> quantised maps, bottom first."""
        if len(codes) != len(self.levels):
            raise ConfigError(f"expected {len(self.levels)} code maps (top first), got {len(codes)}")
        quantised = []
        for l, c in enumerate(codes[::-1]):
            want = self.code_shapes()[::-1][l]
            if c.dim() != 3 or tuple(c.shape[1:]) != want:
                raise ConfigError(f"code map of level {self.names[::-1][l]} must be (B, {want[0]}, {want[1]}), got {tuple(c.shape)}")
            quantised.append(self.quantizers[l].lookup(c))
        return quantised

    @torch.no_grad()
    def decode_codes(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Code maps, top first -> reconstruction (B, C, H, W) clamped to [-1, 1]."""
        return self.decode(self.lookup(codes)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def to_levels(self, recon: torch.Tensor) -> torch.Tensor:
        """[-1, 1] reconstruction -> integer images in [0, K) (rounded, clamped), long."""
        k = self.num_levels - 1
        return ((recon + 1.0) * (k / 2.0)).round().clamp(0, k).long()

    @torch.no_grad()
    def decode_to_levels(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Code maps, top first ((B, H, W) or (B, 1, H, W)) -> integer images (B, C, H, W) long, in
        eval mode (the training flag is restored)."""
        device = module_device(self)
        maps = [(c[:, 0] if c.dim() == 4 else c).long().to(device) for c in codes]
        with eval_mode(self):
            return self.to_levels(self.decode_codes(maps))

    def decode_given(self, n: int, y=None, cond=None, temperature: float = 1.0, head_options: dict | None = None,
                     generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """The images of ``n`` given code maps (``cond``: the maps, top first, n rows each), with the
        signature of a part's ``sample`` (the chain's model of the image level): the decoder is
        deterministic, so ``temperature`` and ``generator`` do not apply."""
        if head_options:
            raise ConfigError(f"the VQ-VAE decoder is deterministic: it has no sampling options, got {head_options}")
        if cond is None or len(cond) != len(self.names) or any(c.shape[0] != n for c in cond):
            raise ConfigError(f"decoding needs the {len(self.names)} code maps (top first), {n} rows each")
        return self.decode_to_levels(cond)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Integer images -> integer reconstructions through the codes, (B, C, H, W) long in [0, K)."""
        return self.to_levels(self.decode_codes(self.encode(x)))


def build_vqvae2(image_shape, num_levels, num_classes=None, **hparams) -> VQVAE2:
    """Builder with the registry's signature ``(image_shape, num_levels, num_classes, **hparams)``."""
    return VQVAE2(image_shape, num_levels, num_classes=num_classes, **hparams)
