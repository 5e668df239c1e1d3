"""Classifier-based rejection sampling (VQ-VAE-2, Razavi et al. 2019, sec. 3.3): trade diversity for
quality by keeping the samples a pre-trained classifier finds most typical of the class they were
drawn for.

Each candidate drawn for class ``c`` is scored by the probability the classifier gives ``c`` (for an
unconditional model: the classifier's top probability, its confidence). Then either

* ``acceptance=r``: for each class, ``ceil(n_c / r)`` candidates are drawn and the ``n_c`` best kept
  (the ranking is per class, so the classes stay balanced), or
* ``threshold=p``: candidates are drawn until ``n_c`` of each class score at least ``p`` (or a
  candidate budget runs out).

The classifier is any network with a ``probs`` or ``logits`` method (pixelzoo's evaluation
classifiers have both), or any callable mapping a batch of integer images (B, C, H, W) to logits or
probabilities (B, classes); the model is anything with ``sample(n, y=..., ...)``.

The sweep over acceptance rates with its sample metrics (the paper's Fig. 7) is a command:
``pixelzoo.commands.rejection_sweep``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..nn.modes import eval_mode
from .labels import expand_labels

OUTPUTS = ("auto", "probs", "logits")


# --------------------------------------------------------------------------------------- scoring
def _score_fn(classifier, outputs: str):
    """(callable images -> (B, classes) tensor, whether it returns probabilities or None to detect)."""
    if outputs not in OUTPUTS:
        raise ConfigError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    probs, logits = getattr(classifier, "probs", None), getattr(classifier, "logits", None)
    if outputs in ("auto", "probs") and callable(probs):
        return probs, True
    if outputs in ("auto", "logits") and callable(logits):
        return logits, False
    if not callable(classifier):
        raise ConfigError(f"the classifier must be callable or have a probs/logits method, got {type(classifier).__name__}")
    return classifier, {"auto": None, "probs": True, "logits": False}[outputs]


def _to_probs(out: torch.Tensor, is_probs: bool | None) -> torch.Tensor:
    out = out.double()
    if is_probs is None:  # a bare callable: probabilities if every row is a distribution, else logits
        is_probs = bool(((out >= 0) & (out <= 1)).all()) and bool(torch.allclose(out.sum(-1), torch.ones_like(out[:, 0]), atol=1e-4))
    return out if is_probs else out.softmax(-1)


@torch.no_grad()
def class_probabilities(classifier, images: torch.Tensor, batch_size: int = 256, outputs: str = "auto") -> torch.Tensor:
    """Class probabilities (N, classes) float64 of integer ``images`` (N, C, H, W), batched, with
    dropout off (``outputs``: "auto", "probs" or "logits", for a bare callable)."""
    fn, is_probs = _score_fn(classifier, outputs)
    module = classifier if isinstance(classifier, nn.Module) else getattr(fn, "__self__", None)
    device = torch.device("cpu")
    if isinstance(module, nn.Module):
        p = next(module.parameters(), None)
        device = p.device if p is not None else device
    parts = []
    with eval_mode(module):
        for s in range(0, images.shape[0], batch_size):
            out = torch.as_tensor(fn(images[s:s + batch_size].long().to(device)))
            if out.dim() != 2 or out.shape[0] != min(batch_size, images.shape[0] - s):
                raise ConfigError(f"the classifier must map B images to (B, classes), got {tuple(out.shape)}")
            parts.append(_to_probs(out, is_probs).cpu())
    return torch.cat(parts)


def class_scores(classifier, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256,
                 outputs: str = "auto") -> torch.Tensor:
    """The rejection score of each image, (N,) float64: the probability of its intended class
    ``labels[i]``, or without labels the top class probability."""
    p = class_probabilities(classifier, images, batch_size, outputs)
    if labels is None:
        return p.max(-1).values
    labels = torch.as_tensor(labels).long()
    if labels.shape != (images.shape[0],) or int(labels.max()) >= p.shape[1] or int(labels.min()) < 0:
        raise ConfigError(f"labels must be ({images.shape[0]},) classes in [0, {p.shape[1]}) of the classifier")
    return p.gather(1, labels[:, None])[:, 0]


def select_best(scores: torch.Tensor, labels: torch.Tensor | None, keep: dict) -> torch.Tensor:
    """Indices of the candidates to keep: for each class ``c`` in ``keep`` the ``keep[c]`` highest
    ``scores`` among candidates labelled ``c`` (``labels`` None: key None, all candidates), best
    first within each class, classes in the order of ``keep``; ties go to the earlier candidate."""
    chosen = []
    for c, k in keep.items():
        idx = torch.arange(scores.shape[0]) if labels is None else (labels == c).nonzero().flatten()
        if idx.numel() < k:
            raise ConfigError(f"class {c}: {k} to keep but only {idx.numel()} candidates")
        order = torch.sort(-scores[idx], stable=True).indices[:k]
        chosen.append(idx[order])
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)


# --------------------------------------------------------------------------------------- sampling
def requested_labels(model, n: int, y) -> torch.Tensor | None:
    classes = model.num_classes
    if y is None:
        return torch.arange(n) % classes if classes else None
    if not classes:
        raise ConfigError("the model is not class-conditional: rejection scores by classifier confidence; pass y=None")
    y = expand_labels(y, n)
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise ConfigError(f"y must be a class or ({n},) classes in [0, {classes})")
    return y


def draw_candidates(model, labels: torch.Tensor | None, count: int, batch_size: int, temperature=1.0,
                    generator=None, progress: bool = False, desc: str = "candidates", **sample_kwargs) -> torch.Tensor:
    """``count`` samples (labels[i] for candidate i when given), drawn ``batch_size`` at a time; long."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    parts = []
    for s in tqdm(range(0, count, batch_size), desc=desc, disable=not progress, leave=False):
        e = min(count, s + batch_size)
        y = None if labels is None else labels[s:e]
        parts.append(model.sample(e - s, y=y, temperature=temperature, generator=generator, **sample_kwargs).long().cpu())
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


