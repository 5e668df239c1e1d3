"""The PixelCNN++ trunk's incremental stepper: per generated pixel each map of the trunk computes only the
positions that pixel completes; its features equal the full forward pass's at every position, and it
samples the naive (full-forward) sampler's images for the same generator."""

import pytest
import torch

import pixelzoo
from conftest import TINY_MODELS
from pixelzoo.models.autoregressive.pixelcnnpp.trunk import PixelCNNPPTrunk
from pixelzoo.models.autoregressive.pixelcnnpp.stepper import PixelCNNPPStepper
from pixelzoo.models.autoregressive.steppers import FullForwardStepper
from pixelzoo.sampling.labels import expand_labels

TINY = TINY_MODELS["pixelcnnpp"]


@pytest.mark.parametrize("shape, n_resolutions, nr_resnet", [
    ((1, 8, 8), 3, 1), ((1, 8, 8), 1, 2), ((3, 5, 5), None, 1), ((1, 6, 6), None, 2), ((1, 4, 6), 2, 1),
    ((2, 4, 4), 3, 1),
])
def test_features_equal_the_full_forward_pass(shape, n_resolutions, nr_resnet):
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelcnnpp", shape, 5, 3, nr_resnet=nr_resnet, nr_filters=6, dropout=0.0,
                                  n_resolutions=n_resolutions, spatial_channels=2,
                                  head_options={"n_mix": 2}).double().eval()
    x = torch.randint(0, 5, (2,) + shape)
    y = torch.tensor([0, 2])
    spatial = torch.randn(2, 2, *shape[1:], dtype=torch.float64)
    full = model.trunk_features(model.scale(x).double(), y, spatial)
    stepper = model.stepper(2, y=y, spatial=spatial)
    assert isinstance(stepper, PixelCNNPPStepper)
    for i in range(shape[1]):
        for j in range(shape[2]):
            torch.testing.assert_close(stepper.features(x, i, j)[..., 0, 0], full[:, :, i, j], rtol=0, atol=1e-12)


def test_skipped_pixels_are_caught_up_and_order_is_enforced():
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelcnnpp", (1, 8, 8), 5, n_resolutions=3, **TINY).double().eval()
    x = torch.randint(0, 5, (3, 1, 8, 8))
    full = model.trunk_features(model.scale(x).double())
    stepper = model.stepper(3)
    for i, j in [(0, 3), (2, 7), (5, 0), (7, 7)]:  # jumps: the positions in between are caught up
        torch.testing.assert_close(stepper.features(x, i, j)[..., 0, 0], full[:, :, i, j], rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="raster order"):
        stepper.features(x, 3, 0)


def test_the_model_picks_the_stepper():
    model = pixelzoo.create_model("pixelcnnpp", (1, 4, 4), 5, **TINY)
    assert type(model.stepper(2)) is PixelCNNPPStepper
    assert type(model.stepper(2, cached=True)) is PixelCNNPPStepper
    assert type(model.stepper(2, cached=False)) is FullForwardStepper


def same_samples(model, n, seed=3, **kw):
    a = model.sample(n, generator=torch.Generator().manual_seed(seed), cached=None, **kw)
    b = model.sample(n, generator=torch.Generator().manual_seed(seed), cached=False, **kw)
    assert torch.equal(a, b)
    return a


@pytest.mark.parametrize("shape, head, n_resolutions", [
    ((1, 8, 8), "logistic_mixture", 3), ((3, 4, 4), "logistic_mixture", None), ((1, 5, 5), "categorical", None),
    ((3, 6, 6), "categorical", 2), ((1, 6, 4), "logistic_mixture", 1),
])
def test_samples_equal_the_naive_sampler(shape, head, n_resolutions):
    torch.manual_seed(0)
    opts = dict(TINY, head=head, head_options=TINY["head_options"] if head == "logistic_mixture" else {})
    model = pixelzoo.create_model("pixelcnnpp", shape, 6, n_resolutions=n_resolutions, **opts).eval()
    same_samples(model, 3)
    same_samples(model, 1)  # one image: the pixel written from views, the mixture's draw on Python floats


def test_class_and_spatial_conditioning():
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelcnnpp", (3, 4, 4), 6, 3, spatial_channels=3, **TINY).eval()
    spatial = torch.randn(2, 3, 4, 4)
    same_samples(model, 2, y=torch.tensor([2, 0]), spatial=spatial)
    model = pixelzoo.create_model("pixelcnnpp", (1, 8, 8), 6, 3, head="categorical", nr_resnet=1, nr_filters=8,
                                  dropout=0.0).eval()
    same_samples(model, 2, y=1)


