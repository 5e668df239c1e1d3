"""The PixelSNAIL trunk's incremental stepper (per-layer caches, Ramachandran et al. 2017): its
features equal the full forward pass's at every sub-pixel step, and it samples exactly the naive
sampler's images (grey and colour, heads, class, spatial map, inpainting, PixelIQN, VQ-VAE-2)."""

import pytest
import torch

import pixelzoo
from pixelzoo.models.autoregressive.pixelsnail.stepper import SnailStepper
from pixelzoo.models.autoregressive.steppers import FullForwardStepper
from pixelzoo.sampling.ancestral import ancestral_sample

from helpers import assert_numpy_steps_match

TINY = dict(channels=12, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, out_hidden=12)
TINY_AE = dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=8, num_codes=16, levels=[2, 2])
TINY_TOP = dict(channels=8, n_blocks=2, kernel_size=3, attention_every=1, heads=2, out_res_blocks=1, code_embedding=6,
                dropout=0.0)
TINY_LOWER = dict(channels=8, n_blocks=2, kernel_size=3, code_embedding=6, dropout=0.0, cond_embedding=4,
                  cond_channels=8, cond_res_channels=8, cond_blocks=2, spatial_channels=4)


def sharpen(model, factor=8.0):
    """Scale the output layer's last 1x1 conv: an untrained model's distributions are nearly flat, so
    its draws hardly depend on the context; sharpened, a wrong context changes the images."""
    last = model.output[-1] if isinstance(model.output, torch.nn.Sequential) else model.output.out
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return model.eval()


def snail(image_shape, num_levels=7, num_classes=None, factor=8.0, name="pixelsnail", **options):
    torch.manual_seed(0)
    return sharpen(pixelzoo.create_model(name, image_shape, num_levels, num_classes, **{**TINY, **options}), factor)


def assert_same_images(model, n, seed=1, sample=ancestral_sample, **kwargs):
    """The naive and the incremental sampler give the same images for the same generator seed, and
    leave the generator in the same state (the same draws were made)."""
    out = {}
    for cached in (False, True):
        g = torch.Generator().manual_seed(seed)
        out[cached] = sample(model, n, generator=g, cached=cached, **kwargs), torch.rand(3, generator=g)
    (naive, naive_next), (cached, cached_next) = out[False], out[True]
    assert torch.equal(naive, cached)
    assert torch.equal(naive_next, cached_next)
    return naive


# ----------------------------------------------------------------------- features, step by step
@pytest.mark.parametrize("n", [2, 1])  # 1: a position on NumPy views (``_HostPositions``)
@pytest.mark.parametrize("channels, options", [
    (1, dict(num_classes=3)),                                              # attention k <= q
    (3, dict(num_classes=2, spatial_channels=2)),                          # attention k < q, colour groups
    (3, dict(n_blocks=3, attention_every=2, kernel_size=5, heads=3)),      # wider kernels, one attention layer
    (1, dict(attention_every=0, spatial_channels=1)),                      # no attention
    (1, dict(out_res_blocks=2, out_hidden=20)),                            # a wider output stack
])
def test_features_equal_the_full_forward_at_every_step(channels, options, n):
    """At every sub-pixel (c, i, j), with every later sub-pixel (the current one included) holding
    junk as during sampling, the stepper's trunk features at (i, j) equal the full forward pass's on
    the true image in every feature group <= c (all a sub-pixel's parameters read)."""
    height, width = 5, 4
    model = snail((channels, height, width), **options)
    trunk = model.trunk
    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 7, (n, channels, height, width), generator=g)
    y = torch.tensor([0, 1][:n]) if options.get("num_classes") else None
    s = options.get("spatial_channels", 0)
    sp = torch.randn(n, s, height, width, generator=g) if s else None
    with torch.no_grad():
        full = trunk(model.scale(x), y, sp)
        stepper = model.stepper(n, y=y, spatial=sp, cached=True)
        assert type(stepper) is SnailStepper
        assert stepper.on_host == (n == 1)
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    junk = x.clone().flatten(1)
                    later = torch.tensor([(ii, jj) > (i, j) or ((ii, jj) == (i, j) and cc >= c)
                                          for cc in range(channels) for ii in range(height) for jj in range(width)])
                    junk[:, later] = torch.randint(0, 7, (n, int(later.sum())), generator=g)
                    feats = stepper.features(junk.view_as(x), i, j, c)
                    keep = trunk.out_groups <= c
                    torch.testing.assert_close(feats[:, keep, 0, 0], full[:, keep, i, j], atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [2, 1])
def test_features_catch_up_on_skipped_positions(n):
    """Calls only at some positions (the others given): the features there still equal the full pass's."""
    model = snail((3, 4, 5), num_classes=2)
    x = torch.randint(0, 7, (n, 3, 4, 5), generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 0][:n])
    with torch.no_grad():
        full = model.trunk(model.scale(x), y)
        stepper = model.stepper(n, y=y, cached=True)
        for i, j, c in [(0, 2, 1), (2, 0, 0), (2, 0, 2), (2, 4, 0), (3, 3, 1)]:
            keep = model.trunk.out_groups <= c
            torch.testing.assert_close(stepper.features(x, i, j, c)[:, keep, 0, 0], full[:, keep, i, j],
                                       atol=1e-5, rtol=0)


