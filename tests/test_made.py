"""The MADE trunk (Germain et al. 2015) over a map read as one flat vector: its order is the sampler's,
it is exactly causal over every pair of dimensions (class label, spatial map and tau included), every
dimension is connected to all of its past, its incremental stepper gives the full forward pass's
features and the naive sampler's images, and bad options are refused."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.models.autoregressive.made.trunk import MADETrunk, flatten_raster, raster_index
from pixelzoo.models.autoregressive.made.stepper import MADEStepper
from pixelzoo.models.autoregressive.steppers import FullForwardStepper
from pixelzoo.nn.masked_linear import reach_mask, spread_reaches
from pixelzoo.sampling.ancestral import ancestral_sample

TINY = dict(hidden=32, n_layers=2, features=8, out_hidden=24)


def made(shape, num_levels=5, num_classes=None, seed=0, **options):
    torch.manual_seed(seed)
    return pixelzoo.create_model("made", shape, num_levels, num_classes, **{**TINY, **options})


def test_dimensions_are_numbered_in_the_samplers_order():
    """Rows, then columns, then channels: what ``ancestral_sample`` visits one after another."""
    idx = raster_index((3, 2, 2))
    assert idx[:, 0, 0].tolist() == [0, 1, 2] and idx[:, 0, 1].tolist() == [3, 4, 5] and idx[0, 1, 0] == 6
    t = torch.arange(12).view(1, 3, 2, 2)
    assert torch.equal(flatten_raster(t)[0, raster_index((3, 2, 2))], t[0])
    assert raster_index((4, 1, 1)).flatten().tolist() == [0, 1, 2, 3]  # a latent vector: channel order


def flat_jacobian(model, x, y, spatial=None, tau=None):
    """|d params of dimension d / d x_d'|, summed over the batch and the parameters: (D, D), with
    rows and columns in the model's order (``raster_index``)."""
    xs = model.scale(x).double().requires_grad_(True)
    kw = {} if tau is None else {"tau": tau.double()}
    params = model.double().params_from_scaled(xs, y, None if spatial is None else spatial.double(), **kw)
    order = raster_index(model.image_shape).flatten()
    weights = torch.rand(params.shape[2], generator=torch.Generator().manual_seed(0), dtype=params.dtype)
    flat = torch.einsum("bcphw,p->bchw", params, weights).flatten(1)  # (B, D) in (c, h, w) order
    rows = []
    for d in order.argsort().tolist():  # the (c, h, w) position of dimension 0, 1, ...
        (g,) = torch.autograd.grad(flat[:, d].sum(), xs, retain_graph=True)
        rows.append(g.abs().sum(0).flatten()[order.argsort()])
    return torch.stack(rows)


CASES = [((6, 1, 1), {}), ((2, 2, 3), {"num_classes": 3}), ((3, 2, 2), {"num_classes": 2, "spatial_channels": 2})]


@pytest.mark.parametrize("shape, options", CASES)
@pytest.mark.parametrize("head", ["categorical", "quantile"])
def test_exact_causality_over_every_pair_of_dimensions(shape, options, head):
    """Random weights: d output(d) / d input(d') is exactly 0 for d' >= d and not 0 for some d' < d
    (for a quantile head also: output d sees tau_d and earlier taus, never later ones)."""
    model = made(shape, head=head, **({"head_options": {"n_cos": 3}} if head == "quantile" else {}), **options)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 5, (4, *shape), generator=g)
    y = torch.randint(0, options["num_classes"], (4,), generator=g) if options.get("num_classes") else None
    sp = torch.randn(4, 2, *shape[1:], generator=g) if options.get("spatial_channels") else None
    tau = torch.rand(4, *shape, generator=g) if head == "quantile" else None
    jac = flat_jacobian(model, x, y, sp, tau)
    dims = jac.shape[0]
    later = torch.arange(dims)[None, :] >= torch.arange(dims)[:, None]
    assert torch.all(jac[later] == 0), f"outputs see inputs at or after themselves: {later.logical_and(jac != 0).nonzero().tolist()}"
    assert torch.all(jac[1:].sum(1) > 0), "a dimension sees nothing of its past"
    if tau is not None:
        t = tau.double().requires_grad_(True)
        q = model.params_from_scaled(model.scale(x).double(), y, None if sp is None else sp.double(), tau=t)[:, :, 0]
        order = raster_index(shape)
        for d in range(dims):
            (gt,) = torch.autograd.grad(q[:, order == d].sum(), t, retain_graph=True)
            seen = gt.abs().sum(0)
            assert torch.all(seen[order > d] == 0) and seen[order == d].item() > 0, d


