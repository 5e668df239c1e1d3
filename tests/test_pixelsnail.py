"""PixelSNAIL trunk: exact causality by gradients, gradients to every parameter, row cropping,
sampling, conditioning."""

import pytest
import torch

from helpers import dependency_grads, raster_before
from pixelzoo.errors import ConfigError
from pixelzoo.models.autoregressive.pixelsnail.trunk import PixelSNAILTrunk, build_pixelsnail


TINY = dict(channels=8, n_blocks=2, kernel_size=3, attention_every=1, heads=2, out_res_blocks=1, out_hidden=8)


def make(shape=(1, 5, 5), levels=7, classes=3, **kw):
    return build_pixelsnail(shape, levels, num_classes=classes, **{**TINY, **kw})


def batch(shape, levels=7, classes=3, n=2):
    return torch.randint(0, levels, (n, *shape)), torch.randint(0, classes, (n,))


@pytest.mark.parametrize("shape", [(1, 5, 5), (1, 3, 6), (3, 3, 3)])
def test_exact_causality(shape):
    """d params(c, i, j) / d x is exactly 0 at and after (c, i, j) and not all 0 before it."""
    model = make(shape, **(dict(channels=12, out_hidden=12) if shape[0] == 3 else {}))
    x, y = batch(shape)
    for (c, i, j), g in dependency_grads(model, x, y):
        before = raster_before(*shape, c, i, j)
        assert torch.all(g[~before] == 0), f"output {(c, i, j)} sees inputs at or after itself"
        if before.any():
            assert g[before].sum() > 0, f"output {(c, i, j)} sees nothing of its past"


def test_receptive_field_covers_whole_past():
    """No blind spot: every position depends on all of its past (two blocks of 3-wide convolutions
    cover the width; attention carries the rest)."""
    shape = (1, 5, 5)
    model = make(shape, n_blocks=2, kernel_size=3)
    x, y = batch(shape)
    for (c, i, j), g in dependency_grads(model, x, y):
        before = raster_before(*shape, c, i, j)
        assert torch.all(g[before] > 0), f"output {(c, i, j)} misses part of its past"


def test_every_parameter_gets_gradient_with_spatial_conditioning():
    shape = (1, 4, 4)
    model = make(shape, spatial_channels=2, dropout=0.1)
    x, y = batch(shape)
    spatial = torch.randn(2, 2, 4, 4)
    out = model.loss(x, y, spatial)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("c", [1, 3])
def test_row_causal_cropping_gives_identical_rows(c):
    trunk = PixelSNAILTrunk(c, channels=6, n_blocks=3, attention_every=2, heads=2, num_classes=3,
                            spatial_channels=2).eval()
    assert trunk.row_causal
    x = torch.randn(2, c, 6, 5)
    y = torch.tensor([0, 2])
    sp = torch.randn(2, 2, 6, 5)
    full = trunk(x, y, sp)
    for rows in range(1, 6):
        torch.testing.assert_close(trunk(x[:, :, :rows], y, sp[:, :, :rows]), full[:, :, :rows], rtol=1e-5, atol=1e-6)


def test_sampling():
    model = make((1, 4, 4), levels=5)
    s = model.sample(3, y=torch.tensor([0, 1, 2]))
    assert s.shape == (3, 1, 4, 4) and s.dtype == torch.long
    assert int(s.min()) >= 0 and int(s.max()) < 5
    sp_model = make((1, 3, 3), levels=5, classes=None, spatial_channels=2)
    s = sp_model.sample(2, spatial=torch.randn(2, 2, 3, 3))
    assert s.shape == (2, 1, 3, 3)


def test_attention_layers_placed_every_k_blocks():
    trunk = PixelSNAILTrunk(1, channels=8, n_blocks=6, attention_every=3, heads=2)
    assert sorted(trunk.attention.keys()) == ["2", "5"]
    assert len(PixelSNAILTrunk(1, channels=8, n_blocks=2, attention_every=0).attention) == 0


def test_bad_configs():
    with pytest.raises(ConfigError):
        PixelSNAILTrunk(1, channels=8, heads=3)
    with pytest.raises(ConfigError):
        PixelSNAILTrunk(3, channels=8)
