"""The Gated PixelCNN's incremental stepper (per-layer queues, Ramachandran et al. 2017): every layer's
outputs equal the full forward pass's at every sub-pixel step, and it samples exactly the naive
sampler's images (grey and colour, heads, class, spatial map, inpainting, PixelIQN's tau)."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.models.autoregressive.gated_pixelcnn.stepper import GatedStepper
from pixelzoo.models.autoregressive.steppers import FullForwardStepper, Stepper
from pixelzoo.nn import feature_groups
from pixelzoo.sampling.ancestral import ancestral_sample

from helpers import assert_numpy_steps_match

TINY = dict(channels=12, n_layers=3, out_hidden=12, first_kernel_size=5)


def sharpen(model, factor=8.0):
    """Scale the output layer's last 1x1 conv: an untrained model's distributions are nearly flat, so
    its draws hardly depend on the context; sharpened, a wrong context changes the images."""
    last = model.output[-1] if isinstance(model.output, torch.nn.Sequential) else model.output.out
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return model.eval()


def gated(image_shape, num_levels=7, num_classes=None, factor=8.0, **options):
    torch.manual_seed(0)
    return sharpen(pixelzoo.create_model("gated_pixelcnn", image_shape, num_levels, num_classes, **{**TINY, **options}),
                   factor)


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


class CheckingStepper(Stepper):
    """Takes every sub-pixel's parameters from both steppers, checks they agree, returns the naive ones."""

    def __init__(self, model, n, y=None, spatial=None, inputs=None):
        super().__init__(model, n, y, spatial, inputs)
        self.incremental = GatedStepper(model, n, y, spatial, inputs)
        self.naive = FullForwardStepper(model, n, y, spatial, inputs)
        self.calls = 0

    def params(self, x, i, j, c):
        naive = self.naive.params(x, i, j, c)
        torch.testing.assert_close(self.incremental.params(x, i, j, c), naive, atol=1e-5, rtol=1e-5)
        self.calls += 1
        return naive


def assert_same_params(model, n, seed=1, **kwargs):
    """While sampling, the incremental stepper's parameters of every sub-pixel drawn equal the naive one's."""
    steppers = []

    def stepper(n, y=None, spatial=None, inputs=None, cached=None):
        steppers.append(CheckingStepper(model, n, y, spatial, inputs))
        return steppers[-1]

    model.stepper = stepper
    try:
        ancestral_sample(model, n, generator=torch.Generator().manual_seed(seed), **kwargs)
    finally:
        del model.stepper
    assert steppers[0].calls > 0


def test_one_channel_categorical_class_conditional():
    model = gated((1, 5, 6), num_classes=3, n_layers=4, first_kernel_size=7)
    out = assert_same_images(model, 6, y=torch.arange(6) % 3)
    assert len(out.unique()) > 1


def test_three_channels():
    assert_same_images(gated((3, 4, 5), num_classes=2), 5, y=1, temperature=0.8)


def test_logistic_mixture_head():
    model = gated((3, 4, 5), num_levels=16, head="logistic_mixture", head_options={"n_mix": 2})
    assert_same_images(model, 4)
    assert_same_images(model, 1)  # one image: the head's draw on Python floats, for both samplers
    assert_same_images(model, 3, head_options={"mode": "map", "log_scale_shift": 0.5})


@pytest.mark.parametrize("whole_map", [True, False])
def test_spatial_conditioning_map(whole_map, monkeypatch):
    """The map's conditioning bias for every row at once, or (over the memory bound) a row at a time."""
    monkeypatch.setattr(GatedStepper, "COND_MAP_MAX_BATCH", 8)  # the batches here
    if not whole_map:
        monkeypatch.setattr(GatedStepper, "COND_MAP_BYTES", 0)
    model = gated((3, 4, 5), num_classes=2, spatial_channels=2)
    spatial = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 1, 0])
    assert GatedStepper(model, 4, y, spatial.repeat(2, 1, 1, 1))._cond_whole_map == whole_map
    assert_same_images(model, 4, y=y, spatial=spatial)
    assert_same_params(model, 4, y=y, spatial=spatial)