def test_every_dimension_is_connected_to_all_of_its_past():
    """The product of the masks: output d reaches input d' iff d' < d (hidden >= D puts units at every reach)."""
    trunk = MADETrunk((2, 2, 2), hidden=8, n_layers=3, features=2)
    reach = torch.eye(trunk.layers[0].in_features)[:8]  # the map's inputs, not a spatial map (there is none)
    paths = reach.T
    for layer in trunk.layers:
        paths = layer.mask @ paths
    paths = trunk.to_features.mask @ paths  # (D * features, D)
    connected = (paths > 0).view(8, 2, 8).all(1)
    assert torch.equal(connected, torch.arange(8)[None, :] < torch.arange(8)[:, None])
    assert reach_mask(torch.tensor([0, 2]), torch.tensor([1, 2, 3])).tolist() == [[0, 0, 0], [1, 1, 0]]
    assert spread_reaches(5, 3).tolist() == [0, 0, 1, 1, 2]


# ---------------------------------------------------------------------- the incremental stepper
def sharpen(model, factor=8.0):
    last = model.output[-1] if isinstance(model.output, torch.nn.Sequential) else model.output.out
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return model.eval()


@pytest.mark.parametrize("shape, options", CASES)
def test_the_stepper_gives_the_full_forward_parameters_at_every_step(shape, options):
    """At every sub-pixel, with junk at and after it (as while sampling), the incremental stepper's
    parameters equal the full forward pass's on the true image."""
    model = made(shape, **options).eval()
    c_count, height, width = shape
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 5, (2, *shape), generator=g)
    y = torch.tensor([0, 1]) if options.get("num_classes") else None
    sp = torch.randn(2, 2, height, width, generator=g) if options.get("spatial_channels") else None
    order = raster_index(shape)
    with torch.no_grad():
        full = model.conditional_params(x, y, sp)
        stepper = model.stepper(2, y=y, spatial=sp, cached=True)
        assert type(stepper) is MADEStepper
        for i in range(height):
            for j in range(width):
                for c in range(c_count):
                    junk = torch.where(order >= order[c, i, j], torch.randint(0, 5, x.shape, generator=g), x)
                    torch.testing.assert_close(stepper.params(junk, i, j, c), full[:, c, :, i, j], atol=1e-5, rtol=1e-5)
    assert type(model.stepper(2, y=y, spatial=sp, cached=False)) is FullForwardStepper


def same_images(model, n, **kwargs):
    out = {}
    for cached in (False, True):
        g = torch.Generator().manual_seed(1)
        out[cached] = ancestral_sample(model, n, generator=g, cached=cached, **kwargs), torch.rand(3, generator=g)
    assert torch.equal(out[False][0], out[True][0]) and torch.equal(out[False][1], out[True][1])
    return out[False][0]


@pytest.mark.parametrize("shape, options", CASES)
def test_the_stepper_samples_the_naive_samplers_images(shape, options):
    model = sharpen(made(shape, **options))
    y = torch.arange(6) % options["num_classes"] if options.get("num_classes") else None
    sp = torch.randn(6, 2, *shape[1:]) if options.get("spatial_channels") else None
    s = same_images(model, 6, y=y, spatial=sp)
    assert s.shape == (6, *shape) and len(s.unique()) > 1
    # inpainting: given sub-pixels are skipped and caught up on
    known = torch.randint(0, 5, (2, *shape))
    mask = torch.rand(shape) < 0.5
    s = same_images(model, 6, y=y, spatial=sp, known=known, mask=mask)
    assert torch.equal(s[:, mask], known.repeat_interleave(3, 0)[:, mask])


def test_the_stepper_samples_a_continuous_quantile_prior_as_the_naive_sampler():
    model = made((3, 1, 1), head="quantile", head_options={"continuous": True}).eval()
    out = [ancestral_sample(model, 5, temperature=0.8, generator=torch.Generator().manual_seed(2), cached=c)
           for c in (False, True)]
    assert out[0].dtype == torch.float32
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- options
def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="at least the number of dimensions"):
        made((2, 4, 4), hidden=16)
    for key in ("hidden", "n_layers", "features"):
        with pytest.raises(ConfigError, match=f"{key} must be a positive integer"):
            made((1, 2, 2), **{key: 0})
    m = made((1, 2, 2))
    with pytest.raises(ConfigError, match="exactly that shape"):
        m.trunk(torch.zeros(1, 1, 3, 2))
    with pytest.raises(ConfigError, match="pass the conditioning map"):
        made((1, 2, 2), spatial_channels=1).log_prob(torch.zeros(1, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="colour group"):
        MADETrunk((2, 1, 1), spatial_channels=1, spatial_groups=[2])
