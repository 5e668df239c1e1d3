"""VQ-VAE-2 composite: causality of the priors over code maps, the bottom prior's view of the whole
top map, the code cache, the pipeline end to end (stage 1, codes, stage 2, sampling, decoding),
classifier-based rejection sampling and its sweep, and the presets."""

import contextlib
import json
import math

import pytest
import torch
import torch.nn as nn
from PIL import Image

import pixelzoo
from helpers import dependency_grads, raster_before
from pixelzoo.nn.meta import meta_parameters
from pixelzoo.cli import main
from pixelzoo.data import load_dataset
from pixelzoo.errors import ConfigError
from pixelzoo.models.composites.vqvae2.model import CODES_FILE, VQVAE2Model
from pixelzoo.commands.rejection_sweep import parse_rates, rejection_sweep
from pixelzoo.sampling.rejection import rejection_sample, select_best
from pixelzoo.training import load_run_model, start_run



TINY_AE = dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=8, num_codes=16, levels=[2, 2])
TINY_TOP = dict(channels=8, n_blocks=2, kernel_size=3, attention_every=1, heads=2, out_res_blocks=1, code_embedding=6,
                dropout=0.0)
TINY_LOWER = dict(channels=8, n_blocks=2, kernel_size=3, code_embedding=6, dropout=0.0, cond_embedding=4,
                  cond_channels=8, cond_res_channels=8, cond_blocks=2, spatial_channels=4)


def tiny(shape=(1, 8, 8), levels=17, classes=10, ae=None, top=None, bottom=None, **kw):
    return pixelzoo.create_model("vqvae2", shape, levels, classes, autoencoder={**TINY_AE, **(ae or {})},
                                 top_prior={**TINY_TOP, **(top or {})}, bottom_prior={**TINY_LOWER, **(bottom or {})}, **kw)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ----------------------------------------------------------------------- priors: causality and conditioning
def test_top_prior_with_attention_is_exactly_causal():
    model = tiny((1, 12, 12), 5, 3, ae=dict(num_codes=7))   # codes 3x3 (top), 6x6 (bottom)
    prior = model.parts["top_prior"]
    assert prior.image_shape == (1, 3, 3) and prior.num_levels == 7 and len(prior.trunk.attention) == 2
    x, y = torch.randint(0, 7, (2, 1, 3, 3)), torch.tensor([0, 2])
    for (c, i, j), g in dependency_grads(prior, x, y):
        before = raster_before(1, 3, 3, c, i, j)
        assert torch.all(g[~before] == 0), f"top prior output {(i, j)} sees codes at or after itself"
        if before.any():
            assert torch.all(g[before] > 0), f"top prior output {(i, j)} misses part of its past"


@pytest.mark.parametrize("attention_every", [0, 1])
def test_bottom_prior_is_causal_in_its_own_codes(attention_every):
    model = tiny((1, 12, 12), 5, 3, ae=dict(num_codes=7), bottom=dict(attention_every=attention_every))
    prior = model.parts["bottom_prior"]
    assert prior.image_shape == (1, 6, 6) and len(prior.ar.trunk.attention) == (2 if attention_every else 0)
    x, y = torch.randint(0, 7, (2, 1, 6, 6)), torch.tensor([1, 0])
    cond = model.condition([torch.randint(0, 7, (2, 3, 3))], 1)
    spatial = prior.cond_net(cond).detach()
    for (c, i, j), g in dependency_grads(prior.ar, x, y, spatial):
        before = raster_before(1, 6, 6, c, i, j)
        assert torch.all(g[~before] == 0), f"bottom prior output {(i, j)} sees codes at or after itself"
        if before.any():
            assert g[before].sum() > 0


def _first_position_grad_wrt_top(prior, cond):
    net = prior.cond_net
    e = net.embed(cond).detach().double().requires_grad_(True)
    prior.double()
    x = torch.randint(0, prior.num_levels, (cond.shape[0], 1, *prior.image_shape[1:]))
    params = prior.ar.params_from_scaled(prior.ar.scale(x).double(), None, net.from_embedded(e))
    (g,) = torch.autograd.grad(params[:, 0, :, 0, 0].sum(), e)
    return g.abs().sum((0, 1))   # per top position


