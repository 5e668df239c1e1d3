"""The chain of levels (pixelzoo.models.chain.chain): the three composites built on it behave exactly as
the hand-written composites they replaced, and the chain's own checks.

``tests/data/chain_reference.safetensors`` holds tiny Grayscale, Pyramid and VQ-VAE-2 models (their
configs and weights) and what the composites of commit f341c42 (before the chain) computed with
them: the bound's parts, samples, colourisations, upscalings, decodings, for fixed generators. The
chain must give the same numbers and the same images, bit for bit."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.models.chain import Chain, Level, Link, View

REFERENCE = Path(__file__).parent / "data" / "chain_reference.safetensors"


@pytest.fixture(scope="module")
def reference():
    with safe_open(str(REFERENCE), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        configs = json.loads(f.metadata()["configs"])
    return configs, tensors


def build(reference, key):
    configs, tensors = reference
    cfg = json.loads(json.dumps(configs[key]))
    for part in ("prior", "conditional"):  # the reference predates exact bin masses below 256 levels
        spec = cfg.get(part)
        if spec and spec.get("head", "logistic_mixture" if spec.get("name") == "pixelcnnpp" else None) == "logistic_mixture":
            spec.setdefault("head_options", {})["exact_masses"] = False
    model = pixelzoo.create_model(cfg.pop("name"), **cfg).eval()
    prefix = f"{key}/weights/"
    model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
    return model, {k[len(key) + 1:]: v for k, v in tensors.items() if k.startswith(key + "/") and "/weights/" not in k}


def gen(seed):
    return torch.Generator().manual_seed(seed)


Y = torch.tensor([0, 1, 2])


def test_grayscale_bound_samples_and_colourising_as_before(reference):
    model, ref = build(reference, "gray")
    with torch.no_grad():
        for name, value in model.log_prob_parts(ref["x"], Y).items():
            torch.testing.assert_close(value, ref[f"log_prob/{name}"], rtol=0, atol=0)
    assert torch.equal(model.sample(3, y=Y, generator=gen(3)), ref["sample"])
    # colourise = sample given the gray level (two per gray image), with the conditional's options
    col = model.sample(6, y=Y.repeat_interleave(2), given={"gray": ref["given"]}, generator=gen(4))
    assert torch.equal(col, ref["colorize"])
    col_map = model.sample(3, y=Y, given={"gray": ref["given"]}, head_options={"conditional": {"mode": "map"}},
                           generator=gen(4))
    assert torch.equal(col_map, ref["colorize_map"])


def test_pyramid_bound_samples_and_upscaling_as_before(reference):
    model, ref = build(reference, "pyramid")
    with torch.no_grad():
        for name, value in model.log_prob_parts(ref["x"], Y).items():
            torch.testing.assert_close(value, ref[f"log_prob/{name}"], rtol=0, atol=0)
    assert torch.equal(model.sample(3, y=Y, generator=gen(3)), ref["sample"])
    low, mid = model.level_order[2], model.level_order[1]
    up = model.sample(6, y=Y.repeat_interleave(2), given={low: ref["given"]}, generator=gen(4))
    assert torch.equal(up, ref["upscale"])
    up_mid = model.sample(3, y=Y, given={mid: ref["given_mid"]}, temperature=0.5, generator=gen(5))
    assert torch.equal(up_mid, ref["upscale_mid"])


def test_vqvae2_codes_decoding_and_samples_as_before(reference):
    model, ref = build(reference, "vqvae2")
    top, bottom = model.encode(ref["x"])
    assert torch.equal(top, ref["codes_top"]) and torch.equal(bottom, ref["codes_bottom"])
    # decode = sample given every code level
    decoded = model.sample(3, given={"top": top[:, None], "bottom": bottom[:, None]})
    assert torch.equal(decoded, ref["decode"])
    assert torch.equal(model.sample(3, y=Y, generator=gen(3)), ref["sample"])
    assert torch.equal(model.sample(3, y=Y, temperature={"top_prior": 0.5}, generator=gen(4)), ref["sample_t"])


def test_given_top_codes_samples_only_the_levels_below():
    model = pixelzoo.create_model("vqvae2", (1, 8, 8), 17, None, autoencoder=dict(
        hidden=8, res_channels=4, n_res_blocks=1, embed_dim=4, num_codes=8, levels=[2, 2]),
        top_prior=dict(channels=8, n_blocks=1, attention_every=0, out_res_blocks=0, code_embedding=4),
        bottom_prior=dict(channels=8, n_blocks=1, code_embedding=4, cond_embedding=4, cond_channels=8,
                          cond_res_channels=4, cond_blocks=1, spatial_channels=4)).eval()
    top = torch.randint(0, 8, (2, 1, 2, 2))
    assert model.needed({"top": top}) == ["bottom", "image"]
    lv = model.sample_levels(4, given={"top": top}, generator=gen(0))
    assert torch.equal(lv["top"], top.repeat_interleave(2, 0)) and lv["bottom"].shape == (4, 1, 4, 4)
    with pytest.raises(ConfigError, match="multiple"):
        model.sample(3, given={"top": top})
    with pytest.raises(ConfigError, match="values must lie"):
        model.sample(2, given={"top": top + 8})


def test_a_chain_checks_its_structure():
    ar = pixelzoo.create_model("gated_pixelcnn", (1, 4, 4), 4, channels=4, n_layers=1, first_kernel_size=3)
    levels = [Level("image", (1, 4, 4), 4), Level("coarse", (1, 4, 4), 2)]
    half = View("image", "coarse", lambda x: x // 2)
    with pytest.raises(ConfigError, match="no view or encoder"):
        Chain(levels, [], [Link("p", "coarse"), Link("p", "image")], {"p": ar}, [["p"]])
    with pytest.raises(ConfigError, match="exactly one model"):
        Chain(levels, [half], [Link("p", "coarse")], {"p": ar}, [["p"]])
    with pytest.raises(ConfigError, match="levels above it"):
        Chain(levels, [half], [Link("p", "coarse", ("image",)), Link("p", "image")], {"p": ar}, [["p"]])
    with pytest.raises(ConfigError, match="every part"):
        Chain(levels, [half], [Link("p", "coarse"), Link("p", "image")], {"p": ar}, [["p", "q"]])
