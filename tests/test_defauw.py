"""De Fauw, Dieleman & Simonyan (2019): one level (encoder + VQ, feed-forward or MSP auxiliary decoder,
AR decoder = modulator + local Gated PixelCNN) and stacks of them with a prior on the top codes.

MSP masks (count, size, middle positions, all-zero one-hot inputs), the teacher's blindness to the
masked regions, the stop-gradients (the AR decoder's loss reaches neither the encoder nor the
auxiliary decoder; the distillation does not train the teacher), the code-embedding Gated PixelCNN's
incremental stepper, the joint bound and its parts, sampling and reconstructions, bad options, the
presets, and a two-level stack trained end to end on the digits with resume. The registry-wide checks
(every unit's gradients, save/load, causality of every AR part and its view of all its codes) are in
tests/test_registry_composites.py."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

import pixelzoo
from helpers import dependency_grads, raster_before
from pixelzoo.errors import ConfigError
from pixelzoo.models.composites.defauw.aux_decoders import FeedForwardDecoder, MSPDecoder, default_masks_per_image, msp_masks
from pixelzoo.nn.levels import one_hot_levels
from pixelzoo.models.composites.defauw.model import CodeGatedTrunk, DeFauw, DeFauwLevel, LevelUnit
from pixelzoo.models.autoregressive.gated_pixelcnn.stepper import GatedStepper
from pixelzoo.registry import load_preset
from pixelzoo.sampling.ancestral import ancestral_sample
from pixelzoo.training import apply_overrides, load_run_model, resume_run, start_run

NET = {"hidden": 8, "res_hidden": 4, "n_blocks": 1}
LOCAL = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8}


def level_cfg(aux="ff", **over):
    cfg = dict(aux=aux, num_codes=4, encoder=NET, aux_decoder=NET,
               modulator={**NET, "n_blocks": 2, "out_channels": 4}, local_model={**LOCAL, "code_embedding": 4},
               vq={"dim": 4})
    if aux == "msp":
        cfg.update(teacher=NET, masks_per_image=3)
    return {**cfg, **over}


PRIOR = dict(channels=8, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, code_embedding=4, dropout=0.0)


def tiny(levels=("ff",), shape=(1, 8, 8), k=5, classes=3, **over):
    torch.manual_seed(0)
    cfgs = [level_cfg(a) for a in levels]
    return pixelzoo.create_model("defauw", shape, k, classes, levels=cfgs, prior=PRIOR, **over)


def images(shape=(1, 8, 8), k=5, n=4, seed=0):
    return torch.randint(0, k, (n, *shape), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- structure
def test_one_level_chain_structure():
    m = tiny()
    assert isinstance(m, DeFauw) and m.level_order == ["image", "codes1"]
    assert m.levels["codes1"].shape == (1, 4, 4) and m.levels["codes1"].num_levels == 4
    assert m.stages == [["level1"], ["prior"]]
    plan = m.training_plan()
    assert plan.names == ["level1", "prior"]
    unit = plan.unit("level1")
    assert isinstance(unit.module, LevelUnit) and unit.module.level is m.parts["level1"]
    assert not hasattr(unit.module, "sample")  # the unit draws no samples: its decoder needs codes from above
    level = m.parts["level1"]
    assert isinstance(level, DeFauwLevel) and level.aux_kind == "ff" and level.ar.num_classes is None
    assert m.parts["prior"].num_classes == 3  # only the prior is class-conditional (appendix A)


def test_two_level_stack_structure_and_bits():
    m = pixelzoo.create_model("defauw", (3, 16, 16), 256, None, levels=[
        {**level_cfg("ff"), "bits": 5, "num_codes": None, "code_channels": 2},
        {**level_cfg("msp"), "factor": 4, "num_codes": 6}], prior={**PRIOR, "code_embedding": 4})
    assert m.level_order == ["image", "codes1", "codes2"]
    assert m.levels["codes1"].shape == (2, 8, 8) and m.levels["codes1"].num_levels == 32
    assert m.levels["codes2"].shape == (1, 2, 2) and m.levels["codes2"].num_levels == 6
    assert m.stages == [["level1"], ["level2"], ["prior"]]
    assert isinstance(m.parts["level2"].ar.trunk, CodeGatedTrunk)        # the local model embeds codes
    assert not isinstance(m.parts["level1"].ar.trunk, CodeGatedTrunk)    # and reads pixels as they are
    x = images((3, 16, 16), 256, n=2)
    codes = m.encode(x)
    assert codes["codes1"].shape == (2, 2, 8, 8) and codes["codes2"].shape == (2, 1, 2, 2)
    assert m.sample(2).shape == (2, 3, 16, 16)


# ---------------------------------------------------------------------- one-hot inputs and MSP masks
def test_one_hot_inputs_masked_positions_are_all_zero_not_black():
    x = torch.tensor([[[[0, 2], [1, 0]]]])  # (1, 1, 2, 2), values in [0, 3)
    keep = torch.tensor([[[[True, False], [True, True]]]])
    oh = one_hot_levels(x, 3, keep)
    assert oh.shape == (1, 3, 2, 2)
    assert oh[0, :, 0, 1].sum() == 0                              # masked: no value at all
    assert torch.equal(oh[0, :, 0, 0], torch.tensor([1.0, 0, 0]))  # black (level 0): one-hot of 0
    assert torch.equal(oh[0, :, 1, 0], torch.tensor([0, 1.0, 0]))
    c3 = one_hot_levels(torch.randint(0, 4, (2, 3, 5, 5)), 4)
    assert c3.shape == (2, 12, 5, 5) and torch.equal(c3.view(2, 3, 4, 5, 5).sum(2), torch.ones(2, 3, 5, 5))


def test_masks_per_image_follow_appendix_a():
    table = {1: 30, 3: 30, 5: 10, 7: 10, 9: 3, 11: 3, 13: 3, 15: 3, 17: 1, 19: 1}
    assert {s: default_masks_per_image(s) for s in table} == table
    for bad in (2, 21):
        with pytest.raises(ConfigError):
            default_masks_per_image(bad)
    d = MSPDecoder(4, (1, 28, 28), 256, 2, mask_size=5)
    assert d.masks_per_image == 10
    assert MSPDecoder(4, (1, 28, 28), 256, 2, mask_size=21, masks_per_image=2,
                      teacher={**NET, "n_blocks": 10}).masks_per_image == 2
    with pytest.raises(ConfigError, match="odd"):
        MSPDecoder(4, (1, 28, 28), 256, 2, mask_size=4, masks_per_image=2)
    with pytest.raises(ConfigError, match="masks_per_image"):
        MSPDecoder(4, (1, 4, 4), 5, 2, mask_size=3, masks_per_image=17)
    with pytest.raises(ConfigError, match="teacher"):  # it would see nothing but the masked region
        MSPDecoder(4, (1, 28, 28), 256, 2, mask_size=7, teacher={"n_blocks": 2})


@pytest.mark.parametrize("size,count", [(1, 30), (3, 30), (5, 10), (7, 10), (11, 3), (19, 1)])
def test_msp_masks_count_size_and_middles(size, count):
    b, h, w = 6, 32, 28
    keep, targets = msp_masks(b, h, w, size, count, torch.Generator().manual_seed(size))
    assert keep.shape == (b, 1, h, w) and targets.shape == (b, h, w)
    assert torch.equal(targets.flatten(1).sum(1), torch.full((b,), count))  # count distinct middles per image
    r = size // 2
    for n in range(b):
        expected = torch.zeros(h, w, dtype=torch.bool)
        for i, j in targets[n].nonzero().tolist():
            expected[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1] = True
            if r <= i < h - r and r <= j < w - r:  # away from the borders the region is the full square
                region = ~keep[n, 0, i - r:i + r + 1, j - r:j + r + 1]
                assert region.shape == (size, size) and region.all()
        assert torch.equal(~keep[n, 0], expected)  # the input mask is exactly the union of the regions
        assert not keep[n, 0][targets[n]].any()    # every middle is masked


def test_the_loss_counts_exactly_the_middle_positions():
    torch.manual_seed(0)
    d = MSPDecoder(4, (2, 8, 8), 5, 2, mask_size=3, masks_per_image=4, teacher=NET, student=NET)
    x = torch.randint(0, 5, (3, 2, 8, 8))
    z = torch.randn(3, 4, 4, 4)
    t = d.terms(x, z, torch.Generator().manual_seed(7))
    keep, targets = d.masks(3, torch.Generator().manual_seed(7))
    log_t = d.teacher_log_probs(x, keep)
    log_a = d.student_log_probs(z)
    nll, kl, count = 0.0, 0.0, 0
    for n, i, j in targets.nonzero().tolist():
        for c in range(2):
            nll -= log_t[n, c, x[n, c, i, j], i, j]
            kl += (log_t[n, c, :, i, j].exp() * (log_t[n, c, :, i, j] - log_a[n, c, :, i, j])).sum()
            count += 1
    assert count == 3 * 4 * 2
    torch.testing.assert_close(t["teacher_nll"], nll / count)
    torch.testing.assert_close(t["distill_kl"], kl / count)


def test_teacher_never_sees_the_masked_region():
    torch.manual_seed(0)
    d = MSPDecoder(4, (1, 12, 12), 7, 2, mask_size=5, masks_per_image=2, teacher={**NET, "n_blocks": 2},
                   student=NET).eval()
    x = torch.randint(0, 7, (4, 1, 12, 12))
    keep, targets = d.masks(4, torch.Generator().manual_seed(3))
    base = d.teacher_log_probs(x, keep)
    moved = x.clone()
    moved[~keep.expand_as(x)] = (moved[~keep.expand_as(x)] + 3) % 7  # every masked value changed
    after = d.teacher_log_probs(moved, keep)
    sel = targets[:, None, None].expand_as(base)
    assert torch.equal(after[sel], base[sel])  # the predictions at the middles are unchanged
    assert torch.equal(after, base)            # and everywhere else too: the masked values are not an input
    seen = x.clone()
    seen[keep.expand_as(x)] = (seen[keep.expand_as(x)] + 3) % 7
    assert not torch.equal(d.teacher_log_probs(seen, keep)[sel], base[sel])  # the unmasked values are


# ---------------------------------------------------------------------- losses and stop-gradients
def _grads(module):
    return {n: (p.grad is not None and bool(p.grad.abs().sum() > 0)) for n, p in module.named_parameters()}


@pytest.mark.parametrize("aux", ["ff", "msp"])
def test_the_ar_decoder_loss_reaches_neither_encoder_nor_aux_decoder(aux):
    level = tiny((aux,)).parts["level1"].train()
    x = images()
    t = level.terms(x)
    level.zero_grad()
    t["decoder_nll"].backward()
    for name, got in _grads(level.encoder).items():
        assert not got, f"encoder.{name} got a gradient from the AR decoder's loss"
    for name, got in _grads(level.aux).items():
        assert not got, f"aux.{name} got a gradient from the AR decoder's loss"
    assert all(_grads(level.cond_net).values()), "the modulator learns from the AR decoder's loss"
    assert all(_grads(level.ar).values()), "the local model learns from the AR decoder's loss"


@pytest.mark.parametrize("aux", ["ff", "msp"])
def test_the_aux_loss_trains_the_encoder_not_the_ar_decoder(aux):
    level = tiny((aux,)).parts["level1"].train()
    t = level.terms(images())
    level.zero_grad()
    (t["aux_mse"] if aux == "ff" else t["distill_kl"]).backward()
    assert all(_grads(level.encoder).values()), "the encoder learns through the straight-through codes"
    assert not any(_grads(level.cond_net).values()) and not any(_grads(level.ar).values())
    if aux == "msp":  # the distillation holds the teacher fixed; the student (A_l) learns from it
        assert not any(_grads(level.aux.teacher).values())
        assert all(_grads(level.aux.student).values())
        level.zero_grad()
        level.terms(images())["teacher_nll"].backward()  # the MSP loss trains the teacher alone
        assert all(_grads(level.aux.teacher).values())
        assert not any(_grads(level.encoder).values()) and not any(_grads(level.aux.student).values())


@pytest.mark.parametrize("aux", ["ff", "msp"])
def test_aux_loss_gives_the_code_networks_the_joint_units_gradients(aux):
    """Training E_l and A_l (and T_l) without D_l (benchmarks/aux_decoders.py) moves them exactly as
    the joint unit does: by the stop-gradient, D_l's loss adds nothing to their gradients."""
    x = images()
    grads = []
    for which in ("joint_loss", "aux_loss"):  # a fresh copy each: a forward pass moves the EMA codebook
        level = tiny((aux,)).parts["level1"].train()
        torch.manual_seed(11)  # the same MSP masks
        getattr(level, which)(x)["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in level.named_parameters()
                      if p.grad is not None and not n.startswith(("ar.", "cond_net."))})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-7)


