"""Trainer: exact resume, the NaN guard, atomic checkpoints, run directories, bad checkpoints."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import pixelzoo
from pixelzoo.cli import main
from pixelzoo.errors import CheckpointError, ConfigError, TrainingError
from pixelzoo.io import load_tensors
from pixelzoo.training import TrainConfig, resume_run, start_run
from pixelzoo.training.polyak import Polyak

TINY = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3}


def config(steps, data=None, **train):
    base = {"steps": steps, "batch_size": 16, "lr": 3e-3, "polyak": 0.9, "log_every": 1, "eval_every": 0,
            "checkpoint_every": 3, "num_samples": 0, "flip": True, "eval_images": 50}
    base.update(train)
    return {"model": dict(TINY), "data": data or {"name": "digits"}, "train": base}


@pytest.fixture(scope="module")
def streamed_digits(tmp_path_factory):
    """The data section of scikit-learn's digits prepared in shards and streamed from them by 2 workers."""
    from pixelzoo.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "digits"
    prepare("digits", out, shard_size=100, progress=False)
    return {"name": "prepared", "data_dir": str(out), "stream": True}


@pytest.fixture(params=["memory", "streamed"])
def data(request):
    """Both paths of the data: digits in memory, and streamed from a prepared copy's shards."""
    return None if request.param == "memory" else request.getfixturevalue("streamed_digits")


def run(cfg, out, **kw):
    trainer = start_run(cfg, out, progress=False, tensorboard=False, **kw)
    return trainer, trainer.train()


def test_resume_gives_identical_weights(tmp_path, data):
    a, _ = run(config(7, data), tmp_path / "a")
    b, _ = run(config(4, data), tmp_path / "b")
    b2 = resume_run(b.run_dir, steps=7, progress=False, tensorboard=False)
    assert b2.single.step == 4
    b2.train()
    ta, tb = load_tensors(a.single.checkpoint_path), load_tensors(b2.single.checkpoint_path)
    assert set(ta) == set(tb) and any(k.startswith("ema.") for k in ta) and any(k.startswith("optim.") for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopped_by_a_signal_at_a_random_moment_then_resumed_gives_identical_weights(tmp_path, sig, data):
    """`pixelzoo train` stopped by SIGTERM / SIGINT at a random moment, then `--resume --steps S+3` | weights,
    Polyak weights and optimizer state bit-identical to a run of S+3 steps never stopped; with the data in
    memory, or streamed from shards by DataLoader workers (which leave the signal to the training process)"""
    rng = random.Random()
    cfg = config(100_000, data, checkpoint_every=rng.choice([2, 5, 1000]))
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "pixelzoo", "train", str(tmp_path / "c.json"), "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics, t0 = out / "metrics.jsonl", time.monotonic()
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() - t0 < 120, proc.communicate()
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))  # mid-step, mid-log or mid-checkpoint
    os.killpg(proc.pid, sig)  # to its process group, as a terminal or a scheduler does: loader workers too
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    stopped = load_checkpoint_step(out)
    assert main(["train", "--resume", str(out), "--steps", str(stopped + 3), "--no-progress"]) == 0
    a, _ = run(config(stopped + 3, data, checkpoint_every=cfg["train"]["checkpoint_every"]), tmp_path / "a")
    ta, tb = load_tensors(a.single.checkpoint_path), load_tensors(out / "checkpoint.safetensors")
    assert set(ta) == set(tb) and any(k.startswith("optim.") for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def load_checkpoint_step(run_dir):
    from pixelzoo.training.checkpoint import read_checkpoint

    return read_checkpoint(run_dir / "checkpoint.safetensors")[0]


def test_run_directory_contents_and_no_overwrite(tmp_path):
    cfg = config(4, num_samples=4, eval_every=2)
    trainer, result = run(cfg, tmp_path / "r")
    d = trainer.run_dir
    saved = json.loads((d / "config.json").read_text())
    assert saved["model"]["image_shape"] == [1, 8, 8] and saved["model"]["num_levels"] == 17
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss", "train_bpd", "images_per_s"} <= set(rows[0])
    assert any("test_bpd" in r for r in rows) and any("test_bpd_full" in r for r in rows)
    assert (d / "samples" / "step_0000004.png").is_file()
    assert result["test_bpd"] > 0
    again, _ = run(cfg, tmp_path / "r")
    assert again.run_dir != d and again.run_dir.name == "r-1"


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    trainer = start_run(config(10), tmp_path / "n", progress=False, tensorboard=False)
    real_loss = trainer.model.loss

    def loss(x, y=None):
        out = real_loss(x, y)
        if trainer.single.step == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(trainer.model, "loss", loss)
    with pytest.raises(TrainingError, match="step 4.*nan.*last good checkpoint"):
        trainer.train()
    ckpt = load_tensors(trainer.single.checkpoint_path)
    resumed = resume_run(trainer.run_dir, progress=False, tensorboard=False)
    assert resumed.single.step == 3 and len(ckpt) > 0


def test_truncated_or_corrupt_checkpoint_is_named(tmp_path):
    trainer, _ = run(config(3), tmp_path / "t")
    data = trainer.single.checkpoint_path.read_bytes()
    trainer.single.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        resume_run(trainer.run_dir, progress=False, tensorboard=False)
    trainer.single.checkpoint_path.write_bytes(b"\x00" * 5)
    with pytest.raises(CheckpointError):
        resume_run(trainer.run_dir, progress=False, tensorboard=False)


def test_pretrained_errors(tmp_path):
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 4, 4), num_levels=3, channels=4, n_layers=2)
    model.save_pretrained(tmp_path / "p")
    weights = tmp_path / "p" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        pixelzoo.load_pretrained(tmp_path / "p")
    with pytest.raises(CheckpointError, match="config.json"):
        pixelzoo.load_pretrained(tmp_path / "missing")
    other = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 4, 4), num_levels=3, channels=8, n_layers=2)
    other.save_pretrained(tmp_path / "q")
    (tmp_path / "q" / "config.json").write_text(json.dumps(model.config))
    with pytest.raises(CheckpointError, match="wrong shape"):
        pixelzoo.load_pretrained(tmp_path / "q")


