"""PixelCNN++ specifics: no blind spot through the resolutions, exact normalisation and sampling with
both heads, resolutions, conditioning, dropout, sampling options."""

import itertools

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.models.autoregressive.pixelcnnpp.trunk import max_resolutions
from helpers import dependency_grads, raster_before



@pytest.mark.parametrize("shape,n_resolutions,nr_resnet", [((1, 5, 5), 1, 2), ((3, 8, 8), 3, 2)])
def test_no_blind_spot_full_receptive_field(shape, n_resolutions, nr_resnet):
    """Every sub-pixel's parameters depend on every earlier pixel (all its channels) and on the same
    pixel's earlier channels, and on nothing at or after it, through strided and transposed layers."""
    model = pixelzoo.create_model("pixelcnnpp", image_shape=shape, num_levels=4, nr_resnet=nr_resnet, nr_filters=8,
                                  dropout=0.0, head_options={"n_mix": 2})
    assert model.trunk.n_resolutions == n_resolutions
    x = torch.randint(0, 4, (2, *shape))
    for (c, i, j), g in dependency_grads(model, x):
        before = raster_before(*shape, c, i, j)
        assert torch.all(g[before] > 0), f"blind spot at output {(c, i, j)}: {(before & (g == 0)).nonzero().tolist()}"
        assert torch.all(g[~before] == 0)


def _all_images(shape, levels):
    c, h, w = shape
    return torch.tensor(list(itertools.product(range(levels), repeat=c * h * w))).view(-1, c, h, w)


CASES = [
    ("logistic_mixture", (3, 1, 2), 2, {"n_mix": 2}),
    ("logistic_mixture", (1, 2, 2), 3, {"n_mix": 3}),
    ("categorical", (3, 1, 2), 2, {}),
    ("categorical", (1, 2, 2), 3, {}),
]


@pytest.mark.parametrize("head,shape,levels,options", CASES)
def test_distribution_sums_to_one_and_sampler_matches_it(head, shape, levels, options):
    model = pixelzoo.create_model("pixelcnnpp", image_shape=shape, num_levels=levels, nr_resnet=1, nr_filters=8,
                                  dropout=0.0, head=head, head_options=options).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)  # a peaked, far-from-uniform distribution
    x = _all_images(shape, levels)
    with torch.no_grad():
        probs = model.log_prob(x).double().flatten(1).sum(1).exp()
    assert abs(probs.sum().item() - 1) < 1e-5
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    index = (s.flatten(1) * (levels ** torch.arange(s[0].numel() - 1, -1, -1))).sum(1)
    freq = torch.bincount(index, minlength=len(x)).double() / n
    tv = 0.5 * (freq - probs).abs().sum().item()
    assert tv < 0.03, tv  # an exact sampler: at most about sqrt(M / n) / 2.5 ~ 0.023 here


def test_categorical_head_gets_a_channel_term_on_this_trunk():
    rgb = pixelzoo.create_model("pixelcnnpp", image_shape=(3, 4, 4), num_levels=5, nr_resnet=1, nr_filters=8, head="categorical")
    assert rgb.head.models_channel_order and rgb.head.channel_order.shape == (15, 3)
    grey = pixelzoo.create_model("pixelcnnpp", image_shape=(1, 4, 4), num_levels=5, nr_resnet=1, nr_filters=8, head="categorical")
    assert not hasattr(grey.head, "channel_order")
    gated = pixelzoo.create_model("gated_pixelcnn", image_shape=(3, 4, 4), num_levels=5, channels=6, n_layers=2)
    assert not gated.head.models_channel_order and not hasattr(gated.head, "channel_order")