@pytest.mark.parametrize("shape", [(3, 5, 5), (1, 5, 5)])
def test_inpainting_with_a_mask(shape):
    """Given rows, whole pixels (a row's first too) and single sub-pixels (a pixel's last channel
    too) are skipped by the sampler: the stepper catches up on them; two completions per image."""
    model = gated(shape, num_classes=2, factor=20.0)
    channels = shape[0]
    known = torch.randint(0, 7, (2, *shape), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, :2] = True                   # top rows known: those rows are skipped
    mask[0, 2, :3] = True                # the first channel of some pixels
    mask[channels - 1, 2, 3] = True      # the last channel of one
    mask[:, 3, 1:3] = True               # whole pixels
    mask[:, 4, 0] = True                 # a row's first pixel
    out = assert_same_images(model, 4, y=torch.tensor([0, 0, 1, 1]), known=known, mask=mask)
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])
    assert_same_params(model, 4, y=torch.tensor([0, 0, 1, 1]), known=known, mask=mask)


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
    assert_same_params(model, 4, known=known, mask=mask, spatial=spatial, temperature=0.6)


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


def test_auto_mode_uses_the_incremental_stepper_and_naive_trunks_still_work():
    model = gated((1, 3, 4))
    assert type(model.stepper(2)) is GatedStepper
    assert type(model.stepper(2, cached=True)) is GatedStepper
    assert type(model.stepper(2, cached=False)) is FullForwardStepper
    g = torch.Generator().manual_seed(5)
    auto = ancestral_sample(model, 2, generator=g)
    assert torch.equal(auto, ancestral_sample(model, 2, generator=torch.Generator().manual_seed(5), cached=True))
    torch.manual_seed(0)
    other = pixelzoo.create_model("pixelsnail", (1, 3, 4), 7, channels=8, n_blocks=1,
                                  out_res_blocks=1).eval()
    other.trunk.incremental_stepper = lambda *args, **kwargs: None  # a trunk without one: the naive path
    assert other.sample(2).shape == (2, 1, 3, 4)
    with pytest.raises(ConfigError, match="incremental stepper"):
        ancestral_sample(other, 2, cached=True)


@pytest.mark.parametrize("options", [dict(), dict(n_layers=4, kernel_size=5, first_kernel_size=7)])
def test_tall_image(options):
    """More rows than the vertical stack reaches (2 + 1 + 1 = 4 rows; 3 + 2 + 2 + 2 with wider kernels):
    the vertical queues drop the rows no layer reads any more."""
    assert_same_images(gated((1, 12, 4), num_classes=2, **options), 4, y=torch.tensor([0, 1, 0, 1]))


# ----------------------------------------------------------------------- every layer, step by step
def full_layers(trunk, x, y, spatial):
    """Per layer, the full forward pass's (vertical output, horizontal output), each (B, F, H, W)."""
    v = h = x
    out = []
    for layer, (cv, ch) in zip(trunk.layers, trunk.conditioning(y, spatial, x.shape[-2:])):
        v, h = layer(v, h, cv, ch)
        out.append((v, h))
    return out


def junk_after(x, i, j, c, generator, levels=7):
    """``x`` with every sub-pixel from (c, i, j) on replaced by random levels, as during sampling."""
    channels, height, width = x.shape[1:]
    later = torch.tensor([(ii, jj) > (i, j) or ((ii, jj) == (i, j) and cc >= c)
                          for cc in range(channels) for ii in range(height) for jj in range(width)])
    junk = x.clone().flatten(1)
    junk[:, later] = torch.randint(0, levels, (x.shape[0], int(later.sum())), generator=generator)
    return junk.view_as(x)


