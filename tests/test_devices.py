"""Devices and precision on the CPU: device names, the CPU's bf16 flags, the precision picked and
recorded, the warning for emulated bf16, checkpoints loaded onto a named device, ``--device`` on the
command line. (tests/test_cuda.py checks the GPU paths on a GPU.)"""

import json
import warnings

import pytest
import torch

from pixelzoo import devices
from pixelzoo.cli import main
from pixelzoo.devices import (PrecisionWarning, cpu_flags, cpu_native_bf16, module_device, resolve_device,
                              resolve_precision, to_device)
from pixelzoo.errors import ConfigError
from pixelzoo.training import TrainConfig, load_run_model, start_run
from pixelzoo.training.distributed import backend_for

TINY = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3, "out_hidden": 8}

INTEL_SPR = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
             "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n\nprocessor\t: 1\n")
EPYC_ROME = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes bf16 sve\n"


def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


# ------------------------------------------------------------------ devices
def test_resolve_device_names(monkeypatch):
    no_cuda(monkeypatch)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # no CUDA here: the CPU


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:-1", "", "mps", "cpu:0", 3])
def test_resolve_device_refuses_what_is_no_device(bad):
    with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(bad)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    no_cuda(monkeypatch)
    for spec in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ConfigError, match="CUDA is not available here.*--device cpu"):
            resolve_device(spec)


def test_absent_gpu_index_and_torchrun_ranks(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="no CUDA device 2 here"):
        resolve_device("cuda:2")
    # under torchrun: one process per GPU, process LOCAL_RANK on cuda:LOCAL_RANK
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ConfigError, match="at most one process per GPU"):
        resolve_device("auto")


def test_the_environment_names_the_default_device(monkeypatch):
    no_cuda(monkeypatch)
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv(devices.DEVICE_ENV, "tpu")
    with pytest.raises(ConfigError, match=r"\$PIXELZOO_DEVICE 'tpu'"):
        resolve_device(None)
    monkeypatch.delenv(devices.DEVICE_ENV)
    assert resolve_device(None) == torch.device("cpu")  # auto


def test_distributed_backend_by_device():
    assert backend_for(torch.device("cuda", 1)) == "nccl"
    assert backend_for("cpu") == "gloo"


def test_module_device_and_moving_tensors():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")
    t = torch.arange(3)
    assert to_device(t, torch.device("cpu")) is t and to_device(None, torch.device("cpu")) is None


# ------------------------------------------------------------------ native bf16
def test_cpu_flags_reader():
    assert {"avx512_bf16", "amx_bf16", "amx_tile"} <= cpu_flags(INTEL_SPR)
    assert "avx2" in cpu_flags(EPYC_ROME) and "avx512_bf16" not in cpu_flags(EPYC_ROME)
    assert "bf16" in cpu_flags(ARM)
    assert cpu_flags("") == set() and cpu_flags("model name\t: x\n") == set()
    assert isinstance(cpu_flags(), set)  # this machine's, whatever it has


def test_native_bf16_by_flags():
    assert cpu_native_bf16(cpu_flags(INTEL_SPR))
    assert cpu_native_bf16({"avx512f", "avx512_bf16"})
    assert cpu_native_bf16({"amx_bf16"})
    assert not cpu_native_bf16(cpu_flags(EPYC_ROME))   # AVX2 only: bf16 is emulated
    assert not cpu_native_bf16(cpu_flags(ARM))         # not a flag this reader knows: fp32, the safe side
    assert isinstance(cpu_native_bf16(), bool)


# ------------------------------------------------------------------ precision
@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(devices, "_warned", set())


def with_native_cpu_bf16(monkeypatch, native: bool):
    monkeypatch.setattr(devices, "cpu_native_bf16", lambda flags=None: native)


def test_auto_precision_follows_the_cpu(monkeypatch, fresh_warnings):
    cpu = torch.device("cpu")
    with_native_cpu_bf16(monkeypatch, True)
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("fp32", cpu) == "fp32"
    with_native_cpu_bf16(monkeypatch, False)
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp16", cpu)


def test_explicit_bf16_on_a_cpu_without_it_warns_once(monkeypatch, fresh_warnings):
    with_native_cpu_bf16(monkeypatch, False)
    with pytest.warns(PrecisionWarning, match="without native bf16.*slower"):
        assert resolve_precision("bf16", "cpu") == "bf16"  # honoured: the user asked for it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") == "bf16"  # the second time: no warning
        assert resolve_precision("auto", "cpu") == "fp32"


def test_explicit_bf16_where_it_is_native_does_not_warn(monkeypatch, fresh_warnings):
    with_native_cpu_bf16(monkeypatch, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") == "bf16"


def test_bf16_on_a_gpu_without_it_falls_back_to_fp32(monkeypatch, fresh_warnings):
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    with pytest.warns(PrecisionWarning, match="no bf16 support; training in fp32"):
        assert resolve_precision("bf16", torch.device("cuda", 0)) == "fp32"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp32"


def test_train_config_precision_and_compile_options():
    assert TrainConfig.from_dict({}).precision == "fp32" and TrainConfig.from_dict({}).compile is False
    assert TrainConfig.from_dict({"precision": "auto", "compile": True}).precision == "auto"
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "half"})
    with pytest.raises(ConfigError, match="train.compile"):
        TrainConfig.from_dict({"compile": "yes"})


