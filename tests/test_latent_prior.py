"""Priors over continuous latents (Ostrovski et al. 2018's AIQN over a VAE's latents): the Gaussian
mixture head (normalised, hand-computed, sampled exactly), an implicit-quantile and a likelihood
prior learning a non-Gaussian 2-d distribution (a ring), on a spatial trunk and on MADE over the
flat latent vector, monotone in tau, causal over the latent dimensions; continuous data sets; AGAVE
with a learned sampling prior trained on its encoder's latents through the level cache, saved and
loaded with the model."""

import functools
import math

import pytest
import torch

import pixelzoo
from helpers import raster_before
from pixelzoo.data.dataset import DataSplits, ImageDataset
from pixelzoo.errors import ConfigError, DataError
from pixelzoo.evaluation.metrics import energy_distance
from pixelzoo.heads import create_head
from pixelzoo.registry import load_preset
from pixelzoo.training import apply_overrides, load_run_model, resume_run, start_run

TINY_GATED = {"channels": 32, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 64}


# ---------------------------------------------------------------------- the Gaussian mixture head
def test_gaussian_mixture_density_is_normalised_and_hand_computed():
    head = create_head("gaussian_mixture", 2, 1, n_mix=3)
    assert head.continuous and head.has_likelihood
    sp = torch.tensor([[0.2, -1.0, 0.5, -1.5, 0.3, 2.0, -0.5, 0.1, -1.2]], dtype=torch.float64)  # logits, means, log s
    grid = torch.linspace(-30, 30, 200_001, dtype=torch.float64)
    lp = head.log_prob(sp.view(1, 1, 9, 1, 1).expand(grid.numel(), 1, 9, 1, 1), grid.view(-1, 1, 1, 1))
    mass = torch.trapezoid(lp.exp().flatten(), grid)
    assert mass.item() == pytest.approx(1.0, abs=1e-9)
    w = torch.softmax(sp[0, :3], 0)
    x = 0.7
    by_hand = sum(w[k] * math.exp(-0.5 * ((x - sp[0, 3 + k]) / math.exp(sp[0, 6 + k])) ** 2)
                  / (math.exp(sp[0, 6 + k]) * math.sqrt(2 * math.pi)) for k in range(3))
    assert head.log_prob(sp.view(1, 1, 9, 1, 1), torch.tensor(x, dtype=torch.float64).view(1, 1, 1, 1)).item() == \
        pytest.approx(math.log(by_hand), rel=1e-12)


def test_gaussian_mixture_sampler_matches_the_density():
    head = create_head("gaussian_mixture", 2, 1, n_mix=2)
    sp = torch.tensor([[0.0, math.log(3.0), -2.0, 1.0, math.log(0.5), math.log(0.2)]]).expand(40_000, 6)
    s = head.draw(sp, generator=torch.Generator().manual_seed(0))
    mean = 0.25 * -2.0 + 0.75 * 1.0
    var = 0.25 * (0.25 + 4.0) + 0.75 * (0.04 + 1.0) - mean ** 2
    assert s.mean().item() == pytest.approx(mean, abs=0.02)
    assert s.var().item() == pytest.approx(var, rel=0.03)
    assert set(head.draw(sp[:50], temperature=0.0).tolist()) <= {-2.0, 1.0}
    with pytest.raises(ConfigError, match="no sampling options"):
        head.draw(sp[:2], mode="map")


@pytest.mark.parametrize("trunk", ["gated_pixelcnn", "pixelcnnpp", "made"])
def test_a_continuous_prior_is_causal_over_the_latent_dimensions(trunk):
    hp = {"gated_pixelcnn": TINY_GATED, "pixelcnnpp": {"nr_resnet": 1, "nr_filters": 8, "dropout": 0.0},
          "made": {"hidden": 64, "features": 8, "out_hidden": 24}}[trunk]
    m = pixelzoo.create_model(trunk, (3, 4, 4), 2, head="gaussian_mixture", head_options={"n_mix": 2}, **hp).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    lp = m.log_prob(x)
    for c in range(3):
        for i in range(4):
            for j in range(4):
                (g,) = torch.autograd.grad(lp[:, c, i, j].sum(), x, retain_graph=True)
                before = raster_before(3, 4, 4, c, i, j)
                seen = g.abs().sum(0)
                seen[c, i, j] = 0  # its own value enters its density
                assert torch.all(seen[~before] == 0), f"{trunk}: latent {(c, i, j)} sees one after it"


