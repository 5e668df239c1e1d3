"""Scoring new images with a trained model: bits per dimension per image, each part's share for a
chain, the ELBO and the IWAE bound for a latent-variable model (AGAVE), per-pixel surprise maps, and
the AUROC of telling two sets apart by their scores (likelihood-based out-of-distribution detection).

A class-conditional model scores an image without its label by default: log p(x) = log sum_c p(c)
p(x | c) with a uniform p(c) (one pass per class), so that a labelled set and an unlabelled one are
scored alike; ``use_labels`` conditions on given labels instead. For a latent-variable model the
mixture is taken over the per-class bounds (a bound on the marginal, as each term is one).

Images that do not match the model (size, channels, levels) are a ConfigError naming what the model
expects; :func:`fit_images` converts them (nearest-level requantisation, BT.601 luma or channel
replication, area/bilinear resizing) when asked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..devices import module_device, to_device
from ..errors import ConfigError
from ..models.base import ImportanceWeighted, has_likelihood
from ..models.chain import Chain
from ..nn.modes import eval_mode
from ..views import BT601, quantize
from .bounds import elbo, iwae_bound


def describe_images(shape, levels: int) -> str:
    return f"{shape[0]}x{shape[1]}x{shape[2]} (channels x height x width) with {levels} levels"


def fit_images(x: torch.Tensor, levels: int, shape, model_levels: int, fit: bool = False,
               fit_option: str = "pass --fit") -> torch.Tensor:
    """``x`` (N, C, H, W) integer images in [0, ``levels``) as the model takes them: (N, *shape) in
    [0, ``model_levels``). Unless ``fit``, any difference is a ConfigError naming both (and saying
    ``fit_option``, how to ask for the conversion); with ``fit``:
    levels requantised (floor(v * K' / K) down, or the nearest level up), 3 channels to 1 by BT.601
    luma and 1 to 3 by replication, then resized to the model's size (area averaging down, bilinear
    up, then rounded)."""
    shape = tuple(int(s) for s in shape)
    got = tuple(x.shape[1:])
    if got == shape and levels == model_levels:
        return x.long()
    if not fit:
        raise ConfigError(f"the images are {describe_images(got, levels)}; the model takes "
                          f"{describe_images(shape, model_levels)}: {fit_option} to convert them")
    x = x.long()
    if got[0] != shape[0]:
        if got[0] == 3 and shape[0] == 1:
            r, g, b = BT601
            x = (r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3] + 500) // 1000
        elif got[0] == 1 and shape[0] == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise ConfigError(f"cannot convert {got[0]} channels to the model's {shape[0]} (only 1 <-> 3)")
    if tuple(x.shape[2:]) != shape[1:]:
        v = x.double()
        down = shape[1] <= x.shape[2] and shape[2] <= x.shape[3]
        v = F.interpolate(v, size=shape[1:], mode="area") if down else \
            F.interpolate(v, size=shape[1:], mode="bilinear", align_corners=False)
        x = v.round().clamp(0, levels - 1).long()
    if levels > model_levels:
        x = quantize(x, levels, model_levels)
    elif levels < model_levels:
        x = ((x.double() + 0.5) * model_levels / levels).floor().clamp(0, model_levels - 1).long()
    return x


def _check_scorable(model) -> None:
    if not (has_likelihood(model) or isinstance(model, ImportanceWeighted)):
        raise ConfigError(f"{type(model).__name__} has no likelihood and no bound to score images by (PixelIQN's "
                          "quantiles and VQ-VAE-2's or De Fauw's decoders give no density); score with a likelihood model")


def _labels_for(model, y, use_labels: bool, n: int) -> list:
    """The label tensors to score under: [y] (given labels), [None] (unconditional), or one full
    tensor per class (to marginalise over a uniform prior)."""
    if not model.num_classes:
        return [None]
    if use_labels:
        if y is None:
            raise ConfigError("these images come without labels: leave out --use-labels to score them with the "
                              f"labels marginalised (the model is class-conditional, {model.num_classes} classes)")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
            raise ConfigError(f"labels must lie in [0, {model.num_classes}) for this model")
        return [y]
    return [torch.full((n,), c, dtype=torch.long) for c in range(model.num_classes)]


def _marginal(per_class: list[torch.Tensor]) -> torch.Tensor:
    """log (1/C) sum_c exp(v_c), elementwise over the stacked per-class values."""
    stacked = torch.stack(per_class)
    return torch.logsumexp(stacked, 0) - math.log(stacked.shape[0])


@torch.no_grad()
def score_images(model, x: torch.Tensor, y: torch.Tensor | None = None, use_labels: bool = False,
                 batch_size: int = 64, samples: int = 16, seed: int = 0, progress: bool = False) -> dict:
    """Scores of each image of ``x`` (N, *model.image_shape) in bits per dimension, as float64 tensors (N,):

    * a likelihood model: ``bpd`` (exact for an autoregressive model; for a chain -log2 p(x, levels
      above) / dims, an upper bound) and, for a chain, ``bpd_<part>`` each part's share (they add
      up to ``bpd`` under one label: the given one, or for a marginalised class-conditional chain
      each image's most likely class, whose total exceeds the marginal by at most log2(C) / dims);
    * a latent-variable model (AGAVE): ``elbo_bpd`` and ``iwae_bpd`` from the same ``samples``
      draws of q(z | x) per image, and ``bpd`` = ``iwae_bpd`` (the tighter bound).
    """
    _check_scorable(model)
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(model.image_shape):
        raise ConfigError(f"expected images of shape (N, {', '.join(map(str, model.image_shape))}), got {tuple(x.shape)}")
    n = x.shape[0]
    if n < 1:
        raise ConfigError("no images to score")
    if int(samples) != samples or samples < 1:
        raise ConfigError(f"the number of importance samples must be a positive integer, got {samples!r}")
    labels = _labels_for(model, y, use_labels, n)
    device = module_device(model)
    dims = math.prod(model.image_shape) * math.log(2.0)
    latent = isinstance(model, ImportanceWeighted)  # its bounds, not the chain's log p(x, levels) at one z
    out: dict[str, list] = {}
    g = torch.Generator(device=device).manual_seed(seed)
    with eval_mode(model):
        for start in tqdm(range(0, n, batch_size), desc="score", disable=not progress, leave=False):
            xb = to_device(x[start:start + batch_size].long(), device)
            terms: dict[str, list] = {}
            for lab in labels:
                yb = None if lab is None else to_device(lab[start:start + batch_size], device)
                if latent:
                    log_w = model.log_weights(xb, int(samples), yb, generator=g).double()
                    values = {"elbo": elbo(log_w), "iwae": iwae_bound(log_w)}
                elif isinstance(model, Chain):
                    values = {k: v.double() for k, v in model.log_prob_parts(xb, yb).items()}
                else:
                    values = {"": model.log_prob(xb, yb).double().flatten(1).sum(1)}
                for k, v in values.items():
                    terms.setdefault(k, []).append(v.cpu())
            if latent:
                batch = {"elbo_bpd": -_marginal(terms["elbo"]) / dims, "iwae_bpd": -_marginal(terms["iwae"]) / dims}
                batch["bpd"] = batch["iwae_bpd"]
            else:
                total = torch.stack([sum(parts) for parts in zip(*terms.values())])  # (labels, B): log p(x, levels | c)
                batch = {"bpd": -_marginal(list(total)) / dims}
                if "" not in terms:  # a chain: each part's share under the given labels or the most likely class
                    best = total.argmax(0)
                    for k, v in terms.items():
                        batch[f"bpd_{k}"] = -torch.stack(v)[best, torch.arange(len(best))] / dims
            for k, v in batch.items():
                out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def surprise_maps(model, x: torch.Tensor, y: torch.Tensor | None = None, use_labels: bool = False,
                  batch_size: int = 64) -> torch.Tensor:
    """-log2 p of each pixel given the pixels before it (its sub-pixels summed), (N, H, W) float64:
    where the model is surprised. An autoregressive model's own conditionals; for a chain, those of
    the part that models the image given the levels above. A class-conditional model uses the given
    labels with ``use_labels``, else each image's most likely class."""
    _check_scorable(model)
    if isinstance(model, ImportanceWeighted):
        raise ConfigError(f"{type(model).__name__} is a latent-variable model: its pixels have no exact "
                          "conditionals to map (score gives its ELBO and IWAE bound)")
    n = x.shape[0]
    labels = _labels_for(model, y, use_labels, n)
    device = module_device(model)
    maps = []
    with eval_mode(model):
        for start in range(0, n, batch_size):
            xb = to_device(x[start:start + batch_size].long(), device)
            per_label = []
            for lab in labels:
                yb = None if lab is None else to_device(lab[start:start + batch_size], device)
                if isinstance(model, Chain):
                    lp = model.log_prob_maps(xb, yb)[model.links[model.level_order[0]].part]
                else:
                    lp = model.log_prob(xb, yb)
                per_label.append(lp.double().cpu())
            if len(per_label) > 1:  # each image's most likely class
                best = torch.stack([p.flatten(1).sum(1) for p in per_label]).argmax(0)
                lp = torch.stack(per_label)[best, torch.arange(len(best))]
            else:
                lp = per_label[0]
            maps.append(-lp.sum(1) / math.log(2.0))
    return torch.cat(maps)
