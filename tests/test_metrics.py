"""Known-answer tests for pixelzoo.evaluation.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from pixelzoo.errors import PixelzooError
from pixelzoo.evaluation.metrics import (
    fid,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kid,
    nearest_neighbours,
    precision_recall,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _reference_fid(x, y):
    """Independent FID: numpy stats + scipy sqrtm(S1 @ S2), real part."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------- FID
def test_gaussian_stats_matches_numpy_and_accepts_torch():
    x = _rng().normal(size=(50, 4))
    mu, sigma = gaussian_stats(torch.tensor(x, dtype=torch.float64))
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, ddof=1), rtol=1e-10, atol=1e-14)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)


def test_gaussian_stats_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.zeros((1, 3)))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_identical_sets_is_zero(method):
    x = _rng().normal(size=(300, 16)) * 3.0 + 1.0
    value = fid(x, x, method=method)
    assert isinstance(value, float)
    scale = np.trace(np.cov(x, rowvar=False))
    assert abs(value) < 1e-6 * scale


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_shifted_identity_is_squared_norm(method):
    d = 8
    mu = _rng(1).normal(size=d)
    s = _rng(2).normal(size=d)
    value = frechet_distance(mu, np.eye(d), mu + s, np.eye(d), method=method)
    assert value == pytest.approx(float(s @ s), rel=1e-12, abs=1e-12)


def test_fid_shifted_gaussian_from_samples():
    d, n = 4, 20000
    s = np.array([1.0, -2.0, 0.5, 0.0])
    x = _rng(3).normal(size=(n, d))
    y = _rng(4).normal(size=(n, d)) + s
    # expectation is ||s||^2 = 5.25 plus O(D^2/N) bias
    assert fid(x, y) == pytest.approx(float(s @ s), rel=0.02)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_matches_independent_scipy(method):
    rng = _rng(5)
    d = 16
    a = rng.normal(size=(d, d))
    b = rng.normal(size=(d, d)) * 0.5
    x = rng.normal(size=(200, d)) @ a
    y = rng.normal(size=(200, d)) @ b + 0.3
    expected = _reference_fid(x, y)
    assert fid(x, y, method=method) == pytest.approx(expected, rel=1e-6)
    assert fid(torch.tensor(x, dtype=torch.float32), y) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_rank_deficient_is_finite_nonnegative(method):
    rng = _rng(6)
    x = rng.normal(size=(20, 64))  # D > N: covariance rank 19
    y = rng.normal(size=(25, 64)) + 0.1
    value = fid(x, y, method=method)
    assert math.isfinite(value) and value >= 0.0
    # exactly singular covariances (all-zero features in some dimensions)
    x[:, :10] = 0.0
    y[:, 5:15] = 0.0
    value = fid(x, y, method=method)
    assert math.isfinite(value) and value >= 0.0


def test_frechet_rejects_bad_stats():
    d = 3
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), np.eye(d + 1))
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d + 1), np.eye(d + 1))
    with pytest.raises(ValueError, match="not symmetric"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    not_psd = np.diag([1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(d), not_psd, np.zeros(d), np.eye(d))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(d), not_psd, np.zeros(d), np.eye(d), method="sqrtm")
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), np.eye(d), method="svd")


# ----------------------------------------------------------------------------- IS
def test_inception_score_uniform_is_one():
    probs = np.full((100, 10), 0.1)
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_confident_balanced_is_k():
    k, splits = 7, 5
    labels = np.arange(k * splits * 4) % k  # every split holds each class equally often
    probs = np.eye(k)[labels]
    mean, std = inception_score(torch.tensor(probs), splits=splits)
    assert mean == pytest.approx(float(k), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_direct_formula():
    logits = _rng(7).normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, 3):  # 60 / 3: same chunks as i*N//splits
        py = part.mean(0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    mean, std = inception_score(p, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_inception_score_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.full((10, 4), 0.3), splits=2)
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5], [0.5, 0.5]]), splits=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.full((4, 2), 0.5), splits=5)


