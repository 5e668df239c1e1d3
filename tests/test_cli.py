"""The command line end to end on the embedded digits data, and its error messages."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pixelzoo.cli import main

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=10", "--set", "train.eval_every=0", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "6", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_run(run_dir, capsys):
    assert (run_dir / "checkpoint.safetensors").is_file()
    assert (run_dir / "samples" / "step_0000006.png").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["channels"] == 8 and config["train"]["steps"] == 6


def test_resume_continues(run_dir, capsys):
    assert main(["train", "--resume", str(run_dir), "--steps", "8", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8 or rows[-2]["step"] == 8


def test_sample_evaluate_inpaint(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "-n", "6", "--class", "3", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert (tmp_path / "s.png").is_file()
    arr = np.load(tmp_path / "s.npz")
    assert arr["images"].shape == (6, 1, 8, 8) and (arr["labels"] == 3).all() and arr["images"].max() < 17
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["test_images"] == 360 and 0 < result["test_bpd"] < 5
    assert main(["inpaint", str(run_dir), "--images", "2", "--completions", "3", "--out", str(tmp_path / "i.png"), "--no-progress"]) == 0
    assert (tmp_path / "i.png").is_file()


def test_listing_commands(capsys):
    assert main(["presets"]) == 0
    assert "gated_pixelcnn/digits" in capsys.readouterr().out
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out


def test_errors_are_clear_and_exit_2(tmp_path, capsys):
    assert main(["train", "no/such-preset", "--no-progress"]) == 2
    assert "neither a preset" in capsys.readouterr().err
    assert main(["sample", str(tmp_path)]) == 2
    assert "not a pixelzoo run directory" in capsys.readouterr().err
    assert main(["train", "gated_pixelcnn/digits", "--set", "bogus", "--no-progress"]) == 2
    assert "--set 'bogus'" in capsys.readouterr().err
    assert main(["train", "gated_pixelcnn/digits", "--data", "mnist-idx", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    assert "lacks train-images-idx3-ubyte" in capsys.readouterr().err


def test_console_entry_points_help():
    for cmd in (["pixelzoo"], [sys.executable, "-m", "pixelzoo"]):
        out = subprocess.run([*cmd, "train", "--help"], capture_output=True, text=True, check=True).stdout
        assert "--resume" in out and "--set" in out


def test_sample_grid_scale_and_one_labelled_class_per_column(run_dir, tmp_path, capsys):
    """13 samples of a 10-class model: 10 labelled columns, the last row ragged (classes 0-2 only);
    --scale sets the enlargement, by default the grid is at least 512 pixels wide."""
    from PIL import Image

    assert main(["sample", str(run_dir), "-n", "13", "--scale", "2", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    grid = np.asarray(Image.open(tmp_path / "s.png").convert("L")).astype(int)
    strip = grid.shape[0] - (1 + 2 * 17)
    assert grid.shape[1] == 1 + 10 * 17 and 8 <= strip <= 30
    assert all(grid[:strip, 1 + c * 17:(c + 1) * 17].min() < 128 for c in range(10))   # a label over every column
    assert (grid[strip + 18:strip + 34, 1 + 3 * 17:] == 255).all()                       # ragged last row
    assert list(np.load(tmp_path / "s.npz")["labels"]) == [*range(10), 0, 1, 2]
    assert main(["sample", str(run_dir), "-n", "13", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    assert Image.open(tmp_path / "d.png").size[0] == 1 + 10 * (8 * 7 + 1)                 # >= 512 wide
    with pytest.raises(SystemExit) as e:
        main(["sample", str(run_dir), "--scale", "0", "--no-progress"])
    assert e.value.code == 2 and "argument --scale: must be a positive integer" in capsys.readouterr().err


def test_plot_reads_a_real_run(run_dir, tmp_path, capsys):
    from pixelzoo.commands.plot import plot_runs

    assert main(["plot", str(run_dir), "--out", str(tmp_path / "curves.png")]) == 0
    assert "curves.png" in capsys.readouterr().out and (tmp_path / "curves.png").stat().st_size > 1000
    r = plot_runs([run_dir], out=tmp_path / "again.png")
    assert r["panels"] == ["train_bpd", "test_bpd"] and str(run_dir) in r["series"]["train_bpd"]
    assert r["full"]["test_bpd"][str(run_dir)][0][-1] >= 6    # the final evaluation on the whole test set
