"""VQ-VAE-2 (Razavi et al. 2019) as a composite model: a hierarchical VQ-VAE (stage 1) and
autoregressive priors over its code maps (stage 2).

Parts (``stages = [["autoencoder"], [<level>_prior, ...]]``, priors top first):

* ``autoencoder``: :class:`~pixelzoo.models.vqvae.VQVAE2` (Algorithm 1), trained on the pixels.
* ``top_prior``: p(e_top | class), a PixelSNAIL-style model (gated causal convolutions, causal
  multi-head attention every ``attention_every`` blocks, dropout, a stack of 1x1 residual blocks on
  top, categorical head over the K codes) on the top code map (1, H_top, W_top).
* ``bottom_prior`` (and ``middle_prior`` with three levels, ``middle<i>_prior`` with more):
  p(e_l | e_above, class), a :class:`~pixelzoo.models.conditional.ConditionalAR` whose AR model is the
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
the maps above, pixels from the feed-forward decoder (class and temperature per level).

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

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

from ..registry import register_model
from ..data.dataset import DataSplits, ImageDataset, image_dtype_for
from ..errors import CheckpointError, ConfigError
from ..heads import create_head
from ..io import load_tensors, read_metadata, save_tensors
from ..nn import HorizontalConv, VerticalConv, feature_groups
from .autoregressive import AutoregressiveModel
from .composite import CompositeModel
from .conditional import ConditionalAR
from .pixelsnail import PixelSNAILTrunk, build_pixelsnail
from .vqvae import VQVAE2, ResidualStack, _log2

CODES_FILE = "vqvae2-codes.safetensors"
CODES_FORMAT = "pixelzoo-vqvae2-codes-1"

#: defaults of the top prior (PixelSNAIL-style, with attention)
TOP_PRIOR_DEFAULTS = dict(channels=64, n_blocks=4, kernel_size=3, attention_every=2, heads=2, key_channels=None,
                          value_channels=None, dropout=0.1, attention_dropout=None, out_res_blocks=2,
                          out_hidden=None, code_embedding=32)
#: defaults of a conditional (lower) prior: no attention, a deep conditioning stack
LOWER_PRIOR_DEFAULTS = dict(TOP_PRIOR_DEFAULTS, attention_every=0, out_res_blocks=0, cond_embedding=32,
                            cond_channels=64, cond_res_channels=32, cond_blocks=4, spatial_channels=32)
_COND_KEYS = ("cond_embedding", "cond_channels", "cond_res_channels", "cond_blocks", "spatial_channels")


# --------------------------------------------------------------------------------------- prior networks
class CodeEmbedding(nn.Module):
    """Code indices, given as an AR model's scaled input ``x_s = k * 2 / (K - 1) - 1`` (B, 1, H, W),
    -> learned vectors (B, dim, H, W).

    ``u = (x_s + 1) (K - 1) / 2`` is the index; the output is ``E[k] + (u - k) (E[k+1] - E[k])`` with
    ``k = floor(u)``: exactly row ``E[u]`` at integer codes, and differentiable in ``x_s`` (so the
    gradient-based causality checks see through it).
    """

    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ConfigError(f"a code embedding needs num_codes >= 2 and dim >= 1, got {num_codes}, {dim}")
        self.num_codes = int(num_codes)
        self.weight = nn.Parameter(torch.randn(num_codes, dim))

    def forward(self, x_scaled: torch.Tensor) -> torch.Tensor:
        u = (x_scaled[:, 0] + 1.0) * ((self.num_codes - 1) / 2.0)
        k = torch.floor(u.detach() + 1e-3).clamp(0, self.num_codes - 2).long()
        t = (u - k).unsqueeze(-1).to(self.weight.dtype)
        low = self.weight[k]
        e = low + t * (self.weight[k + 1] - low)
        return e.permute(0, 3, 1, 2)


class CodeSNAILTrunk(PixelSNAILTrunk):
    """The PixelSNAIL trunk over a code map: the code at each position is first embedded
    (:class:`CodeEmbedding`), and the two input layers read the ``code_embedding`` channels as one
    group (mask A: the current position is never seen). Everything else is ``PixelSNAILTrunk``."""

    def __init__(self, num_codes: int, code_embedding: int, channels: int = 64, kernel_size: int = 3, **kwargs):
        super().__init__(image_channels=1, channels=channels, kernel_size=kernel_size, **kwargs)
        self.embedding = CodeEmbedding(num_codes, code_embedding)
        self.in_v = VerticalConv(code_embedding, channels, kernel_size)
        self.in_h = HorizontalConv(code_embedding, channels, kernel_size, torch.zeros(code_embedding, dtype=torch.long),
                                   feature_groups(channels, 1), include_own=False)

    def forward(self, x, y=None, spatial=None):
        return super().forward(self.embedding(x), y, spatial)


def build_code_prior(code_shape, num_codes: int, num_classes=None, spatial_channels: int = 0, code_embedding=32,
                     out_hidden=None, **trunk) -> AutoregressiveModel:
    """An autoregressive model over a (1, H, W) map of ``num_codes`` codes: ``CodeSNAILTrunk`` +
    categorical head, or exactly ``build_pixelsnail`` when ``code_embedding`` is 0/None."""
    shape = (1, *(int(s) for s in code_shape))
    if not code_embedding:
        return build_pixelsnail(shape, num_codes, num_classes, spatial_channels=spatial_channels,
                                out_hidden=out_hidden, **trunk)
    body = CodeSNAILTrunk(num_codes, int(code_embedding), num_classes=num_classes, spatial_channels=spatial_channels,
                          **trunk)
    head = create_head("categorical", num_codes, 1)
    return AutoregressiveModel(body, head, shape, num_codes, num_classes, spatial_channels, out_hidden)


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
        for s in range(_log2(factor)):
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
        if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= self.num_codes):
            raise ConfigError(f"cond codes must lie in [0, {self.num_codes}), got [{int(cond.min())}, {int(cond.max())}]")
        return torch.cat([emb(cond[:, i]).permute(0, 3, 1, 2) for i, emb in enumerate(self.embeddings)], dim=1)

    def from_embedded(self, e: torch.Tensor) -> torch.Tensor:
        """The stack after the embedding (differentiable in ``e``; the tests take gradients here)."""
        return self.out(self.up(self.res(self.inp(e))))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.from_embedded(self.embed(cond))


# --------------------------------------------------------------------------------------- the composite
def _check_options(cfg: dict | None, defaults: dict, what: str) -> dict:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {unknown}; valid: {sorted(defaults)}")
    return {**defaults, **cfg}


class VQVAE2Model(CompositeModel):
    """VQ-VAE-2: hierarchical VQ-VAE + one autoregressive prior per code map (see the module docstring).

    Args:
        image_shape, num_levels, num_classes: the data (the priors are class-conditional when
            ``num_classes`` is given; the autoencoder never is).
        autoencoder: options of :class:`~pixelzoo.models.vqvae.VQVAE2` (``levels``, ``num_codes``, ...).
        top_prior: options of the top prior (``TOP_PRIOR_DEFAULTS``).
        bottom_prior, middle_prior, middle<i>_prior: options of the conditional priors
            (``LOWER_PRIOR_DEFAULTS``: the trunk's, plus the conditioning stack's ``cond_*`` and
            ``spatial_channels``).
    """

    def __init__(self, image_shape, num_levels: int, num_classes: int | None = None, autoencoder: dict | None = None,
                 top_prior: dict | None = None, bottom_prior: dict | None = None, middle_prior: dict | None = None,
                 **level_priors):
        super().__init__()
        ae_cfg = dict(autoencoder or {})
        if "num_classes" in ae_cfg or "image_shape" in ae_cfg or "num_levels" in ae_cfg:
            raise ConfigError("autoencoder options must not set image_shape, num_levels or num_classes (they come from the data)")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_levels = int(num_levels)
        self.num_classes = int(num_classes) if num_classes else None
        ae = VQVAE2(self.image_shape, self.num_levels, **ae_cfg)
        self.level_names: list[str] = list(ae.names)          # top first
        self.code_shapes: list[tuple[int, int]] = ae.code_shapes()  # top first
        self.num_codes = ae.num_codes
        self.prior_names = [f"{n}_prior" for n in self.level_names]
        given = {"top_prior": top_prior, "bottom_prior": bottom_prior, "middle_prior": middle_prior, **level_priors}
        stray = sorted(k for k, v in given.items() if v is not None and k not in self.prior_names)
        if stray:
            raise ConfigError(f"option(s) {stray} do not apply: this model's levels are {self.level_names}, "
                              f"its priors {self.prior_names}")
        parts: dict[str, nn.Module] = {"autoencoder": ae}
        for l, name in enumerate(self.prior_names):
            if l == 0:
                cfg = _check_options(given.get(name), TOP_PRIOR_DEFAULTS, name)
                parts[name] = build_code_prior(self.code_shapes[0], self.num_codes, self.num_classes, **cfg)
                continue
            cfg = _check_options(given.get(name), LOWER_PRIOR_DEFAULTS, name)
            cond = {k: cfg.pop(k) for k in _COND_KEYS}
            above, here = self.code_shapes[l - 1], self.code_shapes[l]
            net = ConditioningStack(self.num_codes, l, above, here[0] // above[0], cond["cond_embedding"],
                                    cond["cond_channels"], cond["cond_res_channels"], cond["cond_blocks"],
                                    cond["spatial_channels"])
            ar = build_code_prior(here, self.num_codes, self.num_classes, spatial_channels=cond["spatial_channels"], **cfg)
            parts[name] = ConditionalAR(ar, net)
        self.parts = nn.ModuleDict(parts)
        self.stages = [["autoencoder"], list(self.prior_names)]
        self.last_codes_source: str | None = None   # "computed", "cache" or "memory": where part_data got the codes
        self._codes_memo: tuple[str, dict] | None = None

    @property
    def autoencoder(self) -> VQVAE2:
        return self.parts["autoencoder"]

    # ------------------------------------------------------------------ codes
    def condition(self, codes_above: list[torch.Tensor], level: int) -> torch.Tensor:
        """The ``cond`` of level ``level`` (top = 0): the code maps of levels ``< level`` (each (B, H_j, W_j),
        top first), nearest-upsampled to the resolution of level ``level - 1``, stacked (B, level, H, W)."""
        if level < 1 or len(codes_above) != level:
            raise ConfigError(f"level {level} is conditioned on the {level} code map(s) above it, got {len(codes_above)}")
        h, w = self.code_shapes[level - 1]
        maps = []
        for j, c in enumerate(codes_above):
            if c.dim() == 4 and c.shape[1] == 1:
                c = c[:, 0]
            hj, wj = self.code_shapes[j]
            if tuple(c.shape[1:]) != (hj, wj):
                raise ConfigError(f"code map of level {self.level_names[j]} must be (B, {hj}, {wj}), got {tuple(c.shape)}")
            maps.append(c.repeat_interleave(h // hj, dim=1).repeat_interleave(w // wj, dim=2))
        return torch.stack(maps, dim=1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Code maps (B, H_l, W_l) long, top first (the autoencoder in eval mode; codebooks unchanged)."""
        ae = self.autoencoder
        was_training = ae.training
        ae.eval()
        try:
            return ae.encode(x)
        finally:
            ae.train(was_training)

    @torch.no_grad()
    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Code maps, top first ((B, H, W) or (B, 1, H, W)) -> integer images (B, C, H, W) long."""
        ae = self.autoencoder
        maps = [c[:, 0] if c.dim() == 4 else c for c in codes]
        was_training = ae.training
        ae.eval()
        try:
            return ae.to_levels(ae.decode_codes([m.long() for m in maps]))
        finally:
            ae.train(was_training)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> codes -> images, (B, C, H, W) long in [0, K)."""
        return self.decode(self.encode(x))

    def codes_fingerprint(self, splits) -> str:
        """SHA-256 of the autoencoder's weights and buffers, of the code format and of the data
        (names, images, labels): the key of the code cache."""
        h = hashlib.sha256()
        h.update(CODES_FORMAT.encode())
        for key, value in sorted(self.autoencoder.state_dict().items()):
            v = value.detach().cpu().contiguous()
            h.update(f"{key}|{v.dtype}|{tuple(v.shape)}".encode())
            h.update((v.float() if v.dtype == torch.bfloat16 else v).numpy().tobytes())
        for split, d in (("train", splits.train), ("test", splits.test)):
            h.update(f"{split}|{d.name}|{tuple(d.images.shape)}|{d.images.dtype}|{d.num_levels}".encode())
            h.update(d.images.contiguous().numpy().tobytes())
            if d.labels is not None:
                h.update(d.labels.contiguous().numpy().tobytes())
        return h.hexdigest()

    @torch.no_grad()
    def _extract(self, images: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
        dtype = image_dtype_for(self.num_codes)
        out: list[list[torch.Tensor]] = [[] for _ in self.level_names]
        device = next(self.autoencoder.parameters()).device
        for s in range(0, images.shape[0], batch_size):
            for l, c in enumerate(self.encode(images[s:s + batch_size].long().to(device))):
                out[l].append(c.to("cpu", dtype))
        return [torch.cat(parts) for parts in out]

    def codes_for(self, splits, cache_dir=None) -> dict[str, list[torch.Tensor]]:
        """``{"train": [maps top first], "test": [...]}``, code maps (N, H_l, W_l) of the smallest dtype
        holding ``num_codes``: from memory, from ``cache_dir/vqvae2-codes.safetensors`` when its
        fingerprint matches, else computed with the encoder (eval mode) and cached there.
        ``last_codes_source`` says which."""
        fp = self.codes_fingerprint(splits)
        if self._codes_memo is not None and self._codes_memo[0] == fp:
            self.last_codes_source = "memory"
            return self._codes_memo[1]
        path = Path(cache_dir) / CODES_FILE if cache_dir is not None else None
        codes = self._read_cache(path, fp, splits) if path is not None and path.is_file() else None
        if codes is not None:
            self.last_codes_source = "cache"
        else:
            n_train, n_test = len(splits.train), len(splits.test)
            where = f"; cached in {path}" if path is not None else ""
            print(f"pixelzoo: encoding {n_train} training and {n_test} test images into VQ codes (once{where})",
                  file=sys.stderr)
            codes = {"train": self._extract(splits.train.images), "test": self._extract(splits.test.images)}
            if path is not None:
                tensors = {f"{split}.{name}": c for split, maps in codes.items() for name, c in zip(self.level_names, maps)}
                save_tensors(tensors, path, {"format": CODES_FORMAT, "fingerprint": fp,
                                             "levels": json.dumps(self.level_names),
                                             "train": splits.train.name, "test": splits.test.name})
            self.last_codes_source = "computed"
        self._codes_memo = (fp, codes)
        return codes

    def _read_cache(self, path: Path, fp: str, splits) -> dict | None:
        try:
            meta = read_metadata(path)
            if meta.get("format") != CODES_FORMAT or meta.get("fingerprint") != fp:
                return None   # another autoencoder or data set: recompute (and overwrite)
            tensors = load_tensors(path)
            codes = {}
            for split, d in (("train", splits.train), ("test", splits.test)):
                maps = []
                for name, shape in zip(self.level_names, self.code_shapes):
                    c = tensors[f"{split}.{name}"]
                    if tuple(c.shape) != (len(d), *shape):
                        return None
                    maps.append(c)
                codes[split] = maps
            return codes
        except (CheckpointError, KeyError) as e:
            print(f"pixelzoo: ignoring unreadable code cache {path} ({e}); recomputing", file=sys.stderr)
            return None

    def part_data(self, name: str, splits, cache_dir=None):
        """Stage 1 trains on the images; a prior on the code map of its level (``extras["cond"]``: the
        levels above, see :meth:`condition`), extracted once and cached in ``cache_dir``."""
        if name == "autoencoder":
            return splits
        if name not in self.prior_names:
            raise ConfigError(f"unknown part {name!r}; this model's parts are {self.part_names}")
        level = self.prior_names.index(name)
        codes = self.codes_for(splits, cache_dir)
        source = f"VQ codes ({self.level_names[level]} level) of {{}} by the run's trained autoencoder"

        def dataset(d, maps):
            extras = {"cond": self.condition(maps[:level], level)} if level else {}
            return ImageDataset(f"{d.name}/codes-{self.level_names[level]}", maps[level][:, None], d.labels,
                                self.num_codes, d.num_classes, source.format(d.name), extras=extras)

        return DataSplits(dataset(splits.train, codes["train"]), dataset(splits.test, codes["test"]))

    # ------------------------------------------------------------------ sampling
    def temperatures(self, temperature) -> dict[str, float]:
        """A float (every prior) or a dict ``{prior name: t}`` (missing priors: 1.0) -> one per prior."""
        if isinstance(temperature, dict):
            unknown = sorted(set(temperature) - set(self.prior_names))
            if unknown:
                raise ConfigError(f"temperatures for unknown prior(s) {unknown}; the priors are {self.prior_names}")
            out = {n: float(temperature.get(n, 1.0)) for n in self.prior_names}
        else:
            out = {n: float(temperature) for n in self.prior_names}
        bad = {n: t for n, t in out.items() if not t >= 0}
        if bad:
            raise ConfigError(f"temperatures must be >= 0, got {bad}")
        return out

    @torch.no_grad()
    def sample_codes(self, n: int, y=None, temperature=1.0, generator: torch.Generator | None = None,
                     progress: bool = False) -> list[torch.Tensor]:
        """Ancestral sampling of the code maps, top first, each (n, H_l, W_l) long."""
        temps = self.temperatures(temperature)
        maps: list[torch.Tensor] = []
        for level, name in enumerate(self.prior_names):
            prior = self.parts[name]
            kw = dict(y=y, temperature=temps[name], generator=generator, progress=progress)
            if level:
                kw["cond"] = self.condition(maps, level)
            maps.append(prior.sample(n, **kw)[:, 0])
        return maps

    @torch.no_grad()
    def sample(self, n: int, y=None, temperature=1.0, generator: torch.Generator | None = None,
               progress: bool = False, known=None, mask=None, return_codes: bool = False):
        """``n`` images (n, C, H, W) long: codes from the priors (top down; class ``y``, a scalar or
        (n,) labels; ``temperature`` a float or ``{prior name: t}``), decoded by the decoder. With
        ``return_codes`` also the code maps (top first)."""
        if known is not None or mask is not None:
            raise ConfigError("VQ-VAE-2 samples codes, not pixels: inpainting with a known-pixel mask is not supported")
        maps = self.sample_codes(n, y, temperature, generator, progress)
        x = self.decode(maps)
        return (x, maps) if return_codes else x


@register_model("vqvae2")
def build_vqvae2_model(image_shape, num_levels, num_classes=None, **hparams) -> VQVAE2Model:
    """Builder with the registry's signature ``(image_shape, num_levels, num_classes, **hparams)``."""
    return VQVAE2Model(image_shape, num_levels, num_classes, **hparams)
