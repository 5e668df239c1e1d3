"""Grayscale and Pyramid PixelCNN (Kolesnikov & Lampert 2017): causality of each conditional in X and its
full view of X_hat, the bound as the sum of its parts, sampling (per-part options, colorize, upscale),
part-by-part training and resume, the command line, and every preset's construction."""

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import pixelzoo
from helpers import dependency_grads, raster_before
from pixelzoo.nn.meta import meta_parameters
from pixelzoo.cli import main
from pixelzoo.errors import ConfigError
from pixelzoo.imaging import save_levels_grid
from pixelzoo.sampling.labels import expand_labels
from pixelzoo.models.composites.grayscale_pyramid import GrayscalePixelCNN, PyramidPixelCNN
from pixelzoo.registry import list_presets, load_preset
from pixelzoo.training import TrainConfig, apply_overrides, load_run_model, resume_run, start_run
from pixelzoo.views import downsample2x, grayscale4

TINY_AR = {"name": "gated_pixelcnn", "channels": 24, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 24}
TINY_PP = {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0, "head_options": {"n_mix": 2}}
TINY_GATED_LM = {**TINY_AR, "head": "logistic_mixture", "head_options": {"n_mix": 2}}
TINY_GRAY = {"gray_levels": 4, "prior": TINY_AR, "conditional": TINY_PP,
             "embedding": {"channels": 8, "n_blocks": 2, "out_channels": 4}}
TINY_PYRAMID = {"n_scales": 2, "prior": TINY_AR, "conditional": TINY_GATED_LM,
                "embedding": {"channels": 8, "n_blocks": 3, "down_after": [1], "up_after": [2, 3], "out_channels": 4}}



def gray_model(shape=(3, 4, 4), levels=8, classes=3, **over):
    return pixelzoo.create_model("grayscale_pixelcnn", shape, levels, classes, **{**TINY_GRAY, **over}).eval()


def pyramid_model(shape=(3, 8, 8), levels=8, classes=3, **over):
    return pixelzoo.create_model("pyramid_pixelcnn", shape, levels, classes, **{**TINY_PYRAMID, **over}).eval()


# ---------------------------------------------------------------------- causality and the view of X_hat
CONDITIONALS = {
    "gray-pixelcnnpp-mixture": lambda: (gray_model(), "conditional"),
    "gray-gated-categorical": lambda: (gray_model(conditional={**TINY_AR, "head": "categorical"}), "conditional"),
    "gray-1channel": lambda: (gray_model(shape=(1, 4, 4), levels=17), "conditional"),
    "pyramid-scale_1": lambda: (pyramid_model(), "scale_1"),
    "pyramid-scale_2-pixelcnnpp": lambda: (pyramid_model(conditional=TINY_PP), "scale_2"),
}


@pytest.mark.parametrize("case", sorted(CONDITIONALS))
def test_conditional_is_causal_in_x_and_sees_all_of_x_hat(case):
    model, name = CONDITIONALS[case]()
    part = model.parts[name]
    ar, net = part.ar, part.cond_net
    c, h, w = ar.image_shape
    x = torch.randint(0, ar.num_levels, (2, c, h, w))
    y = torch.tensor([0, 2])
    link = model.link_of_part(name)
    x_hat = model.make(link.given[0], {link.level: x})  # the level above x, made from x
    # causal in X given X_hat: d params(c, i, j) / d x is zero at and after (c, i, j), not all zero before
    spatial = net(x_hat).detach()
    for (ci, i, j), g in dependency_grads(ar, x, y, spatial):
        before = raster_before(c, h, w, ci, i, j)
        assert torch.all(g[~before] == 0), f"{case}: output {(ci, i, j)} sees X at or after itself"
        if before.any():
            assert g[before].sum() > 0, f"{case}: output {(ci, i, j)} sees nothing of its past"
    # free in X_hat: the first sub-pixel's distribution depends on X_hat at its far bottom-right corner
    ar.float()
    v = net.scale(x_hat).requires_grad_(True)
    params = ar.params_from_scaled(ar.scale(x), y, net.from_scaled(v))
    params[:, 0, :, 0, 0].sum().backward()
    assert v.grad[:, :, -1, -1].abs().sum() > 0, f"{case}: the first pixel does not see the last pixel of X_hat"
    assert (v.grad.abs().sum((0, 1)) > 0).all(), f"{case}: some X_hat position is invisible to the first pixel"


