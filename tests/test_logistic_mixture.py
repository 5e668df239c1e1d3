"""The discretized logistic mixture head: normalisation, the exact PixelCNN++ joint, hand-computed
values, the sampler against the exact probabilities, MAP sampling and variance reduction."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from pixelzoo.errors import ConfigError
from pixelzoo.heads import LogisticMixtureHead, binned_logistic_log_prob, create_head, discretized_logistic_log_prob



def random_raw(head, n, extreme=False, generator=None, scale=1.0, log_scale_range=(-3, 0)):
    """(n, num_params, 1, 1) raw parameters; ``extreme`` mixes in far-out means and tiny/huge scales."""
    g = generator or torch.Generator().manual_seed(0)
    m, c = head.n_mix, head.channels
    logits = 3 * torch.randn(n, m, generator=g)
    means = scale * torch.randn(n, c * m, generator=g)
    log_scales = torch.empty(n, c * m).uniform_(*log_scale_range, generator=g)
    coeffs = torch.randn(n, head.n_coeffs * m, generator=g)
    if extreme:
        k1 = head.num_levels - 1
        special = torch.tensor([-10.0, -1.5, -1.0, -1 + 1 / k1, 0.0, 1 / k1, 1.0, 1.5, 10.0, 2 * 3 / k1 - 1])
        pick = torch.randint(0, len(special), means.shape, generator=g)
        means = torch.where(torch.rand(means.shape, generator=g) < 0.5, special[pick], 4 * means)
        log_scales = torch.empty(n, c * m).uniform_(-10, 4, generator=g)  # below min_log_scale too
    return torch.cat([logits, means, log_scales, coeffs], dim=1)[:, :, None, None]


def subpixel(head, raw, x):
    """Sub-pixel params of 1x1 images x (B, C, 1, 1) -> (B, C, 3M)."""
    xs = x.double() * (2.0 / (head.num_levels - 1)) - 1.0
    return head.subpixel_params(raw.double(), xs)[..., 0, 0]


def all_pixels(channels, levels):
    return torch.tensor(list(itertools.product(range(levels), repeat=channels))).view(-1, channels, 1, 1)


# ---------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("levels", [2, 5, 16, 256])
@pytest.mark.parametrize("extreme", [False, True])
def test_single_channel_probabilities_sum_to_one(levels, extreme):
    head = LogisticMixtureHead(levels, 1, n_mix=4)
    raw = random_raw(head, 200, extreme=extreme)
    for dtype, tol in ((torch.float64, 5e-5), (torch.float32, 5e-5)):  # ~1e-5 from the < 1e-5 branch
        sp = head.subpixel_params(raw.to(dtype), torch.zeros(200, 1, 1, 1, dtype=dtype))[:, 0, :, 0, 0]
        lp = head.level_log_probs(sp)
        assert torch.isfinite(lp).all()
        total = lp.double().exp().sum(1)
        assert (total - 1).abs().max().item() < tol, (dtype, (total - 1).abs().max().item())


def test_level_log_probs_agree_with_log_prob():
    head = LogisticMixtureHead(16, 1, n_mix=3)
    raw = random_raw(head, 5)
    sp = head.subpixel_params(raw, torch.zeros(5, 1, 1, 1))
    table = head.level_log_probs(sp[:, 0, :, 0, 0])
    for v in range(16):
        x = torch.full((5, 1, 1, 1), v)
        torch.testing.assert_close(head.log_prob(sp, x)[:, 0, 0, 0], table[:, v])


def _bin_mass(v, mean, s, k):
    """Independent PixelCNN++ bin probability (numpy): tails at both ends."""
    centre = 2 * v / (k - 1) - 1
    hi = np.inf if v == k - 1 else centre + 1 / (k - 1)
    lo = -np.inf if v == 0 else centre - 1 / (k - 1)
    return expit((hi - mean) / s) - expit((lo - mean) / s)


def _direct_joint(raw, channels, n_mix, k):
    """sum_k pi_k prod_c P(x_c | mean_ck, s_ck) by the PixelCNN++ formula, over every pixel value;
    also the smallest bin mass met (PixelCNN++ replaces masses < 1e-5 by an approximation)."""
    r = raw.double().view(-1).numpy()
    m, c = n_mix, channels
    logits = r[:m]
    mu = r[m : m + c * m].reshape(c, m)
    s = np.exp(np.maximum(r[m + c * m : m + 2 * c * m].reshape(c, m), -7.0))
    coef = np.tanh(r[m + 2 * c * m :].reshape(-1, m))
    log_pi = logits - logsumexp(logits)
    out = {}
    smallest = 1.0
    for pixel in itertools.product(range(k), repeat=c):
        x = [2 * v / (k - 1) - 1 for v in pixel]
        prob = np.exp(log_pi).copy()
        pair = 0
        for ch in range(c):
            mean = mu[ch].copy()
            for prev in range(ch):
                mean = mean + coef[pair] * x[prev]
                pair += 1
            mass = _bin_mass(pixel[ch], mean, s[ch], k)
            smallest = min(smallest, mass.min())
            prob = prob * mass
        out[pixel] = prob.sum()
    return out, smallest


@pytest.mark.parametrize("channels,levels", [(3, 4), (2, 5), (4, 3)])
def test_joint_over_all_pixels_sums_to_one_and_equals_pixelcnnpp_formula(channels, levels):
    head = LogisticMixtureHead(levels, channels, n_mix=3)
    raw = random_raw(head, 1, generator=torch.Generator().manual_seed(channels), scale=0.5, log_scale_range=(-0.7, 0.3))
    direct, smallest = _direct_joint(raw, channels, 3, levels)
    assert smallest > 1e-5  # every bin in the exact (sigmoid difference) regime
    x = all_pixels(channels, levels)
    sp = subpixel(head, raw.expand(len(x), -1, -1, -1), x)
    joint_lp = head.log_prob(sp[..., None, None], x).sum(dim=1).view(-1)   # sum of the per-sub-pixel conditionals
    assert abs(torch.logsumexp(joint_lp, 0).item()) < 1e-12
    expected = torch.tensor([math.log(direct[tuple(p.view(-1).tolist())]) for p in x], dtype=torch.float64)
    torch.testing.assert_close(joint_lp, expected, rtol=0, atol=1e-9)


def test_joint_with_extreme_parameters_still_normalised():
    head = LogisticMixtureHead(4, 3, n_mix=5)
    raw = random_raw(head, 1, extreme=True, generator=torch.Generator().manual_seed(7))
    x = all_pixels(3, 4)
    sp = subpixel(head, raw.expand(len(x), -1, -1, -1), x)
    total = head.log_prob(sp[..., None, None], x).sum(1).view(-1).logsumexp(0).exp().item()
    assert abs(total - 1) < 1e-4


# ---------------------------------------------------------------------- hand computations and layout
def test_log_prob_hand_computed_one_component():
    k, mean, s = 256, 0.1, 0.05
    head = LogisticMixtureHead(k, 1, n_mix=1)
    raw = torch.tensor([0.3, mean, math.log(s)], dtype=torch.float64).view(1, 3, 1, 1)
    sp = head.subpixel_params(raw, torch.zeros(1, 1, 1, 1, dtype=torch.float64))

    def sig(t):
        return 1 / (1 + math.exp(-t))

    def lp(v):
        return head.log_prob(sp, torch.tensor(v).view(1, 1, 1, 1)).item()

    x = 2 * 140 / 255 - 1
    assert lp(140) == pytest.approx(math.log(sig((x + 1 / 255 - mean) / s) - sig((x - 1 / 255 - mean) / s)), abs=1e-12)
    assert lp(0) == pytest.approx(math.log(sig((-1 + 1 / 255 - mean) / s)), abs=1e-12)
    assert lp(255) == pytest.approx(math.log(sig(-(1 - 1 / 255 - mean) / s)), abs=1e-12)  # 1 - sigmoid(t)
    # far in the tail the mass is < 1e-5: PixelCNN++'s density-at-the-centre branch
    x = 2 * 250 / 255 - 1
    z = (x - mean) / s
    log_pdf = -z - math.log(s) - 2 * math.log1p(math.exp(-z))
    assert lp(250) == pytest.approx(log_pdf + math.log(2 / 255), rel=1e-10)


def test_raw_layout_and_channel_coefficients():
    """RGB, one component: mean_G = mu_G + a x_R, mean_B = mu_B + b x_R + c x_G (x in [-1, 1])."""
    head = LogisticMixtureHead(8, 3, n_mix=1)
    mu, log_s, coef = [0.1, 0.2, 0.3], [-1.0, -2.0, -3.0], [0.5, -0.25, 0.75]
    raw = torch.tensor([0.0, *mu, *log_s, *np.arctanh(coef)], dtype=torch.float64).view(1, 10, 1, 1)
    x = torch.tensor([5, 2, 7]).view(1, 3, 1, 1)
    xs = x.double() * 2 / 7 - 1
    sp = head.subpixel_params(raw, xs)[0, :, :, 0, 0]  # (C, 3): logw, mean, log_s
    r, g = xs.view(-1)[:2].tolist()
    torch.testing.assert_close(sp[:, 1], torch.tensor([0.1, 0.2 + 0.5 * r, 0.3 - 0.25 * r + 0.75 * g], dtype=torch.float64))
    torch.testing.assert_close(sp[:, 2], torch.tensor(log_s, dtype=torch.float64))
    torch.testing.assert_close(sp[:, 0], torch.zeros(3, dtype=torch.float64))  # one component: log weight 0
    assert head.num_params() == 10 and torch.equal(head.param_groups(), torch.zeros(10, dtype=torch.long))
    assert LogisticMixtureHead(256, 3).num_params() == 100 and LogisticMixtureHead(256, 1).num_params() == 30


def test_min_log_scale_clamps():
    head = LogisticMixtureHead(16, 1, n_mix=1, min_log_scale=-2.0)
    raw = torch.tensor([0.0, 0.0, -9.0]).view(1, 3, 1, 1)
    sp = head.subpixel_params(raw, torch.zeros(1, 1, 1, 1))
    assert sp[0, 0, 2, 0, 0].item() == -2.0


def test_gradients_finite_for_extreme_parameters():
    head = LogisticMixtureHead(256, 3, n_mix=4)
    raw = random_raw(head, 64, extreme=True).float().requires_grad_(True)
    x = torch.randint(0, 256, (64, 3, 1, 1))
    x[:8] = 0
    x[8:16] = 255
    xs = x.float() * 2 / 255 - 1
    lp = head.log_prob(head.subpixel_params(raw, xs), x)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_create_head_options():
    head = create_head("logistic_mixture", 32, 3, n_mix=5, min_log_scale=-6.0)
    assert head.n_mix == 5 and head.min_log_scale == -6.0 and head.models_channel_order
    with pytest.raises(ConfigError):
        create_head("logistic_mixture", 32, 3, bogus=1)
    with pytest.raises(ConfigError):
        create_head("logistic_mixture", 1, 1)


# ---------------------------------------------------------------------- sampling
def _tv(draws, probs):
    freq = torch.bincount(draws, minlength=len(probs)).double() / len(draws)
    return 0.5 * (freq - probs).abs().sum().item()


def test_sampler_matches_probabilities_single_channel():
    from scipy.stats import chisquare

    head = LogisticMixtureHead(12, 1, n_mix=3)
    raw = torch.tensor([0.5, -0.2, 0.0, -0.7, 0.1, 0.9, -1.5, -2.0, -1.0]).view(1, 9, 1, 1)
    sp = head.subpixel_params(raw, torch.zeros(1, 1, 1, 1))[:, 0, :, 0, 0]
    probs = head.level_log_probs(sp.double())[0].exp()
    n = 40000
    draws = head.draw(sp.expand(n, -1), generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.long and int(draws.min()) >= 0 and int(draws.max()) < 12
    # an exact sampler gives TV about sqrt(K / n) / 2.5 ~ 0.007 here
    assert _tv(draws, probs) < 0.02
    counts = torch.bincount(draws, minlength=12).numpy()
    keep = probs.numpy() * n > 5
    expected = probs.numpy()[keep] * n
    assert chisquare(counts[keep], expected * counts[keep].sum() / expected.sum()).pvalue > 1e-3


def test_sampler_matches_rgb_joint_per_subpixel():
    """Drawing R, then G given R, then B given R, G from the sub-pixel conditionals reproduces the
    joint mixture over all K^3 pixels."""
    k = 4
    head = LogisticMixtureHead(k, 3, n_mix=3)
    raw = random_raw(head, 1, generator=torch.Generator().manual_seed(3), scale=0.7)
    n = 30000
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(n, 3, 1, 1, dtype=torch.long)
    for c in range(3):
        sp = subpixel(head, raw.expand(n, -1, -1, -1), x)[:, c]
        x[:, c, 0, 0] = head.draw(sp, generator=g)
    pixels = all_pixels(3, k)
    sp_all = subpixel(head, raw.expand(len(pixels), -1, -1, -1), pixels)
    probs = head.log_prob(sp_all[..., None, None], pixels).sum(1).view(-1).exp()
    index = (x.view(n, 3) * torch.tensor([k * k, k, 1])).sum(1)
    assert _tv(index, probs) < 0.04  # exact sampler: about sqrt(64 / n) / 2.5 ~ 0.018


def test_map_sampling_returns_a_component_mode():
    k = 8
    head = LogisticMixtureHead(k, 1, n_mix=1)
    cases = [(0.8, 0.0), (0.8, -3.0), (-0.95, 1.0), (0.05, -1.0), (0.37, -2.0), (3.0, -1.0), (-0.2, 2.0)]
    for mean, log_s in cases:
        sp = torch.tensor([[0.0, mean, log_s]])
        mode = head.level_log_probs(sp.double()).argmax(1).item()
        assert head.draw(sp, mode="map").item() == mode, (mean, log_s)
        assert head.draw(sp, temperature=0).item() == mode
    # the end level holds a whole tail: with a wide component near the edge it beats the nearest level
    assert head.draw(torch.tensor([[0.0, 0.8, 0.0]]), mode="map").item() == 7
    # several components: each draw is the mode of one component, chosen by its weight
    head = LogisticMixtureHead(k, 1, n_mix=2)
    sp = torch.tensor([[math.log(0.25), math.log(0.75), -0.5, 0.5, -3.0, -3.0]])
    draws = head.draw(sp.expand(4000, -1), mode="map", generator=torch.Generator().manual_seed(0))
    modes = [round((-0.5 + 1) * 3.5), round((0.5 + 1) * 3.5)]
    assert set(draws.tolist()) <= set(modes)
    assert abs((draws == modes[1]).double().mean().item() - 0.75) < 0.03


def test_variance_reduction_lowers_sample_variance():
    head = LogisticMixtureHead(256, 1, n_mix=2)
    sp = torch.tensor([[0.0, 0.0, -0.3, 0.2, -2.5, -3.0]]).expand(20000, -1)
    variances = []
    for shift in (0.0, 0.5, 1.0):
        draws = head.draw(sp, generator=torch.Generator().manual_seed(0), log_scale_shift=shift)
        variances.append(draws.double().var().item())
    map_var = head.draw(sp, generator=torch.Generator().manual_seed(0), mode="map").double().var().item()
    assert variances[0] > variances[1] > variances[2] > map_var
    # the head attribute is the default of the option
    head.log_scale_shift = 1.0
    again = head.draw(sp, generator=torch.Generator().manual_seed(0)).double().var().item()
    assert again == variances[2]
    # on one component the shift narrows the logistic by exp(-shift): variance ratio about exp(-2 shift)
    one = LogisticMixtureHead(256, 1, n_mix=1)
    sp1 = torch.tensor([[0.0, 0.0, -2.0]]).expand(20000, -1)
    v0 = one.draw(sp1, generator=torch.Generator().manual_seed(0)).double().var().item()
    v1 = one.draw(sp1, generator=torch.Generator().manual_seed(0), log_scale_shift=1.0).double().var().item()
    assert v1 / v0 == pytest.approx(math.exp(-2.0), rel=0.1)


def test_temperature_scales_the_noise_like_a_log_scale_shift():
    head = LogisticMixtureHead(256, 1, n_mix=2)
    sp = torch.tensor([[0.0, 0.3, -0.3, 0.2, -2.5, -3.0]]).expand(500, -1)
    a = head.draw(sp, temperature=0.5, generator=torch.Generator().manual_seed(2))
    b = head.draw(sp, log_scale_shift=math.log(2.0), generator=torch.Generator().manual_seed(2))
    assert (a - b).abs().max().item() <= 1  # equal up to rounding at bin edges


def test_one_row_draw_equals_the_batched_draw():
    """At batch 1 on the CPU ``draw`` runs on Python floats (``_draw_one``); with the same generator
    state it gives the tensor path's level and leaves the generator where that path does, over rows
    of every kind (peaked and flat weights, means past the ends, tiny and large scales), shifts and
    temperatures."""
    g = torch.Generator().manual_seed(5)
    for levels, m in ((256, 10), (16, 3), (2, 1)):
        head = LogisticMixtureHead(levels, 1, n_mix=m)
        for r in range(400):
            logits = torch.randn(m, generator=g) * (0.1 if r % 3 else 6.0)
            means = torch.rand(m, generator=g) * 2.6 - 1.3
            log_scales = torch.rand(m, generator=g) * 8.0 - 7.0
            if r % 50 == 7:  # an untrained model's log-scale past exp's range: the logistic fills an end bin
                log_scales = log_scales + 800.0
            raw = torch.cat([logits, means, log_scales])[None, :, None, None]
            sp = head.subpixel_params(raw, torch.zeros(1, 1, 1, 1))[:, 0, :, 0, 0]
            temperature, shift = (1.0, 0.0) if r % 4 else (0.5 + r / 400, 0.3)
            a, b = torch.Generator().manual_seed(r), torch.Generator().manual_seed(r)
            one = head._draw_one(sp, temperature, shift, a)
            rows = head._draw_rows(sp, temperature, shift, "sample", b)
            assert one.dtype == rows.dtype == torch.long and one.shape == rows.shape == (1,)
            assert one.item() == rows.item(), (levels, m, r)
            assert torch.equal(a.get_state(), b.get_state())
    # draw() takes the one-row path at batch 1: the same level as the tensor path
    sp = torch.tensor([[0.1, -0.4, 0.3, -0.2, 0.5, 0.1, -2.0, -3.0, -1.0]])
    head = LogisticMixtureHead(256, 1, n_mix=3)
    for seed in range(50):
        assert head.draw(sp, generator=torch.Generator().manual_seed(seed)).item() == \
            head._draw_rows(sp, 1.0, 0.0, "sample", torch.Generator().manual_seed(seed)).item()


def test_step_params_are_subpixel_params_of_the_channel():
    """A sampling step's parameters of channel c (``step_params``: channel 0 from one split, a later one
    without the channels after it) are ``subpixel_params``' channel c, value for value."""
    g = torch.Generator().manual_seed(4)
    for channels, m in ((3, 4), (2, 3), (1, 5)):
        head = LogisticMixtureHead(256, channels, n_mix=m)
        raw = torch.randn(5, head.num_params(), generator=g) * 2.0
        pixel = torch.randint(0, 256, (5, channels), generator=g).float() / 127.5 - 1.0
        full = head.subpixel_params(raw[:, :, None, None], pixel[:, :, None, None])[..., 0, 0]
        for c in range(channels):
            assert torch.equal(head.step_params(raw, c, lambda: pixel), full[:, c]), (channels, c)