def test_train_config_rejects_unknown_and_bad_values():
    with pytest.raises(ConfigError, match="unknown train options"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"steps": 0})
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"polyak": 1.5})


def test_adamax_resumes_exactly_and_the_final_evaluation_takes_its_images(tmp_path):
    from pixelzoo.data import load_dataset
    from pixelzoo.training.held_out import dataset_bits_per_dim
    from pixelzoo.training import load_run_model

    a, result = run(config(5, optimizer="adamax", final_eval_images=20), tmp_path / "a")
    assert isinstance(a.single.optimizer, torch.optim.Adamax)
    b, _ = run(config(3, optimizer="adamax", final_eval_images=20), tmp_path / "b")
    b2 = resume_run(b.run_dir, steps=5, progress=False, tensorboard=False)
    b2.train()
    ta, tb = load_tensors(a.single.checkpoint_path), load_tensors(b2.single.checkpoint_path)
    assert any(k.startswith("optim.") for k in ta) and all(torch.equal(ta[k], tb[k]) for k in ta)
    model = load_run_model(a.run_dir)[0]
    expected = dataset_bits_per_dim(model, load_dataset("digits").test, 32, 20)
    assert result["test_bpd"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="final_eval_images"):
        TrainConfig.from_dict({"final_eval_images": 0})


def test_learning_rate_warms_up_linearly_then_decays_and_a_resumed_run_follows_it(tmp_path):
    cfg = TrainConfig.from_dict({"lr": 0.01, "lr_decay": 0.5, "warmup_steps": 4})
    assert [cfg.learning_rate(t) for t in range(6)] == pytest.approx(
        [0.01 * 0.25, 0.01 * 0.5 * 0.5, 0.01 * 0.25 * 0.75, 0.01 * 0.125, 0.01 * 0.0625, 0.01 * 0.03125])
    assert TrainConfig.from_dict({"lr": 0.01, "lr_decay": 0.5}).learning_rate(3) == pytest.approx(0.01 * 0.125)
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig.from_dict({"warmup_steps": -1})
    a, _ = run(config(6, warmup_steps=4, lr_decay=0.9), tmp_path / "a")
    logged = [json.loads(line)["lr"] for line in (a.run_dir / "metrics.jsonl").read_text().splitlines()
              if '"lr"' in line]
    assert logged[:6] == pytest.approx([3e-3 * 0.9 ** t * min(1, (t + 1) / 4) for t in range(6)], abs=1e-6)  # logged to 6 places
    b, _ = run(config(3, warmup_steps=4, lr_decay=0.9), tmp_path / "b")
    b2 = resume_run(b.run_dir, steps=6, progress=False, tensorboard=False)
    b2.train()
    ta, tb = load_tensors(a.single.checkpoint_path), load_tensors(b2.single.checkpoint_path)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_polyak_average_and_swap():
    model = torch.nn.Linear(2, 1)
    avg = Polyak(model, 0.5)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    avg.update(1000)  # past the warm-up: decay 0.5
    torch.testing.assert_close(avg.shadow["weight"], before + 1.0)
    with avg.applied() as m:
        torch.testing.assert_close(m.weight, before + 1.0)
    torch.testing.assert_close(model.weight, before + 2.0)


def test_bf16_autocast_training_runs_and_evaluates_in_fp32(tmp_path):
    trainer, result = run(config(3, precision="bf16"), tmp_path / "bf")
    assert trainer.single.step == 3 and result["test_bpd"] > 0
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp8"})


def test_polyak_warm_up_forgets_the_initial_weights():
    avg = Polyak(torch.nn.Linear(1, 1), 0.999)
    assert avg.decay_at(1) == 2 / 11 and avg.decay_at(10**6) == 0.999
    remaining = 1.0
    for step in range(1, 601):
        remaining *= avg.decay_at(step)
    assert remaining < 1e-3  # a plain 0.999 average would still hold 0.55 of the initial weights


def test_atomic_writes_leave_no_temporary_file_and_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from pixelzoo.io import atomic_write_json, save_tensors

    mask = os.umask(0o022)
    try:
        atomic_write_json({"a": 1}, tmp_path / "x.json")
        save_tensors({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors", "x.json"]
    for name in ("x.json", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644  # not mkstemp's 0600