# ---------------------------------------------------------------------- the bound and its parts
def test_bound_is_the_sum_of_its_parts_in_bits_per_dim_of_x():
    for model in (gray_model(), pyramid_model(), gray_model(shape=(1, 4, 4), levels=17)):
        c, h, w = model.image_shape
        x = torch.randint(0, model.num_levels, (3, c, h, w))
        y = torch.tensor([0, 1, 2])
        with torch.no_grad():
            parts = model.log_prob_parts(x, y)
            bpd_parts = model.bits_per_dim_parts(x, y)
            total = model.log_prob(x, y)
            bpd = model.bits_per_dim(x, y)
        assert list(parts) == model.part_names
        torch.testing.assert_close(total, sum(parts.values()))
        torch.testing.assert_close(bpd, sum(bpd_parts.values()))
        dims = c * h * w * math.log(2.0)
        for name in model.part_names:   # every part in bits per dimension of X, so they add up
            torch.testing.assert_close(bpd_parts[name], -parts[name] / dims)
        if isinstance(model, GrayscalePixelCNN):
            g = grayscale4(x, model.num_levels, model.gray_levels)
            expect_prior = model.parts["prior"].log_prob(g, y).sum((1, 2, 3))
            expect_cond = model.parts["conditional"].ar.log_prob(
                x, y, spatial=model.parts["conditional"].cond_net(g)).sum((1, 2, 3))
            torch.testing.assert_close(parts["prior"], expect_prior)
            torch.testing.assert_close(parts["conditional"], expect_cond)
        else:
            x1, x2 = downsample2x(x), downsample2x(downsample2x(x))
            torch.testing.assert_close(parts["prior"], model.parts["prior"].log_prob(x2, y).sum((1, 2, 3)))
            torch.testing.assert_close(parts["scale_1"], model.parts["scale_1"].log_prob(x1, y, cond=x2).sum((1, 2, 3)))
            torch.testing.assert_close(parts["scale_2"], model.parts["scale_2"].log_prob(x, y, cond=x1).sum((1, 2, 3)))
            levels = model.level_bits_per_dim(x, y)
            assert list(levels) == ["2x2", "4x4", "8x8"]
            torch.testing.assert_close(levels["8x8"], bpd)
            torch.testing.assert_close(levels["2x2"], -parts["prior"] / (c * 4 * math.log(2.0)))


# ---------------------------------------------------------------------- sampling
def test_sampling_shapes_options_colorize_upscale():
    g = gray_model()
    y = torch.tensor([0, 1, 2, 0])
    lv = g.sample_levels(4, y=y, head_options={"conditional": {"mode": "map"}}, temperature={"prior": 0.5})
    x, gray = lv["image"], lv["gray"]
    assert x.shape == (4, 3, 4, 4) and gray.shape == (4, 1, 4, 4) and x.dtype == torch.long
    assert int(x.max()) < 8 and int(gray.max()) < 4
    col = g.sample(6, y=expand_labels(y[:2], 2, 3), head_options={"conditional": {"mode": "map", "log_scale_shift": 0.5}},
                   given={"gray": gray[:2]})
    assert col.shape == (6, 3, 4, 4) and int(col.max()) < 8
    assert g.view_agreement(col, gray[:2].repeat_interleave(3, 0)).shape == (6,)
    with pytest.raises(ConfigError, match="part names"):
        g.sample(2, y=y[:2], head_options={"mode": "map"})        # options must be given per part
    with pytest.raises(ConfigError, match="unknown sampling options"):
        g.sample(2, y=y[:2], head_options={"prior": {"log_scale_shift": 1.0}})   # the prior is categorical
    with pytest.raises(ConfigError, match="inpainting"):
        g.sample(2, y=y[:2], known=x[:1], mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="shape"):
        g.sample(4, y=y, given={"gray": x})

    p = pyramid_model()
    levels = p.sample_levels(2, y=1, head_options={"scale_2": {"mode": "map"}}).top_down()
    assert [tuple(l.shape) for l in levels] == [(2, 3, 2, 2), (2, 3, 4, 4), (2, 3, 8, 8)]
    up = p.sample_levels(4, y=expand_labels(torch.tensor([1, 2]), 2, 2), given={"2x2": levels[0]}).top_down()
    assert [tuple(l.shape) for l in up] == [(4, 3, 2, 2), (4, 3, 4, 4), (4, 3, 8, 8)]
    assert torch.equal(up[0], levels[0].repeat_interleave(2, 0))
    assert p.sample(2, y=1, given={"4x4": levels[1]}).shape == (2, 3, 8, 8)
    with pytest.raises(ConfigError, match="not a level above the data"):
        p.sample(2, y=1, given={"image": levels[2]})