def test_bad_sampling_options():
    head = LogisticMixtureHead(8, 1, n_mix=1)
    sp = torch.tensor([[0.0, 0.0, -1.0]])
    with pytest.raises(ConfigError):
        head.draw(sp, mode="greedy")
    with pytest.raises(ConfigError):
        head.draw(sp, scale_shift=1.0)
    with pytest.raises(ValueError):
        head.draw(sp, temperature=-1)


# ---------------------------------------------------------------------- on a channel-masked trunk
def test_mixture_on_gated_pixelcnn_is_normalised_and_sampled_exactly():
    import pixelzoo

    shape, k = (3, 1, 2), 2
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=shape, num_levels=k, channels=6, n_layers=2,
                                  head="logistic_mixture", head_options={"n_mix": 2}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    x = torch.tensor(list(itertools.product(range(k), repeat=6))).view(-1, *shape)
    with torch.no_grad():
        probs = model.log_prob(x).double().flatten(1).sum(1).exp()
    assert abs(probs.sum().item() - 1) < 1e-5
    s = model.sample(20000, generator=torch.Generator().manual_seed(0))
    index = (s.flatten(1) * (k ** torch.arange(5, -1, -1))).sum(1)
    tv = _tv(index, probs)
    assert tv < 0.03, tv  # exact sampler: at most about sqrt(64 / 20000) / 2.5 ~ 0.023


