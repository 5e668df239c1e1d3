"""The GPU paths, on a GPU (skipped without CUDA): train a few steps and resume; CPU and GPU
log-probabilities agree to float tolerance; sampling (the incremental sampler included) gives valid
images; a checkpoint saved on one device loads on the other; a composite's units, the evaluation and
the feature network on the GPU; two GPUs under torchrun (NCCL) where there are two.

``PIXELZOO_CUDA_TEST_DEVICE=cpu`` runs these checks with the CPU in the GPU's place (a dry run of
the checks' own logic on a machine without a GPU); by default the GPU is ``cuda``.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import TINY_MODELS, tiny_model_args
from pixelzoo import create_model, load_pretrained
from pixelzoo.devices import native_bf16, resolve_device
from pixelzoo.io import load_tensors
from pixelzoo.training import load_run_model, resume_run, start_run
from pixelzoo.training.checkpoint import CHECKPOINT_NAME

GPU_SPEC = os.environ.get("PIXELZOO_CUDA_TEST_DEVICE", "cuda")
HAVE_GPU = not GPU_SPEC.startswith("cuda") or torch.cuda.is_available()
WHY = (f"no CUDA device here (torch {torch.__version__}, "
       + (f"CUDA {torch.version.cuda}, no GPU visible)" if torch.version.cuda else "built without CUDA)")
       + ": these checks need a GPU")

pytestmark = pytest.mark.skipif(not HAVE_GPU, reason=WHY)

TINY = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8}
TINY_GRAY = {"name": "grayscale_pixelcnn", "gray_levels": 4,
             "prior": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8},
             "conditional": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3,
                             "out_hidden": 8},
             "embedding": {"channels": 8, "n_blocks": 1, "out_channels": 4}}


@pytest.fixture(scope="module")
def gpu():
    return resolve_device(GPU_SPEC)


@pytest.fixture(autouse=True)
def full_fp32():
    """No TF32 in matrix products and convolutions: the CPU/GPU comparisons are of fp32 arithmetic."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def config(steps, model=TINY, **train):
    base = {"steps": steps, "batch_size": 16, "lr": 3e-3, "polyak": 0.9, "flip": True, "log_every": 1,
            "eval_every": 2, "eval_images": 40, "checkpoint_every": 2, "num_samples": 4}
    base.update(train)
    return {"model": dict(model), "data": {"name": "digits"}, "train": base}


def run(cfg, out, device, **kw):
    trainer = start_run(cfg, out, progress=False, tensorboard=False, device=device, **kw)
    return trainer, trainer.train()


def assert_close_states(a: dict, b: dict, rtol=1e-4, atol=2e-5):
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k].cpu().float(), b[k].cpu().float(), rtol=rtol, atol=atol, msg=k)


