"""Gated PixelCNN specifics: no blind spot, colour channel order, conditioning."""

import torch

import pixelzoo
from helpers import dependency_grads, raster_before


def test_no_blind_spot_full_receptive_field():
    """With enough layers every sub-pixel before (c, i, j) influences it, including the pixels above
    and to the right that a plain masked-convolution PixelCNN never sees."""
    shape = (3, 5, 5)
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=shape, num_levels=4, channels=24, n_layers=4)
    x = torch.randint(0, 4, (4, *shape))
    for (c, i, j), g in dependency_grads(model, x):
        before = raster_before(*shape, c, i, j)
        assert torch.all(g[before] > 0), f"blind spot at output {(c, i, j)}: {(before & (g == 0)).nonzero().tolist()}"
        assert torch.all(g[~before] == 0)


def test_class_conditioning_changes_outputs_and_samples():
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 4, 4), num_levels=4, num_classes=2, channels=8, n_layers=2)
    with torch.no_grad():
        for layer in model.trunk.layers:
            layer.cond.embed.weight.mul_(20)
    x = torch.randint(0, 4, (1, 1, 4, 4))
    assert not torch.allclose(model.log_prob(x, torch.tensor([0])), model.log_prob(x, torch.tensor([1])))
    g = torch.Generator().manual_seed(1)
    a = model.sample(32, y=0, generator=g)
    g = torch.Generator().manual_seed(1)
    b = model.sample(32, y=1, generator=g)
    assert not torch.equal(a, b)


def test_spatial_conditioning_reaches_every_layer():
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 4, 4), num_levels=4, channels=8, n_layers=2, spatial_channels=2)
    x = torch.randint(0, 4, (2, 1, 4, 4))
    s = torch.randn(2, 2, 4, 4, requires_grad=True)
    model.log_prob(x, spatial=s).sum().backward()
    assert s.grad.abs().sum() > 0
    for layer in model.trunk.layers:
        assert layer.cond.spatial.weight.grad.abs().sum() > 0