def test_bottom_prior_sees_every_top_code_with_a_deep_enough_conditioning_stack():
    """d params(first bottom position) / d embedded top code != 0 for every top position: the
    conditioning stack is not causal. With no residual block its field is too small to reach the
    far corner of the top map."""
    cond = torch.randint(0, 16, (3, 1, 3, 3))
    deep = tiny((1, 12, 12), 5, None, bottom=dict(cond_blocks=2)).parts["bottom_prior"]
    assert torch.all(_first_position_grad_wrt_top(deep, cond) > 0)
    shallow = tiny((1, 12, 12), 5, None, bottom=dict(cond_blocks=0)).parts["bottom_prior"]
    g = _first_position_grad_wrt_top(shallow, cond)
    assert g[0, 0] > 0 and g[2, 2] == 0


def test_three_levels_condition_on_every_level_above():
    model = tiny((1, 16, 16), 5, None, ae=dict(levels=[2, 2, 2]), middle_prior=dict(TINY_LOWER))
    assert model.prior_names == ["top_prior", "middle_prior", "bottom_prior"]
    assert model.stages == [["autoencoder"], ["top_prior", "middle_prior", "bottom_prior"]]
    top, mid = torch.randint(0, 16, (2, 2, 2)), torch.randint(0, 16, (2, 4, 4))
    cond = model.condition([top, mid], 2)
    assert cond.shape == (2, 2, 4, 4)
    assert torch.equal(cond[:, 0, ::2, ::2], top) and torch.equal(cond[:, 0, 1::2, 1::2], top)
    assert torch.equal(cond[:, 1], mid)
    lv = model.sample_levels(2, temperature=0.0)
    x, codes = lv.images, [lv[name][:, 0] for name in model.level_names]
    assert x.shape == (2, 1, 16, 16) and [tuple(c.shape) for c in codes] == [(2, 2, 2), (2, 4, 4), (2, 8, 8)]
    with pytest.raises(ConfigError, match="middle_prior"):
        tiny(middle_prior=dict(TINY_LOWER))            # two levels: no middle prior
    with pytest.raises(ConfigError, match="unknown top_prior option"):
        tiny(top=dict(conv_size=3))
    with pytest.raises(ConfigError, match="temperatures for unknown prior"):
        model.sample(1, temperature={"bottom": 1.0})


# ----------------------------------------------------------------------- code extraction and cache
def test_codes_are_extracted_once_cached_and_invalidated(digits, tmp_path):
    model = tiny(ae=dict(num_codes=300)).eval()          # 300 codes: int16 code maps
    cache = tmp_path / "cache"
    data = model.part_data("bottom_prior", digits, cache)
    assert model.last_codes_source == "computed" and (cache / CODES_FILE).is_file()
    assert data.train.images.dtype == torch.int16 and data.num_levels == 300
    assert data.image_shape == (1, 4, 4) and data.train.extras["cond"].shape == (len(digits.train), 1, 2, 2)
    assert torch.equal(data.train.labels, digits.train.labels) and data.num_classes == 10
    top, bottom = model.encode(digits.test.images[:5].long())
    assert torch.equal(data.test.images[:5, 0].long(), bottom)
    assert torch.equal(data.test.extras["cond"][:5, 0].long(), top)
    top_data = model.part_data("top_prior", digits, cache)
    assert model.last_codes_source == "memory" and torch.equal(top_data.train.images[:, 0], data.train.extras["cond"][:, 0])
    assert top_data.train.extras == {}

    again = tiny(ae=dict(num_codes=300))
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.part_data("bottom_prior", digits, cache).train.images, data.train.images)
    assert again.last_codes_source == "cache"

    with torch.no_grad():   # a changed autoencoder: the cache is stale and recomputed
        again.autoencoder.decoder.net[0].weight.add_(0.1)
        again.autoencoder.pre_quant[0].weight.mul_(-1.0)
    fresh = again.part_data("bottom_prior", digits, cache)
    assert again.last_codes_source == "computed"
    assert not torch.equal(fresh.train.images, data.train.images)
    newest = tiny(ae=dict(num_codes=300))
    newest.load_state_dict(again.state_dict())
    newest.part_data("top_prior", digits, cache)
    assert newest.last_codes_source == "cache"
    assert model.part_data("autoencoder", digits, cache) is digits