def test_save_and_load_round_trip(tmp_path):
    for model in (gray_model(), pyramid_model()):
        x, y = torch.randint(0, 8, (2, *model.image_shape)), torch.tensor([0, 1])
        model.save_pretrained(tmp_path / type(model).__name__)
        loaded = pixelzoo.load_pretrained(tmp_path / type(model).__name__)
        assert type(loaded) is type(model) and loaded.part_names == model.part_names
        torch.testing.assert_close(loaded.log_prob(x, y), model.log_prob(x, y), rtol=0, atol=0)


def test_bad_configurations_are_clear():
    with pytest.raises(ConfigError, match="change the resolution"):
        gray_model(embedding={"n_blocks": 2, "down_after": [1]})
    with pytest.raises(ConfigError, match="change the resolution"):
        pyramid_model(embedding={"channels": 8, "n_blocks": 2, "down_after": [], "up_after": [], "out_channels": 4})
    with pytest.raises(ConfigError, match="halved 3 times"):
        pyramid_model(shape=(3, 4, 4), n_scales=3)
    with pytest.raises(ConfigError, match="spatial_channels"):
        gray_model(conditional={**TINY_PP, "spatial_channels": 3})
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        gray_model(shape=(2, 4, 4))


# ---------------------------------------------------------------------- presets
DATA_SHAPES = {"cifar10": ((3, 32, 32), 256, 10), "folder": ((3, 128, 128), 256, None), "digits": ((1, 8, 8), 17, 10)}


def preset_shape(data):
    if data["name"] in DATA_SHAPES:
        return DATA_SHAPES[data["name"]]
    if data["name"] == "patches":
        return (3, data.get("size", 32), data.get("size", 32)), 256, None
    if data["name"] == "fashion-mnist":
        s = data.get("pad_to") or 28
        return (1, s, s), 256, 10
    raise AssertionError(f"no shape for data {data}")


AUX_PRESETS = [p for p in list_presets() if p.split("/")[0] in ("grayscale_pixelcnn", "pyramid_pixelcnn")]


def test_every_preset_constructs_and_its_train_parts_name_parts():
    assert {"grayscale_pixelcnn/patches-cpu", "grayscale_pixelcnn/fashion-cpu", "grayscale_pixelcnn/cifar-paper",
            "pyramid_pixelcnn/patches-cpu", "pyramid_pixelcnn/fashion-cpu",
            "pyramid_pixelcnn/celeba128-paper"} <= set(AUX_PRESETS)
    for name in AUX_PRESETS:
        config = load_preset(name)
        model_cfg = dict(config["model"])
        shape, levels, classes = preset_shape(config["data"])
        if not model_cfg.pop("class_conditional", True):
            classes = None
        with meta_parameters() if name.endswith("-paper") else contextlib.nullcontext():  # construction only
            model = pixelzoo.create_model(model_cfg.pop("name"), shape, levels, classes, **model_cfg)
        assert set(config.get("train_parts", {})) <= set(model.part_names), name
        for part in model.part_names:
            TrainConfig.from_dict({**config["train"], **config.get("train_parts", {}).get(part, {})})
        if name == "pyramid_pixelcnn/celeba128-paper":
            assert model.level_shapes[-1] == (3, 8, 8) and len(model.part_names) == 5
        if name == "pyramid_pixelcnn/fashion-cpu":
            assert [s[1] for s in model.level_shapes] == [32, 16, 8, 4]


