"""PixelCNNs with auxiliary variables (Kolesnikov & Lampert 2017): Grayscale PixelCNN and Pyramid PixelCNN.

p(X, X_hat) = p(X_hat) p(X | X_hat) with X_hat = psi(X) a fixed view (``pixelzoo.views``). Both
models are ``CompositeModel`` s built from parts that exist: an autoregressive prior over the top
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
dict {part: options}. ``GrayscalePixelCNN.colorize`` samples X given X_hat (the paper's Fig. 3);
``PyramidPixelCNN.upscale`` samples the levels above a given low-resolution image (Fig. 6).

**Colourising keeps the gray view only approximately.** p(X | X_hat) is a distribution over all
colours; nothing forbids mass on colours whose quantised luma differs from X_hat (the bins are
narrow: 16 luma bins, and a logistic mixture puts mass on every level). So psi(sample) == X_hat
holds for most pixels of a trained model, not for all, even with MAP sampling; ``view_agreement``
measures the fraction of pixels that keep it.

**Training data.** A conditional part's training split carries no conditioning: the part computes
X_hat = psi(x) of each (possibly flipped) batch itself (``ViewConditional``), so flip augmentation
keeps X and X_hat consistent. Its test split carries ``cond`` = psi(x) as an extra, which the
generic trainer passes to evaluation and to its sample grids (there: colourisations / upscalings of
test views). Views are cheap and computed when ``part_data`` is called (no cache on disk).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from ..registry import register_model
from ..errors import ConfigError
from ..views import downsample2x, grayscale4
from .autoregressive import AutoregressiveModel
from .composite import CompositeModel
from .conditional import ConditionalAR
from .embedding import EmbeddingNet

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

CHUNK = 2048  # images per chunk when computing views of a whole data set


def _spec(given, default: dict, what: str) -> dict:
    """``default`` updated by ``given``; when ``given`` names another model, ``default``'s
    hyper-parameters (which belong to the default model) are not used."""
    if given is None:
        return copy.deepcopy(default)
    if not isinstance(given, dict):
        raise ConfigError(f"{what} must be a dict of hyper-parameters, got {type(given).__name__}")
    name = given.get("name", default.get("name"))
    base = copy.deepcopy(default) if name == default.get("name") else {"name": name}
    base.update(copy.deepcopy(given))
    return base


def _build_ar(spec: dict, image_shape, num_levels: int, num_classes, what: str, spatial_channels: int = 0):
    from ..registry import create_model

    hp = dict(spec)
    name = hp.pop("name", None)
    if not name:
        raise ConfigError(f"{what}: give the trunk's registered model name, e.g. {{'name': 'gated_pixelcnn'}}")
    if spatial_channels:
        if "spatial_channels" in hp:
            raise ConfigError(f"{what}: spatial_channels is set from the embedding's out_channels; do not give it")
        hp["spatial_channels"] = spatial_channels
    model = create_model(name, image_shape, num_levels, num_classes, **hp)
    if not isinstance(model, AutoregressiveModel):
        raise ConfigError(f"{what}: {name!r} is not an autoregressive model (trunk + head)")
    return model


def _build_embedding(spec: dict, in_channels: int, in_levels: int, scale_exponent: int, what: str) -> EmbeddingNet:
    hp = dict(spec)
    try:
        net = EmbeddingNet(in_channels, in_levels, **hp)
    except TypeError as e:
        raise ConfigError(f"{what}: bad embedding hyper-parameters: {e}") from e
    if net.scale_exponent != scale_exponent:
        raise ConfigError(
            f"{what}: the embedding must change the resolution by 2**{scale_exponent} "
            f"(len(up_after) - len(down_after) == {scale_exponent}), got 2**{net.scale_exponent}")
    return net


def _map_chunks(fn, images: torch.Tensor) -> torch.Tensor:
    """``fn`` over a uint8 data set in chunks (views compute in int64), back to uint8."""
    if images.shape[0] == 0:
        return fn(images.long()).to(torch.uint8)
    return torch.cat([fn(images[s:s + CHUNK].long()).to(torch.uint8) for s in range(0, images.shape[0], CHUNK)])


class GrayView(nn.Module):
    """psi(X): the 16-level BT.601 luma (``pixelzoo.views.grayscale4``). No parameters."""

    def __init__(self, levels: int, gray_levels: int):
        super().__init__()
        self.levels, self.gray_levels = int(levels), int(gray_levels)

    def forward(self, x):
        return grayscale4(x, self.levels, self.gray_levels)


class Downsample2xView(nn.Module):
    """psi(X): 2x2 means rounded half up (``pixelzoo.views.downsample2x``). No parameters."""

    def forward(self, x):
        return downsample2x(x)


class ViewConditional(ConditionalAR):
    """A ``ConditionalAR`` that knows its conditioning is a fixed view of its own input: when ``cond``
    is not given, it is ``view(x)``."""

    def __init__(self, ar: AutoregressiveModel, cond_net: nn.Module, view: nn.Module):
        super().__init__(ar, cond_net)
        self.view = view

    def condition(self, x, cond=None):
        return self.view(x) if cond is None else cond

    def loss(self, x, y=None, cond=None) -> dict:
        return super().loss(x, y, self.condition(x, cond))

    def log_prob(self, x, y=None, cond=None) -> torch.Tensor:
        return super().log_prob(x, y, self.condition(x, cond))

    def bits_per_dim(self, x, y=None, cond=None) -> torch.Tensor:
        return super().bits_per_dim(x, y, self.condition(x, cond))

    def sample(self, n, y=None, cond=None, **kwargs) -> torch.Tensor:
        if cond is None:
            raise ConfigError("a conditional part samples given its conditioning level: pass cond=")
        return super().sample(n, y=y, cond=cond, **kwargs)


def _repeat_labels(y, b: int, m: int):
    if y is None:
        return None
    y = torch.as_tensor(y, dtype=torch.long)
    if y.dim() == 0:
        return y.expand(b * m).clone()
    if y.shape != (b,):
        raise ConfigError(f"labels must be a scalar or a ({b},) tensor, one per given image; got {tuple(y.shape)}")
    return y.repeat_interleave(m)


class AuxiliaryPixelCNN(CompositeModel):
    """What the Grayscale and Pyramid PixelCNNs share: per-part sampling options, saving."""

    config: dict

    def __init__(self, image_shape, num_levels: int, num_classes: int | None):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes) if num_classes else None

    def _sampling_options(self, temperature, head_options, names=None):
        names = list(names or self.part_names)
        if isinstance(temperature, dict):
            unknown = sorted(set(temperature) - set(self.part_names))
            if unknown:
                raise ConfigError(f"temperature names unknown part(s) {unknown}; parts: {self.part_names}")
            temps = {n: float(temperature.get(n, 1.0)) for n in names}
        else:
            temps = {n: float(temperature) for n in names}
        ho = head_options or {}
        if not isinstance(ho, dict) or any(k not in self.part_names or not isinstance(v, dict) for k, v in ho.items()):
            raise ConfigError(f"head_options must map part names {self.part_names} to option dicts, e.g. "
                              f"{{'{self.part_names[-1]}': {{'mode': 'map'}}}}; got {ho!r}")
        return temps, {n: dict(ho.get(n) or {}) for n in names}

    @staticmethod
    def _no_inpainting(known, mask):
        if known is not None or mask is not None:
            raise ConfigError("inpainting (known/mask) is not supported by auxiliary-variable models; "
                              "condition on a given level with colorize / upscale instead")

    def _check_images(self, x, shape, levels, what):
        if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
            raise ConfigError(f"{what}: expected integer images of shape (B, {', '.join(map(str, shape))}), "
                              f"got {getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
            raise ConfigError(f"{what}: values must lie in [0, {levels}), got [{int(x.min())}, {int(x.max())}]")

    def _check_splits(self, splits):
        if tuple(splits.image_shape) != tuple(self.image_shape) or splits.num_levels != self.num_levels:
            raise ConfigError(f"data {splits.train.name!r} has images {splits.image_shape} with {splits.num_levels} "
                              f"levels; the model was built for {self.image_shape} with {self.num_levels}")

    def save_pretrained(self, directory) -> None:
        from ..pretrained import save_pretrained

        save_pretrained(self, directory)


# ====================================================================== Grayscale PixelCNN
class GrayscalePixelCNN(AuxiliaryPixelCNN):
    """p(X, X_hat) = p(X_hat) p(X | X_hat), X_hat = the ``gray_levels``-level luma of X (§3.1, §4.1).

    Parts: ``prior`` p(X_hat), a 1-channel autoregressive model over ``gray_levels`` levels (any
    registered trunk; default a Gated PixelCNN with the categorical head, the paper's 16-way
    softmax); ``conditional`` p(X | X_hat), a ``ConditionalAR`` (default PixelCNN++ trunk with the
    logistic-mixture head; ``{"head": "categorical"}`` also works) whose every block gets
    f_w(X_hat) from an ``EmbeddingNet`` at image resolution. ``prior`` / ``conditional`` are dicts
    ``{"name": registered model, **its hyper-parameters}``, ``embedding`` the ``EmbeddingNet``'s
    hyper-parameters; each updates the small defaults of this module (``GRAY_PRIOR``, ...), except
    that a dict naming another model than the default's starts from nothing but its name. For a
    1-channel image the view is its quantisation to ``gray_levels`` levels, so p(X | X_hat) models
    the bits the quantisation drops.
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, gray_levels: int = 16,
                 prior: dict | None = None, conditional: dict | None = None, embedding: dict | None = None):
        super().__init__(image_shape, num_levels, num_classes)
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError(f"grayscale_pixelcnn: images must have 1 or 3 channels, got {c}")
        if int(gray_levels) != gray_levels or not 2 <= gray_levels <= num_levels:
            raise ConfigError(f"grayscale_pixelcnn: gray_levels must be an integer in [2, {num_levels}], got {gray_levels!r}")
        self.gray_levels = int(gray_levels)
        self.stages = [["prior", "conditional"]]
        self.view = GrayView(self.num_levels, self.gray_levels)
        prior_ar = _build_ar(_spec(prior, GRAY_PRIOR, "prior"), (1, h, w), self.gray_levels, self.num_classes, "prior")
        emb_spec = _spec(embedding, GRAY_EMBEDDING, "embedding")
        emb = _build_embedding(emb_spec, 1, self.gray_levels, 0, "conditional")
        cond_ar = _build_ar(_spec(conditional, GRAY_CONDITIONAL, "conditional"), self.image_shape, self.num_levels,
                            self.num_classes, "conditional", spatial_channels=int(emb_spec["out_channels"]))
        self.parts = nn.ModuleDict({"prior": prior_ar,
                                    "conditional": ViewConditional(cond_ar, emb, GrayView(self.num_levels, self.gray_levels))})

    @property
    def gray_shape(self) -> tuple[int, int, int]:
        return (1, *self.image_shape[1:])

    def part_data(self, name, splits, cache_dir=None):
        from ..data import DataSplits, ImageDataset

        self._check_splits(splits)
        if name == "prior":
            def gray(d):
                return ImageDataset(f"{d.name}/gray{self.gray_levels}", _map_chunks(self.view, d.images), d.labels,
                                    self.gray_levels, d.num_classes, d.source)
            return DataSplits(gray(splits.train), gray(splits.test))
        if name == "conditional":
            tr, te = splits.train, splits.test
            train = ImageDataset(tr.name, tr.images, tr.labels, tr.num_levels, tr.num_classes, tr.source)
            test = ImageDataset(te.name, te.images, te.labels, te.num_levels, te.num_classes, te.source,
                                extras={"cond": _map_chunks(self.view, te.images)})
            return DataSplits(train, test)
        raise ConfigError(f"unknown part {name!r}; parts: {self.part_names}")

    def log_prob_parts(self, x, y=None):
        gray = self.view(x)
        return {"prior": self.parts["prior"].log_prob(gray, y).flatten(1).sum(1),
                "conditional": self.parts["conditional"].log_prob(x, y, cond=gray).flatten(1).sum(1)}

    def view_agreement(self, x, gray) -> torch.Tensor:
        """Per image, the fraction of pixels where psi(x) equals the given gray view, (B,)."""
        return (self.view(x) == gray.long()).flatten(1).double().mean(1)

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature=1.0, head_options: dict | None = None,
               generator: torch.Generator | None = None, progress: bool = False, known=None, mask=None,
               return_levels: bool = False):
        """``n`` images: X_hat from the prior, then X given X_hat. ``return_levels``: (X, X_hat)."""
        self._no_inpainting(known, mask)
        temps, ho = self._sampling_options(temperature, head_options)
        gray = self.parts["prior"].sample(n, y=y, temperature=temps["prior"], head_options=ho["prior"],
                                          generator=generator, progress=progress)
        x = self.parts["conditional"].sample(n, y=y, cond=gray, temperature=temps["conditional"],
                                             head_options=ho["conditional"], generator=generator, progress=progress)
        return (x, gray) if return_levels else x

    def level_grid(self, n: int, **sample_options) -> list:
        """[(X_hat, gray levels), (X, levels)] of ``n`` samples: the rows of the paper's Fig. 2."""
        x, gray = self.sample(n, return_levels=True, **sample_options)
        return [(gray, self.gray_levels), (x, self.num_levels)]

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, n_per_image: int = 1, y=None, temperature: float = 1.0,
                 head_options: dict | None = None, generator: torch.Generator | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Sample X given X_hat: ``gray`` (B, 1, H, W) in [0, gray_levels) -> (B * n_per_image, C, H, W),
        the ``n_per_image`` samples of each gray image next to each other. ``head_options`` are the
        conditional's (e.g. ``{"mode": "map"}``); ``y`` is (B,) or a scalar."""
        self._check_images(gray, self.gray_shape, self.gray_levels, "colorize")
        if int(n_per_image) != n_per_image or n_per_image < 1:
            raise ConfigError(f"n_per_image must be a positive integer, got {n_per_image!r}")
        b = gray.shape[0]
        return self.parts["conditional"].sample(b * n_per_image, y=_repeat_labels(y, b, n_per_image),
                                                cond=gray.long(), temperature=temperature,
                                                head_options=dict(head_options or {}), generator=generator,
                                                progress=progress)