@pytest.mark.parametrize("n", [2, 1])  # 1: the steps on NumPy views (``_HostSteps``)
@pytest.mark.parametrize("channels, options", [
    (1, dict(num_classes=3)),
    (3, dict(num_classes=2, spatial_channels=2)),
    (3, dict(n_layers=4, kernel_size=5, first_kernel_size=7)),
    (1, dict(spatial_channels=1, n_layers=2)),
])
def test_every_layer_equals_the_full_forward_at_every_step(channels, options, n):
    """At every sub-pixel (c, i, j), with every later sub-pixel (the current one included) holding junk
    as during sampling: each layer's horizontal output at (i, j) equals the full forward pass's on the
    true image in every feature group <= c (all a sub-pixel's parameters read), each layer's vertical
    row i - 1 (what row i reads from it) equals the full pass's in every group, and so do the
    parameters of channel c."""
    height, width = 7, 4
    model = gated((channels, height, width), **options)
    trunk = model.trunk
    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 7, (n, channels, height, width), generator=g)
    y = torch.tensor([0, 1][:n]) if options.get("num_classes") else None
    s = options.get("spatial_channels", 0)
    sp = torch.randn(n, s, height, width, generator=g) if s else None
    keep_at = feature_groups(trunk.out_channels, channels)
    with torch.no_grad():
        full = full_layers(trunk, model.scale(x), y, sp)
        params = model.conditional_params(x, y, sp)
        stepper = model.stepper(n, y=y, spatial=sp, cached=True)
        assert type(stepper) is GatedStepper
        assert (stepper._host is not None) == (n == 1)
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    step_params = stepper.params(junk_after(x, i, j, c, g), i, j, c)
                    torch.testing.assert_close(step_params, params[:, c, :, i, j], atol=1e-5, rtol=0)
                    keep = keep_at <= c
                    layers = stepper.layer_outputs(j) + [stepper.features(junk_after(x, i, j, c, g), i, j, c)[..., 0, 0]]
                    for (v, h), h_step, queue in zip(full, layers, stepper.queues):
                        torch.testing.assert_close(h_step[:, keep], h[:, keep, i, j], atol=1e-5, rtol=0)
                        if i:
                            torch.testing.assert_close(queue.v_out[:, :, 0], v[:, :, i - 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [2, 1])
def test_features_catch_up_on_skipped_positions(n):
    """Calls only at some positions (the others given, rows skipped): the features there still equal
    the full pass's."""
    model = gated((3, 6, 5), num_classes=2, spatial_channels=1)
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 7, (n, 3, 6, 5), generator=g)
    sp = torch.randn(n, 1, 6, 5, generator=g)
    y = torch.tensor([1, 0][:n])
    with torch.no_grad():
        full = model.trunk(model.scale(x), y, sp)
        stepper = model.stepper(n, y=y, spatial=sp, cached=True)
        for i, j, c in [(0, 2, 1), (2, 0, 0), (2, 0, 2), (2, 4, 0), (3, 3, 1), (5, 1, 2), (5, 2, 0)]:
            keep = model.trunk.out_groups <= c
            torch.testing.assert_close(stepper.features(x, i, j, c)[:, keep, 0, 0], full[:, keep, i, j],
                                       atol=1e-5, rtol=0)


def test_the_trunk_map_is_computed_once_per_sample_call():
    """The spatial map and tau's embedding reach the trunk through ``model.trunk_spatial``, which the
    stepper runs once for the whole image and crops per row."""
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixeliqn", (3, 4, 5), num_levels=8, channels=12, n_layers=3, out_hidden=12,
                                  n_cos=3, spatial_channels=2).eval()
    calls = []
    trunk_spatial = model.trunk_spatial

    def counting(*args, **kwargs):
        calls.append(1)
        return trunk_spatial(*args, **kwargs)

    model.trunk_spatial = counting
    spatial = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(3))
    model.sample(2, spatial=spatial, generator=torch.Generator().manual_seed(1))
    assert len(calls) == 1


def test_one_image_positions_on_numpy_equal_the_torch_path():
    """One image on the CPU: positions and rows run on NumPy views (``_HostSteps``); ``host=False`` keeps
    the PyTorch operations. Both give the same features at every step, and the same images."""
    model = gated((1, 6, 5), num_classes=3, n_layers=4)
    x = torch.randint(0, 7, (1, 1, 6, 5), generator=torch.Generator().manual_seed(3))
    assert_numpy_steps_match(model, GatedStepper, x, torch.tensor([2]), image_input=True)
