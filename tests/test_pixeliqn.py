"""PixelIQN: the Huber quantile loss, the quantile function it learns, the quantile density, sampling."""

import math

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.heads import huber_quantile_loss

TINY = dict(channels=12, n_layers=3, kernel_size=3, first_kernel_size=5, out_hidden=12, n_cos=4)


def make(shape=(3, 3, 4), levels=7, classes=3, **kw):
    return pixelzoo.create_model("pixeliqn", shape, num_levels=levels, num_classes=classes, **{**TINY, **kw})


# ---------------------------------------------------------------------------- the loss
@pytest.mark.parametrize(
    "tau, u, kappa, expected",
    [
        (0.25, 2.0, 1.0, 0.25 * (2.0 - 0.5)),  # |u| > kappa, under-estimate: weight tau
        (0.25, -2.0, 1.0, 0.75 * (2.0 - 0.5)),  # |u| > kappa, over-estimate: weight 1 - tau
        (0.25, 0.5, 1.0, 0.25 * 0.5 * 0.25 / 1.0),  # |u| <= kappa: tau * u^2 / (2 kappa)
        (0.9, -0.5, 2.0, 0.1 * 0.25 / 4.0),
        (0.9, 3.0, 2.0, 0.9 * (3.0 - 1.0)),
        (0.9, -3.0, 2.0, 0.1 * (3.0 - 1.0)),
        (0.6, 0.0, 1.0, 0.0),
        (0.3, 2.0, 0.0, 0.3 * 2.0),  # kappa = 0: the plain quantile loss (tau - 1{u <= 0}) u
        (0.3, -2.0, 0.0, (0.3 - 1.0) * -2.0),
    ],
)
def test_huber_quantile_loss_hand_values(tau, u, kappa, expected):
    got = huber_quantile_loss(torch.tensor([u], dtype=torch.float64), torch.tensor([tau], dtype=torch.float64), kappa)
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_huber_quantile_loss_continuous_at_kappa_and_tends_to_the_quantile_loss():
    tau = torch.full((5,), 0.7, dtype=torch.float64)
    u = torch.tensor([-3.0, -0.2, 0.1, 1.0, 4.0], dtype=torch.float64)
    k = 1.0
    below = huber_quantile_loss(torch.tensor([k - 1e-9]), torch.tensor([0.7]), k)
    above = huber_quantile_loss(torch.tensor([k + 1e-9]), torch.tensor([0.7]), k)
    assert below.item() == pytest.approx(above.item(), abs=1e-6)
    torch.testing.assert_close(huber_quantile_loss(u, tau, 1e-9), huber_quantile_loss(u, tau, 0.0), atol=1e-8, rtol=0)
    with pytest.raises(ConfigError):
        huber_quantile_loss(u, tau, -1.0)


@pytest.mark.parametrize("kappa", [0.0, 0.01])
def test_minimiser_of_the_expected_loss_is_the_tau_quantile_not_one_minus_tau(kappa):
    """Exponential(1) samples: the 0.9-quantile is -ln(0.1) = 2.303, the 0.1-quantile 0.105."""
    z = torch.distributions.Exponential(1.0).sample((40000,)).double()
    grid = torch.linspace(0.0, 4.0, 801, dtype=torch.float64)
    tau = torch.full_like(z, 0.9)
    risk = torch.stack([huber_quantile_loss(z - q, tau, kappa).mean() for q in grid])
    best = grid[risk.argmin()].item()
    assert abs(best - math.log(10.0)) < 0.06, best


def test_model_loss_is_the_mean_huber_quantile_loss_at_the_drawn_tau():
    model = make(kappa=0.5)
    x = torch.randint(0, 7, (2, 3, 3, 4))
    y = torch.tensor([0, 2])
    torch.manual_seed(11)
    out = model.loss(x, y)
    torch.manual_seed(11)
    tau = torch.rand(x.shape)
    q = model.quantile(x, tau, y)
    expected = huber_quantile_loss(x.double() - q.double(), tau.double(), 0.5).mean()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(out) == {"loss", "quantile_loss"}


