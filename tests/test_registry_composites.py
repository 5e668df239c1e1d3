"""The registry-wide checks for the composites (chains): construction, every unit's loss and backward
(every parameter of the unit gets a gradient), save/load round trip (one folder per part), sample shape
and range, and exact causality of every autoregressive part in its own level together with its freedom
to see every position of its conditioning levels."""

import pytest
import torch

import pixelzoo
from conftest import COMPOSITE_MODELS
from helpers import dependency_grads, raster_before
from pixelzoo.data import DataSplits, ImageDataset
from pixelzoo.models.autoregressive.model import AutoregressiveModel
from pixelzoo.models.autoregressive.conditional import ConditionalAR
from pixelzoo.models.chain.chain import Chain

TINY_AR = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8}
TINY_COMPOSITES = {
    "grayscale_pixelcnn": ((3, 4, 4), 6, dict(
        gray_levels=3, prior=TINY_AR,
        conditional={"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0, "head_options": {"n_mix": 2}},
        embedding={"channels": 8, "n_blocks": 2, "out_channels": 4})),
    "pyramid_pixelcnn": ((3, 8, 8), 6, dict(
        n_scales=2, prior=TINY_AR, conditional={**TINY_AR, "head": "logistic_mixture", "head_options": {"n_mix": 2}},
        embedding={"channels": 8, "n_blocks": 3, "down_after": [1], "up_after": [2, 3], "out_channels": 4})),
    "vqvae2": ((1, 8, 8), 9, dict(
        autoencoder=dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=4, num_codes=6, levels=[2, 2]),
        top_prior=dict(channels=8, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, code_embedding=4,
                       dropout=0.0),
        bottom_prior=dict(channels=8, n_blocks=2, code_embedding=4, dropout=0.0, cond_embedding=4, cond_channels=8,
                          cond_res_channels=4, cond_blocks=2, spatial_channels=4))),
    "agave": ((1, 8, 8), 8, dict(
        vae={"latent_channels": 2, "factor": 4, "hidden": 8, "res_channels": 4, "n_res_blocks": 1},
        pixel_decoder={"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0, "head_options": {"n_mix": 2}},
        embedding={"channels": 8, "n_blocks": 3, "out_channels": 4}, pretrain_condition="aux")),
    # two levels (FF on the pixels, MSP on the codes), 8x8 -> 4x4 -> 2x2; the level-1 modulator needs
    # 4 blocks to see every code from the first pixel
    "defauw": ((1, 8, 8), 5, dict(levels=[
        dict(num_codes=4, encoder={"hidden": 8, "res_hidden": 4, "n_blocks": 1},
             aux_decoder={"hidden": 8, "res_hidden": 4, "n_blocks": 1},
             modulator={"hidden": 8, "res_hidden": 4, "n_blocks": 4, "out_channels": 4},
             local_model={**TINY_AR, "name": "gated_pixelcnn"}, vq={"dim": 4}),
        dict(aux="msp", num_codes=3, masks_per_image=2, encoder={"hidden": 8, "res_hidden": 4, "n_blocks": 1},
             aux_decoder={"hidden": 8, "res_hidden": 4, "n_blocks": 1}, teacher={"hidden": 8, "res_hidden": 4, "n_blocks": 1},
             modulator={"hidden": 8, "res_hidden": 4, "n_blocks": 1, "out_channels": 4},
             local_model={**TINY_AR, "code_embedding": 4}, vq={"dim": 4})],
        prior=dict(channels=8, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, code_embedding=4,
                   dropout=0.0))),
}
CLASSES = 3
# the autoregressive parts of each composite (the others: VQ-VAE-2's autoencoder, AGAVE's VAE and prior;
# De Fauw's levels are their AR decoders)
AR_PARTS = {"grayscale_pixelcnn": 2, "pyramid_pixelcnn": 3, "vqvae2": 2, "agave": 1, "defauw": 3}


def test_every_registered_composite_is_checked_here():
    """conftest's COMPOSITE_MODELS are the registered models that are not in TINY_MODELS (tested there)."""
    assert set(COMPOSITE_MODELS) == set(TINY_COMPOSITES)
    for name in TINY_COMPOSITES:
        assert isinstance(make(name), Chain)


def make(name) -> Chain:
    shape, levels, hp = TINY_COMPOSITES[name]
    return pixelzoo.create_model(name, shape, levels, CLASSES, **hp)


def splits(model, n=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model.num_levels, (n, *model.image_shape), generator=g).to(torch.uint8)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    d = lambda s: ImageDataset(f"random/{s}", x, y, model.num_levels, CLASSES, "test")
    return DataSplits(d("train"), d("test"))


@pytest.mark.parametrize("name", sorted(TINY_COMPOSITES))
def test_every_unit_has_a_loss_and_every_parameter_a_gradient(name):
    model = make(name)
    data = splits(model)
    plan = model.training_plan()
    assert not plan.is_single
    # every part with parameters trains in a unit of its own (and AGAVE's joint unit trains them together)
    trained = [n for n in model.part_names if any(True for _ in model.parts[n].parameters())]
    assert trained == [n for n in plan.names if n in model.part_names]
    for unit in plan.units:
        part = unit.data(data, None, False)
        x, y = part.train.images[:4].long(), part.train.labels[:4]
        extras = {k: v[:4] for k, v in part.train.extras.items()}
        unit.module.zero_grad()
        out = (unit.loss or unit.module.loss)(x, y, **extras)
        assert torch.isfinite(out["loss"]), unit.name
        out["loss"].backward()
        for pname, p in unit.module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{unit.name}.{pname} got no gradient"
            assert p.grad.abs().sum() > 0, f"{unit.name}.{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", sorted(TINY_COMPOSITES))
