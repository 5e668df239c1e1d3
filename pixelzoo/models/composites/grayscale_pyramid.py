"""PixelCNNs with auxiliary variables (Kolesnikov & Lampert 2017): Grayscale PixelCNN and Pyramid PixelCNN.

p(X, X_hat) = p(X_hat) p(X | X_hat) with X_hat = psi(X) a fixed view (``pixelzoo.views``). Both
models are chains (``pixelzoo.models.chain.chain``) built from parts that exist: an autoregressive prior over the top
level (any registered trunk + head), and per lower level a ``ConditionalAR`` whose trunk gets
f_w(X_hat), the output of a non-causal ``EmbeddingNet``, added in every block (the trunk's spatial
conditioning path). Training maximises log p(X, X_hat) = log p(X_hat) + log p(X | X_hat), whose
terms share no parameters: every part is trained on its own, all in one stage (parallel processes
with ``pixelzoo train ... --part NAME``).

**Bits/dim.** ``log_prob_parts`` gives each part's log-probability per image; ``bits_per_dim_parts``
divides every one of them by the dimensions *of X* (C*H*W of the full image), so the parts add up to
``bits_per_dim``, the bound -log2 p(X, X_hat) / dims(X) >= -log2 p(X) / dims(X). This is how the
paper splits CIFAR-10's 2.98 into 2.52 (p(X | X_hat)) + 0.46 (p(X_hat)); a part's bits per
dimension of its own level is its number times dims(X) / dims(level). ``PyramidPixelCNN.
level_bits_per_dim`` gives the bound of every resolution's sub-model in bits per dimension of that
resolution (the paper's Table 2).

**Sampling** is ancestral from the top level down. Temperature and head options (MAP sampling
``{"mode": "map"}``, variance reduction ``{"log_scale_shift": d}`` for the logistic mixture) are
given per part: ``temperature`` a float for every part or a dict {part: float}; ``head_options`` a
dict {part: options}. Colourising (the paper's Fig. 3) samples X given X_hat,
``gray.sample(B * m, y=..., given={"gray": X_hat})`` (``m`` colourisations of each of B gray
images, next to each other); upscaling (Fig. 6) samples the levels above a given low-resolution
image, ``pyramid.sample(B * m, given={"8x8": low})``; ``sample_levels`` returns every level.

**Colourising keeps the gray view only approximately.** p(X | X_hat) is a distribution over all
colours; nothing forbids mass on colours whose quantised luma differs from X_hat (the bins are
narrow: 16 luma bins, and a logistic mixture puts mass on every level). So psi(sample) == X_hat
holds for most pixels of a trained model, not for all, even with MAP sampling; ``view_agreement``
measures the fraction of pixels that keep it.

**A chain.** Both are builders of the generic chain (``pixelzoo.models.chain.chain``): levels made
by fixed views, a prior link on the top level and a conditional link per level below. The chain
gives the parts' data (a conditional part's splits carry ``cond`` = psi(x); the trainer flips it
with its images, so flip augmentation keeps X and X_hat consistent), the bound, and sampling from
the top or from any given level (colourising and upscaling are ``sample(given=...)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...errors import ConfigError
from ...registry import register_model
from ...views import downsample2x, grayscale4
from ..autoregressive.conditional import ConditionalAR
from ...nn.embedding_net import EmbeddingNet
from ..chain.chain import Chain
from ..chain.links import Level, Link, View
from ..chain.part_specs import build_ar_part, part_spec

# ---------------------------------------------------------------------- defaults (tiny, CPU-friendly)
GRAY_PRIOR = {"name": "gated_pixelcnn", "channels": 32, "n_layers": 6, "kernel_size": 3, "first_kernel_size": 5,
              "out_hidden": 64}
GRAY_CONDITIONAL = {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 32, "dropout": 0.0,
                    "head": "logistic_mixture", "head_options": {"n_mix": 5}}
GRAY_EMBEDDING = {"channels": 32, "n_blocks": 4, "out_channels": 32}
PYRAMID_PRIOR = {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 32, "n_resolutions": 1, "dropout": 0.0,
                 "head": "logistic_mixture", "head_options": {"n_mix": 5}}
PYRAMID_CONDITIONAL = {"name": "gated_pixelcnn", "channels": 32, "n_layers": 3, "kernel_size": 3, "first_kernel_size": 5,
                       "out_hidden": 64, "head": "logistic_mixture", "head_options": {"n_mix": 5}}
PYRAMID_EMBEDDING = {"channels": 32, "n_blocks": 6, "down_after": [1], "up_after": [3, 5], "out_channels": 32}


def _conditional(ar_spec: dict, emb_spec: dict, shape, num_levels, num_classes, in_channels, in_levels,
                 scale_exponent: int, what: str) -> ConditionalAR:
    """p(level | level above): an AR model whose every block gets f_w(level above) from an EmbeddingNet."""
    try:
        net = EmbeddingNet(in_channels, in_levels, **emb_spec)
    except TypeError as e:
        raise ConfigError(f"{what}: bad embedding hyper-parameters: {e}") from e
    if net.scale_exponent != scale_exponent:
        raise ConfigError(
            f"{what}: the embedding must change the resolution by 2**{scale_exponent} "
            f"(len(up_after) - len(down_after) == {scale_exponent}), got 2**{net.scale_exponent}")
    ar = build_ar_part(ar_spec, shape, num_levels, num_classes, what, spatial_channels=int(emb_spec["out_channels"]))
    return ConditionalAR(ar, net)


class GrayView(nn.Module):
    """psi(X): the ``gray_levels``-level BT.601 luma (``pixelzoo.views.grayscale4``). No parameters."""

    def __init__(self, levels: int, gray_levels: int):
        super().__init__()
        self.levels, self.gray_levels = int(levels), int(gray_levels)

    def forward(self, x):
        return grayscale4(x, self.levels, self.gray_levels)


# ====================================================================== Grayscale PixelCNN
@register_model("grayscale_pixelcnn")
class GrayscalePixelCNN(Chain):
    """p(X, X_hat) = p(X_hat) p(X | X_hat), X_hat = the ``gray_levels``-level luma of X (§3.1, §4.1).

    Levels ``image`` and ``gray``; parts ``prior`` p(X_hat), a 1-channel autoregressive model over
    ``gray_levels`` levels (any registered trunk; default a Gated PixelCNN with the categorical head,
    the paper's 16-way softmax), and ``conditional`` p(X | X_hat), a ``ConditionalAR`` (default
    PixelCNN++ trunk with the logistic-mixture head; ``{"head": "categorical"}`` also works) whose
    every block gets f_w(X_hat) from an ``EmbeddingNet`` at image resolution. ``prior`` /
    ``conditional`` are dicts ``{"name": registered model, **its hyper-parameters}``, ``embedding``
    the ``EmbeddingNet``'s; each updates the small defaults of this module (``GRAY_PRIOR``, ...),
    except that a dict naming another model than the default's starts from nothing but its name.
    For a 1-channel image the view is its quantisation to ``gray_levels`` levels, so p(X | X_hat)
    models the bits the quantisation drops.
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, gray_levels: int = 16,
                 prior: dict | None = None, conditional: dict | None = None, embedding: dict | None = None):
        c, h, w = (int(s) for s in image_shape)
        if c not in (1, 3):
            raise ConfigError(f"grayscale_pixelcnn: images must have 1 or 3 channels, got {c}")
        if int(gray_levels) != gray_levels or not 2 <= gray_levels <= num_levels:
            raise ConfigError(f"grayscale_pixelcnn: gray_levels must be an integer in [2, {num_levels}], got {gray_levels!r}")
        g = int(gray_levels)
        num_classes = int(num_classes) if num_classes else None
        view = GrayView(num_levels, g)
        parts = {"prior": build_ar_part(part_spec(prior, GRAY_PRIOR, "prior"), (1, h, w), g, num_classes, "prior"),
                 "conditional": _conditional(part_spec(conditional, GRAY_CONDITIONAL, "conditional"),
                                             part_spec(embedding, GRAY_EMBEDDING, "embedding"), (c, h, w), num_levels,
                                             num_classes, 1, g, 0, "conditional")}
        super().__init__([Level("image", (c, h, w), int(num_levels)), Level("gray", (1, h, w), g)],
                         [View("image", "gray", view)],
                         [Link("prior", "gray"), Link("conditional", "image", ("gray",))],
                         parts, [["prior", "conditional"]], num_classes)
        self.gray_levels = g
        self.view = view

    @property
    def gray_shape(self) -> tuple[int, int, int]:
        return (1, *self.image_shape[1:])

    def view_agreement(self, x, gray) -> torch.Tensor:
        """Per image, the fraction of pixels where psi(x) equals the given gray view, (B,)."""
        return (self.view(x) == gray.long()).flatten(1).double().mean(1)

