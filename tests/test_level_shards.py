"""The level cache of a streamed data set: an encoder's levels written shard by shard in one pass and
read by memory map, the same levels and batches as the in-memory cache; stale or damaged shards are
recomputed."""

import numpy as np
import pytest
import torch

import pixelzoo
from pixelzoo.data import load_dataset
from pixelzoo.data.batches import BatchPlan, take_batch
from pixelzoo.data.prepare import prepare
from pixelzoo.data.shards import MappedRows, ShardedDataset, ShardedImages
from pixelzoo.models.chain.level_shards import INDEX, shards_dir

from test_streaming import TINY_VQVAE2

AGAVE = {"vae": {"latent_channels": 2, "factor": 4, "hidden": 8, "res_channels": 4, "n_res_blocks": 1},
         "pixel_decoder": {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0,
                           "head_options": {"n_mix": 2}},
         "embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4},
         "latent_prior": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "head": "quantile",
                          "head_options": {"continuous": True}}}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "digits"
    prepare("digits", out, shard_size=300, progress=False)
    return load_dataset("digits"), load_dataset("prepared", out, stream=True)


def vqvae2():
    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY_VQVAE2.items() if k != "name"}
    return pixelzoo.create_model("vqvae2", image_shape=(1, 8, 8), num_levels=17, num_classes=10, **cfg)


def rows(a) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else a[0:len(a)]


def test_streamed_codes_and_batches_are_the_in_memory_ones(digits, tmp_path, monkeypatch):
    memory, streamed = digits
    model = vqvae2()
    monkeypatch.setattr("pixelzoo.models.chain.level_shards.SHARD_BYTES", 512)   # many shards, a short last one
    a = model.part_data("bottom_prior", memory, tmp_path / "m")
    b = model.part_data("bottom_prior", streamed, tmp_path / "s")
    assert (tmp_path / "m" / "autoencoder-levels.safetensors").is_file()
    index = shards_dir(tmp_path / "s", "autoencoder") / INDEX
    assert index.is_file() and not (tmp_path / "s" / "autoencoder-levels.safetensors").exists()
    assert isinstance(b.train, ShardedDataset) and isinstance(b.train.images, ShardedImages)
    assert len(b.train.images.paths) > 2 and isinstance(b.train.extras["cond"], MappedRows)   # nothing held whole
    for x, y in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(x.images, rows(y.images)) and torch.equal(x.extras["cond"], rows(y.extras["cond"]))
        assert torch.equal(x.labels, y.labels) and x.num_levels == y.num_levels
    plan = BatchPlan(len(a.train), 32, seed=3, flip=True)
    for step in (0, 7, 40):
        (x0, y0, e0), (x1, y1, e1) = (take_batch(d.train, plan, step) for d in (a, b))
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(e0["cond"], e1["cond"])
    top = model.part_data("top_prior", streamed, tmp_path / "s")   # the same cache: read, not computed again
    assert model.level_cache.last_source == "memory" and torch.equal(rows(top.train.images), model.part_data(
        "top_prior", memory, tmp_path / "m").train.images)
    fresh = vqvae2()
    fresh.part_data("top_prior", streamed, tmp_path / "s")
    assert fresh.level_cache.last_source == "cache"


def test_continuous_latents_stream_as_float32(digits, tmp_path):
    memory, streamed = digits
    torch.manual_seed(0)
    model = pixelzoo.create_model("agave", (1, 8, 8), 17, **AGAVE, latent_source="sample")
    a, b = (model.posterior_data(d, tmp_path / k) for k, d in (("m", memory), ("s", streamed)))
    assert b.train.images.dtype == torch.float32 and isinstance(b.train.extras["log_var"], ShardedImages)
    assert torch.equal(a.train.images, rows(b.train.images)) and torch.equal(a.test.images, rows(b.test.images))
    assert torch.equal(a.train.extras["log_var"], rows(b.train.extras["log_var"]))


def test_a_stale_or_damaged_shard_is_recomputed(digits, tmp_path, capsys):
    _, streamed = digits
    model = vqvae2()
    first = rows(model.part_data("top_prior", streamed, tmp_path).train.images)
    folder = shards_dir(tmp_path, "autoencoder")
    shard = sorted(folder.glob("train.*.rows"))[0]
    data = bytearray(shard.read_bytes())
    data[5] = (data[5] + 1) % 6
    shard.write_bytes(bytes(data))                              # damaged: same size, fails its checksum
    again = vqvae2()
    got = again.part_data("top_prior", streamed, tmp_path)
    assert again.level_cache.last_source == "computed" and "fails its sha256 checksum" in capsys.readouterr().err
    assert torch.equal(rows(got.train.images), first)
    shard.write_bytes(shard.read_bytes()[:-3])                  # truncated
    again = vqvae2()
    again.part_data("top_prior", streamed, tmp_path)
    assert again.level_cache.last_source == "computed" and "bytes, not" in capsys.readouterr().err
    changed = vqvae2()                                          # another encoder: stale, recomputed and replaced
    with torch.no_grad():
        next(changed.autoencoder.parameters()).add_(0.5)
    changed.part_data("top_prior", streamed, tmp_path)
    assert changed.level_cache.last_source == "computed"
    back = vqvae2()
    back.part_data("top_prior", streamed, tmp_path)
    assert back.level_cache.last_source == "computed"           # the cache now holds the changed encoder's codes
    assert not list(folder.glob(".*.tmp")) and np.array_equal(
        sorted(p.name for p in folder.iterdir()), sorted({INDEX, *(p.name for p in folder.glob("*.rows"))}))