# ----------------------------------------------------------------------- the pipeline end to end
CONFIG = {
    "model": {"name": "vqvae2", "autoencoder": TINY_AE, "top_prior": TINY_TOP, "bottom_prior": TINY_LOWER},
    "data": {"name": "digits"},
    "train": {"steps": 4, "batch_size": 32, "lr": 0.003, "log_every": 2, "eval_every": 0, "checkpoint_every": 100,
              "num_samples": 4},
    "train_parts": {"autoencoder": {"steps": 30}},
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("vqvae2") / "run"
    trainer = start_run(CONFIG, out, progress=False, tensorboard=False)
    return trainer.run_dir, trainer.train()


def test_pipeline_stage1_codes_stage2_sampling_decoding(trained_run, digits):
    run_dir, result = trained_run
    assert result["parts"]["autoencoder"]["step"] == 30 and "test_bpd" not in result["parts"]["autoencoder"]
    for name in ("top_prior", "bottom_prior"):
        part = result["parts"][name]
        assert part["step"] == 4 and math.isfinite(part["test_bpd"]) and 0 < part["test_bpd"] < 8  # bits per code, K=16
    assert "test_bpd" not in result            # no likelihood of pixels
    assert (run_dir / "samples" / "final.png").is_file() and (run_dir / "cache" / CODES_FILE).is_file()

    model, config = load_run_model(run_dir)
    assert isinstance(model, VQVAE2Model) and not model.has_likelihood and model.num_classes == 10
    # stage 2 trained on the codes of the trained encoder: the cache matches the loaded weights
    data = model.part_data("top_prior", digits, run_dir / "cache")
    assert model.last_codes_source == "cache"
    assert torch.equal(data.test.images[:8, 0].long(), model.encode(digits.test.images[:8].long())[0])

    y = torch.tensor([0, 1, 2])
    lv = model.sample_levels(3, y=y, temperature={"top_prior": 0.5}, generator=torch.Generator().manual_seed(0))
    x, codes = lv.images, [lv[name][:, 0] for name in model.level_names]
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) < 17
    assert [tuple(c.shape) for c in codes] == [(3, 2, 2), (3, 4, 4)] and int(max(c.max() for c in codes)) < 16
    assert torch.equal(model.decode(codes), x)
    again = model.sample(3, y=y, temperature={"top_prior": 0.5}, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, x)
    rec = model.reconstruct(digits.test.images[:4].long())
    assert rec.shape == (4, 1, 8, 8) and int(rec.max()) < 17
    with pytest.raises(ConfigError, match="inpainting"):
        model.sample(1, known=digits.test.images[:1], mask=torch.ones(8, 8, dtype=torch.bool))


def test_rejection_sweep_command_on_the_run(trained_run, digits, tmp_path):
    from pixelzoo.evaluation.classifier import save_classifier, train_classifier

    run_dir, _ = trained_run
    clf = train_classifier(digits, "digits", steps=3, batch_size=32, progress=False)
    save_classifier(clf, tmp_path / "clf")
    out = tmp_path / "sweep.json"
    assert main(["rejection-sweep", str(run_dir), "--rates", "1,0.5", "-n", "10", "--batch-size", "20",
                 "--feature-net", str(tmp_path / "clf"), "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["rates"] == [1.0, 0.5] and report["pool_candidates"] == 20 and report["scorer_is_feature_net"]
    rows = report["results"]
    assert [r["candidates"] for r in rows] == [10, 20] and all(r["accepted"] == 10 for r in rows)
    for key in ("fid", "is", "precision", "recall"):
        assert all(math.isfinite(r[f"{key}[digits-lenet-128]"]) for r in rows)
    assert report["plot"] == str(out.with_suffix(".png")) and out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------- rejection sampling
class MeanIntensityClassifier(nn.Module):
    """A fixed linear classifier on an image's mean intensity: dark -> class 0, bright -> class 2."""

    def __init__(self, num_levels=17):
        super().__init__()
        self.num_levels = num_levels
        self.lin = nn.Linear(1, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[-8.0], [0.0], [8.0]]))
            self.lin.bias.copy_(torch.tensor([2.0, 0.0, -2.0]))

    def features(self, x):
        v = x.float() / (self.num_levels - 1)
        return torch.stack([v.mean((1, 2, 3)), v.std((1, 2, 3))], 1)

    def forward(self, x):   # logits
        return self.lin(self.features(x)[:, :1])

    def probs(self, x):
        return self.forward(x).softmax(-1)


