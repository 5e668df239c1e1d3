"""The command line's checks: every option value by type and range (the message names the option, no
traceback), suggestions for unknown presets, --version, a presets list that fits a terminal, resume
that refuses to train nothing and changes nothing when it fails, the run directory actually used,
and evaluation results without gradients."""

import json
import os

import pytest
import torch

import pixelzoo
from pixelzoo.cli import main
from pixelzoo.training import resume_run, start_run

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=4", "--set", "train.eval_every=0", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("options") / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "3", "--out", str(out), *TINY]) == 0
    return out


BAD = [
    (["sample", "RUN", "-n", "-3"], "argument -n: must be a positive integer, got -3"),
    (["sample", "RUN", "-n", "x"], "argument -n: expected an integer, got 'x'"),
    (["sample", "RUN", "--temperature", "-1"], "argument --temperature: must be a number >= 0"),
    (["sample", "RUN", "--temperature", "nan"], "argument --temperature: expected a finite number"),
    (["sample", "RUN", "--seed", "-1"], "argument --seed: must be an integer >= 0"),
    (["sample", "RUN", "--class", "-2"], "argument --class: must be an integer >= 0"),
    (["train", "gated_pixelcnn/digits", "--steps", "0"], "argument --steps: must be a positive integer"),
    (["evaluate", "RUN", "-n", "0"], "argument -n: must be a positive integer"),
    (["evaluate", "RUN", "--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    (["inpaint", "RUN", "--images", "0"], "argument --images: must be a positive integer"),
    (["inpaint", "RUN", "--completions", "1.5"], "argument --completions: expected an integer"),
    (["colorize", "RUN", "test", "--per-image", "0"], "argument --per-image: must be a positive integer"),
    (["upscale", "RUN", "test", "--from-size", "-2"], "argument --from-size: must be a positive integer"),
    (["upscale", "RUN", "test", "--log-scale-shift", "inf"], "argument --log-scale-shift: expected a finite number"),
    (["rejection-sweep", "RUN", "-n", "1"], "argument -n: must be an integer >= 2"),
    (["train-classifier", "digits", "--batch-size", "0"], "argument --batch-size: must be a positive integer"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_option_values_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value,message", [("train.lr=abc", "train.lr must be a number, got 'abc'"),
                                           ("train.steps=2.5", "train.steps must be an integer"),
                                           ("train.flip=1", "train.flip must be true/false"),
                                           ("train.lr_decay=0", "train.lr_decay must lie in (0, 1]"),
                                           ("train.sample_every=-1", "train.sample_every must be an integer >= 0"),
                                           ("train.seed=1e23", "train.seed must be an integer"),
                                           ("train.seed=100000000000000000000000",
                                            "train.seed must be at most 2**63 - 1")])
def test_bad_train_values_are_errors_and_write_nothing(value, message, tmp_path, capsys):
    assert main(["train", "gated_pixelcnn/digits", "--out", str(tmp_path / "r"), "--set", value, *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_class_out_of_range_names_the_option(run_dir, capsys):
    assert main(["sample", str(run_dir), "--class", "99", "-n", "2", "--no-progress"]) == 2
    assert "--class must lie in [0, 10)" in capsys.readouterr().err


def test_unknown_preset_suggests_the_closest(tmp_path, capsys):
    assert main(["train", "gated_pixelcnn/digit", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean gated_pixelcnn/digits" in capsys.readouterr().err
    with pytest.raises(pixelzoo.ConfigError, match="did you mean pixelcnnpp/fashion-cpu"):
        pixelzoo.load_preset("pixelcnnpp/fashion")


def test_version_and_presets_fit_a_terminal(capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pixelzoo {pixelzoo.__version__}"
    monkeypatch.setenv("COLUMNS", "90")
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(pixelzoo.list_presets()) and max(map(len, lines)) < 90
    assert main(["presets", "-v"]) == 0
    full = capsys.readouterr().out
    text = " ".join(pixelzoo.load_preset("gated_pixelcnn/digits")["description"].split())
    assert text in " ".join(full.split())
    for line in full.splitlines():
        assert len(line) < 90


def test_help_has_no_markup(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


def test_resume_that_trains_nothing_is_refused_and_changes_nothing(run_dir, capsys):
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for steps in ("3", "2"):
        assert main(["train", "--resume", str(run_dir), "--steps", steps, "--no-progress"]) == 2
        assert "is at step 3; --steps " + steps + " would train nothing" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_a_failed_resume_changes_nothing(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    ckpt = copy / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(pixelzoo.CheckpointError):
        resume_run(copy, steps=10, progress=False, tensorboard=False)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_start_run_says_which_directory_it_used(run_dir, capsys):
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["steps"] = 1
    runner = start_run(config, run_dir, progress=False, tensorboard=False)
    assert runner.run_dir == run_dir.with_name(run_dir.name + "-1") and runner.run_dir.is_dir()
    assert f"this run is {runner.run_dir}" in capsys.readouterr().err


def test_composite_resume_that_trains_nothing_is_refused(tmp_path):
    config = pixelzoo.load_preset("grayscale_pixelcnn/digits")
    config["model"].update(prior={"channels": 8, "n_layers": 1, "first_kernel_size": 3, "out_hidden": 8},
                           conditional={"nr_filters": 8}, embedding={"channels": 8, "n_blocks": 1, "out_channels": 4})
    config["train"].update(steps=2, eval_every=0, num_samples=0)
    config.pop("train_parts", None)
    start_run(config, tmp_path / "g", progress=False, tensorboard=False).train()
    with pytest.raises(pixelzoo.ConfigError, match="prior: 2, conditional: 2; --steps 2 would train nothing"):
        resume_run(tmp_path / "g", steps=2, progress=False, tensorboard=False)


def test_evaluation_results_carry_no_gradient(run_dir):
    model = pixelzoo.create_model("gated_pixelcnn", (1, 4, 4), 5, channels=4, n_layers=1, first_kernel_size=3)
    x = torch.randint(0, 5, (2, 1, 4, 4))
    assert not model.bits_per_dim(x).requires_grad and model.log_prob(x).requires_grad
    gray = pixelzoo.create_model("grayscale_pixelcnn", (3, 4, 4), 8, gray_levels=4,
                                 prior={"channels": 4, "n_layers": 1, "first_kernel_size": 3},
                                 conditional={"nr_filters": 4}, embedding={"channels": 4, "n_blocks": 1,
                                                                          "out_channels": 2})
    x3 = torch.randint(0, 8, (2, 3, 4, 4))
    assert not gray.bits_per_dim(x3).requires_grad
    assert not any(v.requires_grad for v in gray.bits_per_dim_parts(x3).values())


def test_threads_from_the_option_the_environment_or_the_cores(monkeypatch, capsys):
    from pixelzoo import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "machine_load", lambda: 0.2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")          # torchrun's processes share the cores
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "machine_load", lambda: 5.7)   # other jobs keep 6 of the 8 cores busy
    assert threads.default_threads() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "machine_load", lambda: 30.0)
    assert threads.default_threads() == 1
    monkeypatch.setenv("PIXELZOO_THREADS", "3")
    try:
        assert threads.set_threads() == 3 and torch.get_num_threads() == 3
        assert threads.set_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("PIXELZOO_THREADS", "two")
        with pytest.raises(pixelzoo.ConfigError, match="PIXELZOO_THREADS must be a positive integer"):
            threads.set_threads()
        assert main(["datasets"]) == 2
        assert "PIXELZOO_THREADS must be a positive integer, got 'two'" in capsys.readouterr().err
        assert main(["datasets", "--threads", "1"]) == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_numpy_blas_runs_one_thread_while_one_image_steps_on_numpy():
    """NumPy's OpenBLAS at one thread inside ``numpy_blas_one_thread`` (the sampler's loop for a stepper
    on NumPy views) and as before after it; PyTorch's threads untouched."""
    from threadpoolctl import threadpool_info

    from pixelzoo import threads

    def openblas():
        return [lib["num_threads"] for lib in threadpool_info() if lib["internal_api"] == "openblas"]

    before, torch_threads = openblas(), torch.get_num_threads()
    if not before:
        pytest.skip("NumPy is not linked against OpenBLAS here")
    with threads.numpy_blas_one_thread():
        assert set(openblas()) == {1}
        assert torch.get_num_threads() == torch_threads
        with threads.numpy_blas_one_thread():  # nested, or another thread's: still one until the last leaves
            assert set(openblas()) == {1}
        assert set(openblas()) == {1}
    assert openblas() == before