def test_joint_loss_is_the_sum_of_the_terms():
    for aux, keys in (("ff", {"aux_mse"}), ("msp", {"teacher_nll", "distill_kl"})):
        level = tiny((aux,)).parts["level1"].train()
        torch.manual_seed(3)
        out = LevelUnit(level).loss(images())
        total = out["decoder_nll"] + out["commitment"] + sum(out[k] for k in keys)
        assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
        assert out["bpd"].item() == pytest.approx(out["decoder_nll"].item() / math.log(2.0), rel=1e-6)
        assert 1.0 <= out["perplexity"] <= 4.0


def test_feed_forward_targets_mse_at_level_one_categorical_above():
    m = tiny(("ff", "ff"))
    l1, l2 = m.parts["level1"].aux, m.parts["level2"].aux
    assert isinstance(l1, FeedForwardDecoder) and l1.target == "mse"
    assert l2.target == "categorical" and l2.num_levels == 4
    x = images()
    enc = m.parts["level1"].encoder(x)
    expected = (l1(enc["z_q"]) - (x.float() * 2 / 4 - 1)).pow(2).mean()
    torch.testing.assert_close(l1.terms(x, enc["z_q"])["aux_mse"], expected)
    codes = enc["codes"]
    z2 = m.parts["level2"].encoder(codes)["z_q"]
    lp = l2(z2)
    assert lp.shape == (4, 1, 4, 4, 4)
    torch.testing.assert_close(lp.exp().sum(2), torch.ones(4, 1, 4, 4))
    torch.testing.assert_close(l2.terms(codes, z2)["aux_nll"], -lp.gather(2, codes[:, :, None]).mean())