# ---------------------------------------------------------------------- exact bin masses (AGAVE's eq. 8)
def _exact_log_mass(v, k, mean, s, digits=1000):
    """log P(level v) of a logistic(mean, s) discretized to k bins with open end bins, in decimal
    arithmetic at ``digits`` digits: the exact value against which the float code is checked."""
    from decimal import Decimal, getcontext

    getcontext().prec = digits
    one = Decimal(1)

    def sig(t):
        return one / (one + (-t).exp())

    x = Decimal(2 * v) / Decimal(k - 1) - one
    half = one / Decimal(k - 1)
    m, sd = Decimal(mean), Decimal(s)
    upper = sig((x + half - m) / sd) if v < k - 1 else one
    lower = sig((x - half - m) / sd) if v > 0 else Decimal(0)
    return float((upper - lower).ln())


@pytest.mark.parametrize("bins", [2, 4, 8, 16, 32, 255])
def test_eq8_probabilities_sum_to_one_for_any_mean_and_scale(bins):
    g = torch.Generator().manual_seed(bins)
    mean = (torch.rand(400, 1, generator=g, dtype=torch.float64) * 6 - 3)
    log_s = torch.rand(400, 1, generator=g, dtype=torch.float64) * 14 - 10       # s from 4.5e-5 to 55
    levels = torch.arange(bins, dtype=torch.float64)[None]
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):  # float32: the edges over s round
        lp = discretized_logistic_log_prob(levels.to(dtype), mean.to(dtype), log_s.to(dtype), bins)
        assert torch.isfinite(lp).all()
        assert (lp.double().exp().sum(1) - 1).abs().max().item() < tol