# ------------------------------------------------------------------ training
def test_train_a_few_steps_and_resume(tmp_path, gpu):
    whole, result = run(config(6), tmp_path / "whole", gpu)
    assert result["step"] == 6 and result["device"] == str(gpu) and result["precision"] == "fp32"
    assert all(p.device == gpu for p in whole.single.model.parameters())
    half, _ = run(config(3), tmp_path / "half", gpu)
    again = resume_run(half.run_dir, steps=6, progress=False, tensorboard=False, device=gpu)
    assert again.single.step == 3
    out = again.train()
    assert out["step"] == 6 and out["test_bpd"] > 0 and (again.run_dir / "samples" / "step_0000006.png").is_file()
    # the same batches and seeds: the same weights, up to the GPU's order of float additions
    assert_close_states(load_tensors(whole.single.checkpoint_path), load_tensors(again.single.checkpoint_path))
    rows = [json.loads(line) for line in (again.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["device"] == str(gpu) for r in rows if "train_loss" in r)


def test_auto_precision_on_the_gpu_is_recorded(tmp_path, gpu):
    _, result = run(config(2, precision="auto", num_samples=0), tmp_path / "auto", gpu)
    assert result["precision"] == ("bf16" if native_bf16(gpu) else "fp32")
    assert result["test_bpd"] > 0  # evaluated in fp32 either way


def test_a_composite_trains_its_units_on_the_gpu(tmp_path, gpu):
    trainer, result = run(config(2, model=TINY_GRAY, num_samples=2), tmp_path / "gray", gpu)
    assert set(result["parts"]) == {"prior", "conditional"} and result["test_bpd"] > 0
    assert all(r["device"] == str(gpu) for r in result["parts"].values())
    assert (trainer.run_dir / "samples" / "final.png").is_file()
    on_cpu, _ = load_run_model(trainer.run_dir, "cpu")
    on_gpu, _ = load_run_model(trainer.run_dir, gpu)
    x = trainer.splits.test.images[:8].long()
    y = trainer.splits.test.labels[:8]
    torch.testing.assert_close(on_gpu.log_prob(x.to(gpu), y.to(gpu)).cpu(), on_cpu.log_prob(x, y),
                               rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ CPU and GPU agree
@pytest.mark.parametrize("key", sorted(TINY_MODELS))
def test_cpu_and_gpu_log_probs_agree(key, gpu):
    name, kw = tiny_model_args(key)
    torch.manual_seed(0)
    model = create_model(name, image_shape=(3, 8, 8), num_levels=16, num_classes=4, **kw).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 16, (4, 3, 8, 8), generator=g)
    y = torch.arange(4)
    with torch.no_grad():
        if model.has_likelihood:
            cpu = model.log_prob(x, y)
            dev = model.to(gpu).log_prob(x.to(gpu), y.to(gpu))
        else:  # the quantile head: its quantiles at given taus
            tau = torch.rand(x.shape, generator=g)
            cpu = model.quantile(x, tau, y)
            dev = model.to(gpu).quantile(x.to(gpu), tau.to(gpu), y.to(gpu))
    assert dev.device == gpu
    torch.testing.assert_close(dev.cpu(), cpu, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("key", sorted(TINY_MODELS))
def test_sampling_gives_valid_images(key, gpu):
    name, kw = tiny_model_args(key)
    torch.manual_seed(0)
    model = create_model(name, image_shape=(3, 6, 6), num_levels=16, num_classes=4, **kw).to(gpu).eval()
    y = torch.arange(4) % 4
    for generator in (torch.Generator().manual_seed(0), torch.Generator(device=gpu).manual_seed(0), None):
        x = model.sample(4, y=y, generator=generator)
        assert x.device == gpu and x.dtype == torch.long and x.shape == (4, 3, 6, 6)
        assert int(x.min()) >= 0 and int(x.max()) < 16


def test_the_incremental_sampler_on_the_gpu(gpu):
    """The Gated PixelCNN's incremental stepper (per-layer queues) gives the full forward pass's parameters on the GPU (teacher
    forced, every sub-pixel), and valid images; inpainting keeps the given half."""
    torch.manual_seed(0)
    model = create_model("gated_pixelcnn", image_shape=(3, 5, 6), num_levels=16, num_classes=2, channels=12,
                         n_layers=3, first_kernel_size=5, out_hidden=12).to(gpu).eval()
    n = 3
    x = torch.randint(0, 16, (n, 3, 5, 6), device=gpu)
    y = torch.tensor([0, 1, 1], device=gpu)
    with torch.no_grad():
        cached = model.stepper(n, y=y, cached=True)
        full = model.stepper(n, y=y, cached=False)
        assert type(cached) is not type(full)
        for i in range(5):
            for j in range(6):
                for c in range(3):
                    torch.testing.assert_close(cached.params(x, i, j, c), full.params(x, i, j, c), rtol=1e-4, atol=1e-4)
    s = model.sample(n, y=y.cpu(), generator=torch.Generator().manual_seed(2), cached=True)
    assert s.device == gpu and int(s.min()) >= 0 and int(s.max()) < 16
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[:2] = True
    known = torch.randint(0, 16, (1, 3, 5, 6))
    filled = model.sample(n, y=y.cpu(), known=known, mask=mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(filled[:, :, :2].cpu(), known[:, :, :2].expand(n, -1, -1, -1))


# ------------------------------------------------------------------ checkpoints across devices
def test_a_checkpoint_saved_on_one_device_loads_on_the_other(tmp_path, gpu):
    cpu = torch.device("cpu")
    for first, second in ((gpu, cpu), (cpu, gpu)):
        trainer, _ = run(config(2, num_samples=0, eval_every=0), tmp_path / f"{first.type}", first)
        a, _ = load_run_model(trainer.run_dir, first)
        b, _ = load_run_model(trainer.run_dir, second)
        assert all(p.device == second for p in b.parameters())
        x = trainer.splits.test.images[:8].long()
        y = trainer.splits.test.labels[:8]
        with torch.no_grad():
            torch.testing.assert_close(a.log_prob(x.to(first), y.to(first)).cpu(),
                                       b.log_prob(x.to(second), y.to(second)).cpu(), rtol=1e-4, atol=1e-3)
        # training continues on the other device from the same checkpoint
        more = resume_run(trainer.run_dir, steps=4, progress=False, tensorboard=False, device=second)
        assert more.single.step == 2 and all(p.device == second for p in more.single.model.parameters())
        result = more.train()
        assert result["step"] == 4 and result["device"] == str(second)
        assert (trainer.run_dir / CHECKPOINT_NAME).is_file()
    # save_pretrained / load_pretrained across devices
    model = create_model("gated_pixelcnn", image_shape=(1, 8, 8), num_levels=17, **{k: v for k, v in TINY.items()
                                                                                    if k != "name"}).to(gpu)
    model.save_pretrained(tmp_path / "pre")
    back = load_pretrained(tmp_path / "pre", map_location="cpu")
    assert_close_states(model.state_dict(), back.state_dict(), rtol=0, atol=0)
    assert all(p.device == gpu for p in load_pretrained(tmp_path / "pre", map_location=gpu).parameters())


# ------------------------------------------------------------------ evaluation and the feature network
def test_evaluation_and_the_feature_network_on_the_gpu(tmp_path, gpu, monkeypatch):
    from pixelzoo.commands.evaluate import evaluate_run

    monkeypatch.setenv("PIXELZOO_CLASSIFIER_STEPS", "20")
    trainer, _ = run(config(2, num_samples=0, eval_every=0), tmp_path / "r", gpu)
    on_gpu = evaluate_run(trainer.run_dir, "bpd,fid,cas", 40, batch_size=20, progress=False, cache_dir=tmp_path / "c",
                          cas_steps=5, write=False, device=gpu)
    on_cpu = evaluate_run(trainer.run_dir, "bpd", 40, batch_size=20, progress=False, write=False, device="cpu")
    assert on_gpu["test_bpd"] == pytest.approx(on_cpu["test_bpd"], rel=1e-4)
    assert any(k.startswith("fid[") for k in on_gpu) and any(k.startswith("cas_top1[") for k in on_gpu)


# ------------------------------------------------------------------ torchrun: NCCL, one process per GPU
@pytest.mark.skipif(not (torch.cuda.is_available() and torch.cuda.device_count() >= 2),
                    reason="NCCL data-parallel training needs two GPUs (one process per GPU)")
def test_torchrun_on_two_gpus_uses_nccl(tmp_path):
    torchrun = shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node=2", "-m", "pixelzoo", "train", "gated_pixelcnn/digits", "--steps", "3",
        "--out", str(tmp_path / "run"), "--set", "model.channels=8", "--set", "model.n_layers=2",
        "--set", "train.num_samples=0", "--set", "train.batch_size=8", "--device", "cuda", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1 and done.stdout.count("test bits/dim:") == 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["device"] for r in rows if "train_loss" in r] == ["cuda:0"] * 3  # process 0 writes, on GPU 0
