"""Data-parallel training under several processes (what torchrun starts), on CPU with gloo: the same
weights as one process training on the same global batches, one run directory, one writer."""

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pixelzoo.errors import ConfigError
from pixelzoo.training import distributed, load_run_model, start_run
from pixelzoo.training.checkpoint import CHECKPOINT_NAME
from helpers import leave_spawned_worker


def tiny_config(steps=3):
    return {"model": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8},
            "data": {"name": "digits"},
            "train": {"steps": steps, "batch_size": 8, "lr": 0.01, "polyak": 0.9, "flip": True, "log_every": 1,
                      "eval_every": 0, "eval_images": 16, "num_samples": 0, "checkpoint_every": 100}}


def _worker(rank, world, store, out, config):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        trainer = start_run(config, out, progress=False, tensorboard=False)
        x, _, _ = trainer.single.batch(0)
        everyone = [None] * world
        dist.all_gather_object(everyone, x)
        assert x.shape[0] == config["train"]["batch_size"] // world  # its own rows of the global batch
        assert torch.equal(torch.stack(everyone, 1).flatten(0, 1), trainer.single.global_batch(0)[0])  # a partition
        if trainer.single.streams:  # its loader's workers read its rows, the same
            assert torch.equal(next(trainer.single.batches())[0], x)
        result = trainer.train()
        if rank:
            assert "process" in result and "test_bpd" not in result
    finally:
        distributed.finish()  # a barrier first: no process leaves while another still works
    leave_spawned_worker()


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["memory", "streamed"])
def test_two_processes_train_like_one_on_the_global_batch(tmp_path, streamed):
    """Streamed: each process's loader reads only its rows of each global batch from a prepared copy's
    shards, and the two follow the one-process run on the data in memory."""
    config = tiny_config()
    single = start_run(config, tmp_path / "one", progress=False, tensorboard=False)
    single.train()
    if streamed:
        from pixelzoo.data.prepare import prepare

        prepare("digits", tmp_path / "prepared", shard_size=200, progress=False)
        config = {**config, "data": {"name": "prepared", "data_dir": str(tmp_path / "prepared"), "stream": True},
                  "train": {**config["train"], "workers": 1}}
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "two"), config), nprocs=2, join=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two"]  # one directory
    a, _ = load_run_model(tmp_path / "one")
    b, _ = load_run_model(tmp_path / "two")
    # equal up to float summation order; Adam's first steps amplify it where a gradient is ~1e-8
    # (the last layer's vertical weights that only see zero padding rows): 6.5e-6 measured there
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=2e-5, msg=name)
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    one = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [1, 2, 3]  # written once, by process 0
    for r, s in zip([r for r in rows if "train_loss" in r], [s for s in one if "train_loss" in s]):
        assert r["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)  # the global batch's loss
    assert (tmp_path / "two" / CHECKPOINT_NAME).is_file()


def _odd_worker(rank, world, store, out, config):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        with pytest.raises(ConfigError, match="divisible by 2"):
            start_run(config, out, progress=False, tensorboard=False).train()
    finally:
        distributed.finish()  # a barrier first: no process leaves while another still works
    leave_spawned_worker()


@pytest.mark.slow
def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    config = tiny_config(steps=1)
    config["train"]["batch_size"] = 7
    mp.spawn(_odd_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "run"), config), nprocs=2, join=True)


def test_without_torchrun_nothing_changes():
    assert "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.shard(7) == slice(0, None, 1)
    assert distributed.any_process(True) and not distributed.any_process(False)


