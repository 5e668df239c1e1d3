"""Models built with their parameters on the meta device (``pixelzoo.nn.meta``), and the training
memory estimate traced there: the same parameters and the same saved activations as on the CPU."""

import pytest
import torch

import pixelzoo
from pixelzoo.models.base import takes_labels
from pixelzoo.nn.meta import meta_parameters
from pixelzoo.training.run import _saved_for_backward

from conftest import TINY_MODELS, tiny_model_args


def _build(key, shape, classes, on_meta):
    name, hp = tiny_model_args(key)
    torch.manual_seed(0)
    if not on_meta:
        return pixelzoo.create_model(name, shape, 4, classes, **hp)
    with meta_parameters() as registered:
        model = pixelzoo.create_model(name, shape, 4, classes, **hp)
    assert registered and all(p.is_meta for p in registered)
    return model


@pytest.mark.parametrize("key", sorted(TINY_MODELS))
def test_meta_build_has_the_real_models_parameters_and_buffers(key):
    real = _build(key, (3, 6, 6), 5, on_meta=False)
    meta = _build(key, (3, 6, 6), 5, on_meta=True)
    assert all(p.is_meta for p in meta.parameters())
    real_state, meta_state = real.state_dict(), meta.state_dict()
    assert list(real_state) == list(meta_state)
    params = dict(real.named_parameters())
    for entry, value in real_state.items():
        assert (meta_state[entry].shape, meta_state[entry].dtype) == (value.shape, value.dtype), entry
        if entry not in params:
            assert torch.equal(meta_state[entry], value), entry  # buffers (masks, groups) are real and the same
    assert not any(p.is_meta for p in _build(key, (3, 6, 6), 5, on_meta=False).parameters())  # the patch is gone


@pytest.mark.parametrize("key", sorted(TINY_MODELS))
def test_the_meta_trace_saves_what_a_real_step_saves(key):
    """The bytes autograd saves for backward in one training step: traced on the meta device (the
    estimate `pixelzoo train` checks against the machine's memory) == measured on the CPU."""
    traced = {}
    for on_meta in (False, True):
        model = _build(key, (3, 6, 6), 5, on_meta)
        device = "meta" if on_meta else "cpu"
        model = model.to(device)
        x = torch.randint(0, 4, (3, 3, 6, 6)).to(device)
        y = torch.tensor([0, 4, 2]).to(device) if takes_labels(model) else None
        with torch.device(device):
            traced[on_meta] = _saved_for_backward(model.loss, x, y, {id(p) for p in model.parameters()})
    assert traced[True] == traced[False] > 0
