"""Row-cached sampling (Gated PixelCNN trunk) gives exactly the naive sampler's images."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.sampling.ancestral import ancestral_sample

TINY = dict(channels=12, n_layers=3, out_hidden=12, first_kernel_size=5)


def sharpen(model, factor=8.0):
    """Scale the output layer's last 1x1 conv: an untrained model's distributions are nearly flat, so
    its draws hardly depend on the context; sharpened, a wrong context changes the images."""
    last = model.output[-1] if isinstance(model.output, torch.nn.Sequential) else model.output.out
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return model.eval()


def gated(image_shape, num_levels=7, num_classes=None, **options):
    torch.manual_seed(0)
    return sharpen(pixelzoo.create_model("gated_pixelcnn", image_shape, num_levels, num_classes, **{**TINY, **options}))


def assert_same_images(model, n, seed=1, **kwargs):
    """The naive and the cached sampler give the same images for the same generator seed, and leave
    the generator in the same state (the same draws were made)."""
    out = {}
    for cached in (False, True):
        g = torch.Generator().manual_seed(seed)
        out[cached] = ancestral_sample(model, n, generator=g, cached=cached, **kwargs), torch.rand(3, generator=g)
    (naive, naive_next), (cached, cached_next) = out[False], out[True]
    assert naive.shape == (n, *model.image_shape)
    assert torch.equal(naive, cached)
    assert torch.equal(naive_next, cached_next)
    return naive


def test_one_channel_categorical_class_conditional():
    model = gated((1, 5, 6), num_classes=3, n_layers=4, first_kernel_size=7)
    out = assert_same_images(model, 6, y=torch.arange(6) % 3)
    assert len(out.unique()) > 1


def test_three_channels():
    assert_same_images(gated((3, 4, 5), num_classes=2), 5, y=1, temperature=0.8)


def test_logistic_mixture_head():
    model = gated((3, 4, 5), num_levels=16, head="logistic_mixture", head_options={"n_mix": 2})
    assert_same_images(model, 4)
    assert_same_images(model, 3, head_options={"mode": "map", "log_scale_shift": 0.5})


def test_spatial_conditioning_map():
    model = gated((3, 4, 5), num_classes=2, spatial_channels=2)
    spatial = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(3))
    assert_same_images(model, 4, y=torch.tensor([0, 1, 1, 0]), spatial=spatial)


def test_inpainting_with_a_mask():
    model = gated((3, 4, 5), num_classes=2)
    known = torch.randint(0, 7, (2, 3, 4, 5), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(3, 4, 5, dtype=torch.bool)
    mask[:, :2] = True            # top rows known: those rows are skipped
    mask[0, 2, :3] = True         # some single sub-pixels of a pixel
    mask[:, 3, 1] = True          # a whole pixel in the last row
    out = assert_same_images(model, 4, y=0, known=known, mask=mask)
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 8, 3)])  # (1, 8, 3): rows beyond the vertical reach of 5
def test_pixeliqn(shape):
    torch.manual_seed(0)
    model = sharpen(pixelzoo.create_model("pixeliqn", shape, num_levels=8, num_classes=2, channels=12,
                                          n_layers=3, out_hidden=12), 3.0)
    out = assert_same_images(model, 4, y=torch.tensor([0, 1, 0, 1]), temperature=0.9)
    assert len(out.unique()) > 1


def test_pixeliqn_inpainting_and_spatial_map():
    """tau through every layer next to a spatial map, with given sub-pixels skipped."""
    torch.manual_seed(0)
    model = sharpen(pixelzoo.create_model("pixeliqn", (3, 4, 5), num_levels=8, channels=12, n_layers=3,
                                          out_hidden=12, n_cos=3, spatial_channels=2), 3.0)
    spatial = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(3))
    known = torch.randint(0, 8, (2, 3, 4, 5), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(3, 4, 5, dtype=torch.bool)
    mask[:, 1] = True
    mask[1, 2, 2] = True
    out = assert_same_images(model, 4, known=known, mask=mask, spatial=spatial, temperature=0.6)
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])


def test_continuous_quantile_head():
    """A continuous level: the cached stepper gives the naive stepper's float images (to rounding: the
    values are fed back unrounded, so float differences of the two orders of summation remain)."""
    torch.manual_seed(0)
    model = sharpen(pixelzoo.create_model("gated_pixelcnn", (3, 4, 5), 256, 2, head="quantile",
                                          head_options={"continuous": True, "n_cos": 3}, **TINY), 10.0)
    naive, cached = (ancestral_sample(model, 3, y=1, temperature=0.8, generator=torch.Generator().manual_seed(1),
                                      cached=flag) for flag in (False, True))
    assert naive.is_floating_point() and not torch.equal(naive, naive.round())
    torch.testing.assert_close(cached, naive, rtol=1e-5, atol=1e-5)


def test_auto_mode_uses_the_cache_and_naive_trunks_still_work():
    model = gated((1, 3, 4))
    g = torch.Generator().manual_seed(5)
    auto = ancestral_sample(model, 2, generator=g)
    assert torch.equal(auto, ancestral_sample(model, 2, generator=torch.Generator().manual_seed(5), cached=True))
    torch.manual_seed(0)
    other = pixelzoo.create_model("pixelsnail", (1, 3, 4), 7, channels=8, n_blocks=1,
                                  out_res_blocks=1).eval()
    other.trunk.incremental_stepper = lambda *args, **kwargs: None  # a trunk without one: the naive path
    assert not other.trunk.row_cache
    assert other.sample(2).shape == (2, 1, 3, 4)
    with pytest.raises(ConfigError, match="row-cached"):
        ancestral_sample(other, 2, cached=True)


def test_tall_image_uses_a_window_of_rows():
    """9 rows, vertical reach 2 + 1 + 1 = 4: from row 6 on the vertical pass runs on a window."""
    model = gated((1, 9, 4), num_classes=2)
    assert model.trunk.vertical_reach == 4
    assert_same_images(model, 4, y=torch.tensor([0, 1, 0, 1]))


@pytest.mark.parametrize("channels,spatial_channels,num_classes", [(1, 0, 3), (3, 2, 2), (3, 0, None)])
def test_horizontal_row_features_equal_the_full_forward(channels, spatial_channels, num_classes):
    """Every row (the taller ones through a window of rows: reach 2 + 1 + 1) and every column."""
    height, width = 8, 6
    model = gated((channels, height, width), num_classes=num_classes, spatial_channels=spatial_channels)
    trunk = model.trunk
    g = torch.Generator().manual_seed(6)
    x = model.scale(torch.randint(0, 7, (2, channels, height, width), generator=g))
    y = torch.tensor([0, 1]) if num_classes else None
    sp = torch.randn(2, spatial_channels, height, width, generator=g) if spatial_channels else None
    with torch.no_grad():
        full = trunk(x, y, sp)
        for i in range(height):
            cache = trunk.vertical_row_cache(x[:, :, :i], y, None if sp is None else sp[..., :i, :],
                                             None if sp is None else sp[..., i : i + 1, :])
            for j in range(width):
                feats = trunk.horizontal_row(x[:, :, i : i + 1, : j + 1], cache)
                torch.testing.assert_close(feats, full[..., i : i + 1, : j + 1], atol=1e-5, rtol=0)