# ---------------------------------------------------------------------------- it learns a quantile function
def test_one_dimensional_iqn_learns_a_known_mixture():
    """A single sub-pixel (1x1 image, 256 levels): the model is a plain IQN of tau. Trained on a
    two-component mixture, its samples are close to the mixture in Kolmogorov-Smirnov distance."""
    torch.manual_seed(0)
    levels = 256
    model = pixelzoo.create_model("pixeliqn", (1, 1, 1), num_levels=levels, channels=16, n_layers=2,
                                  first_kernel_size=3, out_hidden=32, n_cos=16, kappa=1.0)
    weights, means, stds = torch.tensor([0.3, 0.7]), torch.tensor([60.0, 170.0]), torch.tensor([8.0, 15.0])

    def draw(n):
        comp = torch.multinomial(weights, n, replacement=True)
        return (means[comp] + stds[comp] * torch.randn(n)).round().clamp(0, levels - 1).long().view(n, 1, 1, 1)

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(700):
        for g in opt.param_groups:
            g["lr"] = 1e-2 * 0.995 ** step
        loss = model.loss(draw(1024))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    samples = model.sample(4000, generator=torch.Generator().manual_seed(1)).flatten()
    k = torch.arange(levels, dtype=torch.float64)
    normal = torch.distributions.Normal(means.double(), stds.double())
    upper = torch.where(k == levels - 1, torch.tensor(math.inf, dtype=torch.float64), k + 0.5)
    true_cdf = (weights.double() * normal.cdf(upper[:, None])).sum(1)  # P(X <= k) after rounding/clipping
    emp_cdf = torch.bincount(samples, minlength=levels).cumsum(0).double() / len(samples)
    ks = (emp_cdf - true_cdf).abs().max().item()
    assert ks < 0.05, ks  # measured 0.026; sampling noise alone is about 0.02 at 4000 samples


# ---------------------------------------------------------------------------- the quantile density
def test_quantile_density_known_answer():
    """With the trunk's path cut and the output a linear function of tau, dQ/dtau is known:
    hidden_0 = relu((2 tau - 1) + 1) = 2 tau, Q = (w * 2 tau + 1) (K - 1) / 2, so dQ/dtau = w (K - 1)."""
    levels, w = 9, 0.3
    model = make((1, 2, 3), levels=levels, classes=None, tau_embedding="linear")
    with torch.no_grad():
        for p in model.output.parameters():
            p.zero_()
        feat = model.trunk.out_channels
        model.output.hidden.weight[0, feat] = 1.0  # the tau input of channel 0
        model.output.hidden.bias[0] = 1.0
        model.output.out.weight[0, 0] = w
    x = torch.randint(0, levels, (2, 1, 2, 3))
    tau = torch.rand(x.shape)
    torch.testing.assert_close(model.quantile(x, tau), (w * 2 * tau + 1) * (levels - 1) / 2)
    torch.testing.assert_close(model.quantile_density(x, tau), torch.full(x.shape, w * (levels - 1)))