def config(steps=3, **train):
    base = {"steps": steps, "batch_size": 16, "lr": 3e-3, "polyak": 0.9, "log_every": 1, "eval_every": 0,
            "checkpoint_every": 10, "num_samples": 0, "eval_images": 20}
    base.update(train)
    return {"model": dict(TINY), "data": {"name": "digits"}, "train": base}


@pytest.mark.parametrize("native", [False, True])
def test_the_run_records_the_precision_and_device_it_used(tmp_path, monkeypatch, fresh_warnings, native):
    with_native_cpu_bf16(monkeypatch, native)
    trainer = start_run(config(2, precision="auto"), tmp_path / "r", progress=False, tensorboard=False, device="cpu")
    result = trainer.train()
    want = "bf16" if native else "fp32"
    assert result["precision"] == want and result["device"] == "cpu"
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train_loss" in r]
    assert train_rows and all(r["precision"] == want and r["device"] == "cpu" for r in train_rows)
    # the config keeps what was asked; the record says what ran
    assert json.loads((trainer.run_dir / "config.json").read_text())["train"]["precision"] == "auto"


def test_train_compile_runs_the_loss_through_torch_compile(tmp_path, monkeypatch):
    """Off by default; on, the unit's loss goes through torch.compile (which is slow to compile on a
    CPU: benchmarks/device.py measures whether it pays; here a stand-in records the call)."""
    compiled = []

    def fake_compile(fn, **options):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    start_run(config(1), tmp_path / "off", progress=False, tensorboard=False, device="cpu").train()
    assert compiled == []
    trainer = start_run(config(1, compile=True), tmp_path / "on", progress=False, tensorboard=False, device="cpu")
    assert trainer.train()["step"] == 1 and len(compiled) == 1


def test_a_run_loads_onto_a_named_device(tmp_path):
    trainer = start_run(config(2), tmp_path / "r", progress=False, tensorboard=False, device="cpu")
    trainer.train()
    for device in ("cpu", torch.device("cpu"), "auto", None):
        model, _ = load_run_model(trainer.run_dir, device)
        assert all(p.device.type == "cpu" for p in model.parameters())
    a, _ = load_run_model(trainer.run_dir)
    b, _ = load_run_model(trainer.run_dir, "cpu")
    x, y = torch.randint(0, 17, (3, 1, 8, 8)), torch.tensor([0, 1, 2])
    assert torch.equal(a.log_prob(x, y), b.log_prob(x, y))
    with pytest.raises(ConfigError, match="not a device"):
        load_run_model(trainer.run_dir, "gpu")


def test_pretrained_loads_with_map_location(tmp_path, monkeypatch):
    from pixelzoo import create_model, load_pretrained

    model = create_model("gated_pixelcnn", image_shape=(1, 8, 8), num_levels=17, channels=8, n_layers=2,
                         first_kernel_size=3, out_hidden=8)
    model.save_pretrained(tmp_path / "m")
    x = torch.randint(0, 17, (2, 1, 8, 8))
    for where in ("cpu", torch.device("cpu"), "auto"):
        loaded = load_pretrained(tmp_path / "m", map_location=where)
        assert module_device(loaded) == torch.device("cpu")
        assert torch.allclose(loaded.log_prob(x), model.eval().log_prob(x))
    no_cuda(monkeypatch)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_pretrained(tmp_path / "m", map_location="cuda")


# ------------------------------------------------------------------ the command line
CLI_TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
            "--set", "train.num_samples=4", "--set", "train.eval_every=0", "--set", "train.eval_images=20",
            "--no-progress"]


def test_cli_device_cpu_trains_samples_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "2", "--out", str(run), "--device", "cpu", *CLI_TINY]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("device") == "cpu" and r.get("precision") == "fp32" for r in rows)
    assert main(["sample", str(run), "-n", "2", "--device", "cpu", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s.npz").is_file()
    assert main(["evaluate", str(run), "-n", "20", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((run / "eval.json").read_text())["test_bpd"] > 0
    assert main(["inpaint", str(run), "--images", "1", "--completions", "1", "--device", "cpu",
                 "--out", str(tmp_path / "i.png"), "--no-progress"]) == 0
    assert main(["train", "--resume", str(run), "--steps", "3", "--device", "cpu", "--no-progress"]) == 0


@pytest.mark.parametrize("command", [["train", "gated_pixelcnn/digits", "--steps", "1"], ["sample", "RUN"],
                                     ["evaluate", "RUN"], ["inpaint", "RUN"], ["train-classifier", "digits"]])
def test_cli_device_cuda_without_cuda_exits_2(tmp_path, monkeypatch, capsys, command):
    no_cuda(monkeypatch)
    argv = [str(tmp_path) if a == "RUN" else a for a in command]
    assert main([*argv, "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available here" in err and "--device cpu" in err


def test_cli_bad_device_exits_2(tmp_path, capsys):
    assert main(["train", "gated_pixelcnn/digits", "--device", "gpu0", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "'gpu0' is not a device" in capsys.readouterr().err