# ----------------------------------------------------------------------- sampling: the naive sampler's images
def test_the_model_picks_the_incremental_stepper():
    model = snail((1, 3, 3))
    assert type(model.stepper(2)) is SnailStepper
    assert type(model.stepper(2, cached=True)) is SnailStepper
    assert type(model.stepper(2, cached=False)) is FullForwardStepper


def test_grey_categorical_class_conditional():
    model = snail((1, 5, 6), num_classes=3)
    out = assert_same_images(model, 6, y=torch.arange(6) % 3)
    assert len(out.unique()) > 1


@pytest.mark.parametrize("options", [dict(), dict(n_blocks=3, attention_every=2, kernel_size=5), dict(attention_every=0)])
def test_rgb_categorical(options):
    assert_same_images(snail((3, 4, 5), num_classes=2, **options), 5, y=1, temperature=0.8)


def test_logistic_mixture_head():
    model = snail((3, 4, 5), num_levels=16, head="logistic_mixture", head_options={"n_mix": 2})
    assert_same_images(model, 4)
    assert_same_images(model, 1)  # one image: the pixel written from views, the mixture's draw on Python floats
    assert_same_images(model, 3, head_options={"mode": "map", "log_scale_shift": 0.5})


def test_spatial_conditioning_map():
    model = snail((3, 4, 5), num_classes=2, spatial_channels=3)
    spatial = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    assert_same_images(model, 4, y=torch.tensor([0, 1, 1, 0]), spatial=spatial)


@pytest.mark.parametrize("shape, attention_every", [((3, 4, 5), 1), ((1, 5, 4), 1), ((3, 4, 5), 0)])
def test_inpainting_several_completions(shape, attention_every):
    """Given rows, single sub-pixels (the last channel too) and whole pixels are skipped by the sampler:
    the stepper catches up on them; two completions per given image."""
    model = snail(shape, num_classes=2, attention_every=attention_every)
    channels = shape[0]
    known = torch.randint(0, 7, (2, *shape), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, :2] = True                   # top rows known
    mask[channels - 1, 2, :3] = True     # the last channel of some pixels
    mask[0, 2, 4 % shape[2]] = True      # the first channel of one
    mask[:, 3, 1] = True                 # a whole pixel
    out = assert_same_images(model, 4, y=0, known=known, mask=mask)
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])


@pytest.mark.parametrize("name, options", [
    ("pixeliqn", dict(trunk="pixelsnail", n_cos=3)),
    ("pixelsnail", dict(head="quantile", head_options={"n_cos": 3})),
])
def test_pixeliqn_on_the_snail_trunk(name, options):
    """tau through every block (the trunk's causal spatial conditioning), next to a spatial map, with
    given sub-pixels skipped."""
    model = snail((3, 4, 5), num_levels=8, num_classes=2, factor=3.0, name=name, spatial_channels=2, **options)
    assert model.tau_in_trunk
    spatial = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(3))
    assert_same_images(model, 4, y=torch.tensor([0, 1, 0, 1]), temperature=0.9, spatial=spatial)
    known = torch.randint(0, 8, (2, 3, 4, 5), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(3, 4, 5, dtype=torch.bool)
    mask[:, 1] = True
    mask[1, 2, 2] = True
    out = assert_same_images(model, 4, y=1, known=known, mask=mask, spatial=spatial, temperature=0.6)
    assert torch.equal(out[:, mask], known.repeat_interleave(2, 0)[:, mask])


@pytest.mark.parametrize("bottom_attention", [0, 1])
def test_vqvae2_priors(bottom_attention):
    """The top prior (code embedding, attention) and the conditional bottom prior (its conditioning
    stack's map as the spatial input, computed once per sample call) through ``ConditionalAR``."""
    torch.manual_seed(0)
    model = pixelzoo.create_model("vqvae2", (1, 16, 16), 17, 3, autoencoder=TINY_AE, top_prior=TINY_TOP,
                                  bottom_prior={**TINY_LOWER, "attention_every": bottom_attention}).eval()
    top, bottom = model.parts["top_prior"], model.parts["bottom_prior"]
    sharpen(top)
    sharpen(bottom.ar)
    assert type(top.stepper(2)) is SnailStepper and type(bottom.ar.stepper(2)) is SnailStepper
    codes = assert_same_images(top, 4, y=torch.tensor([0, 1, 2, 0]))
    assert codes.shape == (4, 1, 4, 4)
    cond = model.condition([codes[:2, 0]], 1)
    assert_same_images(bottom, 4, y=torch.tensor([2, 2, 1, 0]), cond=cond,
                       sample=lambda m, n, **kw: m.sample(n, **kw))


def test_one_image_positions_on_numpy_equal_the_torch_path():
    """One image on the CPU: a position runs on NumPy views (``_HostPositions``); ``host=False`` keeps
    the PyTorch operations; both give the same features at every step, and the same images."""
    model = snail((1, 5, 4), num_classes=3)
    x = torch.randint(0, 7, (1, 1, 5, 4), generator=torch.Generator().manual_seed(3))
    assert_numpy_steps_match(model, SnailStepper, x, torch.tensor([2]), image_input=True)
