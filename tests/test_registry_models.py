"""Checks every registered model passes: forward/backward, gradients, save/load, sampling, causality.

Besides every registered model with its default head, the "<model>+<head>" pairings of
``TINY_MODELS`` go through the same checks."""

import pytest
import torch

import pixelzoo
from conftest import COMPOSITE_MODELS, TINY_MODELS, tiny_model_args
from helpers import dependency_grads, raster_before, tau_dependency_grads

SHAPES = [(1, 5, 5), (3, 4, 4)]
CASES = [m for m in pixelzoo.list_models() if m not in COMPOSITE_MODELS] + sorted(k for k in TINY_MODELS if "+" in k)


def make(key, shape, levels=5, classes=3):
    name, hparams = tiny_model_args(key)
    return pixelzoo.create_model(name, image_shape=shape, num_levels=levels, num_classes=classes, **hparams)


def batch(shape, levels=5, classes=3, n=3):
    return torch.randint(0, levels, (n, *shape)), torch.randint(0, classes, (n,))


def test_every_registered_model_has_a_tiny_config_or_its_own_tests():
    assert set(pixelzoo.list_models()) <= set(TINY_MODELS) | set(COMPOSITE_MODELS)
    assert set(COMPOSITE_MODELS) <= set(pixelzoo.list_models())
    assert {tiny_model_args(k)[0] for k in TINY_MODELS} <= set(pixelzoo.list_models())


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_every_parameter_gets_gradient(name, shape):
    model = make(name, shape)
    x, y = batch(shape)
    out = model.loss(x, y)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", CASES)
def test_save_load_identical_outputs(name, tmp_path):
    shape = (3, 4, 4)
    model = make(name, shape).eval()
    x, y = batch(shape)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file() and (tmp_path / "m" / "model.safetensors").is_file()
    loaded = pixelzoo.load_pretrained(tmp_path / "m")
    assert type(loaded) is type(model)
    torch.testing.assert_close(model_output(loaded, x, y), model_output(model, x, y), rtol=0, atol=0)


def model_output(model, x, y):
    """log p(x_i | x_<i), or for a model without likelihood Q(tau_i | x_<i) at a fixed tau."""
    if model.has_likelihood:
        return model.log_prob(x, y)
    return model.quantile(x, torch.rand(x.shape, generator=torch.Generator().manual_seed(0)), y)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sample_shape_dtype_range(name, shape):
    model = make(name, shape, levels=5)
    s = model.sample(4, y=torch.tensor([0, 1, 2, 0]))
    assert s.shape == (4, *shape) and s.dtype == torch.long
    assert int(s.min()) >= 0 and int(s.max()) < 5


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_exact_causality(name, shape):
    """d params(c, i, j) / d x is exactly 0 at and after (c, i, j) and not all 0 before it."""
    model = make(name, shape)
    x, y = batch(shape)
    if not model.has_likelihood:
        return check_tau_causality(model, x, y, shape)
    for (c, i, j), g in dependency_grads(model, x, y):
        before = raster_before(*shape, c, i, j)
        assert torch.all(g[~before] == 0), f"output {(c, i, j)} sees inputs at or after itself: {g[~before].nonzero().tolist()}"
        if before.any():
            assert g[before].sum() > 0, f"output {(c, i, j)} sees nothing of its past"


def check_tau_causality(model, x, y, shape):
    """A quantile model: Q(c, i, j) depends on x strictly before (c, i, j), on its own tau, and on no
    tau after it (the taus before it are allowed: they are earlier inputs)."""
    for (c, i, j), gx, gt in tau_dependency_grads(model, x, y):
        before = raster_before(*shape, c, i, j)
        own = torch.zeros_like(before)
        own[c, i, j] = True
        assert torch.all(gx[~before] == 0), f"Q{(c, i, j)} sees images at or after itself: {gx[~before].nonzero().tolist()}"
        assert torch.all(gt[~(before | own)] == 0), f"Q{(c, i, j)} sees later taus: {gt[~(before | own)].nonzero().tolist()}"
        assert gt[c, i, j] > 0, f"Q{(c, i, j)} ignores its own tau"
        if before.any():
            assert gx[before].sum() > 0, f"Q{(c, i, j)} sees nothing of its past"