def test_save_load_round_trip_one_folder_per_part(name, tmp_path):
    model = make(name).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    for part in model.part_names:
        assert (tmp_path / "m" / "parts" / part / "model.safetensors").is_file()
    loaded = pixelzoo.load_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.part_names == model.part_names
    y = torch.arange(4) % CLASSES
    a = model.sample(4, y=y, generator=torch.Generator().manual_seed(1))
    b = loaded.sample(4, y=y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    x = splits(model).test.images[:3].long()
    if model.has_likelihood:
        torch.testing.assert_close(loaded.log_prob(x, y[:3]), model.log_prob(x, y[:3]), rtol=0, atol=0)
    else:
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    # a part that is a registered model loads alone from its folder
    prior = model.part_names[-1] if name == "vqvae2" else "prior"
    if (tmp_path / "m" / "parts" / prior / "config.json").is_file():
        alone = pixelzoo.load_pretrained(tmp_path / "m" / "parts" / prior)
        assert type(alone) is type(model.parts[prior])


def test_a_directly_built_composite_saves(tmp_path):
    from pixelzoo.models.composites.grayscale_pyramid import GrayscalePixelCNN

    shape, levels, hp = TINY_COMPOSITES["grayscale_pixelcnn"]
    model = GrayscalePixelCNN(shape, levels, CLASSES, **hp)
    assert model.config["name"] == "grayscale_pixelcnn" and model.config["gray_levels"] == 3
    model.save_pretrained(tmp_path / "g")
    assert type(pixelzoo.load_pretrained(tmp_path / "g")) is GrayscalePixelCNN


@pytest.mark.parametrize("name", sorted(TINY_COMPOSITES))
def test_sample_shape_dtype_range(name):
    model = make(name)
    s = model.sample(4, y=torch.tensor([0, 1, 2, 0]))
    assert s.shape == (4, *model.image_shape) and s.dtype == torch.long
    assert int(s.min()) >= 0 and int(s.max()) < model.num_levels


def ar_parts(model):
    """(link, autoregressive model) of every autoregressive part."""
    for link in model.links.values():
        part = model.parts[link.part]
        if isinstance(part, ConditionalAR):
            yield link, part.ar
        elif isinstance(part, AutoregressiveModel):
            yield link, part


@pytest.mark.parametrize("name", sorted(TINY_COMPOSITES))
def test_every_autoregressive_part_is_causal_and_sees_its_whole_condition(name):
    model = make(name).eval()
    known = model.levels_of(splits(model).test.images[:2].long())
    y = torch.tensor([0, 2])
    checked = 0
    for link, ar in ar_parts(model):
        x = known[link.level].long()
        part = model.parts[link.part]
        spatial = part.spatial(link.cond([known[g] for g in link.given])).detach() if link.given else None
        c, h, w = ar.image_shape
        for (ci, i, j), g in dependency_grads(ar, x, y, spatial):
            before = raster_before(c, h, w, ci, i, j)
            assert torch.all(g[~before] == 0), f"{link.part}: output {(ci, i, j)} sees its level at or after itself"
            if before.any():
                assert g[before].sum() > 0, f"{link.part}: output {(ci, i, j)} sees nothing of its past"
        ar.float()
        checked += 1
        for given in link.given:   # the first sub-pixel depends on every position of every given level
            k = model.levels[given].num_levels  # None: a continuous level (AGAVE's f(z)), moved by 0.5
            base = _first_params(ar, part, link, known, x, y)
            gh, gw = model.levels[given].shape[1:]
            for i in range(gh):
                for j in range(gw):
                    moved = dict(known)
                    moved[given] = known[given].clone()
                    v = moved[given][:, :, i, j]
                    moved[given][:, :, i, j] = v + 0.5 if k is None else (v + 1) % k
                    changed = _first_params(ar, part, link, moved, x, y)
                    assert not torch.equal(changed, base), f"{link.part}: sub-pixel 0 ignores {given} at {(i, j)}"
    assert checked == AR_PARTS[name]


@torch.no_grad()
def _first_params(ar, part, link, known, x, y):
    spatial = part.spatial(link.cond([known[g] for g in link.given]))
    return ar.params_from_scaled(ar.scale(x), y, spatial)[:, 0, :, 0, 0]