def test_level_unit_evaluates_its_decoder_given_its_own_codes():
    level = tiny().parts["level1"].eval()
    x = images()
    unit = LevelUnit(level)
    torch.testing.assert_close(unit.log_prob(x, torch.zeros(4).long()), level.log_prob(x, cond=level.encode(x)[0]))
    with pytest.raises(ConfigError, match="cond"):
        level.log_prob(x)


# ---------------------------------------------------------------------- the local model over codes
@pytest.mark.parametrize("channels", [1, 3])
def test_code_gated_trunk_is_causal_and_steps_exactly(channels):
    torch.manual_seed(0)
    from pixelzoo.models.composites.defauw.model import build_local_model

    ar = build_local_model({**LOCAL, "code_embedding": 3}, (channels, 4, 4), 6, 0, codes=True).eval()
    assert isinstance(ar.trunk, CodeGatedTrunk)
    x = torch.randint(0, 6, (2, channels, 4, 4))
    for (c, i, j), g in dependency_grads(ar, x):
        before = raster_before(channels, 4, 4, c, i, j)
        assert torch.all(g[~before] == 0)
        if before.any():
            assert g[before].sum() > 0
    ar.float()
    with torch.no_grad():
        ar.output[-1].weight.mul_(8.0)
    assert isinstance(ar.stepper(3), GatedStepper)
    a = ancestral_sample(ar, 3, generator=torch.Generator().manual_seed(1), cached=False)
    b = ancestral_sample(ar, 3, generator=torch.Generator().manual_seed(1), cached=True)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------- the chain: bound, sampling