@pytest.fixture(scope="module")
def toy_sampler():
    torch.manual_seed(0)
    return pixelzoo.create_model("gated_pixelcnn", (1, 8, 8), 17, 3, channels=8, n_layers=2, kernel_size=3,
                                 first_kernel_size=3, out_hidden=8).eval()


def test_select_best_keeps_the_top_scores_per_class():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.2, 0.9, 0.3])
    labels = torch.tensor([0, 0, 1, 1, 0, 1, 1])
    assert select_best(scores, labels, {0: 2, 1: 1}).tolist() == [1, 4, 5]
    assert select_best(scores, None, {None: 3}).tolist() == [1, 5, 3]
    with pytest.raises(ConfigError, match="only 3 candidates"):
        select_best(scores, labels, {0: 4})
    assert parse_rates("1, 0.5,0.5,0.1") == [1.0, 0.5, 0.1]
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        parse_rates("1,0")


def test_rejection_sampling_keeps_the_highest_scoring_candidates(toy_sampler):
    clf = MeanIntensityClassifier()
    # a bare callable returning logits: scores are the softmax probability of the intended class
    res = rejection_sample(toy_sampler, 6, clf.forward, acceptance=0.25, batch_size=24, keep_candidates=True,
                           generator=torch.Generator().manual_seed(1))
    assert res.candidates == 24 and res.images.shape == (6, 1, 8, 8) and res.acceptance_rate == 0.25
    assert res.labels.tolist() == [0, 1, 2, 0, 1, 2]
    probs = clf.forward(res.candidate_images).softmax(-1).double()
    expected = probs.gather(1, res.candidate_labels[:, None])[:, 0]
    torch.testing.assert_close(res.candidate_scores, expected)
    for c in range(3):
        best = res.candidate_scores[res.candidate_labels == c].sort(descending=True).values[:2]
        torch.testing.assert_close(res.scores[res.labels == c].sort(descending=True).values, best)
    kept = [int((res.candidate_images == img).flatten(1).all(1).nonzero()[0]) for img in res.images]
    assert all(res.candidate_labels[k] == lab for k, lab in zip(kept, res.labels))

    everything = rejection_sample(toy_sampler, 3, clf, y=2, acceptance=1.0, generator=torch.Generator().manual_seed(2))
    assert everything.candidates == 3 and everything.labels.tolist() == [2, 2, 2]

    # a threshold about half of each class's candidates pass
    cut = min(float(res.candidate_scores[res.candidate_labels == c].median()) for c in range(3))
    th = rejection_sample(toy_sampler, 3, clf, threshold=cut, batch_size=16, max_candidates=200,
                          generator=torch.Generator().manual_seed(3))
    assert th.complete and th.labels.tolist() == [0, 1, 2] and th.candidates <= 200
    assert bool((th.scores >= cut).all()) and th.threshold == cut
    with pytest.raises(ConfigError, match="exactly one"):
        rejection_sample(toy_sampler, 3, clf, acceptance=0.5, threshold=0.5)


def test_rejection_sweep_writes_the_tradeoff(toy_sampler, digits, tmp_path):
    clf = MeanIntensityClassifier()
    real = digits.test.images[:30]
    report = rejection_sweep(toy_sampler, clf, real, rates=[1, 0.5], n=6, batch_size=12,
                             out=tmp_path / "sweep.json", plot=tmp_path / "sweep.png")
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["results"] == json.loads(json.dumps(report["results"]))
    rows = saved["results"]
    assert [r["acceptance_rate"] for r in rows] == [1.0, 0.5] and [r["candidates"] for r in rows] == [6, 12]
    assert rows[1]["mean_score"] >= rows[0]["mean_score"] - 1e-12   # the best half of a superset
    net = saved["feature_net"]
    for key in ("fid", "is", "precision", "recall"):
        assert all(math.isfinite(r[f"{key}[{net}]"]) for r in rows)
    # the Fig. 7 trade-off plot is always written (matplotlib is a dependency)
    assert saved["plot"] == str(tmp_path / "sweep.png") and "plot_skipped" not in saved
    with Image.open(tmp_path / "sweep.png") as png:
        assert png.format == "PNG" and png.size == (1000, 400)


