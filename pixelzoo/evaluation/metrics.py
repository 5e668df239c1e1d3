"""Sample-quality metrics computed on feature arrays.

Every function takes numpy arrays or torch tensors (any device, any real dtype),
converts them to float64 numpy arrays and returns plain Python floats, tuples of
floats or dicts of floats (``gaussian_stats`` and ``nearest_neighbours`` return
numpy arrays). Feature sets are 2-D, ``(N, D)``: one row per sample.

Metrics
-------
* :func:`gaussian_stats`, :func:`frechet_distance`, :func:`fid` -- Frechet
  Inception Distance (Heusel et al., 2017).
* :func:`inception_score` -- Inception Score (Salimans et al., 2016).
* :func:`kid` -- Kernel Inception Distance (Binkowski et al., 2018), the
  unbiased MMD^2 estimator with a cubic polynomial kernel.
* :func:`precision_recall` -- improved precision and recall (Kynkaanniemi et
  al., 2019).
* :func:`nearest_neighbours` -- Euclidean k-nearest neighbours, for example to
  look for training images memorised by a model.

Bad inputs raise :class:`pixelzoo.errors.DataError` (wrong shape, NaN/inf,
too few samples, probabilities that do not sum to one) or
:class:`pixelzoo.errors.ConfigError` (an invalid option such as ``k=0``); both
are ``ValueError`` subclasses.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
from scipy.special import rel_entr

from pixelzoo.errors import ConfigError, DataError

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "inception_score",
    "kid",
    "precision_recall",
    "nearest_neighbours",
]

_DEFAULT_BATCH = 1024


# --------------------------------------------------------------------------- #
# input handling
# --------------------------------------------------------------------------- #
def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert a numpy array / torch tensor / nested sequence to float64 numpy."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        if x.is_complex():
            raise DataError(f"{name} must be real-valued, got a complex tensor of dtype {x.dtype}")
        x = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        arr = np.asarray(x)
        if np.iscomplexobj(arr):
            raise DataError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
        try:
            x = arr.astype(np.float64, copy=False)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} cannot be converted to a float array: {exc}") from exc
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def _features(x: Any, name: str, min_rows: int = 1, flatten: bool = False) -> np.ndarray:
    """Validate a feature set: 2-D (or N-D flattened when ``flatten``), finite, enough rows."""
    arr = _to_numpy(x, name)
    if flatten and arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        expect = "(N, D) or (N, ...)" if flatten else "(N, D)"
        raise DataError(f"{name} must be a 2-D array of shape {expect}, got shape {tuple(arr.shape)}")
    n, d = arr.shape
    if d < 1:
        raise DataError(f"{name} has zero feature dimensions (shape {tuple(arr.shape)})")
    if n < min_rows:
        raise DataError(f"{name} needs at least {min_rows} samples, got {n}")
    _check_finite(arr, name)
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{name_a} and {name_b} have different feature dimensions: "
            f"{a.shape[1]} vs {b.shape[1]}"
        )


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- #
# FID
# --------------------------------------------------------------------------- #
def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (``ddof=1``) covariance of a feature set.

    Args:
        features: ``(N, D)`` array or tensor with ``N >= 2``.

    Returns:
        ``(mu, sigma)``: float64 arrays of shapes ``(D,)`` and ``(D, D)``.
    """
    x = _features(features, "features", min_rows=2)
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    sigma = 0.5 * (sigma + sigma.T)  # exact symmetry despite BLAS rounding
    return mu, sigma