@pytest.mark.parametrize("v,k,mean,s", [(3, 16, 0.1, 0.2), (0, 16, 0.3, 0.05), (15, 16, -0.2, 0.5),
                                        (12, 16, -0.9, 0.01), (1, 4, 0.95, 0.02), (200, 256, -0.5, 0.001)])
def test_eq8_hand_computed_exact_even_for_rare_values(v, k, mean, s):
    """Against 1000-digit arithmetic, including masses down to e^-1064 (a rare value far in the tail
    of a sharp logistic), where a density-times-width approximation is tens of nats off."""
    lp = discretized_logistic_log_prob(torch.tensor(float(v), dtype=torch.float64),
                                       torch.tensor(mean, dtype=torch.float64),
                                       torch.tensor(math.log(s), dtype=torch.float64), k)
    assert lp.item() == pytest.approx(_exact_log_mass(v, k, mean, s), rel=1e-9, abs=1e-9)


def test_the_head_uses_exact_masses_below_256_levels():
    """At K = 16 PixelCNN++'s rule (density at the bin centre times the width below a mass of 1e-5)
    is far off for a rare value of a sharp component: at the head's smallest scale (log s = -7) the
    bin is 74 scales wide and the rule misses the mass by 2 sinh(74) / 148, 69 nats. The head's
    default there is exact."""
    k, mean, s, v = 16, -0.9, math.exp(-7.0), 12
    approx = LogisticMixtureHead(k, 1, n_mix=1, exact_masses=False)
    exact = LogisticMixtureHead(k, 1)
    assert exact.exact_masses and not LogisticMixtureHead(256, 1).exact_masses
    args = (torch.tensor(float(v), dtype=torch.float64), torch.tensor(mean, dtype=torch.float64),
            torch.tensor(math.log(s), dtype=torch.float64))
    truth = _exact_log_mass(v, k, mean, s)
    assert exact.bin_log_prob(*args).item() == pytest.approx(truth, rel=1e-9)
    assert abs(approx.bin_log_prob(*args).item() - truth) > 60   # nats
    with pytest.raises(ConfigError, match="exact_masses"):
        LogisticMixtureHead(16, 1, exact_masses="yes")


