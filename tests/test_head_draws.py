"""The heads' draws in few operations (``pixelzoo.heads.draws``) are the plain formulas' draws,
value for value and generator state for generator state: sampling got cheaper, not different."""

import pytest
import torch
import torch.nn.functional as F

from pixelzoo.heads import create_head
from pixelzoo.heads.draws import draw_index


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, k", [(1, 256), (3, 2), (16, 10), (5, 7)])
def test_draw_index_is_torch_multinomial(n, k, dtype):
    for seed in range(40):
        probs = F.softmax(torch.randn(n, k, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * 3, dim=1)
        if seed % 4 == 0:
            probs = probs * 7.0  # weights need not sum to one
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        expected = torch.multinomial(probs, 1, generator=g1)[:, 0]
        assert torch.equal(draw_index(probs, g2), expected)
        assert torch.equal(g1.get_state(), g2.get_state())


def reference_logistic_draw(head, sp, temperature, generator, shift=0.0):
    """The logistic mixture's draw as plain formulas (one sub-pixel's (N, 3M) parameters)."""
    logw, means, log_scales = (t.double() for t in sp.split(head.n_mix, dim=1))
    comp = torch.multinomial(F.softmax(logw, dim=1), 1, generator=generator)
    mean = means.gather(1, comp).squeeze(1)
    log_scale = log_scales.gather(1, comp).squeeze(1) - shift
    if temperature == 0:
        return head.component_mode(mean, log_scale)
    u = torch.rand(mean.shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1.0 - 1e-12)
    value = mean + temperature * torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    k1 = head.num_levels - 1
    return torch.round((value.clamp(-1.0, 1.0) + 1.0) * (k1 / 2.0)).long()


@pytest.mark.parametrize("levels, n_mix", [(256, 10), (17, 3), (2, 1)])
@pytest.mark.parametrize("temperature, shift", [(1.0, 0.0), (0.7, 0.0), (1.0, 0.5), (0.0, 0.0)])
def test_logistic_mixture_draw_is_the_plain_formula(levels, n_mix, temperature, shift):
    head = create_head("logistic_mixture", levels, 1, n_mix=n_mix)
    for seed in range(20):
        g = torch.Generator().manual_seed(100 + seed)
        sp = torch.randn(6, 3 * n_mix, generator=g)
        sp[:, 2 * n_mix:] -= 2.0  # log-scales
        full = torch.randn(6, 2, 3 * n_mix, generator=g)[:, 1]  # a strided slice, as a stepper gives
        for params in (sp, full):
            g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            expected = reference_logistic_draw(head, params, temperature, g1, shift)
            got = head.draw(params, temperature=temperature, generator=g2, log_scale_shift=shift)
            assert torch.equal(got, expected)
            assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_categorical_draw_is_softmax_then_multinomial(temperature):
    head = create_head("categorical", 12, 1)
    for seed in range(20):
        logits = torch.randn(4, 12, generator=torch.Generator().manual_seed(seed)) * 2
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        expected = torch.multinomial(F.softmax(logits / temperature, dim=1), 1, generator=g1).squeeze(1)
        assert torch.equal(head.draw(logits, temperature=temperature, generator=g2), expected)
        assert torch.equal(g1.get_state(), g2.get_state())