def test_quantile_density_is_the_diagonal_derivative_by_finite_differences():
    model = make((3, 2, 3), levels=17, classes=3)
    x = torch.randint(0, 17, (2, 3, 2, 3))
    y = torch.tensor([1, 2])
    tau = 0.1 + 0.8 * torch.rand(x.shape)
    dens = model.quantile_density(x, tau, y)
    h = 1e-3
    for c, i, j in [(0, 0, 0), (2, 0, 1), (1, 1, 2), (0, 1, 0)]:
        up, down = tau.clone(), tau.clone()
        up[:, c, i, j] += h
        down[:, c, i, j] -= h
        fd = (model.quantile(x, up, y) - model.quantile(x, down, y))[:, c, i, j] / (2 * h)
        torch.testing.assert_close(dens[:, c, i, j], fd, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------- how tau enters
def test_tau_reaches_later_pixels_through_the_gated_trunk_and_only_the_own_pixel_on_pixelcnnpp():
    x = torch.randint(0, 5, (2, 1, 3, 3))
    for trunk, kw, through_trunk in [("gated_pixelcnn", TINY, True),
                                     ("pixelcnnpp", dict(nr_resnet=1, nr_filters=8, dropout=0.0, n_cos=4), False)]:
        model = pixelzoo.create_model("pixeliqn", (1, 3, 3), num_levels=5, trunk=trunk, **kw)
        assert model.tau_in_trunk is through_trunk
        tau = torch.rand(x.shape, requires_grad=True)
        (g,) = torch.autograd.grad(model.quantile(x, tau)[:, 0, 2, 2].sum(), tau)
        assert (g[:, 0, 2, 2].abs() > 0).all()
        earlier = g[:, 0].abs().sum(0).flatten()[:-1]
        assert bool((earlier > 0).any()) is through_trunk


# ---------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("temperature", [1.0, 0.4])
def test_samples_are_the_rounded_quantiles_at_the_drawn_tau(temperature):
    """Sampling = feeding back round(Q(tau_i | x_<i)): teacher-forcing the sample with the same tau
    reproduces every sub-pixel."""
    model = make().eval()
    y = torch.tensor([0, 1, 2, 1])
    x = model.sample(4, y=y, temperature=temperature, generator=torch.Generator().manual_seed(5))
    tau = model.sampling_inputs(4, temperature, torch.Generator().manual_seed(5))["tau"]
    assert float(tau.min()) >= 0.5 - temperature / 2 and float(tau.max()) <= 0.5 + temperature / 2
    q = model.quantile(x, tau, y)
    assert torch.equal(q.round().clamp(0, 6).long(), x)


@pytest.mark.parametrize("trunk, kw", [("pixelsnail", dict(channels=12, n_blocks=2, attention_every=1, heads=2,
                                                             out_res_blocks=1)),
                                       ("pixelcnnpp", dict(nr_resnet=1, nr_filters=8, dropout=0.0))])
def test_samples_are_the_rounded_quantiles_on_other_trunks(trunk, kw):
    """The same on any trunk: PixelSNAIL (tau through every block), PixelCNN++ (its trunk once per
    pixel in sampling, the output layer reading the pixel's earlier channels)."""
    model = pixelzoo.create_model("pixeliqn", (3, 3, 4), num_levels=7, num_classes=3, trunk=trunk, n_cos=4,
                                  out_hidden=12, **kw).eval()
    y = torch.tensor([0, 1, 2])
    x = model.sample(3, y=y, temperature=0.9, generator=torch.Generator().manual_seed(5))
    tau = model.sampling_inputs(3, 0.9, torch.Generator().manual_seed(5))["tau"]
    assert torch.equal(model.quantile(x, tau, y).round().clamp(0, 6).long(), x)


def test_tau_range_zero_gives_the_conditional_medians_deterministically():
    model = make().eval()
    a = model.sample(3, y=0, temperature=0.0, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, y=0, temperature=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(a[0], a[1])
    with pytest.raises(ConfigError, match="tau range"):
        model.sample(1, y=0, temperature=1.5)


def test_inpainting_keeps_known_subpixels():
    model = make().eval()
    known = torch.randint(0, 7, (1, 3, 3, 4))
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:2] = True
    x = model.sample(4, y=1, known=known, mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, :, :2], known.expand(4, -1, -1, -1)[:, :, :2])


def test_no_likelihood_and_bad_tau_are_clear_errors():
    model = make()
    x = torch.randint(0, 7, (2, 3, 3, 4))
    assert not model.has_likelihood
    with pytest.raises(ConfigError, match="no likelihood"):
        model.bits_per_dim(x)
    with pytest.raises(ConfigError, match="no likelihood"):
        model.log_prob(x)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError, match="tau"):
        model.quantile(x, torch.rand(2, 3, 3, 3), y)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        model.quantile(x, torch.rand(x.shape) + 1.0, y)
    with pytest.raises(ConfigError, match="unknown trunk"):
        pixelzoo.create_model("pixeliqn", (1, 4, 4), num_levels=4, trunk="transformer")


# ---------------------------------------------------------------------------- training and the command line
def test_train_sample_evaluate_from_the_command_line(tmp_path, capsys):
    """The preset trains through the common trainer, logs the quantile loss (train and held out), no
    bits/dim; sampling and evaluation work on the run."""
    import json

    from pixelzoo.cli import main

    run = tmp_path / "iqn"
    tiny = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
            "--set", "model.n_cos=4", "--set", "train.num_samples=10", "--set", "train.log_every=2",
            "--set", "train.eval_every=2", "--set", "train.eval_images=40", "--no-progress"]
    assert main(["train", "pixeliqn/digits", "--steps", "4", "--out", str(run), *tiny]) == 0
    assert "test loss" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"train_loss", "train_quantile_loss", "test_loss", "test_loss_full"} <= keys
    assert not any("bpd" in k for k in keys)
    assert (run / "samples" / "step_0000004.png").is_file()
    assert main(["sample", str(run), "-n", "4", "--temperature", "0.5", "--out", str(tmp_path / "s.png"),
                 "--no-progress"]) == 0
    assert (tmp_path / "s.png").is_file()
    assert main(["evaluate", str(run), "--metrics", "bpd", "--no-progress"]) == 0
    assert "no likelihood" in json.loads((run / "eval.json").read_text())["bpd_skipped"]