# ---------------------------------------------------------------------- training, resume, command line
def shrink(config, **train):
    config = apply_overrides(config, ["train.log_every=5", "train.eval_every=0", "train.checkpoint_every=20",
                                      "train.num_samples=4", "train.eval_images=60", "train.polyak=null"])
    config["train"].update(train)
    return config


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    """The grayscale digits preset (17 levels, view: 4 levels), the prior trained briefly on its own,
    then the rest on resume: the conditional long enough to learn to follow its gray view."""
    config = shrink(load_preset("grayscale_pixelcnn/digits"), steps=10, batch_size=32)
    config = apply_overrides(config, ["model.conditional.channels=16", "model.conditional.n_layers=2",
                                      "model.conditional.out_hidden=32", "model.embedding.channels=16",
                                      "model.embedding.out_channels=16", 'model.conditional.head_options={"n_mix": 3}'])
    config["train_parts"] = {"conditional": {"steps": 120}}
    run = tmp_path_factory.mktemp("aux") / "gray"
    first = start_run(config, run, parts=["prior"], progress=False, tensorboard=False).train()
    rest = resume_run(run, progress=False, tensorboard=False).train()
    return run, first, rest


def test_parts_train_separately_resume_and_the_bound_adds_up(gray_run):
    run, first, rest = gray_run
    assert set(first["parts"]) == {"prior"} and "test_bpd" not in first
    assert first["unfinished_parts"] == ["conditional"] and "unfinished_parts" not in rest
    assert rest["parts"]["prior"] == {"skipped": "already trained"} and rest["parts"]["conditional"]["step"] == 120
    for part in ("prior", "conditional"):
        assert (run / "parts" / part / "checkpoint.safetensors").is_file()
    assert math.isclose(rest["test_bpd"], sum(rest["test_bpd_parts"].values()), rel_tol=1e-6)
    assert (run / "samples" / "final.png").is_file()
    # the conditional part's own evaluation used the given test views (its test split carries them)
    assert math.isfinite(rest["parts"]["conditional"]["test_bpd"])


def test_colourisations_follow_the_given_gray_view(gray_run):
    """psi(colourisation) == X_hat is not guaranteed (p(X | X_hat) may put mass on values of another
    bin); what holds is that a trained conditional follows X_hat: the agreement rate is high, and far
    above the agreement with an unrelated gray view."""
    run, _, _ = gray_run
    model, config = load_run_model(run)
    from pixelzoo.training import load_data

    test = load_data(config["data"]).test
    x, y = test.images[:40].long(), test.labels[:40]
    gray = model.view(x)
    g = torch.Generator().manual_seed(0)
    col = model.sample(40, y=y, head_options={"conditional": {"mode": "map"}}, generator=g, given={"gray": gray})
    agree = float(model.view_agreement(col, gray).mean())
    other = float(model.view_agreement(col, gray.roll(1, 0)).mean())
    print(f"digits, 4 gray levels, 120 steps: psi(MAP colourisation) == X_hat at {agree:.1%} of pixels "
          f"(vs {other:.1%} with another image's view)")
    assert agree > 0.9 and agree > other + 0.2


