"""The streaming path: batches read from a prepared data set's shards by DataLoader workers are the
batches of the in-memory path (same permutation, same flips, any number of workers, any rows of a
torchrun process), and a run trained on either ends with the same weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelzoo.data import load_dataset
from pixelzoo.data.batches import BatchPlan, take_batch
from pixelzoo.data.loader import StreamingLoader
from pixelzoo.data.prepare import prepare
from pixelzoo.data.shards import STREAM_ABOVE_BYTES, ShardedDataset, ShardedImages, load_prepared
from pixelzoo.io import load_tensors
from pixelzoo.training import start_run

TINY = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """scikit-learn's digits prepared in shards of 100 images (15 train shards, 4 test)."""
    out = tmp_path_factory.mktemp("prepared") / "digits"
    prepare("digits", out, shard_size=100, progress=False)
    return out


def test_a_small_prepared_set_loads_into_memory_unless_asked_to_stream(digits_dir):
    assert STREAM_ABOVE_BYTES > 1797 * 64
    assert not isinstance(load_prepared(digits_dir).train, ShardedDataset)
    streamed = load_dataset("prepared", digits_dir, stream=True)
    assert isinstance(streamed.train, ShardedDataset)
    # what needs a whole split at once (sample metrics' reference features) reads it all
    assert np.array_equal(np.asarray(streamed.test.images), load_dataset("digits").test.images.numpy())
    with pytest.raises(IndexError):
        streamed.test.images[torch.tensor([360])]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_gives_the_in_memory_batches_with_any_workers_and_rows(digits_dir, workers):
    memory = load_dataset("digits").train
    streamed = load_dataset("prepared", digits_dir, stream=True).train
    plan = BatchPlan(len(memory), 200, seed=5, flip=True)   # 7 steps an epoch: steps 0..15 cross two epochs
    for rows in (slice(None), slice(1, None, 2)):
        loader = StreamingLoader(streamed, BatchPlan(len(memory), 200, seed=5, flip=True), rows=rows, workers=workers)
        got = list(loader.batches(3, 16))
        assert len(got) == 13
        for step, (x, y, extras) in zip(range(3, 16), got):
            want_x, want_y, _ = take_batch(memory, plan, step, rows)
            assert x.dtype == torch.uint8 and torch.equal(x, want_x) and torch.equal(y, want_y) and extras == {}
    flipped = [take_batch(memory, plan, s)[0] for s in range(2)]
    unflipped = [memory.images[plan.indices(s)] for s in range(2)]
    assert any(not torch.equal(a, b) for a, b in zip(flipped, unflipped))   # flips happened


def config(data, steps=6, **train):
    base = {"steps": steps, "batch_size": 16, "lr": 3e-3, "polyak": 0.9, "log_every": 1, "eval_every": 0,
            "checkpoint_every": 3, "num_samples": 0, "flip": True, "eval_images": 50, "final_eval_images": 50}
    base.update(train)
    return {"model": dict(TINY), "data": data, "train": base}


def train(cfg, out):
    runner = start_run(cfg, out, progress=False, tensorboard=False)
    result = runner.train()
    return load_tensors(runner.single.checkpoint_path), result


def test_streamed_with_0_or_2_workers_trains_as_in_memory(digits_dir, tmp_path):
    memory, r0 = train(config({"name": "digits"}), tmp_path / "memory")
    for workers in (0, 2):
        streamed, r = train(config({"name": "prepared", "data_dir": str(digits_dir), "stream": True}, workers=workers),
                            tmp_path / f"stream{workers}")
        assert set(streamed) == set(memory)
        for k in memory:
            assert torch.equal(memory[k], streamed[k]), (workers, k)
        assert r["test_bpd"] == r0["test_bpd"]   # the streamed test split, read from its shards


TINY_VQVAE2 = {"name": "vqvae2",
               "autoencoder": dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=4, num_codes=6, levels=[2, 2]),
               "top_prior": dict(channels=8, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1,
                                 code_embedding=4, dropout=0.0),
               "bottom_prior": dict(channels=8, n_blocks=2, code_embedding=4, dropout=0.0, cond_embedding=4,
                                    cond_channels=8, cond_res_channels=4, cond_blocks=2, spatial_channels=4)}


def test_a_composite_trains_on_streamed_pixels_as_in_memory(digits_dir, tmp_path):
    """VQ-VAE-2: the autoencoder reads the pixels streamed; the codes the trained encoder makes of them
    are written once, shard by shard, under a fingerprint of the shards' checksums, and the priors read
    them by memory map (the bottom prior's conditioning made a batch at a time in the loader's worker).
    Every part ends with the weights of the in-memory run."""
    def run(data, out):
        cfg = {"model": dict(TINY_VQVAE2), "data": data,
               "train": {"steps": 3, "batch_size": 16, "log_every": 1, "eval_every": 0, "num_samples": 2,
                         "eval_images": 20, "final_eval_images": 40, "checkpoint_every": 100, "workers": 1}}
        runner = start_run(cfg, out, progress=False, tensorboard=False)
        return runner, runner.train()

    memory, r0 = run({"name": "digits"}, tmp_path / "memory")
    streamed, r1 = run({"name": "prepared", "data_dir": str(digits_dir), "stream": True}, tmp_path / "streamed")
    assert isinstance(streamed.splits.train, ShardedDataset) and set(r1["parts"]) == set(memory.plan.names)
    assert (streamed.run_dir / "cache" / "autoencoder-levels" / "index.json").is_file()
    # a trained part's training state goes before the next part trains (gradients, optimizer, Polyak copy)
    assert all(p.grad is None for p in streamed.model.parameters())
    for prior in ("top_prior", "bottom_prior"):
        assert isinstance(streamed.trainer(prior).splits.train.images, ShardedImages), prior
    for name in memory.plan.names:
        a, b = (load_tensors(r.plan.unit(name).path(r.run_dir) / "checkpoint.safetensors") for r in (memory, streamed))
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), name
    assert Path(r1["samples"]).is_file() and r1.keys() == r0.keys()


def test_the_command_line_trains_on_a_prepared_set_streamed(digits_dir, tmp_path, capsys):
    from pixelzoo.cli import main

    assert main(["train", "gated_pixelcnn/digits", "--data", "prepared", "--data-dir", str(digits_dir), "--set",
                 "data.stream=true", "--set", "train.num_samples=0", "--set", "model.channels=8", "--steps", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "360 test images of digits/test" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "3", "--no-progress"]) == 0


@pytest.mark.parametrize("workers", [0, 1])
def test_a_shard_gone_while_streaming_is_one_clear_error(digits_dir, tmp_path, workers):
    import shutil

    from pixelzoo.errors import DataError

    copy = tmp_path / "copy"
    shutil.copytree(digits_dir, copy)
    streamed = load_dataset("prepared", copy, stream=True).train
    (copy / "train-00003.images").unlink()
    loader = StreamingLoader(streamed, BatchPlan(len(streamed), 64, seed=0, flip=False), workers=workers)
    with pytest.raises(DataError, match=r"step 0 .*train-00003\.images") as e:
        list(loader.batches(0, 3))
    assert "\n" not in str(e.value)
