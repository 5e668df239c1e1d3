"""CausalSelfAttention2d: exact raster causality by gradients, softmax rows, any size, row cropping."""

import pytest
import torch

from pixelzoo.nn.attention import CausalSelfAttention2d, raster_mask



def output_dependencies(layer, x):
    """Yield ((i, j), |d out[:, :, i, j] / d x| summed over batch and channels) as an (H, W) map."""
    x = x.clone().double().requires_grad_(True)
    out = layer.double()(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            (g,) = torch.autograd.grad(out[:, :, i, j].sum(), x, retain_graph=True)
            yield (i, j), g.abs().sum((0, 1))


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (3, 3), (1, 6)])
def test_exact_raster_causality(include_self, shape):
    h, w = shape
    layer = CausalSelfAttention2d(6, 8, 6, heads=2, include_self=include_self)
    x = torch.randn(2, 6, h, w)
    for (i, j), g in output_dependencies(layer, x):
        p = i * w + j
        flat = g.flatten()
        allowed = torch.zeros(h * w, dtype=torch.bool)
        allowed[: p + 1 if include_self else p] = True
        assert torch.all(flat[~allowed] == 0), f"output {(i, j)} sees {(~allowed & (flat != 0)).nonzero().flatten().tolist()}"
        if allowed.any():
            assert flat[allowed].sum() > 0
        if not include_self and p == 0:
            assert torch.all(flat == 0)


@pytest.mark.parametrize("include_self", [True, False])
def test_softmax_rows_sum_to_one(include_self):
    layer = CausalSelfAttention2d(5, 4, 4, heads=2, include_self=include_self).eval()
    _, probs = layer.attention(torch.randn(3, 5, 4, 3))
    sums = probs.sum(-1)
    n = 12
    assert probs.shape == (3, 2, n, n)
    if include_self:
        torch.testing.assert_close(sums, torch.ones_like(sums))
    else:
        torch.testing.assert_close(sums[..., 1:], torch.ones_like(sums[..., 1:]))
        assert torch.all(sums[..., 0] == 0)
    mask = raster_mask(n, include_self)
    assert torch.all(probs[..., ~mask] == 0)


def test_dropout_on_probabilities_only_in_training():
    layer = CausalSelfAttention2d(4, 4, 4, heads=1, dropout=0.5)
    x = torch.randn(2, 4, 3, 3)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    _, probs = layer.attention(x)
    masked_zeros = int((~raster_mask(9, True)).sum()) * 2  # 2 images, 1 head
    assert int((probs == 0).sum()) > masked_zeros  # some allowed entries were dropped


def test_row_cropping_and_any_size():
    layer = CausalSelfAttention2d(3, 4, 4, heads=2).eval()
    x = torch.randn(2, 3, 6, 5)
    full = layer(x)
    assert full.shape == (2, 3, 6, 5)
    for rows in range(1, 6):
        torch.testing.assert_close(layer(x[:, :, :rows]), full[:, :, :rows], rtol=1e-5, atol=1e-6)
    assert layer(torch.randn(1, 3, 2, 9)).shape == (1, 3, 2, 9)


def test_heads_must_divide_channels():
    with pytest.raises(ValueError):
        CausalSelfAttention2d(4, 6, 4, heads=4)