# ---------------------------------------------------------------------- eq. 8 over b colour bins of the data
@pytest.mark.parametrize("bins", [2, 4, 16, 32, 64, 128, 256])
def test_binned_eq8_sums_to_one_over_the_bins_for_any_mean_and_scale(bins):
    g = torch.Generator().manual_seed(bins)
    mean = torch.rand(300, 1, generator=g, dtype=torch.float64) * 6 - 3
    log_s = torch.rand(300, 1, generator=g, dtype=torch.float64) * 14 - 10
    lp = binned_logistic_log_prob(torch.arange(bins)[None], mean, log_s, 256, bins)
    assert torch.isfinite(lp).all()
    assert (lp.exp().sum(1) - 1).abs().max().item() < 1e-12


def test_binned_eq8_at_all_levels_is_the_discretized_logistic():
    mean, log_s = torch.randn(5, 1, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64) - 2
    levels = torch.arange(256)[None]
    torch.testing.assert_close(binned_logistic_log_prob(levels, mean, log_s, 256, 256),
                               discretized_logistic_log_prob(levels.double(), mean, log_s, 256), rtol=0, atol=1e-12)


@pytest.mark.parametrize("y,b,mu,s", [(100, 32, 103.0, 4.0), (0, 16, 30.0, 10.0), (255, 16, 240.0, 2.0),
                                      (37, 8, 200.0, 3.0), (128, 2, 127.5, 0.5)])