# ====================================================================== Pyramid PixelCNN
class PyramidPixelCNN(AuxiliaryPixelCNN):
    """The view decomposition applied ``n_scales`` times: X_0 = X, X_{l+1} = downsample2x(X_l) (§3.2, §4.2).

    Parts: ``prior`` p(X_n) at the lowest resolution, and ``scale_k`` (k = 1..n_scales, lowest
    first) p(X_{n-k} | X_{n-k+1}): a light conditional trunk at that resolution whose blocks get
    f_w(X_{n-k+1}), a deep ``EmbeddingNet`` that maps the level below to a map at twice its
    resolution (``embedding`` must have one more upsampling than downsampling). Every scale has its
    own parameters, built from the same ``conditional`` / ``embedding`` hyper-parameters. Defaults:
    prior a PixelCNN++ trunk without resolution changes (``n_resolutions`` 1, as the paper's), scales
    a 3-layer Gated PixelCNN (row-causal: this library's sampler then feeds only the rows so far),
    both with the logistic mixture.
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, n_scales: int = 2,
                 prior: dict | None = None, conditional: dict | None = None, embedding: dict | None = None):
        super().__init__(image_shape, num_levels, num_classes)
        c, h, w = self.image_shape
        if int(n_scales) != n_scales or n_scales < 1:
            raise ConfigError(f"pyramid_pixelcnn: n_scales must be a positive integer, got {n_scales!r}")
        self.n_scales = n = int(n_scales)
        if h % 2 ** n or w % 2 ** n:
            raise ConfigError(f"pyramid_pixelcnn: a {h}x{w} image cannot be halved {n} times exactly")
        #: (C, H, W) of level l (0 = the image, n = the lowest resolution)
        self.level_shapes = [(c, h >> l, w >> l) for l in range(n + 1)]
        self.view = Downsample2xView()
        parts = {"prior": _build_ar(_spec(prior, PYRAMID_PRIOR, "prior"), self.level_shapes[n], self.num_levels,
                                    self.num_classes, "prior")}
        cond_spec = _spec(conditional, PYRAMID_CONDITIONAL, "conditional")
        emb_spec = _spec(embedding, PYRAMID_EMBEDDING, "embedding")
        for k in range(1, n + 1):
            name = f"scale_{k}"
            emb = _build_embedding(emb_spec, c, self.num_levels, 1, name)
            ar = _build_ar(cond_spec, self.level_shapes[n - k], self.num_levels, self.num_classes, name,
                           spatial_channels=int(emb_spec["out_channels"]))
            parts[name] = ViewConditional(ar, emb, Downsample2xView())
        self.parts = nn.ModuleDict(parts)
        self.stages = [list(parts)]

    def part_level(self, name: str) -> int:
        """The level a part models: ``prior`` the lowest (n_scales), ``scale_k`` level n_scales - k."""
        if name == "prior":
            return self.n_scales
        if name.startswith("scale_") and name in self.parts:
            return self.n_scales - int(name[6:])
        raise ConfigError(f"unknown part {name!r}; parts: {self.part_names}")

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``pixelzoo.views.pyramid(x, n_scales)``: the image, then each lower resolution."""
        out = [x.long()]
        for _ in range(self.n_scales):
            out.append(self.view(out[-1]))
        return out

    def part_data(self, name, splits, cache_dir=None):
        from ..data import DataSplits, ImageDataset

        self._check_splits(splits)
        level = self.part_level(name)

        def at(images, l):
            def down(x):
                for _ in range(l):
                    x = downsample2x(x)
                return x
            return images if l == 0 else _map_chunks(down, images)

        def split(d, test):
            extras = {"cond": at(d.images, level + 1)} if test and name != "prior" else {}
            tag = "" if level == 0 else "/{}x{}".format(*self.level_shapes[level][1:])
            return ImageDataset(d.name + tag, at(d.images, level), d.labels, d.num_levels, d.num_classes, d.source,
                                extras=extras)

        return DataSplits(split(splits.train, False), split(splits.test, True))

    def log_prob_parts(self, x, y=None):
        lv = self.levels(x)
        n = self.n_scales
        out = {"prior": self.parts["prior"].log_prob(lv[n], y).flatten(1).sum(1)}
        for k in range(1, n + 1):
            out[f"scale_{k}"] = self.parts[f"scale_{k}"].log_prob(lv[n - k], y, cond=lv[n - k + 1]).flatten(1).sum(1)
        return out

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

    def _upscale_from(self, low, level, n, y, temps, ho, generator, progress, return_levels):
        out = [low]
        for k in range(self.n_scales - level + 1, self.n_scales + 1):
            name = f"scale_{k}"
            out.append(self.parts[name].sample(n, y=y, cond=out[-1], temperature=temps[name], head_options=ho[name],
                                               generator=generator, progress=progress))
        return out if return_levels else out[-1]

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature=1.0, head_options: dict | None = None,
               generator: torch.Generator | None = None, progress: bool = False, known=None, mask=None,
               return_levels: bool = False):
        """``n`` images, from the lowest resolution up. ``return_levels``: every level, lowest first."""
        self._no_inpainting(known, mask)
        temps, ho = self._sampling_options(temperature, head_options)
        low = self.parts["prior"].sample(n, y=y, temperature=temps["prior"], head_options=ho["prior"],
                                         generator=generator, progress=progress)
        return self._upscale_from(low, self.n_scales, n, y, temps, ho, generator, progress, return_levels)

    def level_grid(self, n: int, **sample_options) -> list:
        """[(level, num_levels), ...] of ``n`` samples from the lowest resolution up (the paper's Fig. 6)."""
        return [(x, self.num_levels) for x in self.sample(n, return_levels=True, **sample_options)]

    @torch.no_grad()
    def upscale(self, low: torch.Tensor, n_per_image: int = 1, y=None, temperature=1.0,
                head_options: dict | None = None, generator: torch.Generator | None = None, progress: bool = False,
                return_levels: bool = False):
        """Sample the levels above a given one: ``low`` (B, C, h, w) at any resolution of the pyramid
        below the image's -> (B * n_per_image, C, H, W) (``return_levels``: the list of levels from
        ``low``'s resolution up, ``low`` repeated first). Options per part as in ``sample``."""
        if not isinstance(low, torch.Tensor) or low.dim() != 4:
            raise ConfigError(f"upscale: expected images (B, C, h, w), got {tuple(getattr(low, 'shape', ()))}")
        shapes = [tuple(s) for s in self.level_shapes]
        if tuple(low.shape[1:]) not in shapes[1:]:
            raise ConfigError(f"upscale: images of shape {tuple(low.shape[1:])} are not a lower level of this pyramid; "
                              f"levels: {shapes[1:]}")
        level = shapes.index(tuple(low.shape[1:]))
        self._check_images(low, shapes[level], self.num_levels, "upscale")
        if int(n_per_image) != n_per_image or n_per_image < 1:
            raise ConfigError(f"n_per_image must be a positive integer, got {n_per_image!r}")
        b = low.shape[0]
        names = [f"scale_{k}" for k in range(self.n_scales - level + 1, self.n_scales + 1)]
        temps, ho = self._sampling_options(temperature, head_options, names)
        low = low.long().repeat_interleave(n_per_image, dim=0)
        return self._upscale_from(low, level, b * n_per_image, _repeat_labels(y, b, n_per_image), temps, ho,
                                  generator, progress, return_levels)


@register_model("grayscale_pixelcnn")
def build_grayscale_pixelcnn(image_shape, num_levels, num_classes=None, **hparams) -> GrayscalePixelCNN:
    return GrayscalePixelCNN(image_shape, num_levels, num_classes, **hparams)


@register_model("pyramid_pixelcnn")
def build_pyramid_pixelcnn(image_shape, num_levels, num_classes=None, **hparams) -> PyramidPixelCNN:
    return PyramidPixelCNN(image_shape, num_levels, num_classes, **hparams)