def test_joint_bound_is_the_sum_of_its_parts():
    m = tiny(("ff", "msp")).eval()
    x, y = images(), torch.tensor([0, 1, 2, 0])
    parts = m.log_prob_parts(x, y)
    assert set(parts) == {"level1", "level2", "prior"}
    codes = m.encode(x)
    by_hand = {"level1": m.parts["level1"].log_prob(x, cond=codes["codes1"]),
               "level2": m.parts["level2"].log_prob(codes["codes1"], cond=codes["codes2"]),
               "prior": m.parts["prior"].log_prob(codes["codes2"], y)}
    for name, lp in by_hand.items():
        torch.testing.assert_close(parts[name], lp.flatten(1).sum(1))
    bpd = m.bits_per_dim(x, y)
    shares = m.bits_per_dim_parts(x, y)
    torch.testing.assert_close(bpd, sum(shares.values()))
    torch.testing.assert_close(bpd, -sum(parts.values()) / (64 * math.log(2.0)))
    torch.testing.assert_close(m.log_prob(x, y), sum(parts.values()))


def test_sampling_top_down_with_temperatures_and_reconstructions():
    m = tiny(("ff", "msp")).eval()
    lv = m.sample_levels(3, y=1, temperature={"prior": 0.5, "level2": 1.0, "level1": 0.0},
                         generator=torch.Generator().manual_seed(0))
    assert lv["codes2"].shape == (3, 1, 2, 2) and lv["codes1"].shape == (3, 1, 4, 4)
    assert lv["image"].shape == (3, 1, 8, 8) and int(lv["image"].max()) < 5
    with pytest.raises(ConfigError, match="unknown"):
        m.sample(2, temperature={"decoder": 1.0})
    x = images(n=2)
    rec = m.sample_reconstructions(x, 3, generator=torch.Generator().manual_seed(0))
    assert rec["image"].shape == (6, 1, 8, 8)
    top = m.encode(x)["codes2"]
    assert torch.equal(rec["codes2"], top.repeat_interleave(3, dim=0))  # the given images' top codes
    low = m.sample_reconstructions(x, 1, from_level="codes1")
    assert torch.equal(low["codes1"], m.encode(x)["codes1"]) and "codes2" not in low
    with pytest.raises(ConfigError, match="from_level"):
        m.sample_reconstructions(x, from_level="image")


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize("levels,match", [
    ([], "1 to 3"),
    ([{}] * 4, "1 to 3"),
    ([{"aux": "vae"}], "aux"),
    ([{"teacher": NET}], "msp"),
    ([{"mask_size": 3}], "msp"),
    ([{"num_codes": 8, "bits": 3}], "not both"),
    ([{"bits": 0}], "bits"),
    ([{"factor": 3}], "power of 2"),
    ([{"factor": 16}], "divisible"),
    ([{"code_channels": 0}], "code_channels"),
    ([{"encoder": {"width": 3}}], "unknown"),
    ([{"wings": 2}], "unknown"),
    ([{"aux": "msp", "mask_size": 4, "masks_per_image": 1}], "odd"),
    ([{}, {"local_model": {"name": "gated_pixelcnn", "head": "logistic_mixture"}}], "categorical"),
    ([{"code_channels": 2}], "one-channel"),
])
def test_bad_options_are_clear_errors(levels, match):
    with pytest.raises(ConfigError, match=match):
        pixelzoo.create_model("defauw", (1, 8, 8), 5, None, levels=levels, prior=PRIOR)


