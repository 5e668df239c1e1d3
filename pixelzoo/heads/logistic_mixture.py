"""Discretized mixture of logistics (PixelCNN++, Salimans et al. 2017), for any number of levels.

**The distribution of one pixel.** With ``M`` components and ``C`` channels, the raw parameters of a
pixel are ``M`` logits, ``C*M`` means ``mu``, ``C*M`` log-scales and ``C(C-1)/2 * M`` coefficients
(through tanh), laid out in that order (channel-major inside each block; coefficient pairs in the
order (1,0), (2,0), (2,1), (3,0), ...). Component ``k`` is a product over channels of discretized
logistics whose mean for channel ``c`` is linear in the earlier channels of the same pixel:
``mean_ck = mu_ck + sum_{c'<c} coef_{c,c',k} * x_c'``, with ``x`` in the model's [-1, 1] scale (for
RGB: ``mean_G = mu_G + a x_R``, ``mean_B = mu_B + b x_R + c x_G``). The pixel's probability is
``sum_k pi_k prod_c P_bin(x_c | mean_ck, s_ck)``.

**Bins.** Level ``v`` of ``K`` sits at ``2v/(K-1) - 1`` with half-width ``1/(K-1)``; the lowest
level takes the whole left tail, the highest the whole right tail, so the ``K`` masses sum to one.
This is PixelCNN++'s 256-level rule with ``K`` levels. AGAVE's eq. 8 scores a K-level image in b
coarser colour bins of the same logistic (``binned_logistic_log_prob``; b = K is this rule). Interior masses are exact at any size below 256 levels
(``discretized_logistic_log_prob``); at 256 levels, as in PixelCNN++, a mass below 1e-5 is replaced by
the density at the bin centre times the bin width (``exact_masses=True`` makes them exact there too).

**Sub-pixel decomposition.** The library scores and samples one sub-pixel at a time, so
``subpixel_params`` turns the joint into exact conditionals: for channel ``c`` the component
weights are the posterior ``log_softmax_k(log pi_k + sum_{c'<c} log P_bin(x_c' | mean_c'k, s_c'k))``
given the same pixel's earlier channels, and ``p(x_c | x_<c) = sum_k w_ck P_bin(x_c | mean_ck, s_ck)``.
The product over ``c`` is the joint above, and drawing each sub-pixel from its conditional
(component from the posterior weights, then a logistic) samples the joint exactly. The posterior
needs the *levels* of the earlier channels; they are recovered from ``x_scaled`` by rounding (zero
gradient), while the means use ``x_scaled`` itself (the coefficient paths stay differentiable).

Because the head orders the channels of a pixel itself, every raw parameter may come from features
of the strict past (parameter group 0) and the head works on trunks with or without channel masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..devices import full_precision_region
from ..errors import ConfigError
from .base import Head, full_precision
from .draws import draw_index

SAMPLE_MODES = ("sample", "map")


def discretized_logistic_log_prob(level: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  num_levels: int, exact: bool = True) -> torch.Tensor:
    """log P(level | mean, s) of a logistic discretized to ``num_levels`` = K bins (broadcasting).

    Level ``v`` is the bin of width ``2/(K-1)`` centred at ``2v/(K-1) - 1`` on the [-1, 1] scale; the
    end bins are open (the lowest takes the left tail, the highest the right tail), so the K masses
    sum to one. PixelCNN++'s likelihood at K = 256; ``binned_logistic_log_prob`` with b = K bins.

    Interior masses ``sigmoid(b) - sigmoid(a)`` (``a < b`` the bin's edges over s) are computed
    ``exact``ly without cancellation as ``log sigmoid(b) + log sigmoid(-a) + log(1 - exp(a - b))``
    (the identity ``sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - e^(a-b))``), exact however
    small the mass. ``exact=False`` is PixelCNN++'s rule: a mass below 1e-5 becomes the density at the
    bin centre times the bin width, which is off by up to tens of nats at few levels (a rare value far
    in the tail of a sharp logistic at K = 16), and is kept only to reproduce PixelCNN++ at K = 256.
    """
    k1 = num_levels - 1
    level = level.to(mean.dtype)
    half = 1.0 / k1
    centered = level * (2.0 / k1) - 1.0 - mean
    inv_s = torch.exp(-log_scale)
    plus_in = inv_s * (centered + half)
    min_in = inv_s * (centered - half)
    if exact:
        return _interval_log_mass(min_in, plus_in, level <= 0, level >= k1)
    log_cdf_plus = F.logsigmoid(plus_in)             # lowest level: log sigmoid(upper edge)
    log_one_minus_cdf_min = F.logsigmoid(-min_in)    # highest level: log (1 - sigmoid(lower edge))
    # sigmoid(plus) - sigmoid(min) == sigmoid(-min) - sigmoid(-plus); take the form whose terms are
    # not both close to 1, so the difference does not cancel
    right = centered > 0
    cdf_delta = torch.where(
        right,
        torch.sigmoid(-min_in) - torch.sigmoid(-plus_in),
        torch.sigmoid(plus_in) - torch.sigmoid(min_in),
    )
    abs_mid = (inv_s * centered).abs()  # the logistic density is symmetric
    log_pdf_mid = -abs_mid - log_scale - 2.0 * torch.log1p(torch.exp(-abs_mid))
    interior = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid + math.log(2.0 / k1),
    )
    return torch.where(level <= 0, log_cdf_plus, torch.where(level >= k1, log_one_minus_cdf_min, interior))


def _interval_log_mass(lower: torch.Tensor, upper: torch.Tensor, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """log P(lower < u < upper) of a standard logistic u (``lower < upper``, already standardised:
    (edge - mean) / s), with the interval open to -inf where ``first`` and to +inf where ``last``;
    exact without cancellation: ``sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - e^(a-b))``."""
    log_cdf_upper = F.logsigmoid(upper)
    log_sf_lower = F.logsigmoid(-lower)
    interior = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper))
    return torch.where(first, log_cdf_upper, torch.where(last, log_sf_lower, interior))


def binned_logistic_log_prob(bin_index: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                             num_levels: int, bins: int) -> torch.Tensor:
    """log P(bin | mean, s): AGAVE's eq. 8 (Lucas & Verbeek 2018), a logistic over the colour range
    split into ``bins`` = b bins of c = K / b levels each (K = ``num_levels``, a multiple of b).

    Bin k holds the levels ``c k .. c (k+1) - 1`` of the data (``pixelzoo.views.quantize``), and the
    logistic lives on the data's [-1, 1] scale (level v at ``2v/(K-1) - 1``), so its edges are the
    outer edges of those levels' bins, ``2 (c k - 1/2)/(K-1) - 1`` and ``2 (c (k+1) - 1/2)/(K-1) - 1``;
    the end bins are open, so the b masses sum to one. With b = K this is
    ``discretized_logistic_log_prob`` exactly; the paper writes the same bins on [0, 256) (an affine
    change of the mean and scale). Exact without cancellation at every b (``_interval_log_mass``)."""
    if bins < 2 or num_levels % bins:
        raise ConfigError(f"eq. 8 needs 2 <= bins dividing the {num_levels} levels, got {bins}")
    c, k1 = num_levels // bins, num_levels - 1
    k = bin_index.to(mean.dtype)
    inv_s = torch.exp(-log_scale)
    lower = inv_s * ((2.0 * (c * k - 0.5) / k1 - 1.0) - mean)
    upper = inv_s * ((2.0 * (c * (k + 1) - 0.5) / k1 - 1.0) - mean)
    return _interval_log_mass(lower, upper, bin_index <= 0, bin_index >= bins - 1)


class LogisticMixtureHead(Head):
    """PixelCNN++'s discretized logistic mixture over ``num_levels`` levels.

    Sampling options (attributes, overridable per call through ``sample(..., **options)`` /
    ``model.sample(..., head_options={...})``):

    * ``log_scale_shift`` (default 0): subtracted from every predicted log-scale before sampling,
      the variance reduction of Kolesnikov & Lampert 2017 (Fig. 4). Their text subtracts constants
      from the "log-variance"; the model predicts log-scales (PixelCNN++), and
      ``log var = 2 log s + const``, so their reduction ``d`` is ``log_scale_shift = d / 2``. We apply
      the constant to the log-scale, the quantity the head predicts. Only the logistic noise
      narrows; the component weights are unchanged.
    * ``sample_mode`` ``"sample"`` (default) or ``"map"``: MAP sampling of the same paper, a
      component drawn by its weight, then that component's most probable level instead of a
      second random draw.

    ``temperature`` multiplies the logistic noise (equivalently the scales; the same as
    ``log_scale_shift = -log(temperature)``); temperature 0 is MAP sampling.
    """

    has_likelihood = True
    models_channel_order = True

    def __init__(self, num_levels: int, channels: int, n_mix: int = 10, min_log_scale: float = -7.0,
                 exact_masses: bool | None = None):
        super().__init__(num_levels, channels)
        if self.num_levels < 2:
            raise ConfigError(f"the logistic mixture needs at least 2 levels, got {num_levels}")
        if int(n_mix) != n_mix or n_mix < 1:
            raise ConfigError(f"n_mix must be a positive integer, got {n_mix!r}")
        self.n_mix = int(n_mix)
        self.min_log_scale = float(min_log_scale)
        if exact_masses not in (None, True, False):
            raise ConfigError(f"exact_masses must be true, false or null (exact below 256 levels), got {exact_masses!r}")
        #: exact interior bin masses; None: exact below 256 levels, PixelCNN++'s rule at 256
        self.exact_masses = self.num_levels < 256 if exact_masses is None else bool(exact_masses)
        self.n_coeffs = self.channels * (self.channels - 1) // 2
        m, c = self.n_mix, self.channels
        self._step_split = [m, m, (c - 1) * m, m, (c - 1 + self.n_coeffs) * m]
        # sampling defaults (not part of the likelihood)
        self.sample_mode = "sample"
        self.log_scale_shift = 0.0

    # ------------------------------------------------------------------ layout
    def num_params(self) -> int:
        return self.n_mix * (1 + 2 * self.channels + self.n_coeffs)

    def param_groups(self) -> torch.Tensor:
        return torch.zeros(self.num_params(), dtype=torch.long)

    def split_raw(self, raw: torch.Tensor):
        """(B, num_params, H, W) -> logits (B, M, H, W), means and clamped log-scales (B, C, M, H, W),
        coefficients (B, C(C-1)/2, M, H, W) in (-1, 1)."""
        b, p, h, w = raw.shape
        if p != self.num_params():
            raise ConfigError(f"logistic mixture expects {self.num_params()} raw parameters, got {p}")
        m, c = self.n_mix, self.channels
        logits, means, log_scales, coeffs = raw.split([m, c * m, c * m, self.n_coeffs * m], dim=1)
        means = means.reshape(b, c, m, h, w)
        log_scales = log_scales.reshape(b, c, m, h, w).clamp(min=self.min_log_scale)
        coeffs = torch.tanh(coeffs.reshape(b, self.n_coeffs, m, h, w))
        return logits, means, log_scales, coeffs

    def levels_of(self, x_scaled: torch.Tensor) -> torch.Tensor:
        """[-1, 1] values -> nearest integer levels (as floats; zero gradient)."""
        k1 = self.num_levels - 1
        return torch.round((x_scaled.detach() + 1.0) * (k1 / 2.0)).clamp(0, k1)

    # ------------------------------------------------------------------ the 1-D discretized logistic
    def bin_log_prob(self, level: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """log P(level | mean, scale) of the discretized logistic (broadcasting); ``level`` holds
        integer values 0 .. K-1 (any dtype). See ``discretized_logistic_log_prob``."""
        return discretized_logistic_log_prob(level, mean, log_scale, self.num_levels, self.exact_masses)

    # ------------------------------------------------------------------ head interface
    def subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor) -> torch.Tensor:
        """(B, num_params, H, W) -> (B, C, 3M, H, W): per channel [log posterior weights, means,
        log-scales] of the conditional given the same pixel's earlier channels (module docstring).
        Acts on each pixel separately; computed in at least float32, outside autocast."""
        with full_precision_region(raw.device):
            return self._subpixel_params(full_precision(raw), full_precision(x_scaled))

    def _subpixel_params(self, raw: torch.Tensor, x_scaled: torch.Tensor, only: int | None = None) -> torch.Tensor:
        """(B, C, 3M, H, W); with ``only`` = c, channel c's (B, 3M, H, W) alone: the same arithmetic,
        without the later channels' and the output of the earlier ones (a sampling step's)."""
        logits, mu, log_scales, coeffs = self.split_raw(raw)
        levels = self.levels_of(x_scaled)
        log_joint = logits  # log pi_k + sum_{c' < c} log P(x_c' | k), unnormalised
        out = []
        pair = 0
        last = self.channels - 1 if only is None else only
        for c in range(last + 1):
            mean = mu[:, c]
            for cp in range(c):
                mean = mean + coeffs[:, pair] * x_scaled[:, cp : cp + 1]
                pair += 1
            if only is None or c == only:
                out.append(torch.cat([F.log_softmax(log_joint, dim=1), mean, log_scales[:, c]], dim=1))
            if c < last:
                log_joint = log_joint + self.bin_log_prob(levels[:, c : c + 1], mean, log_scales[:, c])
        return torch.stack(out, dim=1) if only is None else out[0]

    def step_params(self, raw: torch.Tensor, c: int, pixel) -> torch.Tensor:
        """The first channel's parameters read no earlier channel: the weights, its means and
        log-scales straight from ``raw`` (N, num_params); a later channel c as ``subpixel_params``
        computes it, without the channels after it."""
        if c:
            with full_precision_region(raw.device):
                sp = self._subpixel_params(full_precision(raw[:, :, None, None]),
                                           full_precision(pixel()[:, :, None, None]), only=c)
            return sp[:, :, 0, 0]
        # one split into the weights, channel 0's means, the other means, channel 0's log-scales and
        # the rest (a step at batch 1 costs its number of operations: one split, not three slices)
        logits, means, _, log_scales, _ = full_precision(raw).split(self._step_split, dim=1)
        return torch.cat([F.log_softmax(logits, dim=1), means, log_scales.clamp(min=self.min_log_scale)], dim=1)

    def unpack(self, sp: torch.Tensor):
        """(..., 3M, ...) at dim ``-3`` for (B, C, 3M, H, W) or dim 1 for (N, 3M): the three (M,) parts."""
        return sp.split(self.n_mix, dim=1 if sp.dim() == 2 else 2)

    def log_prob(self, sp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logw, means, log_scales = self.unpack(full_precision(sp))
        lp = self.bin_log_prob(x.unsqueeze(2), means, log_scales)
        return torch.logsumexp(logw + lp, dim=2)

    def level_log_probs(self, sp: torch.Tensor) -> torch.Tensor:
        """(N, 3M) -> (N, K): log p of every level under one sub-pixel's parameters (for tests and
        analysis)."""
        logw, means, log_scales = self.unpack(sp)
        levels = torch.arange(self.num_levels, device=sp.device, dtype=sp.dtype)[None, :, None]
        lp = self.bin_log_prob(levels, means[:, None], log_scales[:, None])
        return torch.logsumexp(logw[:, None] + lp, dim=2)

    def component_mode(self, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """Most probable level of each discretized logistic: the level nearest the mean, unless an end
        level (which holds a whole tail) is more probable."""
        k1 = self.num_levels - 1
        nearest = torch.round((mean + 1.0) * (k1 / 2.0)).clamp(0, k1)
        cands = torch.stack([nearest, torch.zeros_like(nearest), torch.full_like(nearest, k1)], dim=-1)
        lp = self.bin_log_prob(cands, mean.unsqueeze(-1), log_scale.unsqueeze(-1))
        return cands.gather(-1, lp.argmax(-1, keepdim=True)).squeeze(-1).long()

    def draw(self, sp: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
             **options) -> torch.Tensor:
        """Draw levels (N,) from sub-pixel parameters (N, 3M). Options: ``mode`` ("sample" or "map"),
        ``log_scale_shift`` (float); they default to the head's attributes of the same meaning."""
        if options:
            unknown = sorted(set(options) - {"mode", "log_scale_shift"})
            if unknown:
                raise ConfigError(f"unknown sampling options {unknown} for the logistic mixture; "
                                  f"valid: ['log_scale_shift', 'mode']")
        mode = options.get("mode") or self.sample_mode
        if mode not in SAMPLE_MODES:
            raise ConfigError(f"sampling mode must be one of {list(SAMPLE_MODES)}, got {mode!r}")
        shift = options.get("log_scale_shift")
        shift = float(self.log_scale_shift if shift is None else shift)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if sp.shape[0] == 1 and sp.device.type == "cpu" and mode == "sample" and temperature != 0:
            return self._draw_one(sp, temperature, shift, generator)
        return self._draw_rows(sp, temperature, shift, mode, generator)

    def _draw_rows(self, sp: torch.Tensor, temperature: float, shift: float, mode: str,
                   generator: torch.Generator | None) -> torch.Tensor:
        """``draw`` as tensor operations, any batch and device."""
        # one sub-pixel's three blocks (N, 3, M) in float64: a component by its weight, then that
        # component's mean and log-scale picked together, then the logistic noise, in place
        n = sp.shape[0]
        blocks = sp.double().reshape(n, 3, self.n_mix)
        comp = draw_index(F.softmax(blocks[:, 0], dim=1), generator)  # = multinomial(softmax(logw), 1)
        picked = blocks[:, 1:].gather(2, comp.view(n, 1, 1).expand(n, 2, 1))[:, :, 0]
        mean, log_scale = picked[:, 0], picked[:, 1]
        if shift:
            log_scale = log_scale - shift
        if mode == "map" or temperature == 0:
            return self.component_mode(mean, log_scale)
        u = torch.rand(mean.shape, generator=generator, dtype=torch.float64, device=mean.device)
        u = u.clamp_(1e-12, 1.0 - 1e-12)
        log1m = torch.neg(u).log1p_()
        noise = u.log_().sub_(log1m)  # log(u) - log(1 - u): a standard logistic
        scale = torch.exp(log_scale)
        if temperature != 1.0:
            scale.mul_(temperature)
        value = scale.mul_(noise).add_(mean)  # mean + temperature * s * noise
        k1 = self.num_levels - 1
        return value.clamp_(-1.0, 1.0).add_(1.0).mul_(k1 / 2.0).round_().long()

    def _draw_one(self, sp: torch.Tensor, temperature: float, shift: float,
                  generator: torch.Generator | None) -> torch.Tensor:
        """``draw`` of one row on the CPU, mode "sample": the same random numbers from the same calls
        on ``generator`` (an ``exponential_`` of M doubles, then ``rand`` of one) and the same
        arithmetic in double, on Python floats instead of one-element tensors (a step at batch 1
        costs its number of tensor operations: five here against some twenty). IEEE arithmetic makes
        +, -, *, / and the comparisons equal to the tensors'; ``exp`` and ``log`` come from the C
        library instead of torch's vectorised ones, which may differ in the last bit, so a draw can
        differ from the batched path's only where two components' scores, or a value and a bin's
        edge, agree to about 1e-16 (``tests/test_logistic_mixture.py`` compares the two paths).
        The softmax is left unnormalised (the argmax of weight / E does not depend on the sum)."""
        m = self.n_mix
        vals = sp.tolist()[0]
        race = torch.empty((1, m), dtype=torch.float64).exponential_(generator=generator).tolist()[0]
        u = torch.rand((1,), generator=generator, dtype=torch.float64).item()
        top = max(vals[:m])
        comp, best = 0, -1.0
        for k in range(m):
            e = race[k]
            score = math.exp(vals[k] - top) / e if e > 0.0 else math.inf
            if score > best:
                comp, best = k, score
        mean, log_scale = vals[m + comp], vals[2 * m + comp]
        if shift:
            log_scale = log_scale - shift
        u = min(max(u, 1e-12), 1.0 - 1e-12)
        noise = math.log(u) - math.log1p(-u)
        scale = math.exp(log_scale) if log_scale < 709.0 else math.inf  # torch's exp overflows to inf
        if temperature != 1.0:
            scale *= temperature
        value = scale * noise + mean
        k1 = self.num_levels - 1
        if value != value:  # NaN (inf * 0, a NaN parameter): as the tensor path's clamp and cast take it
            return torch.tensor([value], dtype=torch.float64).clamp_(-1.0, 1.0).add_(1.0).mul_(k1 / 2.0).round_().long()
        value = min(max(value, -1.0), 1.0)
        return torch.full((1,), round((value + 1.0) * (k1 / 2.0)), dtype=torch.long)