def test_binned_eq8_is_the_papers_formula_on_its_own_scale(y, b, mu, s):
    """Eq. 8 as printed, p(y) = sigma((c + c floor(y/c) - mu) / s) - sigma((c floor(y/c) - mu) / s) with
    c = 256 / b (end bins open), on [0, 256) with mean mu and scale s, in 1000-digit arithmetic; ours
    takes the same logistic on the data's [-1, 1] scale (level v at 2v/255 - 1, so a point t of [0, 256)
    sits at 2(t - 1/2)/255 - 1)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 1000
    c = 256 // b
    k = y // c

    def sig(t):
        return one / (one + (-t).exp())

    one = Decimal(1)
    upper = one if k == b - 1 else sig((Decimal(c * (k + 1)) - Decimal(mu)) / Decimal(s))
    lower = Decimal(0) if k == 0 else sig((Decimal(c * k) - Decimal(mu)) / Decimal(s))
    truth = float((upper - lower).ln())
    mean = torch.tensor(2 * (mu - 0.5) / 255 - 1, dtype=torch.float64)
    log_scale = torch.tensor(math.log(2 * s / 255), dtype=torch.float64)
    lp = binned_logistic_log_prob(torch.tensor(k), mean, log_scale, 256, b)
    assert lp.item() == pytest.approx(truth, rel=1e-9, abs=1e-10)
    with pytest.raises(ConfigError, match="divid"):
        binned_logistic_log_prob(torch.tensor(0), mean, log_scale, 256, 3)