def test_multi_channel_top_codes_with_an_index_prior():
    m = pixelzoo.create_model("defauw", (1, 8, 8), 5, None, levels=[{**level_cfg(), "code_channels": 2}],
                              prior={**PRIOR, "code_embedding": 0})
    assert m.levels["codes1"].shape == (2, 4, 4) and m.sample(2).shape == (2, 1, 8, 8)


# ---------------------------------------------------------------------- presets
def test_paper_presets_follow_appendix_a():
    ff = load_preset("defauw/imagenet128-ff-paper")
    (lv,) = ff["model"]["levels"]
    assert lv["aux"] == "ff" and lv["bits"] == 9 and lv["factor"] == 2 and lv["code_channels"] == 1
    assert lv["encoder"] == {"hidden": 512, "res_hidden": 128, "n_blocks": 16}
    assert lv["modulator"]["n_blocks"] == 16 and lv["aux_decoder"]["n_blocks"] == 2
    assert (lv["local_model"]["n_layers"], lv["local_model"]["channels"]) == (16, 128)
    assert ff["train_parts"]["level1"]["steps"] == 300000
    assert (ff["model"]["prior"]["n_blocks"], ff["model"]["prior"]["channels"], ff["model"]["prior"]["dropout"]) == \
        (20, 640, 0.2)
    msp = load_preset("defauw/imagenet128-msp-paper")
    (lv,) = msp["model"]["levels"]
    assert lv["aux"] == "msp" and lv["bits"] == 8 and lv["mask_size"] == 3 and "masks_per_image" not in lv
    assert lv["encoder"]["n_blocks"] == lv["teacher"]["n_blocks"] == lv["modulator"]["n_blocks"] == 16
    assert lv["aux_decoder"]["n_blocks"] == 8 and lv["local_model"]["n_layers"] == 20
    assert msp["train_parts"]["level1"]["steps"] == 200000


# ---------------------------------------------------------------------- the pipeline end to end
TINY_RUN = {"levels": [level_cfg("ff", num_codes=8), level_cfg("msp", num_codes=6, masks_per_image=2)],
            "prior": PRIOR}