def test_inpainting_with_several_completions_per_input():
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelcnnpp", (3, 4, 4), 6, 2, **TINY).eval()
    known = torch.randint(0, 6, (2, 3, 4, 4))
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, 0] = True          # the first row given
    mask[:, 1, 1:3] = True     # whole pixels in the middle of a row
    mask[0, 2, 2] = True       # one sub-pixel of a pixel
    mask[:, 3, 3] = True       # the last pixel
    out = same_samples(model, 4, known=known, mask=mask, y=torch.tensor([0, 1, 1, 0]))
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])


def test_pixeliqn_on_pixelcnnpp():
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixeliqn", (3, 4, 4), 7, 3, trunk="pixelcnnpp", nr_resnet=1, nr_filters=8,
                                  dropout=0.0, n_cos=4, out_hidden=12).eval()
    assert type(model.stepper(2)) is PixelCNNPPStepper
    same_samples(model, 3, y=torch.tensor([0, 1, 2]))


def test_conditional_part_of_a_composite(monkeypatch):
    torch.manual_seed(0)
    model = pixelzoo.create_model("grayscale_pixelcnn", (3, 4, 4), 8, 3, gray_levels=4,
                                  prior={"name": "gated_pixelcnn", "channels": 24, "n_layers": 2,
                                         "first_kernel_size": 3, "out_hidden": 24},
                                  conditional={"name": "pixelcnnpp", **TINY},
                                  embedding={"channels": 8, "n_blocks": 2, "out_channels": 4}).eval()
    conditional = model.parts["conditional"].ar
    spatial = torch.zeros(2, conditional.trunk.up_u[0][0].cond.spatial.in_channels, 4, 4)
    assert type(conditional.stepper(2, spatial=spatial)) is PixelCNNPPStepper
    gray = torch.randint(0, 4, (2, 1, 4, 4))
    y = torch.tensor([0, 2])
    cached = model.sample(4, y=expand_labels(y, 2, 2), given={"gray": gray}, generator=torch.Generator().manual_seed(1))
    sampled = model.sample(2, y=y, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(PixelCNNPPTrunk, "incremental_stepper", lambda self, *a, **k: None)
    assert type(conditional.stepper(2, spatial=spatial)) is FullForwardStepper
    assert torch.equal(cached, model.sample(4, y=expand_labels(y, 2, 2), given={"gray": gray},
                                            generator=torch.Generator().manual_seed(1)))
    assert torch.equal(sampled, model.sample(2, y=y, generator=torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("shape, n_resolutions, nr_resnet, spatial_channels", [
    ((1, 8, 8), 3, 1, 0), ((3, 5, 5), None, 2, 2), ((1, 6, 4), 1, 1, 1),
])
def test_one_image_steps_on_numpy_equal_the_torch_path(shape, n_resolutions, nr_resnet, spatial_channels):
    """One image on the CPU: a pixel's step runs on NumPy views of the maps (``_HostGraph``; class
    conditioning folded into the biases, a spatial map's per position); ``host=False`` keeps the
    PyTorch operations. Both give the full forward pass's features at every pixel."""
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelcnnpp", shape, 5, 3, nr_resnet=nr_resnet, nr_filters=6, dropout=0.0,
                                  n_resolutions=n_resolutions, spatial_channels=spatial_channels,
                                  head_options={"n_mix": 2}).eval()
    x = torch.randint(0, 5, (1,) + shape)
    y = torch.tensor([1])
    spatial = torch.randn(1, spatial_channels, *shape[1:]) if spatial_channels else None
    with torch.inference_mode():
        full = model.trunk_features(model.scale(x), y, spatial)
        host = PixelCNNPPStepper(model, 1, y, spatial)
        plain = PixelCNNPPStepper(model, 1, y, spatial, host=False)
        assert host.on_host and not plain.on_host
        for i in range(shape[1]):
            for j in range(shape[2]):
                a, b = host.features(x, i, j)[..., 0, 0], plain.features(x, i, j)[..., 0, 0]
                torch.testing.assert_close(a, full[:, :, i, j], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    batch_spatial = None if spatial is None else spatial.repeat(2, 1, 1, 1)
    assert not PixelCNNPPStepper(model, 2, y.repeat(2), batch_spatial).on_host  # a batch: the PyTorch operations
