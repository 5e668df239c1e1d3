"""Hierarchical VQ-VAE (stage 1): code shapes, gradients, decode/encode, overfitting, reconstruction."""

import pytest
import torch

from pixelzoo.errors import ConfigError
from pixelzoo.models.composites.vqvae2.autoencoder import VQVAE2, build_vqvae2



SMALL = dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=8, num_codes=16)


def images(n, shape, k=256):
    return torch.randint(0, k, (n, *shape))


@pytest.mark.parametrize(
    "shape, levels, expected",
    [
        ((3, 32, 32), (4, 2), [(4, 4), (8, 8)]),
        ((3, 64, 64), (4, 2), [(8, 8), (16, 16)]),
        ((1, 64, 64), (4, 2, 2), [(4, 4), (8, 8), (16, 16)]),
        ((1, 32, 32), (8, 2, 2), [(1, 1), (2, 2), (4, 4)]),
        ((1, 16, 16), (4,), [(4, 4)]),
    ],
)
def test_code_map_shapes(shape, levels, expected):
    model = VQVAE2(shape, 256, levels=levels, **SMALL)
    assert model.code_shapes() == expected
    x = images(2, shape)
    codes = model.encode(x)
    assert [tuple(c.shape) for c in codes] == [(2, *s) for s in expected]
    assert all(c.dtype == torch.long and int(c.min()) >= 0 and int(c.max()) < 16 for c in codes)
    recon = model.decode_codes(codes)
    assert recon.shape == (2, *shape)
    assert float(recon.min()) >= -1 and float(recon.max()) <= 1
    out = model.loss(x)
    names = {2: ["top", "bottom"], 3: ["top", "middle", "bottom"], 1: ["top"]}[len(levels)]
    assert set(out) == {"loss", "mse", "commitment"} | {f"{m}_{n}" for n in names for m in ("perplexity", "usage")}


def test_loss_gradients_reach_encoder_and_decoder_not_codebook():
    model = VQVAE2((1, 16, 16), 16, levels=(2, 2, 2), **SMALL).train()
    x = images(3, (1, 16, 16), 16)
    out = model.loss(x)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert not any("codebook" in name or "ema" in name for name, _ in model.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    for q in model.quantizers:
        assert not q.codebook.requires_grad and q.codebook.grad is None
        assert bool(q.initialised) and int(q.step) == 1  # EMA-updated once in training mode


def test_encode_does_not_update_codebooks():
    model = VQVAE2((1, 16, 16), 16, levels=(4, 2), **SMALL).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.encode(images(2, (1, 16, 16), 16))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_decode_of_encode_matches_forward_in_eval():
    model = VQVAE2((3, 32, 32), 256, levels=(4, 2), **SMALL)
    model.train()
    model.loss(images(2, (3, 32, 32)))  # data-dependent codebook init
    model.eval()
    x = images(2, (3, 32, 32))
    codes = model.encode(x)
    torch.testing.assert_close(model.decode_codes(codes), model(x).clamp(-1, 1))


def test_tiny_model_overfits_a_few_images():
    torch.manual_seed(0)
    shape, k = (1, 8, 8), 16
    # smooth-ish images: a few blobs
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    centres = [(2, 2), (5, 5), (2, 6), (6, 1)]
    x = torch.stack([((-((yy - a) ** 2 + (xx - b) ** 2) / 6).exp() * (k - 1)).round() for a, b in centres])
    x = x.long()[:, None]
    model = VQVAE2(shape, k, hidden=32, res_channels=16, n_res_blocks=1, embed_dim=8, num_codes=32,
                   levels=(2, 2), restart_after=20).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(100):
        out = model.loss(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if first is None:
            first = float(out["mse"])
    model.eval()
    with torch.no_grad():
        final = float(torch.nn.functional.mse_loss(model(x), model.scale(x)))
    print(f"overfit: mse {first:.4f} -> {final:.4f}")
    assert final < 0.15 * first, (first, final)
    rec = model.reconstruct(x)
    assert (rec - x).abs().float().mean() < 2.0


def test_reconstruct_returns_valid_integer_images():
    model = VQVAE2((3, 16, 16), 5, levels=(2, 2), **SMALL).eval()
    x = images(2, (3, 16, 16), 5)
    rec = model.reconstruct(x)
    assert rec.shape == x.shape and rec.dtype == torch.long
    assert int(rec.min()) >= 0 and int(rec.max()) < 5


def test_state_dict_round_trip(tmp_path):
    from pixelzoo.io import load_tensors, save_tensors

    model = VQVAE2((1, 16, 16), 16, levels=(4, 2), **SMALL).train()
    model.loss(images(2, (1, 16, 16), 16))
    save_tensors(model.state_dict(), tmp_path / "m.safetensors")
    m2 = build_vqvae2(**model.config)
    m2.load_state_dict(load_tensors(tmp_path / "m.safetensors"), strict=True)
    x = images(2, (1, 16, 16), 16)
    assert all(torch.equal(a, b) for a, b in zip(model.encode(x), m2.encode(x)))


def test_bad_configurations():
    with pytest.raises(ConfigError):
        VQVAE2((1, 28, 28), 256, levels=(4, 2))  # 28 not divisible by 8
    with pytest.raises(ConfigError):
        VQVAE2((1, 24, 24), 256, levels=(3,))
    model = VQVAE2((1, 16, 16), 16, levels=(4, 2), **SMALL)
    with pytest.raises(ConfigError):
        model.loss(torch.full((1, 1, 16, 16), 16))
    with pytest.raises(ConfigError):
        model.decode_codes([torch.zeros(1, 2, 2, dtype=torch.long)])