# ---------------------------------------------------------------------------- the cheaper tau path
def test_shared_conditioning_is_one_projection_tied_across_layers():
    """``shared_conditioning``: one class embedding and one tau projection for the whole trunk, the
    same bias in every layer; the model equals the per-layer model whose every layer holds copies of
    that one conditioning, and it is 2/3 of the per-layer model's conditioning parameters cheaper here."""
    torch.manual_seed(0)
    shared = make(shared_conditioning=True)
    per_layer = make()
    cond = shared.trunk.shared_cond
    assert cond is not None and all(layer.cond.embed is None and layer.cond.spatial is None
                                    for layer in shared.trunk.layers)
    state = {k: v for k, v in shared.state_dict().items() if not k.startswith("trunk.shared_cond.")}
    for k in range(len(per_layer.trunk.layers)):
        state.update({f"trunk.layers.{k}.cond.{name}": v for name, v in cond.state_dict().items()})
    per_layer.load_state_dict(state)
    n_cond = sum(p.numel() for p in cond.parameters())
    assert sum(p.numel() for p in per_layer.parameters()) - sum(p.numel() for p in shared.parameters()) == 2 * n_cond
    x, y = torch.randint(0, 7, (2, 3, 3, 4)), torch.tensor([0, 2])
    tau = torch.rand(x.shape)
    torch.testing.assert_close(shared.quantile(x, tau, y), per_layer.quantile(x, tau, y))
    # tied differently, the models differ: the test can fail
    with torch.no_grad():
        per_layer.trunk.layers[1].cond.spatial.weight.add_(0.1)
    assert not torch.allclose(shared.quantile(x, tau, y), per_layer.quantile(x, tau, y))


def test_shared_conditioning_is_causal_and_its_stepper_draws_the_naive_samples():
    from test_registry_models import check_tau_causality

    torch.manual_seed(0)
    model = make(shared_conditioning=True)
    # six images: with two, a tiny random network can have every ReLU of the output layer's group off
    # at some sub-pixel in both, and then Q there has no gradient in its own tau
    x, y = torch.randint(0, 7, (6, 3, 3, 4)), torch.tensor([0, 2, 1, 0, 1, 2])
    check_tau_causality(model, x, y, (3, 3, 4))
    model = make(shared_conditioning=True).eval()
    kw = dict(y=torch.tensor([0, 1, 2]), temperature=0.9)
    a = model.sample(3, generator=torch.Generator().manual_seed(4), **kw)
    b = model.sample(3, generator=torch.Generator().manual_seed(4), cached=False, **kw)
    assert torch.equal(a, b)


def test_fp32_output_runs_the_output_layer_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    plain, fp32 = make(), make(fp32_output=True)
    fp32.load_state_dict(plain.state_dict())
    x, y = torch.randint(0, 7, (2, 3, 3, 4)), torch.tensor([0, 2])
    tau = torch.rand(x.shape)
    xs = plain.scale(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = plain.trunk_features(xs, y, tau=tau)
        low = plain.output_params(feats, xs, tau=tau)
        high = fp32.output_params(feats, xs, tau=tau)
    assert feats.dtype == torch.bfloat16 and low.dtype == torch.bfloat16 and high.dtype == torch.float32
    torch.testing.assert_close(high, plain.output_params(feats.float(), xs, tau=tau))
    assert not torch.equal(high, low.float())
    # outside autocast the option changes nothing
    torch.testing.assert_close(fp32.quantile(x, tau, y), plain.quantile(x, tau, y))


def test_the_cheaper_variants_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = make(shared_conditioning=True, fp32_output=True)
    model.save_pretrained(tmp_path / "m")
    loaded = pixelzoo.load_pretrained(tmp_path / "m")
    assert loaded.trunk.shared_cond is not None and loaded.fp32_output
    x, y, tau = torch.randint(0, 7, (2, 3, 3, 4)), torch.tensor([0, 2]), torch.rand(2, 3, 3, 4)
    assert torch.equal(loaded.quantile(x, tau, y), model.quantile(x, tau, y))