# ====================================================================== Pyramid PixelCNN
@register_model("pyramid_pixelcnn")
class PyramidPixelCNN(Chain):
    """The view decomposition applied ``n_scales`` times: X_0 = X, X_{l+1} = downsample2x(X_l) (§3.2, §4.2).

    Levels ``image`` and one per lower resolution (``"HxW"``); parts ``prior`` p(X_n) at the lowest
    resolution, and ``scale_k`` (k = 1..n_scales, lowest first) p(X_{n-k} | X_{n-k+1}): a light
    conditional trunk at that resolution whose blocks get f_w(X_{n-k+1}), a deep ``EmbeddingNet``
    that maps the level below to a map at twice its resolution (``embedding`` must have one more
    upsampling than downsampling). Every scale has its own parameters, built from the same
    ``conditional`` / ``embedding`` hyper-parameters. Defaults: prior a PixelCNN++ trunk without
    resolution changes (``n_resolutions`` 1, as the paper's), scales a 3-layer Gated PixelCNN, both
    with the logistic mixture.
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, n_scales: int = 2,
                 prior: dict | None = None, conditional: dict | None = None, embedding: dict | None = None):
        c, h, w = (int(s) for s in image_shape)
        if int(n_scales) != n_scales or n_scales < 1:
            raise ConfigError(f"pyramid_pixelcnn: n_scales must be a positive integer, got {n_scales!r}")
        n = int(n_scales)
        if h % 2 ** n or w % 2 ** n:
            raise ConfigError(f"pyramid_pixelcnn: a {h}x{w} image cannot be halved {n} times exactly")
        num_classes = int(num_classes) if num_classes else None
        shapes = [(c, h >> l, w >> l) for l in range(n + 1)]  # level l: 0 = the image, n = the lowest
        names = ["image"] + [f"{s[1]}x{s[2]}" for s in shapes[1:]]
        parts = {"prior": build_ar_part(part_spec(prior, PYRAMID_PRIOR, "prior"), shapes[n], num_levels, num_classes, "prior")}
        links = [Link("prior", names[n])]
        cond_spec, emb_spec = part_spec(conditional, PYRAMID_CONDITIONAL, "conditional"), part_spec(embedding, PYRAMID_EMBEDDING, "embedding")
        for k in range(1, n + 1):
            parts[f"scale_{k}"] = _conditional(cond_spec, emb_spec, shapes[n - k], num_levels, num_classes, c,
                                               num_levels, 1, f"scale_{k}")
            links.append(Link(f"scale_{k}", names[n - k], (names[n - k + 1],)))
        super().__init__([Level(nm, s, int(num_levels)) for nm, s in zip(names, shapes)],
                         [View(names[l], names[l + 1], downsample2x) for l in range(n)], links, parts,
                         [list(parts)], num_classes)
        self.n_scales = n
        #: (C, H, W) of level l (0 = the image, n = the lowest resolution)
        self.level_shapes = shapes

    @torch.no_grad()
    def level_bits_per_dim(self, x, y=None) -> dict[str, torch.Tensor]:
        """Per resolution "HxW", lowest first: the bound of the model of images at that resolution
        (prior + scales up to it) in bits per dimension of that resolution, (B,) (cf. Table 2)."""
        parts = self.log_prob_parts(x, y)
        out, total = {}, 0.0
        for k, name in enumerate(self.part_names):
            total = total + parts[name]
            shape = self.level_shapes[self.n_scales - k]
            out["{}x{}".format(*shape[1:])] = -total / (math.prod(shape) * math.log(2.0))
        return out
