"""AGAVE (Lucas & Verbeek 2018): the auxiliary image and eq. 8, the objective (eq. 7) and lambda, the
pixel decoder's causality in x and its full view of f(z), the ELBO/IWAE evaluation, sampling with
f(z) shown above x, reconstructions, save/load, bad configurations, and the pipeline end to end
(pretrain the VAE and the pixel decoder apart, train jointly, evaluate, sample, reconstruct, resume)."""

import json
import math
import shutil

import pytest
import torch

import pixelzoo
from helpers import dependency_grads, raster_before
from pixelzoo.nn.meta import meta_parameters
from pixelzoo.cli import main
from pixelzoo.data import load_dataset
from pixelzoo.data.dataset import ImageDataset
from pixelzoo.errors import ConfigError
from pixelzoo.evaluation.latent_bounds import dataset_latent_bounds
from pixelzoo.models.composites.agave.model import AGAVE, PixelDecoderAlone
from pixelzoo.registry import load_preset
from pixelzoo.training import TrainConfig, apply_overrides, load_run_model, resume_run, start_run
from pixelzoo.views import downsample2x, quantize

TINY = {"vae": {"latent_channels": 2, "factor": 4, "hidden": 8, "res_channels": 4, "n_res_blocks": 1},
        "pixel_decoder": {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0,
                          "head_options": {"n_mix": 2}},
        "embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4}}


def tiny(shape=(1, 8, 8), levels=16, **over):
    torch.manual_seed(0)
    return pixelzoo.create_model("agave", shape, levels, **{**TINY, **over}).eval()


def images(shape=(1, 8, 8), levels=16, n=3, seed=0):
    return torch.randint(0, levels, (n, *shape), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- the auxiliary image and p(y | z)
def test_aux_image_is_x_downsampled_then_quantised():
    m = tiny(shape=(3, 8, 8), levels=256, aux_factor=2, aux_bins=32)
    x = images((3, 8, 8), 256)
    torch.testing.assert_close(m.vae.aux_image(x), quantize(downsample2x(x), 256, 32), rtol=0, atol=0)
    assert m.vae.aux_shape == (3, 4, 4) and m.levels["means"].shape == (3, 4, 4)
    assert tiny(levels=256).vae.aux_image(images(levels=256)).max() > 31  # y = x by default


def test_aux_log_prob_is_eq8_summed_over_subpixels():
    """p(y | z) per image: eq. 8 with the VAE's per-channel scales, by hand in float64."""
    m = tiny(shape=(3, 8, 8), levels=256, aux_bins=16).double()
    with torch.no_grad():
        m.vae.log_scales.copy_(torch.tensor([-1.0, -2.5, 0.3]))
    y = torch.randint(0, 16, (2, 3, 8, 8))
    means = torch.randn(2, 3, 8, 8, dtype=torch.float64) * 0.5
    sig = torch.sigmoid
    c, k1 = 16, 255
    s = torch.exp(m.vae.log_scales.detach()).view(1, 3, 1, 1)
    upper = torch.where(y == 15, torch.ones(()), sig(((2 * (c * (y + 1) - 0.5) / k1 - 1) - means) / s))
    lower = torch.where(y == 0, torch.zeros(()), sig(((2 * (c * y - 0.5) / k1 - 1) - means) / s))
    expected = torch.log(upper - lower).flatten(1).sum(1)
    torch.testing.assert_close(m.vae.aux_log_prob(y, means), expected, rtol=1e-7, atol=0)  # the sigmoid differences cancel a little


def test_aux_log_prob_is_finite_and_float32_under_bf16_autocast():
    """Under bf16 autocast (precision auto on a GPU) p(y | z) of a 3x32x32 image of noise is computed in
    float32, as without autocast (in bf16 it was inf: the paper preset stopped at step 0)."""
    m = tiny(shape=(3, 32, 32), levels=256, aux_bins=256)
    x = images((3, 32, 32), 256, n=2)
    y, means = m.vae.aux_image(x), torch.zeros(2, 3, 32, 32)
    plain = m.vae.aux_log_prob(y, means)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = m.vae.aux_log_prob(y, means.bfloat16())
    assert cast.dtype == torch.float32 and torch.isfinite(cast).all()
    torch.testing.assert_close(cast, plain)


# ---------------------------------------------------------------------- eq. 7 and lambda
def test_the_three_terms_add_up_and_lambda_only_scales_the_kl():
    x = images()
    losses = {}
    for lam in (1.0, 2.0, 12.0):
        m = tiny(kl_weight=lam).train()
        torch.manual_seed(5)  # the same draw of z for every lambda
        out = m.joint_loss(x)
        assert out["loss"].item() == pytest.approx(
            (out["pixel_bpd"] + out["aux_bpd"] + lam * out["kl_bpd"]).item(), rel=1e-6)
        losses[lam] = out
    for lam in (2.0, 12.0):
        for term in ("pixel_bpd", "aux_bpd", "kl_bpd"):
            assert losses[lam][term].item() == pytest.approx(losses[1.0][term].item(), rel=1e-6), term


def test_joint_loss_is_minus_eq7_in_bits_per_dim_of_x():
    m = tiny(kl_weight=3.0).train()
    x = images()
    torch.manual_seed(7)
    out = m.joint_loss(x)
    torch.manual_seed(7)
    mean, log_var = m.vae.posterior(x)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    means = m.vae.decode(z)
    pixel = m.pixel_decoder.log_prob(x, cond=means).flatten(1).sum(1)
    aux = m.vae.aux_log_prob(m.vae.aux_image(x), means)
    kl = (0.5 * (mean ** 2 + log_var.exp() - 1 - log_var)).flatten(1).sum(1)
    eq7 = pixel + aux - 3.0 * kl
    assert out["loss"].item() == pytest.approx((-eq7.mean() / (64 * math.log(2))).item(), rel=1e-5)


def test_the_vae_alone_minimises_aux_plus_lambda_kl():
    m = tiny(kl_weight=4.0).train()
    out = m.vae.loss(images())
    assert out["loss"].item() == pytest.approx((out["aux_bpd"] + 4.0 * out["kl_bpd"]).item(), rel=1e-6)


# ---------------------------------------------------------------------- the pixel decoder
@pytest.mark.parametrize("shape,aux_factor,trunk", [((1, 8, 8), 1, "pixelcnnpp"), ((3, 8, 8), 2, "pixelcnnpp"),
                                                    ((1, 8, 8), 2, "gated_pixelcnn")])
def test_pixel_decoder_is_causal_in_x_and_sees_all_of_f_z(shape, aux_factor, trunk):
    decoder = TINY["pixel_decoder"] if trunk == "pixelcnnpp" else \
        {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8}
    m = tiny(shape=shape, aux_factor=aux_factor, pixel_decoder=decoder, embedding={"channels": 8, "n_blocks": 3,
                                                                                   "out_channels": 4})
    ar, net = m.pixel_decoder.ar, m.pixel_decoder.cond_net
    c, h, w = shape
    x = images(shape)
    means = torch.randn(x.shape[0], *m.vae.aux_shape)
    spatial = net(means).detach()
    for (ci, i, j), g in dependency_grads(ar, x, None, spatial):
        before = raster_before(c, h, w, ci, i, j)
        assert torch.all(g[~before] == 0), f"output {(ci, i, j)} sees x at or after itself"
        if before.any():
            assert g[before].sum() > 0, f"output {(ci, i, j)} sees nothing of its past"
    # f(z) is given, not modelled: the first sub-pixel's distribution sees f(z) at its far corner
    ar.float()
    v = means.clone().requires_grad_(True)
    ar.params_from_scaled(ar.scale(x), None, net(v))[:, 0, :, 0, 0].sum().backward()
    assert v.grad[:, :, -1, -1].abs().sum() > 0
    assert (v.grad.abs().sum((0, 1)) > 0).all(), "some position of f(z) is invisible to the first pixel"


def test_pretraining_condition_is_constant_or_the_aux_image_at_bin_centres():
    m = tiny(shape=(1, 8, 8), levels=256, aux_bins=4, aux_factor=2)
    x = images((1, 8, 8), 256)
    none = PixelDecoderAlone(m.pixel_decoder, m.vae, "none")
    assert torch.equal(none.cond(x), torch.zeros(3, 1, 4, 4))
    aux = PixelDecoderAlone(m.pixel_decoder, m.vae, "aux").cond(x)
    y = quantize(downsample2x(x), 256, 4)  # bins of 64 levels: the centre of bin k is level 64 k + 31.5
    torch.testing.assert_close(aux, (64 * y + 31.5) * (2 / 255) - 1, rtol=0, atol=1e-6)
    assert "vae" not in dict(none.named_children())  # the VAE's weights are not this unit's
    lp = none.log_prob(x)
    assert lp.shape == x.shape and torch.isfinite(lp).all()


# ---------------------------------------------------------------------- the bound and its estimates
def test_elbo_parts_iwae_and_the_decomposition():
    m = tiny()
    x = images(n=5)
    parts = m.log_prob_parts(x)
    assert set(parts) == {"prior", "pixel_decoder"} and (parts["prior"] <= 0).all()
    torch.manual_seed(4)
    bpd = m.bits_per_dim_parts(x)
    torch.manual_seed(4)
    torch.testing.assert_close(sum(bpd.values()), m.bits_per_dim(x))  # the same draw: the parts add up
    data = ImageDataset("t", x.to(torch.uint8), None, 16, None, "random")
    one = dataset_latent_bounds(m, data, k=1, batch_size=2)
    assert one["iwae_bpd"] == pytest.approx(one["elbo_bpd"], abs=1e-9)
    many = dataset_latent_bounds(m, data, k=20, batch_size=2, seed=3)
    assert many["iwae_bpd"] <= many["elbo_bpd"] and many["iwae_samples"] == 20 and many["bound_images"] == 5
    assert many["kl_bpd"] >= 0
    # KL and reconstruction (one draw) against the ELBO of 20 draws: the same quantity, up to noise
    assert many["kl_bpd"] + many["pixel_recon_bpd"] == pytest.approx(many["elbo_bpd"], rel=0.02)
    assert many["vae_bound_y_bpd"] == pytest.approx(many["aux_bpd"] + many["kl_bpd"], rel=1e-9)  # y = x here
    with pytest.raises(ConfigError, match="positive integer"):
        m.log_weights(x, 0)


def test_log_weights_average_to_the_analytic_elbo():
    """E_q[ln p(x|z) + ln p(z) - ln q(z|x)] = E_q[ln p(x|z)] - KL: the Monte Carlo KL of the
    log-weights against the analytic KL of log_prob_parts, over many draws."""
    m = tiny()
    x = images(n=2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        lw = m.log_weights(x, 400, generator=g)
        torch.manual_seed(1)
        elbos = torch.stack([sum(m.log_prob_parts(x).values()) for _ in range(400)])
    se = (lw.std(0) ** 2 / 400 + elbos.std(0) ** 2 / 400).sqrt()
    assert ((lw.mean(0) - elbos.mean(0)).abs() < 5 * se + 1e-6).all(), (lw.mean(0), elbos.mean(0), se)


# ---------------------------------------------------------------------- sampling, reconstructions, save/load
def test_sampling_shows_f_z_above_x_and_reconstructs():
    m = tiny(shape=(3, 8, 8), aux_factor=2)
    g = torch.Generator().manual_seed(0)
    grid = m.level_grid(2, generator=g)
    assert [(t.shape, k) for t, k in grid] == [((2, 3, 4, 4), 16), ((2, 3, 8, 8), 16)]
    assert grid[0][0].dtype == torch.long and 0 <= grid[0][0].min() and grid[0][0].max() < 16
    x = images((3, 8, 8))
    r = m.sample_reconstructions(x, n_per_image=2, generator=torch.Generator().manual_seed(1)).images
    assert r.shape == (6, 3, 8, 8)
    again = m.sample_reconstructions(x, n_per_image=2, generator=torch.Generator().manual_seed(1)).images
    assert torch.equal(r, again)
    lv = m.sample_reconstructions(x[:1], generator=torch.Generator().manual_seed(1))
    assert set(lv) == {"z", "means", "image"}
    # given latents decode deterministically to f(z), then x is drawn given it
    z = torch.randn(2, *m.vae.latent_shape)
    out = m.sample_levels(2, given={"z": z}, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out["means"], m.vae.decode(z))


def test_save_and_load_round_trip(tmp_path):
    m = tiny(kl_weight=5.0, aux_bins=4)
    m.save_pretrained(tmp_path / "agave")
    back = pixelzoo.load_pretrained(tmp_path / "agave")
    assert isinstance(back, AGAVE) and back.kl_weight == 5.0 and back.vae.aux_bins == 4
    x = images()
    for a, b in zip(m.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    first = m.log_prob_parts(x)
    torch.manual_seed(0)
    second = back.log_prob_parts(x)
    for k in first:
        torch.testing.assert_close(first[k], second[k])


def test_bad_configurations_are_clear():
    for over, msg in (({"aux_bins": 3}, "divide"), ({"aux_factor": 4}, "larger than the latent"),
                      ({"aux_factor": 3}, "power of 2"), ({"kl_weight": -1.0}, "kl_weight"),
                      ({"pretrain_condition": "vae"}, "pretrain_condition"),
                      ({"vae": {"kl_weight": 2.0}}, "top level"), ({"vae": {"width": 3}}, "bad hyper-parameters"),
                      ({"embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4, "up_after": [1]}}, "upsampled")):
        with pytest.raises(ConfigError, match=msg):
            tiny(**over)
    m = tiny()
    with pytest.raises(ConfigError, match="latents must have shape"):
        m.vae.decode(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ConfigError, match="float map"):
        m.pixel_decoder.log_prob(images(), cond=torch.zeros(3, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ConfigError, match="train.optimizer"):
        TrainConfig.from_dict({"optimizer": "sgd"})


def test_every_agave_preset_builds_with_its_parts():
    for name in ("agave/fashion-cpu", "agave/patches-cpu", "agave/cifar-paper"):
        config = load_preset(name)
        assert config["train"]["optimizer"] == "adamax" and config["train"]["lr"] == 0.002
        assert config["train"].get("lr_decay", 1.0) == 1.0
        assert set(config["train_parts"]) == {"vae", "pixel_decoder", "joint"}
    cfg = load_preset("agave/cifar-paper")["model"]
    with meta_parameters():  # construction only: no memory for the paper-size weights
        m = pixelzoo.create_model("agave", (3, 32, 32), 256, **{k: v for k, v in cfg.items()
                                                                 if k not in ("name", "class_conditional")})
    assert m.vae.latent_shape == (32, 16, 16) and m.kl_weight == 12.0 and m.vae.aux_bins == 256


# ---------------------------------------------------------------------- the pipeline end to end
@pytest.fixture(scope="module")
def agave_run(tmp_path_factory):
    """agave/fashion-cpu's structure on the digits (8x8, 17 levels), tiny: the VAE and the pixel
    decoder pretrained apart (two runs of --part), then the joint unit on resume."""
    config = load_preset("agave/fashion-cpu")
    config["data"] = {"name": "digits"}
    config["model"].update(TINY)
    config = apply_overrides(config, ["train.log_every=5", "train.eval_every=0", "train.checkpoint_every=10",
                                      "train.num_samples=4", "train.eval_images=40", "train.batch_size=16",
                                      "model.kl_weight=2.0"])
    config["train_parts"] = {"vae": {"steps": 20}, "pixel_decoder": {"steps": 15}, "joint": {"steps": 10}}
    run = tmp_path_factory.mktemp("agave") / "run"
    vae = start_run(config, run, parts=["vae"], progress=False, tensorboard=False).train()
    decoder = resume_run(run, parts=["pixel_decoder"], progress=False, tensorboard=False).train()
    rest = resume_run(run, progress=False, tensorboard=False).train()
    return run, vae, decoder, rest


def test_pipeline_pretrains_apart_then_trains_jointly(agave_run):
    run, vae, decoder, rest = agave_run
    assert set(vae["parts"]) == {"vae"} and vae["unfinished_parts"] == ["pixel_decoder", "joint"]
    assert set(decoder["parts"]) == {"pixel_decoder"}
    assert rest["parts"]["vae"] == rest["parts"]["pixel_decoder"] == {"skipped": "already trained"}
    assert rest["parts"]["joint"]["step"] == 10 and "unfinished_parts" not in rest
    assert set(rest["test_bpd_parts"]) == {"prior", "pixel_decoder"}
    assert math.isclose(rest["test_bpd"], sum(rest["test_bpd_parts"].values()), rel_tol=1e-9)
    # the joint unit logged the three terms of eq. 7, and they add up to its objective
    rows = [json.loads(line) for line in (run / "parts" / "joint" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "train_loss" in r]
    assert trained
    for r in trained:
        assert r["train_loss"] == pytest.approx(r["train_pixel_bpd"] + r["train_aux_bpd"] + 2.0 * r["train_kl_bpd"],
                                                rel=1e-5)
    # the VAE's unit logged its own two terms, the pixel decoder's its bits/dim
    vae_rows = [json.loads(line) for line in (run / "parts" / "vae" / "metrics.jsonl").read_text().splitlines()]
    assert any("train_aux_bpd" in r and "train_kl_bpd" in r for r in vae_rows)
    for unit in ("vae", "pixel_decoder", "joint"):
        assert (run / "parts" / unit / "checkpoint.safetensors").is_file()
    assert isinstance(load_run_model(run)[0], AGAVE)


def test_pipeline_evaluates_samples_and_reconstructs(agave_run, tmp_path):
    run = agave_run[0]
    assert main(["evaluate", str(run), "--metrics", "bpd,iwae", "-n", "20", "--iwae-samples", "4",
                 "--no-progress"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["iwae_samples"] == 4 and result["bound_images"] == 20
    assert result["test_iwae_bpd"] <= result["test_elbo_bpd"]
    for key in ("test_kl_bpd", "test_pixel_recon_bpd", "test_aux_bpd", "test_vae_bound_y_bpd", "test_bpd"):
        assert math.isfinite(result[key]), key
    assert main(["sample", str(run), "-n", "3", "--levels", "--out", str(tmp_path / "lv"), "--no-progress"]) == 0
    assert (tmp_path / "lv.png").is_file()
    assert main(["reconstruct", str(run), "test", "-n", "2", "--per-image", "3", "--out", str(tmp_path / "rc"),
                 "--no-progress"]) == 0
    assert (tmp_path / "rc.png").is_file() and (tmp_path / "rc.npz").is_file()
    model = load_run_model(run)[0]
    x = load_dataset("digits").test.images[:2].long()
    assert model.sample_reconstructions(x, 2, generator=torch.Generator().manual_seed(0)).images.shape == (4, 1, 8, 8)


def test_resume_continues_the_joint_unit_from_its_checkpoint(agave_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(agave_run[0], run)
    config = json.loads((run / "config.json").read_text())
    config["train_parts"]["joint"]["steps"] = 14
    (run / "config.json").write_text(json.dumps(config))
    more = resume_run(run, progress=False, tensorboard=False).train()
    assert more["parts"]["joint"]["step"] == 14
    assert more["parts"]["vae"] == {"skipped": "already trained"}
    steps = [json.loads(line).get("step") for line in (run / "parts" / "joint" / "metrics.jsonl").read_text().splitlines()]
    assert 14 in steps and 10 in steps