@pytest.mark.slow
def test_torchrun_command_line(tmp_path):
    """`torchrun --nproc_per_node=2 -m pixelzoo train ...`: one run, reported once."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node=2", "-m", "pixelzoo", "train", "gated_pixelcnn/digits", "--steps", "2",
        "--out", str(tmp_path / "run"), "--set", "model.channels=8", "--set", "model.n_layers=2",
        "--set", "train.num_samples=0", "--set", "train.batch_size=8", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run directory:") == 1 and done.stdout.count("test bits/dim:") == 1
    assert (tmp_path / "run" / CHECKPOINT_NAME).is_file()
    assert not any(p.name.startswith("run-") for p in tmp_path.iterdir())


TINY_GRAY = {"name": "grayscale_pixelcnn", "gray_levels": 4,
             "prior": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8},
             "conditional": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3,
                             "out_hidden": 8},
             "embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4}}


def _composite_worker(rank, world, store, out, config):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = start_run(config, out, progress=False, tensorboard=False).train()
        if rank:
            assert "process" in result and "test_bpd" not in result
    finally:
        distributed.finish()  # a barrier first: no process leaves while another still works
    leave_spawned_worker()


@pytest.mark.slow
def test_a_composite_trains_under_two_processes_like_one(tmp_path):
    """Every unit of a composite trains data-parallel: two processes end with one process's weights,
    the conditional part's flipped images and flipped gray views included."""
    config = {**tiny_config(steps=3), "model": TINY_GRAY}
    config["train"]["num_samples"] = 2
    start_run(config, tmp_path / "one", progress=False, tensorboard=False).train()
    mp.spawn(_composite_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "two"), config), nprocs=2, join=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two"]
    a, _ = load_run_model(tmp_path / "one")
    b, _ = load_run_model(tmp_path / "two")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=2e-5, msg=name)
    for part in ("prior", "conditional"):
        assert (tmp_path / "two" / "parts" / part / CHECKPOINT_NAME).is_file()
    assert (tmp_path / "two" / "samples" / "final.png").is_file()


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_process_on_one_step_and_process_0_checkpoints(tmp_path):
    """SIGTERM to `torchrun --nproc_per_node=2 -m pixelzoo train` | the processes agree on the step, process 0
    writes the checkpoint and says once where and how to resume; on disk: checkpoint at that step, each step
    logged once, no .lock"""
    import json
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from pixelzoo.training.checkpoint import read_checkpoint

    torchrun = shutil.which("torchrun")
    out = tmp_path / "run"
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node=2", "-m", "pixelzoo", "train", "gated_pixelcnn/digits", "--steps", "100000",
        "--out", str(out), "--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "train.log_every=1",
        "--set", "train.num_samples=0", "--set", "train.batch_size=8", "--set", "train.eval_every=0", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics, t0 = out / "metrics.jsonl", time.monotonic()
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() - t0 < 180, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it to both processes
    _, err = proc.communicate(timeout=120)
    assert err.count("stopped by SIGTERM at step") == 1, err[-3000:]
    stopped = int(err.split("stopped by SIGTERM at step ")[1].split()[0])
    assert f"Resume with: pixelzoo train --resume {out}" in err
    assert read_checkpoint(out / CHECKPOINT_NAME)[0] == stopped
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == stopped
    assert not (out / ".lock").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(args: list[str], tmp_path, tag: str):
    """`torchrun --nnodes 2 --nproc_per_node 1` twice on this machine, a c10d rendezvous on the
    loopback address: two "nodes" of one process each, sharing the run directory's file system."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    port = _free_port()
    cmd = launcher + ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
                      f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=pixelzoo-{tag}", "-m", "pixelzoo", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIXELZOO_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=tmp_path) for _ in range(2)]
    outs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outs):
        assert node.returncode == 0, err[-2000:]
    return "".join(out for out, _ in outs)


@pytest.mark.slow
def test_two_nodes_train_resume_and_follow_one_process(tmp_path):
    """Two nodes (torchrun --nnodes 2, c10d rendezvous on 127.0.0.1) train 2 steps, then resume to 4:
    one run directory, reported once, ending with the weights of one process trained 4 steps on the
    same global batches (to float summation order, as the two-process test)."""
    tiny = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
            "--set", "train.num_samples=0", "--set", "train.batch_size=8", "--set", "train.eval_every=0",
            "--no-progress"]
    out = _two_nodes(["train", "gated_pixelcnn/digits", "--steps", "2", "--out", str(tmp_path / "two"), *tiny],
                     tmp_path, "train")
    assert out.count("run directory:") == 1
    out = _two_nodes(["train", "--resume", str(tmp_path / "two"), "--steps", "4", "--no-progress"], tmp_path, "resume")
    assert out.count("test bits/dim:") == 1
    from pixelzoo.cli import main

    assert main(["train", "gated_pixelcnn/digits", "--steps", "4", "--out", str(tmp_path / "one"), *tiny]) == 0
    a, _ = load_run_model(tmp_path / "one")
    b, _ = load_run_model(tmp_path / "two")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=2e-5, msg=name)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two"]