# ----------------------------------------------------------------------- presets
PRESET_DATA = {
    "vqvae2/fashion-cpu": ((1, 32, 32), 256, 10, [(4, 4), (8, 8)]),
    "vqvae2/patches-cpu": ((3, 64, 64), 256, None, [(8, 8), (16, 16)]),
    "vqvae2/imagenet256-paper": ((3, 256, 256), 256, 1000, [(32, 32), (64, 64)]),
    "vqvae2/ffhq1024-paper": ((3, 1024, 1024), 256, None, [(32, 32), (64, 64), (128, 128)]),
}


@pytest.mark.parametrize("preset", sorted(PRESET_DATA))
def test_every_preset_constructs(preset):
    from pixelzoo.training.config import RunConfig, TrainConfig

    assert preset in pixelzoo.list_presets()
    config = pixelzoo.load_preset(preset)
    shape, levels, classes, code_shapes = PRESET_DATA[preset]
    cfg = {k: v for k, v in config["model"].items() if k not in ("name", "class_conditional")}
    # construction only: the paper-size networks' parameters on the meta device (no memory is touched)
    with meta_parameters() if preset.endswith("-paper") else contextlib.nullcontext():
        model = pixelzoo.create_model("vqvae2", shape, levels, classes, **cfg)
    assert model.code_shapes == code_shapes
    assert model.part_names == ["autoencoder", *model.prior_names]
    TrainConfig.from_dict(config["train"])
    for name in config.get("train_parts", {}):
        assert name in model.part_names
    run_config = RunConfig.from_dict(config)
    for name in model.part_names:
        assert run_config.train_for(name).steps >= 1


def test_the_training_memory_estimate_traces_the_autoencoder_with_its_quantiser():
    """The vector quantiser runs on the meta device (no codebook learning, no code histogram there), so
    the estimate counts the autoencoder's activations, not only its weights."""
    from pixelzoo.data import load_dataset
    from pixelzoo.training.config import RunConfig
    from pixelzoo.training.run import resolve_model_config, training_memory

    from test_streaming import TINY_VQVAE2

    splits = load_dataset("digits")
    rc = RunConfig.from_dict({"model": dict(TINY_VQVAE2), "data": {"name": "digits"}, "train": {"batch_size": 64}})
    rc = rc.with_model(resolve_model_config(rc.model, splits))
    est = dict((what.split(" of model")[0], (need, what)) for need, what in training_memory(rc, splits))
    need, what = est["training part 'autoencoder'"]
    assert "on batches of 64" in what and "of activations" in what
    rc2 = RunConfig.from_dict({**rc.to_dict(), "train": {"batch_size": 8}})
    small = dict((w.split(" of model")[0], n) for n, w in training_memory(rc2, splits))
    assert small["training part 'autoencoder'"] < need   # the activations grow with the batch


def test_the_training_memory_estimate_traces_the_priors_on_their_code_maps():
    """A prior over codes (and the bottom prior given the top codes) is traced on meta tensors of its
    levels' shapes: the activations it counts are those a real step on real code maps saves."""
    from pixelzoo.data import load_dataset
    from pixelzoo.training.config import RunConfig
    from pixelzoo.training.run import _saved_for_backward, build_model, resolve_model_config, training_memory

    from test_streaming import TINY_VQVAE2

    splits = load_dataset("digits")
    rc = RunConfig.from_dict({"model": dict(TINY_VQVAE2), "data": {"name": "digits"}, "train": {"batch_size": 16}})
    rc = rc.with_model(resolve_model_config(rc.model, splits))
    est = {what.split(" of model")[0]: need for need, what in training_memory(rc, splits)}
    torch.manual_seed(0)
    model = build_model(rc.model)
    for part in ("top_prior", "bottom_prior"):
        module = model.parts[part]
        data = model.part_data(part, splits, write_cache=False).train
        x = data.images[:16].long()
        extras = {k: v[:16] for k, v in data.extras.items()}
        params = list(module.parameters())
        real = _saved_for_backward(lambda x, y: module.loss(x, y, **extras), x, data.labels[:16], {id(p) for p in params})
        weights = sum(p.numel() * p.element_size() for p in params)
        assert real > 0 and est[f"training part {part!r}"] == weights * 4 + real, part