def test_colorize_command_end_to_end(gray_run, tmp_path, capsys):
    run, _, _ = gray_run
    assert main(["colorize", str(run), "test", "-n", "3", "--per-image", "2", "--map", "--out", str(tmp_path / "c.png"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "original, gray view, 2 colourisations" in out and "of pixels" in out
    assert (tmp_path / "c.png").is_file()
    arr = np.load(tmp_path / "c.npz")
    assert arr["images"].shape == (6, 1, 8, 8) and arr["gray"].shape == (3, 1, 8, 8) and arr["images"].max() < 17
    # from an .npz written by `pixelzoo sample`: its images are colourised anew from their gray views
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert main(["colorize", str(run), str(tmp_path / "s.npz"), "--per-image", "1", "--out", str(tmp_path / "d.png"),
                 "--no-progress"]) == 0
    assert np.load(tmp_path / "d.npz")["images"].shape == (2, 1, 8, 8)
    # gray views given directly
    np.savez(tmp_path / "g.npz", images=arr["gray"], labels=np.array([1, 2, 3]))
    assert main(["colorize", str(run), str(tmp_path / "g.npz"), "--gray", "--per-image", "1",
                 "--out", str(tmp_path / "e.png"), "--no-progress"]) == 0
    assert "(gray view, 1 colourisations per row)" in capsys.readouterr().out
    assert main(["upscale", str(run), "test", "--no-progress"]) == 2
    assert "needs a pyramid_pixelcnn run" in capsys.readouterr().err
    # Fig. 2: gray views above their colour samples; the colour row's view is the gray row
    assert main(["sample", str(run), "-n", "3", "--levels", "--scale", "4", "--out", str(tmp_path / "lv"),
                 "--no-progress"]) == 0
    grid = np.asarray(Image.open(tmp_path / "lv.png"))
    strip = grid.shape[0] - (1 + 2 * 33)  # class-conditional: each sample's class above its column
    assert grid.shape[1] == 1 + 3 * 33 and 8 <= strip <= 30  # two rows (gray, colour) of three 8x8 samples shown at 32


def test_pyramid_trains_on_digits_and_upscales(tmp_path, capsys):
    config = shrink(load_preset("pyramid_pixelcnn/digits"), steps=3)
    config["train_parts"] = {"scale_2": {"steps": 4}}
    result = start_run(config, tmp_path / "run", progress=False, tensorboard=False).train()
    assert [result["parts"][p]["step"] for p in ("prior", "scale_1", "scale_2")] == [3, 3, 4]
    assert math.isclose(result["test_bpd"], sum(result["test_bpd_parts"].values()), rel_tol=1e-6)
    model, _ = load_run_model(tmp_path / "run")
    assert isinstance(model, PyramidPixelCNN) and [s[1] for s in model.level_shapes] == [8, 4, 2]
    assert main(["upscale", str(tmp_path / "run"), "test", "-n", "2", "--per-image", "2", "--from-size", "4",
                 "--map", "--out", str(tmp_path / "u.png"), "--no-progress"]) == 0
    assert "original, 4-pixel level, 2 upscalings" in capsys.readouterr().out
    assert np.load(tmp_path / "u.npz")["images"].shape == (4, 1, 8, 8)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["n_scales"] == 2
    levels = model.level_grid(2, y=torch.tensor([0, 1]))
    assert [tuple(x.shape[-2:]) for x, _ in levels] == [(2, 2), (4, 4), (8, 8)]
    save_levels_grid(levels, tmp_path / "levels.png", scale=4)  # each level at 8 x 4 = 32 pixels
    grid = np.asarray(Image.open(tmp_path / "levels.png"))
    assert grid.shape[:2] == (1 + 3 * 33, 1 + 2 * 33)  # 3 rows (levels) x 2 samples, each enlarged to 32 + padding


def test_embedding_output_is_normalised_per_image_whatever_the_weights_scale():
    """The residual stack's output grew to ~1e9 in training without it (see EmbeddingNet's docstring):
    the normalised output stays at unit scale however large the weights become."""
    from pixelzoo.nn.embedding_net import EmbeddingNet

    net = EmbeddingNet(1, 16, 8, channels=8, n_blocks=3, down_after=[1], up_after=[2, 3]).eval()
    v = torch.randint(0, 16, (4, 1, 4, 4))
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(30.0)
        e = net(v)
    assert e.shape == (4, 8, 8, 8)
    flat = e.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    raw = EmbeddingNet(1, 16, 8, channels=8, n_blocks=3, down_after=[1], up_after=[2, 3], out_norm=False)
    assert isinstance(raw.out_norm, torch.nn.Identity)