def _check_stats(mu: Any, sigma: Any, tag: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(_to_numpy(mu, f"mu{tag}"))
    sigma = np.atleast_2d(_to_numpy(sigma, f"sigma{tag}"))
    if mu.ndim != 1:
        raise DataError(f"mu{tag} must be 1-D of shape (D,), got shape {mu.shape}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise DataError(f"sigma{tag} must have shape ({d}, {d}) to match mu{tag}, got {sigma.shape}")
    _check_finite(mu, f"mu{tag}")
    _check_finite(sigma, f"sigma{tag}")
    scale = max(float(np.abs(sigma).max()), np.finfo(np.float64).tiny)
    asym = float(np.abs(sigma - sigma.T).max())
    if asym > 1e-6 * scale:
        raise DataError(f"sigma{tag} is not symmetric (max |S - S^T| = {asym:.3g}, max |S| = {scale:.3g})")
    return mu, 0.5 * (sigma + sigma.T)


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a PSD matrix via eigh, clipping tiny negative eigenvalues."""
    w, v = np.linalg.eigh(sigma)
    scale = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
    if w.min() < -1e-4 * scale:
        raise DataError(
            f"{name} is not positive semi-definite: smallest eigenvalue {w.min():.3g} "
            f"(largest magnitude {scale:.3g})"
        )
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.T


def _trace_sqrt_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^{1/2}) = sum sqrt(eig(S1^{1/2} S2 S1^{1/2})), which is symmetric PSD."""
    root1 = _psd_sqrt(s1, "sigma1")
    _psd_sqrt(s2, "sigma2")  # validation only: S2 must be PSD too
    m = root1 @ s2 @ root1
    m = 0.5 * (m + m.T)
    w = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def _sqrtm_quiet(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(a)


def _trace_sqrt_sqrtm(s1: np.ndarray, s2: np.ndarray, eps: float) -> float:
    """Tr((S1 S2)^{1/2}) via scipy.linalg.sqrtm, retried with eps*I on failure."""

    def too_complex(root: np.ndarray) -> tuple[bool, float]:
        if not np.iscomplexobj(root):
            return False, 0.0
        imag = float(np.abs(root.imag).max())
        real_scale = max(float(np.abs(root.real).max()), np.finfo(np.float64).tiny)
        return imag > 1e-3 * real_scale, imag

    root = _sqrtm_quiet(s1 @ s2)
    bad_imag, _ = too_complex(root) if np.all(np.isfinite(root)) else (True, math.inf)
    if not np.all(np.isfinite(root)) or bad_imag:
        offset = eps * np.eye(s1.shape[0])
        root = _sqrtm_quiet((s1 + offset) @ (s2 + offset))
        if not np.all(np.isfinite(root)):
            raise DataError("sqrtm(sigma1 @ sigma2) is not finite, even with eps*I added to both covariances")
        bad_imag, imag = too_complex(root)
        if bad_imag:
            raise DataError(
                f"sqrtm(sigma1 @ sigma2) has a large imaginary component (max |imag| = {imag:.3g}); "
                "the covariances are probably not positive semi-definite"
            )
    return float(np.trace(root.real))


def frechet_distance(
    mu1: Any,
    sigma1: Any,
    mu2: Any,
    sigma2: Any,
    eps: float = 1e-6,
    method: str = "eigh",
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})``.

    Args:
        mu1, mu2: means, shape ``(D,)``.
        sigma1, sigma2: symmetric PSD covariances, shape ``(D, D)``.
        eps: diagonal offset added to both covariances when the ``"sqrtm"``
            method fails (non-finite result or a large imaginary part).
        method: how ``Tr((S1 S2)^{1/2})`` is computed.

            * ``"eigh"`` (default): ``S1^{1/2} S2 S1^{1/2}`` is symmetric PSD and
              has the same eigenvalues as ``S1 S2``, so the trace is the sum of
              the square roots of its eigenvalues (tiny negative eigenvalues from
              rounding are clipped to 0). Uses only symmetric eigensolvers, so it
              never produces complex values and handles singular covariances
              (for example ``D > N``) without regularisation; ``eps`` is unused.
            * ``"sqrtm"``: the classic ``scipy.linalg.sqrtm(S1 @ S2)`` taking the
              real part (as in the reference FID code); retried with ``eps * I``
              added to both covariances if the result is non-finite or its
              imaginary part exceeds ``1e-3`` times its largest real entry, and
              raises :class:`~pixelzoo.errors.DataError` if that is still so.

            Both agree to ~1e-10 relative on well-conditioned inputs.

    Returns:
        The squared Frechet distance as a float, clipped at 0 (rounding can
        make an exact 0 come out as a tiny negative number).

    Raises:
        DataError: shapes mismatch, non-finite values, an asymmetric or clearly
            non-PSD covariance.
        ConfigError: unknown ``method`` or negative ``eps``.
    """
    mu1, sigma1 = _check_stats(mu1, sigma1, "1")
    mu2, sigma2 = _check_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise DataError(f"mu1 and mu2 have different dimensions: {mu1.shape[0]} vs {mu2.shape[0]}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")

    if method == "eigh":
        tr_covmean = _trace_sqrt_eigh(sigma1, sigma2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrt_sqrtm(sigma1, sigma2, float(eps))
    else:
        raise ConfigError(f"method must be 'eigh' or 'sqrtm', got {method!r}")

    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid(real_features: Any, fake_features: Any, *, eps: float = 1e-6, method: str = "eigh") -> float:
    """Frechet Inception Distance between two feature sets.

    Fits a Gaussian (mean, ``ddof=1`` covariance) to each ``(N, D)`` set and
    returns :func:`frechet_distance` between them. Each set needs ``N >= 2``;
    reliable FID values need ``N`` in the thousands (the estimate is biased
    upwards for small ``N``).
    """
    real = _features(real_features, "real_features", min_rows=2)
    fake = _features(fake_features, "fake_features", min_rows=2)
    _same_dim(real, fake, "real_features", "fake_features")
    mu1, s1 = gaussian_stats(real)
    mu2, s2 = gaussian_stats(fake)
    return frechet_distance(mu1, s1, mu2, s2, eps=eps, method=method)


# --------------------------------------------------------------------------- #
# Inception Score
# --------------------------------------------------------------------------- #
def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score from classifier probabilities.

    The ``N`` rows are cut into ``splits`` contiguous chunks (no shuffling,
    chunk ``i`` is rows ``i*N//splits`` to ``(i+1)*N//splits``, as in the
    original code); per chunk the score is
    ``exp(mean_i KL(p(y|x_i) || p(y)))`` with ``p(y)`` the chunk's mean
    prediction. Returns the mean and the (``ddof=0``) standard deviation of the
    per-chunk scores. ``0 * log 0`` is taken as 0, so one-hot rows are fine.

    Args:
        probs: ``(N, K)`` non-negative class probabilities whose rows sum to 1
            (within 1e-3; rows are then renormalised exactly).
        splits: number of chunks, ``1 <= splits <= N``.

    Returns:
        ``(mean, std)``; 1 for a uniform classifier, ``K`` for a confident
        classifier whose predictions are balanced over ``K`` classes.
    """
    p = _features(probs, "probs", min_rows=1)
    splits = _positive_int(splits, "splits")
    n = p.shape[0]
    if splits > n:
        raise ConfigError(f"splits ({splits}) must not exceed the number of samples ({n})")
    if p.min() < 0:
        raise DataError(f"probs must be non-negative, found minimum {p.min():.3g}")
    sums = p.sum(axis=1)
    worst = float(np.abs(sums - 1.0).max())
    if worst > 1e-3:
        raise DataError(
            f"rows of probs must sum to 1 (found a row summing to {sums[np.argmax(np.abs(sums - 1.0))]:.6g}); "
            "pass softmax probabilities, not logits"
        )
    p = p / sums[:, None]

    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = rel_entr(part, marginal).sum(axis=1)
        scores.append(math.exp(float(kl.mean())))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())


# --------------------------------------------------------------------------- #
# KID
# --------------------------------------------------------------------------- #
def _poly_kernel(a: np.ndarray, b: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (gamma * (a @ b.T) + coef0) ** degree


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m, n = x.shape[0], y.shape[0]
    kxx = _poly_kernel(x, x, degree, gamma, coef0)
    kyy = _poly_kernel(y, y, degree, gamma, coef0)
    kxy = _poly_kernel(x, y, degree, gamma, coef0)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    sxy = kxy.sum() / (m * n)
    return float(sxx + syy - 2.0 * sxy)


def kid(
    real_features: Any,
    fake_features: Any,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with a polynomial kernel.

    ``k(x, y) = (gamma <x, y> + coef0) ** degree`` with ``gamma = 1 / D`` by
    default. For each of ``subsets`` rounds, ``subset_size`` rows are drawn
    without replacement from each set (independently per round, from
    ``numpy.random.default_rng(seed)``) and the unbiased estimator

    ``sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i, j} k(x_i, y_j) / m^2``

    is computed. ``subset_size`` is clipped to ``min(N_real, N_fake)``.

    Returns:
        ``(mean, std)`` over the subsets (``ddof=0``). The estimator is
        unbiased, so the mean can be slightly negative for matching
        distributions. Papers often report it multiplied by 1000.
    """
    real = _features(real_features, "real_features", min_rows=2)
    fake = _features(fake_features, "fake_features", min_rows=2)
    _same_dim(real, fake, "real_features", "fake_features")
    subsets = _positive_int(subsets, "subsets")
    subset_size = _positive_int(subset_size, "subset_size", minimum=2)
    degree = _positive_int(degree, "degree")
    if gamma is None:
        gamma = 1.0 / real.shape[1]
    if not (isinstance(gamma, (int, float, np.floating)) and math.isfinite(gamma) and gamma > 0):
        raise ConfigError(f"gamma must be a finite number > 0 or None, got {gamma!r}")
    if not (isinstance(coef0, (int, float, np.floating)) and math.isfinite(coef0)):
        raise ConfigError(f"coef0 must be a finite number, got {coef0!r}")

    m = min(subset_size, real.shape[0], fake.shape[0])
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = real[rng.choice(real.shape[0], m, replace=False)]
        y = fake[rng.choice(fake.shape[0], m, replace=False)]
        values[s] = _mmd2_unbiased(x, y, degree, float(gamma), float(coef0))
    return float(values.mean()), float(values.std())


# --------------------------------------------------------------------------- #
# distances, nearest neighbours, precision / recall
# --------------------------------------------------------------------------- #
def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _sq_dists(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ||a||^2 + ||b||^2 - 2 a.b, clamped at 0."""
    d = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)
    return d


def energy_distance(a: Any, b: Any) -> float:
    """The energy distance 2 E|A - B| - E|A - A'| - E|B - B'| between two samples (N, ...) and (M, ...),
    flattened to vectors (Szekely & Rizzo; the V-statistic, self-pairs included): 0 for equal samples,
    a two-sample statistic for continuous values such as latents."""
    x, y = _features(a, "a", flatten=True).astype(np.float64), _features(b, "b", flatten=True).astype(np.float64)
    _same_dim(x, y, "a", "b")
    x_sq, y_sq = _sq_norms(x), _sq_norms(y)

    def mean_dist(u, u_sq, v, v_sq):
        return float(np.sqrt(_sq_dists(u, u_sq, v, v_sq)).mean())

    return 2 * mean_dist(x, x_sq, y, y_sq) - mean_dist(x, x_sq, x, x_sq) - mean_dist(y, y_sq, y, y_sq)


def _exact_sq_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise squared distances ||a_i - b_i||^2 by direct differences (no cancellation)."""
    diff = a - b
    return np.einsum("ij,ij->i", diff, diff)


def _block_topk(d: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest entries of each row, smallest first."""
    if k >= d.shape[1]:
        return np.argsort(d, axis=1)
    idx = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, idx, axis=1)
    return np.take_along_axis(idx, np.argsort(vals, axis=1), axis=1)