# ---------------------------------------------------------------------- learning a ring
def ring(n, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g) * 2 * math.pi
    r = 2.0 + 0.1 * torch.randn(n, generator=g)
    return torch.stack([r * a.cos(), r * a.sin()], 1).view(n, 2, 1, 1)


# the spatial trunk, and MADE over the flat latent vector (a (2, 1, 1) map: dimensions in channel order)
RING_TRUNKS = {"gated_pixelcnn": TINY_GATED, "made": {"hidden": 64, "n_layers": 2, "features": 16, "out_hidden": 64}}


def trained_ring_prior(trunk, head, options, steps=600):
    torch.manual_seed(0)
    m = pixelzoo.create_model(trunk, (2, 1, 1), 2, head=head, head_options=options, **RING_TRUNKS[trunk])
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for step in range(steps):
        loss = m.loss(ring(256, step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


RING_HEADS = {"quantile": {"continuous": True, "kappa": 0.05}, "gaussian_mixture": {"n_mix": 8}}


@functools.cache
def ring_prior(trunk, head):
    """The prior trained once per test session (the tests of one trunk train only its own)."""
    return trained_ring_prior(trunk, head, RING_HEADS[head])


@pytest.mark.parametrize("trunk", sorted(RING_TRUNKS))
@pytest.mark.parametrize("head", ["quantile", "gaussian_mixture"])
def test_a_trained_prior_samples_the_ring(trunk, head):
    """Energy distance of 1,000 samples to 1,000 ring points: the floor (ring against ring) is about
    0.003, a Gaussian of the ring's spread is 0.10; the bound is 0.02."""
    s = ring_prior(trunk, head).sample(1000, generator=torch.Generator().manual_seed(1))
    assert s.dtype == torch.float32 and s.shape == (1000, 2, 1, 1)
    ref = ring(1000, 10**6)
    gauss = torch.randn(1000, 2, 1, 1, generator=torch.Generator().manual_seed(4)) * 2
    assert energy_distance(gauss, ref) > 0.05
    assert energy_distance(s, ref) < 0.02, (trunk, head)
    radius = s.flatten(1).norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.1 and radius.std().item() < 0.35


@pytest.mark.parametrize("trunk", sorted(RING_TRUNKS))
def test_the_trained_quantile_prior_is_monotone_in_tau(trunk):
    """Q(tau) of the first latent dimension, and of the second given a ring point's first."""
    m = ring_prior(trunk, "quantile")
    taus = torch.linspace(0.01, 0.99, 99)
    x = ring(1, 5).expand(99, 2, 1, 1).contiguous()
    for c in range(2):  # channel 1 given channel 0 of a ring point
        tau = torch.full((99, 2, 1, 1), 0.5)
        tau[:, c, 0, 0] = taus
        with torch.no_grad():
            q = m.quantile(x, tau)[:, c, 0, 0]
        spread = (q.max() - q.min()).item()
        assert spread > 0.5 and q[-1] > q[0]
        # nothing constrains an IQN to be monotone; trained, it is up to wiggles of a few hundredths
        # where the ring's marginal is flat (near its edges): every fall is below 2% of the range
        assert (q[:-1] - q[1:]).clamp(min=0).max().item() < 0.02 * spread, f"{trunk}: Q of channel {c} falls in tau"


# ---------------------------------------------------------------------- continuous data sets
def test_a_continuous_data_set_holds_finite_floats():
    d = ImageDataset("z", torch.randn(4, 2, 3, 3), None, None, None, "latents")
    assert d.image_shape == (2, 3, 3) and d.num_levels is None
    with pytest.raises(DataError, match="float32"):
        ImageDataset("z", torch.randn(4, 2, 3, 3, dtype=torch.float64), None, None, None, "latents")
    with pytest.raises(DataError, match="non-finite"):
        ImageDataset("z", torch.tensor([float("nan")]).view(1, 1, 1, 1), None, None, None, "latents")
    with pytest.raises(DataError, match="uint8"):
        ImageDataset("x", torch.randn(4, 1, 2, 2), None, 256, None, "images")


# ---------------------------------------------------------------------- AGAVE with a learned prior
AIQN_PRIOR = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8,
              "head": "quantile", "head_options": {"continuous": True, "kappa": 0.1}}


def test_agave_refuses_a_discrete_latent_prior():
    with pytest.raises(ConfigError, match="continuous head"):
        pixelzoo.create_model("agave", (1, 8, 8), 16, latent_prior={"name": "gated_pixelcnn", "channels": 8,
                                                                     "n_layers": 1, "first_kernel_size": 3})


# a tiny AGAVE on the 8x8 digits: z is a (2, 2, 2) map, 8 dimensions
TINY_AGAVE = {"vae": {"latent_channels": 2, "factor": 4, "hidden": 8, "res_channels": 4, "n_res_blocks": 1},
              "pixel_decoder": {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0,
                                "head_options": {"n_mix": 2}},
              "embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4}}
MADE_PRIOR = {"name": "made", "hidden": 16, "features": 4, "out_hidden": 8,
              "head": "quantile", "head_options": {"continuous": True, "kappa": 0.1}}


def tiny_agave_run_config(**model):
    config = load_preset("agave/fashion-cpu")
    config["data"] = {"name": "digits"}
    config["model"].update(TINY_AGAVE, **model)
    config = apply_overrides(config, ["train.log_every=5", "train.eval_every=0", "train.checkpoint_every=10",
                                      "train.num_samples=2", "train.eval_images=20", "train.batch_size=16",
                                      "train.final_eval_images=20"])
    config["train_parts"] = {"vae": {"steps": 5}, "pixel_decoder": {"steps": 5}, "joint": {"steps": 5},
                             "prior": {"steps": 30}}
    return config


@pytest.mark.parametrize("head", ["quantile", "gaussian_mixture"])
def test_agave_trains_its_prior_on_the_encoders_latents_and_samples_from_it(tmp_path, head):
    prior = dict(AIQN_PRIOR) if head == "quantile" else {**AIQN_PRIOR, "head": "gaussian_mixture",
                                                         "head_options": {"n_mix": 2}}
    config = tiny_agave_run_config(latent_prior=prior)
    runner = start_run(config, tmp_path / "run", progress=False, tensorboard=False)
    assert runner.plan.names == ["vae", "pixel_decoder", "joint", "prior"]
    result = runner.train()
    run = runner.run_dir
    assert result["parts"]["prior"]["step"] == 30 and (run / "cache" / "vae-levels.safetensors").is_file()
    model = load_run_model(run)[0]
    # the prior trained on the means of q(z | x): its data is the z level of the training images
    data = model.part_data("prior", runner.splits)
    assert data.train.num_levels is None and data.train.image_shape == model.vae.latent_shape
    torch.testing.assert_close(data.test.images[:3], model.vae.posterior(runner.splits.test.images[:3].long())[0])
    lv = model.sample_levels(3, generator=torch.Generator().manual_seed(0))
    assert lv["z"].dtype == torch.float32 and lv["image"].shape == (3, 1, 8, 8)
    repeat = model.sample_levels(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lv["z"], repeat["z"])  # the learned prior draws z, seeded
    model.save_pretrained(tmp_path / "saved")
    back = pixelzoo.load_pretrained(tmp_path / "saved")
    assert torch.equal(back.sample(2, generator=torch.Generator().manual_seed(3)),
                       model.sample(2, generator=torch.Generator().manual_seed(3)))
    # resuming a finished run trains nothing more
    again = resume_run(run, progress=False, tensorboard=False).train()["parts"]
    assert again == {n: {"skipped": "already trained"} for n in ("vae", "pixel_decoder", "joint", "prior")}


# ---------------------------------------------------------------------- MADE prior, latents drawn from q(z | x)
def test_agave_with_a_made_prior_on_draws_from_q_trains_saves_and_loads(tmp_path):
    """The AIQN over the flat latent vector (``made``, continuous quantile head), trained on draws
    z ~ q(z | x): the unit's data holds the posterior's means and log-variances (cached under their own
    file, beside the chain's levels), the test split the means alone; the model saves and loads."""
    config = tiny_agave_run_config(latent_prior=MADE_PRIOR, latent_source="sample")
    runner = start_run(config, tmp_path / "run", progress=False, tensorboard=False)
    result = runner.train()
    run = runner.run_dir
    assert result["parts"]["prior"]["step"] == 30
    assert (run / "cache" / "vae-posterior-levels.safetensors").is_file()
    model = load_run_model(run)[0]
    assert model.latent_source == "sample" and model.parts["prior"].trunk.trunk_name == "made"
    data = model.training_plan().unit("prior").data(runner.splits)
    mean, log_var = model.vae.posterior(runner.splits.train.images[:3].long())
    torch.testing.assert_close(data.train.images[:3], mean)
    torch.testing.assert_close(data.train.extras["log_var"][:3], log_var)
    assert data.test.extras == {} and data.test.image_shape == model.vae.latent_shape
    model.save_pretrained(tmp_path / "saved")
    back = pixelzoo.load_pretrained(tmp_path / "saved")
    assert back.latent_source == "sample" and back.parts["prior"].trunk.trunk_name == "made"
    lv, lv_back = (m.sample_levels(3, generator=torch.Generator().manual_seed(2)) for m in (model, back))
    assert torch.equal(lv["z"], lv_back["z"]) and torch.equal(lv["image"], lv_back["image"])
    assert lv["z"].dtype == torch.float32 and len(lv["z"].unique()) > 3


def test_latent_source_sample_trains_the_prior_on_fresh_draws_from_q():
    """The same AGAVE with ``latent_source`` "mean" and "sample": both units read the means of
    q(z | x); the prior's loss sees them as they are, or draws z = mean + sigma * eps afresh per call."""
    prior = {**MADE_PRIOR, "head": "gaussian_mixture", "head_options": {"n_mix": 2}}
    torch.manual_seed(0)
    models = {src: pixelzoo.create_model("agave", (1, 8, 8), 16, latent_prior=prior, latent_source=src, **TINY_AGAVE)
              for src in ("mean", "sample")}
    models["sample"].load_state_dict(models["mean"].state_dict())
    images = torch.randint(0, 16, (40, 1, 8, 8), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    splits = DataSplits(ImageDataset("toy", images[:32], None, 16, None, "test"),
                        ImageDataset("toy-test", images[32:], None, 16, None, "test"))
    mean, log_var = models["mean"].vae.posterior(images[:32].long())
    seen = {}
    for src, model in models.items():
        unit = model.training_plan().unit("prior")
        data = unit.data(splits)
        torch.testing.assert_close(data.train.images, mean)
        assert set(data.train.extras) == ({"log_var"} if src == "sample" else set())
        prior_part = model.parts["prior"]
        calls = []
        prior_part.loss = lambda z, y=None, calls=calls: calls.append(z) or {"loss": z.sum()}
        loss = unit.loss or prior_part.loss
        for seed in (0, 1):
            torch.manual_seed(seed)
            loss(data.train.images, None, **data.train.extras)
        seen[src] = calls
        del prior_part.loss
        torch.testing.assert_close(data.test.images, models["mean"].vae.posterior(images[32:].long())[0])
        assert data.test.extras == {}
    assert all(torch.equal(z, mean) for z in seen["mean"])
    first, second = seen["sample"]
    assert not torch.equal(first, second) and not torch.equal(first, mean)
    eps = (first - mean) * torch.exp(-0.5 * log_var)  # the standardised draws: N(0, 1)
    assert abs(eps.mean().item()) < 0.2 and abs(eps.std().item() - 1.0) < 0.15


def test_bad_latent_prior_options_are_refused():
    with pytest.raises(ConfigError, match="latent_source must be one of"):
        pixelzoo.create_model("agave", (1, 8, 8), 16, latent_prior=MADE_PRIOR, latent_source="draws", **TINY_AGAVE)
    with pytest.raises(ConfigError, match="give latent_prior"):
        pixelzoo.create_model("agave", (1, 8, 8), 16, latent_source="sample", **TINY_AGAVE)
    with pytest.raises(ConfigError, match="at least the number of dimensions"):
        pixelzoo.create_model("agave", (1, 8, 8), 16, latent_prior={**MADE_PRIOR, "hidden": 4}, **TINY_AGAVE)
    with pytest.raises(ConfigError, match="continuous head"):
        pixelzoo.create_model("agave", (1, 8, 8), 16, latent_prior={"name": "made", "hidden": 8}, **TINY_AGAVE)