@pytest.fixture(scope="module")
def defauw_run(tmp_path_factory):
    """defauw/patches-cpu's structure (two levels, FF then MSP, a prior) on the digits (8x8, 17 levels),
    tiny: level 1 alone (--part), then the rest on resume."""
    config = load_preset("defauw/patches-cpu")
    config["data"] = {"name": "digits"}
    config["model"].update(TINY_RUN, class_conditional=True)  # the preset's patches have no labels; the digits do
    config = apply_overrides(config, ["train.log_every=5", "train.eval_every=0", "train.checkpoint_every=10",
                                      "train.num_samples=4", "train.eval_images=40", "train.batch_size=16"])
    config["train_parts"] = {"level1": {"steps": 15}, "level2": {"steps": 12}, "prior": {"steps": 10}}
    run = tmp_path_factory.mktemp("defauw") / "run"
    first = start_run(config, run, parts=["level1"], progress=False, tensorboard=False).train()
    rest = resume_run(run, progress=False, tensorboard=False).train()
    return run, first, rest


def test_pipeline_trains_level_by_level_then_the_prior(defauw_run):
    run, first, rest = defauw_run
    assert set(first["parts"]) == {"level1"} and first["unfinished_parts"] == ["level2", "prior"]
    assert rest["parts"]["level1"] == {"skipped": "already trained"}
    assert rest["parts"]["level2"]["step"] == 12 and rest["parts"]["prior"]["step"] == 10
    assert set(rest["test_bpd_parts"]) == {"level1", "level2", "prior"}
    assert math.isclose(rest["test_bpd"], sum(rest["test_bpd_parts"].values()), rel_tol=1e-9)
    # the level units logged their terms: FF's MSE at level 1, MSP's teacher NLL and distillation at 2
    rows = {u: [json.loads(l) for l in (run / "parts" / u / "metrics.jsonl").read_text().splitlines()]
            for u in ("level1", "level2", "prior")}
    assert any("train_aux_mse" in r and "train_decoder_nll" in r for r in rows["level1"])
    assert any("train_teacher_nll" in r and "train_distill_kl" in r for r in rows["level2"])
    assert any("test_bpd_full" in r for r in rows["level1"])  # its decoder given its own codes
    # levels 2 and the prior read the codes of the trained encoders through the level cache
    assert (run / "cache" / "level1-levels.safetensors").is_file()
    assert (run / "cache" / "level2-levels.safetensors").is_file()
    assert (run / "samples" / "final.png").is_file()
    model = load_run_model(run)[0]
    assert isinstance(model, DeFauw)


def test_pipeline_model_samples_reconstructs_and_evaluates(defauw_run, tmp_path):
    from pixelzoo.cli import main
    from pixelzoo.data import load_dataset

    run = defauw_run[0]
    model = load_run_model(run)[0]
    x = load_dataset("digits").test.images[:2].long()
    assert model.sample_reconstructions(x, 2, generator=torch.Generator().manual_seed(0)).images.shape == (4, 1, 8, 8)
    assert model.sample(3, y=torch.tensor([0, 1, 2])).shape == (3, 1, 8, 8)
    assert main(["evaluate", str(run), "--metrics", "bpd", "-n", "20", "--no-progress"]) == 0
    assert math.isfinite(json.loads((run / "eval.json").read_text())["test_bpd"])
    assert main(["sample", str(run), "-n", "3", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert main(["reconstruct", str(run), "test", "-n", "2", "--per-image", "3", "--out", str(tmp_path / "rc"),
                 "--no-progress"]) == 0
    assert (tmp_path / "rc.png").is_file()
    saved = np.load(tmp_path / "rc.npz")
    assert saved["images"].shape == (6, 1, 8, 8) and saved["given"].shape == (2, 1, 8, 8)


def test_resume_continues_the_prior_from_its_checkpoint(defauw_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(defauw_run[0], run)
    config = json.loads((run / "config.json").read_text())
    config["train_parts"]["prior"]["steps"] = 14
    (run / "config.json").write_text(json.dumps(config))
    more = resume_run(run, progress=False, tensorboard=False).train()
    assert more["parts"]["prior"]["step"] == 14
    assert more["parts"]["level1"] == more["parts"]["level2"] == {"skipped": "already trained"}
    steps = [json.loads(l).get("step") for l in (run / "parts" / "prior" / "metrics.jsonl").read_text().splitlines()]
    assert 14 in steps and 10 in steps