# ----------------------------------------------------------------------------- KID
def test_kid_single_full_subset_matches_hand_formula():
    rng = _rng(8)
    x = rng.normal(size=(30, 5))
    y = rng.normal(size=(30, 5)) + 0.5
    kern = lambda a, b: (a @ b.T / 5 + 1) ** 3  # noqa: E731
    m = 30
    kxx, kyy, kxy = kern(x, x), kern(y, y), kern(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.sum() / m**2
    )
    # subset_size is clipped to N: one subset is a permutation of the full sets
    mean, std = kid(x, y, subsets=1, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == 0.0


def test_kid_same_vs_shifted_and_unbiased():
    rng = _rng(9)
    d = 8
    real = rng.normal(size=(400, d))
    same = rng.normal(size=(400, d))
    shifted = rng.normal(size=(400, d)) + 1.0
    m_same, s_same = kid(real, same, subsets=30, subset_size=100, seed=1)
    m_shift, s_shift = kid(real, shifted, subsets=30, subset_size=100, seed=1)
    assert m_shift > 0 and m_shift > 5 * s_shift
    assert abs(m_same) < 0.05 * m_shift
    assert abs(m_same) < 3 * s_same  # unbiased: centred on 0 for equal distributions
    # identical sets and deterministic seeding
    m_ident, _ = kid(real, real, subsets=10, subset_size=100)
    assert abs(m_ident) < 0.05 * m_shift
    assert kid(real, shifted, subsets=5, subset_size=50, seed=3) == kid(
        real, shifted, subsets=5, subset_size=50, seed=3
    )


def test_kid_validation():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="feature dimensions"):
        kid(x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="subsets"):
        kid(x, x, subsets=0)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x, np.zeros((1, 3)))


# ----------------------------------------------------------------------------- precision / recall
def test_precision_recall_identical_sets():
    x = _rng(10).normal(size=(120, 6))
    assert precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(x, x.copy(), k=3, batch_size=17) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_disjoint_clusters():
    rng = _rng(11)
    real = rng.normal(size=(80, 4))
    fake = rng.normal(size=(90, 4)) + 100.0
    assert precision_recall(real, fake, k=3) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_hand_example():
    # real radii (k=2, 2nd neighbour excluding self):
    #   a=(0,0): 1, 2, 10, 100 -> 2      b=(1,0): 1, sqrt5, 9 -> sqrt5
    #   c=(0,2): 2, sqrt5       -> sqrt5  d=(10,0): 9, 10, ... -> 10
    #   e=(0,100): 98, 100, ...  -> 100
    real = np.array([[0, 0], [1, 0], [0, 2], [10, 0], [0, 100]], dtype=float)
    # fake: f1=(0,-2) at exactly 2 from a (tie -> covered); f2=(20,0) at exactly 10 from d
    # (tie -> covered); f3=(30,0) not covered; f4=(-3,0) not covered; f5=(3,3) at sqrt58 < 10
    # from d -> covered. precision = 3/5.
    # fake radii (k=2): f1 sqrt34, f2 sqrt298, f3 sqrt738, f4 sqrt45, f5 sqrt45.
    # a, b, c within sqrt34 of f1; d at 10 from f2 (< sqrt298); e is >= 97 from every fake
    # point, beyond every fake radius. recall = 4/5.
    fake = np.array([[0, -2], [20, 0], [30, 0], [-3, 0], [3, 3]], dtype=float)
    expected = {"precision": 0.6, "recall": 0.8}
    assert precision_recall(real, fake, k=2) == expected
    assert precision_recall(torch.tensor(real), torch.tensor(fake), k=2, batch_size=2) == expected
    # k=1: radii a 1, b 1, c 2, d 9, e 98; f1 is 2 from a and sqrt5 from b -> not covered,
    # f2 10 > 9 from d, f5 sqrt58 < 9 from d -> precision 1/5
    assert precision_recall(real, fake, k=1)["precision"] == pytest.approx(0.2)


def test_precision_recall_matches_brute_force_with_blocks():
    rng = _rng(12)
    real = rng.normal(size=(57, 5))
    fake = rng.normal(size=(43, 5)) * 0.6 + 0.8
    k = 3

    def radii(a):
        dist = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        np.fill_diagonal(dist, np.inf)
        return np.sort(dist, axis=1)[:, k - 1]

    cross = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))
    precision = np.mean((cross <= radii(real)[:, None]).any(0))
    recall = np.mean((cross <= radii(fake)[None, :]).any(1))
    for bs in (7, 1024):
        got = precision_recall(real, fake, k=k, batch_size=bs)
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
    assert 0 < precision < 1 and 0 < recall < 1


