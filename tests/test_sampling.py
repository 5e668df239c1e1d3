"""Inpainting and conditioning in the ancestral sampler."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError


@pytest.fixture
def model():
    return pixelzoo.create_model("gated_pixelcnn", image_shape=(3, 4, 4), num_levels=6, num_classes=2, channels=12, n_layers=2).eval()


def test_inpainting_keeps_known_subpixels_and_fills_the_rest(model):
    known = torch.randint(0, 6, (2, 3, 4, 4))
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, :2] = True          # top half known
    mask[1, 3, 3] = True        # and one lone sub-pixel in the unknown part
    out = model.sample(10, y=torch.zeros(10, dtype=torch.long), known=known, mask=mask, generator=torch.Generator().manual_seed(0))
    expanded = known.repeat_interleave(5, 0)
    assert torch.equal(out[:, mask], expanded[:, mask])
    assert out.shape == (10, 3, 4, 4)
    # the five completions of one image differ somewhere in the unknown part
    assert not all(torch.equal(out[0][~mask], out[k][~mask]) for k in range(1, 5))


def test_inpainting_fully_known_returns_input(model):
    known = torch.randint(0, 6, (3, 3, 4, 4))
    out = model.sample(3, y=torch.zeros(3, dtype=torch.long), known=known, mask=torch.ones(4, 4, dtype=torch.bool))
    assert torch.equal(out, known)


def test_inpainting_bad_arguments(model):
    with pytest.raises(ConfigError):
        model.sample(3, known=torch.zeros(2, 3, 4, 4, dtype=torch.long), mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ConfigError):
        model.sample(2, known=torch.zeros(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ConfigError):
        model.sample(2, known=torch.full((2, 3, 4, 4), 6), mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ConfigError):
        model.sample(2, y=5)


def test_row_cropping_gives_the_same_parameters(model):
    """The sampler feeds only rows <= i to row-causal trunks; that must not change row i's parameters."""
    x = torch.randint(0, 6, (2, 3, 4, 4))
    full = model.conditional_params(x)
    for rows in range(1, 5):
        part = model.conditional_params(x[:, :, :rows])
        torch.testing.assert_close(part, full[..., :rows, :])


def test_bad_model_inputs_are_named(model):
    with pytest.raises(ConfigError, match="shape"):
        model.log_prob(torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="integer"):
        model.log_prob(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ConfigError, match="lie in"):
        model.log_prob(torch.full((2, 3, 4, 4), 9))