def _knn_sq(
    queries: np.ndarray,
    refs: np.ndarray,
    k: int,
    batch_size: int,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked exact k-NN: (indices (Nq, k), squared distances (Nq, k)), nearest first.

    Candidates are found with the fast ``||q||^2 + ||r||^2 - 2 q.r`` expansion
    on centred data in ``batch_size x batch_size`` blocks (memory
    O(batch_size^2)); the k returned distances are then recomputed exactly from
    direct differences of the original rows. With ``exclude_self`` (queries is
    refs) each query's own row is skipped.
    """
    centre = refs.mean(axis=0)  # distances are translation invariant; centring reduces cancellation
    q = queries - centre
    r = q if exclude_self else refs - centre
    q_sq = _sq_norms(q)
    r_sq = q_sq if exclude_self else _sq_norms(r)
    nq, nr = q.shape[0], r.shape[0]
    best_idx = np.empty((nq, k), dtype=np.int64)
    best_d = np.empty((nq, k), dtype=np.float64)
    for qs in range(0, nq, batch_size):
        qe = min(qs + batch_size, nq)
        cur_idx = np.empty((qe - qs, 0), dtype=np.int64)
        cur_d = np.empty((qe - qs, 0), dtype=np.float64)
        for rs in range(0, nr, batch_size):
            re = min(rs + batch_size, nr)
            d = _sq_dists(q[qs:qe], q_sq[qs:qe], r[rs:re], r_sq[rs:re])
            if exclude_self:
                lo, hi = max(qs, rs), min(qe, re)
                if lo < hi:
                    rows = np.arange(lo, hi)
                    d[rows - qs, rows - rs] = np.inf
            local = _block_topk(d, k)
            cand_idx = np.concatenate([cur_idx, local + rs], axis=1)
            cand_d = np.concatenate([cur_d, np.take_along_axis(d, local, axis=1)], axis=1)
            order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
            cur_idx = np.take_along_axis(cand_idx, order, axis=1)
            cur_d = np.take_along_axis(cand_d, order, axis=1)
        # exact distances for the chosen neighbours, re-sorted by (distance, index)
        exact = np.stack(
            [_exact_sq_pairs(queries[qs:qe], refs[cur_idx[:, j]]) for j in range(k)], axis=1
        )
        order = np.lexsort((cur_idx, exact), axis=1)
        best_idx[qs:qe] = np.take_along_axis(cur_idx, order, axis=1)
        best_d[qs:qe] = np.take_along_axis(exact, order, axis=1)
    return best_idx, best_d


def nearest_neighbours(
    queries: Any,
    references: Any,
    k: int = 1,
    batch_size: int = _DEFAULT_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k-nearest neighbours of each query among the references.

    Inputs of shape ``(N, ...)`` (e.g. images ``(N, C, H, W)``) are flattened to
    ``(N, D)``. Candidates are searched in float64 blocks of
    ``batch_size x batch_size`` (memory does not grow with ``N^2``) and the
    returned distances are recomputed from direct differences, so they are
    exact up to float64 rounding. The order among neighbours at (numerically)
    equal distances is not specified.

    Returns:
        ``(indices, distances)``: int64 ``(Nq, k)`` reference indices and float64
        ``(Nq, k)`` Euclidean distances, nearest first.
    """
    q = _features(queries, "queries", min_rows=1, flatten=True)
    k = _positive_int(k, "k")
    r = _features(references, "references", min_rows=k, flatten=True)
    _same_dim(q, r, "queries", "references")
    batch_size = _positive_int(batch_size, "batch_size")
    idx, d2 = _knn_sq(q, r, k, batch_size)
    return idx, np.sqrt(d2)


def precision_recall(
    real_features: Any,
    fake_features: Any,
    k: int = 3,
    batch_size: int = _DEFAULT_BATCH,
) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019).

    Each point's radius is its distance to its ``k``-th nearest neighbour in
    its own set, not counting the point itself (a duplicate of the point does
    count). A sample is covered by a set when it lies within (``<=``) the
    radius of at least one point of that set.

    * precision: fraction of fake points covered by the real set;
    * recall: fraction of real points covered by the fake set.

    Distances are computed in float64 blocks of ``batch_size x batch_size``,
    so memory stays O(batch_size^2) for any ``N``. The fast
    ``||a||^2 + ||b||^2 - 2 a.b`` expansion is used, and any pair whose
    distance falls within rounding error of a radius is recomputed from direct
    differences, so ties (``distance == radius``) are decided exactly. Each set
    needs at least ``k + 1`` points.

    Returns:
        ``{"precision": float, "recall": float}``, both in ``[0, 1]``.
    """
    k = _positive_int(k, "k")
    real = _features(real_features, "real_features", min_rows=k + 1)
    fake = _features(fake_features, "fake_features", min_rows=k + 1)
    _same_dim(real, fake, "real_features", "fake_features")
    batch_size = _positive_int(batch_size, "batch_size")

    # squared radii: distance to the k-th neighbour excluding the point itself
    r_real = _knn_sq(real, real, k, batch_size, exclude_self=True)[1][:, -1]
    r_fake = _knn_sq(fake, fake, k, batch_size, exclude_self=True)[1][:, -1]

    centre = real.mean(axis=0)
    real_c, fake_c = real - centre, fake - centre
    real_sq, fake_sq = _sq_norms(real_c), _sq_norms(fake_c)
    fake_covered = np.zeros(fake.shape[0], dtype=bool)
    real_covered = np.zeros(real.shape[0], dtype=bool)
    for rs in range(0, real.shape[0], batch_size):
        re = min(rs + batch_size, real.shape[0])
        for fs in range(0, fake.shape[0], batch_size):
            fe = min(fs + batch_size, fake.shape[0])
            d = _sq_dists(real_c[rs:re], real_sq[rs:re], fake_c[fs:fe], fake_sq[fs:fe])
            # pairs within rounding error of either radius: recompute exactly
            tol = 1e-9 * (real_sq[rs:re, None] + fake_sq[None, fs:fe]) + 1e-300
            near = (np.abs(d - r_real[rs:re, None]) <= tol) | (np.abs(d - r_fake[None, fs:fe]) <= tol)
            if near.any():
                i, j = np.nonzero(near)
                d[i, j] = _exact_sq_pairs(real[rs + i], fake[fs + j])
            fake_covered[fs:fe] |= np.any(d <= r_real[rs:re, None], axis=0)
            real_covered[rs:re] |= np.any(d <= r_fake[None, fs:fe], axis=1)
    return {"precision": float(fake_covered.mean()), "recall": float(real_covered.mean())}


def auroc(negatives: Any, positives: Any) -> float:
    """The area under the ROC curve of telling ``positives`` from ``negatives`` by a score that is
    higher for positives: the probability that a random positive scores above a random negative,
    ties counting one half (the Mann-Whitney U statistic over n_pos * n_neg, with mid-ranks)."""
    neg = _to_numpy(negatives, "negatives").ravel().astype(np.float64)
    pos = _to_numpy(positives, "positives").ravel().astype(np.float64)
    if len(neg) == 0 or len(pos) == 0:
        raise DataError(f"AUROC needs scores of both sets, got {len(neg)} negatives and {len(pos)} positives")
    _check_finite(neg, "negatives")
    _check_finite(pos, "positives")
    both = np.concatenate([neg, pos])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both), dtype=np.float64)
    sorted_scores = both[order]
    start = 0
    while start < len(both):  # mid-ranks (1-based) over runs of equal scores
        stop = start
        while stop + 1 < len(both) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))