@dataclass
class RejectionResult:
    """Accepted ``images`` (long), their ``labels`` (None for an unconditional model) and ``scores``;
    how many ``candidates`` were drawn, the realised ``acceptance_rate``, and every candidate's score
    and label (``candidate_scores``, ``candidate_labels``). ``complete`` is False when a threshold
    run hit its candidate budget with fewer than n accepted."""

    images: torch.Tensor
    labels: torch.Tensor | None
    scores: torch.Tensor
    candidates: int
    acceptance_rate: float
    candidate_scores: torch.Tensor
    candidate_labels: torch.Tensor | None
    threshold: float | None = None
    complete: bool = True
    candidate_images: torch.Tensor | None = field(default=None, repr=False)


def class_counts(labels: torch.Tensor | None, n: int) -> dict:
    if labels is None:
        return {None: n}
    return {int(c): int((labels == c).sum()) for c in torch.unique(labels)}


def in_request_order(labels, picked_idx, picked_labels) -> torch.Tensor:
    """Reorder accepted candidates so that position i holds one of class labels[i]."""
    if labels is None:
        return picked_idx
    pools = {int(c): list(picked_idx[picked_labels == c]) for c in torch.unique(picked_labels)}
    return torch.stack([pools[int(c)].pop(0) for c in labels]) if labels.numel() else picked_idx


@torch.no_grad()
def rejection_sample(model, n: int, classifier, y=None, *, acceptance: float | None = None, threshold: float | None = None,
                     batch_size: int = 64, max_candidates: int | None = None, temperature=1.0,
                     generator: torch.Generator | None = None, progress: bool = False, outputs: str = "auto",
                     keep_candidates: bool = False, **sample_kwargs) -> RejectionResult:
    """``n`` samples of ``model`` kept by classifier-based rejection (see the module docstring).

    Give exactly one of ``acceptance`` (in (0, 1]: keep the best fraction per class) or ``threshold``
    (keep candidates whose score is >= it; at most ``max_candidates``, default 100 n, are drawn).
    ``y``: a class, (n,) classes, or None (balanced ``i % num_classes``; unconditional models: None).
    With ``keep_candidates`` the result also holds every candidate image.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if (acceptance is None) == (threshold is None):
        raise ConfigError("give exactly one of acceptance (a fraction in (0, 1]) or threshold (a probability)")
    labels = requested_labels(model, n, y)
    need = class_counts(labels, n)
    if acceptance is not None:
        if not 0 < acceptance <= 1:
            raise ConfigError(f"acceptance must lie in (0, 1], got {acceptance}")
        per_class = {c: math.ceil(k / acceptance - 1e-9) for c, k in need.items()}
        cand_labels = None if labels is None else torch.cat([torch.full((m,), c) for c, m in per_class.items()])
        total = sum(per_class.values())
        images = draw_candidates(model, cand_labels, total, batch_size, temperature, generator, progress, **sample_kwargs)
        scores = class_scores(classifier, images, cand_labels, outputs=outputs)
        picked = select_best(scores, cand_labels, need)
        complete = True
    else:
        if not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        budget = max_candidates if max_candidates is not None else 100 * n
        imgs, scs, lbs = [], [], []
        accepted = {c: 0 for c in need}
        drawn = 0
        factor = 1
        while any(accepted[c] < need[c] for c in need) and drawn < budget:
            want = {c: (need[c] - accepted[c]) * factor for c in need if accepted[c] < need[c]}
            count = min(sum(want.values()), budget - drawn)
            lab = None if labels is None else torch.cat([torch.full((m,), c) for c, m in want.items()])[:count]
            x = draw_candidates(model, lab, count, batch_size, temperature, generator, progress, **sample_kwargs)
            s = class_scores(classifier, x, lab, outputs=outputs)
            imgs.append(x)
            scs.append(s)
            lbs.append(lab)
            drawn += count
            for c in need:
                ok = s >= threshold if lab is None else (s >= threshold) & (lab == c)
                accepted[c] += int(ok.sum())
            rate = sum(accepted.values()) / drawn
            factor = min(16, math.ceil(1.0 / rate)) if rate > 0 else min(16, factor * 2)
        images, scores = torch.cat(imgs), torch.cat(scs)
        cand_labels = None if labels is None else torch.cat(lbs)
        got = {c: min(need[c], int(((scores >= threshold) if cand_labels is None else
                                    (scores >= threshold) & (cand_labels == c)).sum())) for c in need}
        complete = got == need
        above = scores >= threshold
        picked = select_best(torch.where(above, scores, torch.full_like(scores, -1.0)), cand_labels, got)
        if not complete:
            print(f"pixelzoo: rejection sampling stopped at the budget of {budget} candidates with "
                  f"{sum(got.values())} of {n} accepted (threshold {threshold})", file=sys.stderr)
            labels = None if labels is None else torch.cat([torch.full((k,), c) for c, k in got.items()])
        total = drawn
    picked_labels = None if cand_labels is None else cand_labels[picked]
    order = in_request_order(labels, picked, picked_labels)
    return RejectionResult(
        images=images[order], labels=None if cand_labels is None else cand_labels[order], scores=scores[order],
        candidates=int(total), acceptance_rate=float(order.numel()) / max(int(total), 1),
        candidate_scores=scores, candidate_labels=cand_labels, threshold=threshold, complete=complete,
        candidate_images=images if keep_candidates else None)