def test_precision_recall_validation():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(x, np.ones((10, 2)), k=3)
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(np.ones((10, 2)), np.ones((10, 2)), k=0)


# ----------------------------------------------------------------------------- nearest neighbours
def test_nearest_neighbours_hand_example():
    refs = np.array([[0, 0], [3, 0], [0, 5], [10, 10]], dtype=float)
    queries = np.array([[1, 0], [0, 4], [9, 9]], dtype=float)
    idx, dist = nearest_neighbours(queries, refs, k=2)
    np.testing.assert_array_equal(idx, [[0, 1], [2, 0], [3, 2]])
    np.testing.assert_allclose(dist, [[1, 2], [1, 4], [math.sqrt(2), math.sqrt(97)]], rtol=1e-12)
    assert idx.dtype == np.int64 and dist.dtype == np.float64
    idx1, dist1 = nearest_neighbours(queries, refs, k=1, batch_size=1)
    np.testing.assert_array_equal(idx1, [[0], [2], [3]])
    np.testing.assert_allclose(dist1[:, 0], [1, 1, math.sqrt(2)])


def test_nearest_neighbours_images_and_blocks_match_brute_force():
    rng = _rng(13)
    refs = torch.tensor(rng.random(size=(50, 1, 4, 4)), dtype=torch.float32)
    queries = torch.tensor(rng.random(size=(9, 1, 4, 4)), dtype=torch.float32)
    q = queries.reshape(9, -1).double().numpy()
    r = refs.reshape(50, -1).double().numpy()
    full = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    order = np.argsort(full, axis=1)[:, :3]
    idx, dist = nearest_neighbours(queries, refs, k=3, batch_size=8)
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(dist, np.take_along_axis(full, order, 1), rtol=1e-12)


def test_nearest_neighbours_validation():
    with pytest.raises(ValueError, match="at least 5"):
        nearest_neighbours(np.zeros((2, 3)), np.zeros((4, 3)), k=5)
    with pytest.raises(ValueError, match="2-D"):
        nearest_neighbours(np.zeros(3), np.zeros((4, 3)))


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: fid(a, b),
        lambda a, b: kid(a, b, subsets=2, subset_size=5),
        lambda a, b: precision_recall(a, b),
        lambda a, b: nearest_neighbours(a, b),
    ],
)
def test_nan_and_wrong_dims_rejected(call):
    good = _rng(14).normal(size=(10, 3))
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        call(good, bad)
    with pytest.raises(ValueError, match="non-finite"):
        call(torch.tensor(bad), good)
    with pytest.raises(ValueError, match="2-D"):
        call(good.ravel(), good)
    with pytest.raises(ValueError, match="feature dimensions"):
        call(good, good[:, :2])
    with pytest.raises(PixelzooError):
        call(good, np.full((10, 3), np.inf))


def test_errors_are_pixelzoo_errors():
    with pytest.raises(PixelzooError):
        gaussian_stats(np.zeros((5, 2, 2)))
    with pytest.raises(PixelzooError):
        inception_score(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="complex"):
        fid(np.ones((4, 2), dtype=complex), np.ones((4, 2)))


def test_inception_score_of_class_ordered_samples_is_not_split_by_class():
    """Samples sorted by class (as rejection sampling returns them per class) must still score the
    number of classes: IS splits are random subsets, not consecutive runs."""
    from pixelzoo.evaluation.sample_quality import sample_quality

    k, per = 10, 50
    images = torch.arange(k).repeat_interleave(per).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)  # sorted by class

    def confident(x):  # the class is the pixel value
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), k).double() * 0.999 + 0.0001

    out = sample_quality(images, None, None, ["is"], probs=confident, name="toy")
    assert out["is[toy]"] > 9.0  # about 9.6 with random splits of 50; consecutive splits would give 1


def test_energy_distance_hand_computed_and_zero_for_equal_samples():
    """2 E|A-B| - E|A-A'| - E|B-B'| (self-pairs included): a = {0, 2}, b = {1} in 1-d gives
    2 * 1 - (0 + 2 + 2 + 0) / 4 - 0 = 1; a sample against itself gives 0; maps are flattened."""
    from pixelzoo.evaluation.metrics import energy_distance

    assert energy_distance(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0]])) == pytest.approx(1.0)
    x = torch.randn(50, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert energy_distance(x, x + 3.0) > 1.0