def test_resolutions():
    assert [max_resolutions(h, h) for h in (28, 32, 8, 4, 5, 6, 7, 16)] == [3, 3, 3, 3, 1, 2, 1, 3]
    for size, r in ((28, 3), (5, 1), (6, 2)):
        m = pixelzoo.create_model("pixelcnnpp", image_shape=(1, size, size), num_levels=4, nr_resnet=1, nr_filters=4)
        assert m.trunk.n_resolutions == r
        assert torch.isfinite(m.loss(torch.randint(0, 4, (2, 1, size, size)))["loss"])
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(1, 8, 8), num_levels=4, nr_resnet=1, nr_filters=4, n_resolutions=1)
    assert m.trunk.n_resolutions == 1
    for bad in (dict(image_shape=(1, 6, 6), n_resolutions=3), dict(image_shape=(1, 8, 8), n_resolutions=4),
                dict(image_shape=(1, 8, 8), n_resolutions=0), dict(image_shape=(1, 8, 8), nr_resnet=0)):
        with pytest.raises(ConfigError):
            pixelzoo.create_model("pixelcnnpp", num_levels=4, nr_filters=4, **bad)


def test_trunk_is_not_row_croppable_but_blocks_count_matches_paper():
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(3, 8, 8), num_levels=4, nr_resnet=2, nr_filters=4)
    t = m.trunk
    assert not t.channel_masked and not t.row_causal
    # up: nr_resnet per resolution; down: nr_resnet at the lowest, nr_resnet + 1 above (as PixelCNN++)
    assert [len(b) for b in t.up_u] == [2, 2, 2] and [len(b) for b in t.dn_u] == [2, 3, 3]


def test_class_and_spatial_conditioning_reach_every_block_at_every_resolution():
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(1, 8, 8), num_levels=4, num_classes=3, nr_resnet=1,
                              nr_filters=4, spatial_channels=2)
    x = torch.randint(0, 4, (2, 1, 8, 8))
    s = torch.randn(2, 2, 8, 8, requires_grad=True)
    m.log_prob(x, torch.tensor([0, 2]), spatial=s).sum().backward()
    assert s.grad.abs().sum() > 0
    blocks = [b for group in (*m.trunk.up_u, *m.trunk.up_ul, *m.trunk.dn_u, *m.trunk.dn_ul) for b in group]
    assert len(blocks) == 2 * (3 + 1 + 2 + 2)
    for b in blocks:
        assert b.cond.spatial.weight.grad.abs().sum() > 0
        assert b.cond.embed.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        m.log_prob(x, torch.tensor([0, 2]))  # the spatial map is required
    s = torch.randn(3, 2, 8, 8)
    a = m.sample(3, y=torch.tensor([0, 1, 2]), spatial=s, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 8, 8)


def test_dropout_only_in_training():
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(1, 4, 4), num_levels=4, nr_resnet=1, nr_filters=8, dropout=0.5)
    x = torch.randint(0, 4, (2, 1, 4, 4))
    assert not torch.equal(m.train().log_prob(x), m.log_prob(x))
    m.eval()
    assert torch.equal(m.log_prob(x), m.log_prob(x))


def test_sampling_options_through_the_model():
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(3, 4, 4), num_levels=16, nr_resnet=1, nr_filters=8, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    a = m.sample(4, generator=g, head_options={"mode": "map"})
    b = m.sample(4, generator=g, head_options={"log_scale_shift": 1.0})
    c = m.sample(4, generator=g, temperature=0.0)
    for s in (a, b, c):
        assert s.shape == (4, 3, 4, 4) and 0 <= int(s.min()) and int(s.max()) < 16
    with pytest.raises(ConfigError):
        m.sample(1, head_options={"nope": 1})
    cat = pixelzoo.create_model("pixelcnnpp", image_shape=(1, 4, 4), num_levels=16, nr_resnet=1, nr_filters=8,
                                head="categorical")
    assert cat.sample(2, head_options={"mode": "map"}).shape == (2, 1, 4, 4)
    with pytest.raises(ConfigError):
        cat.sample(1, head_options={"log_scale_shift": 1.0})


def test_inpainting_keeps_known_subpixels():
    m = pixelzoo.create_model("pixelcnnpp", image_shape=(3, 4, 4), num_levels=6, nr_resnet=1, nr_filters=8, dropout=0.0)
    known = torch.randint(0, 6, (2, 3, 4, 4))
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    mask[0, 2, 1] = True  # only the red sub-pixel of one pixel: green and blue are drawn given it
    out = m.sample(4, known=known, mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])
