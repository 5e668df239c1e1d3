"""Fault matrix, disks and sizes (issue 23, items 3, 4 and 7): a full disk, a file-size limit, a
read-only run directory, sizes the machine cannot hold and unclear inputs each end in a one-line
message with an exit code, never a traceback; the last checkpoint stays bit-identical and no
temporary file is left.

How each fault is made is said in the test: a small tmpfs (root only: `mount -t tmpfs -o size=...`)
for a full disk, a tmpfs remounted read-only (root) or `chmod` (others) for a read-only directory,
`RLIMIT_FSIZE` in a subprocess (SIGXFSZ ignored) for a file-size limit, and injected errors
(monkeypatch) where a real one cannot be made. Every test's docstring reads "case -> outcome; on
disk after"."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelzoo.cli import main
from pixelzoo.errors import StorageError

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=10", "--set", "train.eval_every=0", "--no-progress"]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "4", "--out", str(out), *TINY]) == 0
    return out


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def temporary_files(root) -> list[str]:
    """Files a writer leaves behind when it fails half-way (``.NAME.*.tmp``, probes)."""
    return sorted(str(p) for p in Path(root).rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name
                  or p.name.startswith(".pixelzoo-probe"))


def one_clean_line(err: str, *needles: str) -> str:
    """The error output is one line, no traceback, holding every needle."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` at ``where`` (root only; the test is skipped where it cannot be mounted)."""
    if not ROOT:
        pytest.skip("a small file system needs root (mount -t tmpfs)")
    where.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def read_only_copy(run_dir: Path, where: Path):
    """A copy of ``run_dir`` that cannot be written: as root a tmpfs remounted read-only (root
    ignores permissions), else the copy with its folders ``chmod``-ed to r-x."""
    if ROOT:
        with tmpfs(where, "4m"):
            copy = where / "run"
            shutil.copytree(run_dir, copy)
            if not _mount("-o", "remount,ro", str(where)):
                pytest.skip("cannot remount the tmpfs read-only")
            yield copy
    else:
        copy = where / "run"
        shutil.copytree(run_dir, copy)
        folders = [copy, *[p for p in copy.rglob("*") if p.is_dir()]]
        for p in folders:
            p.chmod(0o555)
        try:
            yield copy
        finally:
            for p in folders:
                p.chmod(0o755)


def fill(directory: Path, leave: int) -> None:
    """Fill the file system of ``directory`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(directory).free
    with open(directory / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


# ------------------------------------------------------------------------------------------ disk full
def test_checkpoint_on_a_full_disk(run_dir, tmp_path, capsys):
    """train --resume with the disk full while checkpointing (a 300 KB tmpfs, root) -> exit 2, one line
    naming the checkpoint and the free space; on disk: the previous checkpoint bit-identical, no
    temporary file."""
    with tmpfs(tmp_path / "mnt", "300k") as mnt:
        run = mnt / "run"
        shutil.copytree(run_dir, run)
        before = digest(run / "checkpoint.safetensors")
        fill(mnt, 24 * 1024)  # the metrics rows and a sample grid fit, a 56 KB checkpoint does not
        code = main(["train", "--resume", str(run), "--steps", "6", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        line = one_clean_line(err, "pixelzoo train: error:", "no space left", "free of")
        assert "checkpoint.safetensors" in line or str(run) in line
        assert digest(run / "checkpoint.safetensors") == before
        assert temporary_files(mnt) == []


def test_sample_on_a_full_disk(run_dir, tmp_path, capsys):
    """sample with the output's disk full (a 64 KB tmpfs filled, root) -> exit 2, one line naming the
    PNG or .npz and the free space; on disk: no partial file, no temporary file."""
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        fill(mnt, 0)
        code = main(["sample", str(run_dir), "-n", "4", "--out", str(mnt / "s"), "--no-progress"])
        line = one_clean_line(capsys.readouterr().err, "pixelzoo sample: error:", str(mnt / "s"), "no space left")
        assert code == 2 and "free of" in line
        assert not (mnt / "s.png").exists() and not (mnt / "s.npz").exists()
        assert temporary_files(mnt) == []


def test_injected_no_space_keeps_the_old_file(tmp_path):
    """save_tensors over an existing file when the write fails with ENOSPC (injected: os.fsync
    monkeypatched, any user) -> StorageError naming the path; on disk: the old file bit-identical,
    no temporary file."""
    from pixelzoo import io

    path = tmp_path / "weights.safetensors"
    io.save_tensors({"w": torch.ones(3)}, path)
    before = digest(path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(io.os, "fsync", no_space)
        with pytest.raises(StorageError, match=r"cannot write .*weights.safetensors: no space left on the device"):
            io.save_tensors({"w": torch.zeros(3)}, path)
    assert digest(path) == before and temporary_files(tmp_path) == []


def test_injected_safetensors_write_error_is_a_storage_error(tmp_path, monkeypatch):
    """a safetensors writer failing with '(os error 28)' (injected save_file, any user) -> StorageError
    with errno ENOSPC naming the path; on disk: nothing, no temporary file."""
    from safetensors import SafetensorError

    from pixelzoo import io

    def failing(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(io, "save_file", failing)
    with pytest.raises(StorageError) as info:
        io.save_tensors({"w": torch.ones(2)}, tmp_path / "x.safetensors")
    assert info.value.errno == errno.ENOSPC and "x.safetensors" in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ file-size limit
def test_checkpoint_over_the_file_size_limit(run_dir, tmp_path):
    """train --resume under RLIMIT_FSIZE smaller than a checkpoint (a subprocess, SIGXFSZ ignored)
    -> exit 2, one line 'file too large' naming the path; on disk: the previous checkpoint
    bit-identical, no temporary file."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = digest(run / "checkpoint.safetensors")
    limit = (run / "checkpoint.safetensors").stat().st_size // 2
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from pixelzoo.cli import main; "
            f"sys.exit(main(['train', '--resume', {str(run)!r}, '--steps', '6', '--no-progress']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    one_clean_line(p.stderr, "pixelzoo train: error:", "file too large", str(run))
    assert digest(run / "checkpoint.safetensors") == before
    assert temporary_files(run) == []


# ------------------------------------------------------------------------------------------ read-only
def test_sample_in_a_read_only_run(run_dir, tmp_path, capsys):
    """sample into a read-only run directory (tmpfs remounted ro as root, else chmod) -> exit 2 before
    sampling, one line naming RUN/samples; on disk: the run unchanged."""
    with read_only_copy(run_dir, tmp_path / "mnt") as run:
        code = main(["sample", str(run), "-n", "4", "--no-progress"])
        one_clean_line(capsys.readouterr().err, "pixelzoo sample: error:", str(run / "samples"))
        assert code == 2 and len(list((run / "samples").iterdir())) == 1


def test_inpaint_in_a_read_only_run(run_dir, tmp_path, capsys):
    """inpaint into a read-only run directory (tmpfs remounted ro as root, else chmod) -> exit 2 before
    sampling, one line naming RUN/samples; on disk: the run unchanged."""
    with read_only_copy(run_dir, tmp_path / "mnt") as run:
        code = main(["inpaint", str(run), "--images", "1", "--completions", "1", "--no-progress"])
        one_clean_line(capsys.readouterr().err, "pixelzoo inpaint: error:", str(run / "samples"))
        assert code == 2


def test_evaluate_in_a_read_only_run(run_dir, tmp_path, capsys):
    """evaluate a read-only run directory (tmpfs remounted ro as root, else chmod) -> the table printed,
    then exit 1 with a line saying eval.json could not be written; on disk: no eval.json."""
    with read_only_copy(run_dir, tmp_path / "mnt") as run:
        code = main(["evaluate", str(run), "-n", "20", "--no-progress"])
        out, err = capsys.readouterr()
        assert code == 1
        assert "test_bpd" in out and "metric" in out
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "eval.json" in errors[0] and "not saved" in errors[0]
        assert not (run / "eval.json").exists()


def test_plot_in_a_read_only_run(run_dir, tmp_path, capsys):
    """plot of a read-only run with its default output RUN/curves.png (tmpfs remounted ro as root,
    else chmod) -> exit non-zero, one line naming the path; on disk: no curves.png."""
    with read_only_copy(run_dir, tmp_path / "mnt") as run:
        code = main(["plot", str(run)])
        one_clean_line(capsys.readouterr().err, "pixelzoo plot: error:", str(run))
        assert code != 0 and not (run / "curves.png").exists()


def test_resume_a_read_only_run(run_dir, tmp_path, capsys):
    """train --resume of a read-only run (tmpfs remounted ro as root, else chmod) -> exit 2 before any
    training, one line naming the run directory; on disk: the checkpoint bit-identical."""
    with read_only_copy(run_dir, tmp_path / "mnt") as run:
        before = digest(run / "checkpoint.safetensors")
        code = main(["train", "--resume", str(run), "--steps", "6", "--no-progress"])
        one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", str(run))
        assert code == 2 and digest(run / "checkpoint.safetensors") == before


def test_train_out_on_a_read_only_file_system(tmp_path, capsys):
    """train --out in a read-only directory (tmpfs remounted ro as root, else chmod) -> exit 2, one line
    naming the run directory; on disk: nothing created."""
    if ROOT:
        with tmpfs(tmp_path / "mnt", "64k") as mnt:
            if not _mount("-o", "remount,ro", str(mnt)):
                pytest.skip("cannot remount the tmpfs read-only")
            code = main(["train", "gated_pixelcnn/digits", "--steps", "1", "--out", str(mnt / "new"), *TINY])
            one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", str(mnt / "new"), "read-only")
            assert code == 2 and not (mnt / "new").exists()
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        try:
            code = main(["train", "gated_pixelcnn/digits", "--steps", "1", "--out", str(tmp_path / "ro" / "new"), *TINY])
            one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", str(tmp_path / "ro" / "new"))
            assert code == 2
        finally:
            (tmp_path / "ro").chmod(0o755)


def test_train_out_onto_an_existing_file(tmp_path, capsys):
    """train --out naming an existing file -> exit 2, one line saying it is a file; on disk: the file
    unchanged."""
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code = main(["train", "gated_pixelcnn/digits", "--steps", "1", "--out", str(target), *TINY])
    one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", str(target), "is a file")
    assert code == 2 and target.read_text() == "keep me"


def test_sample_out_under_a_file(run_dir, tmp_path, capsys):
    """sample --out FILE/x (a path under a regular file) -> exit 2 before sampling, one line saying it
    is not a directory; on disk: the file unchanged."""
    (tmp_path / "f").write_text("x")
    code = main(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "f" / "s"), "--no-progress"])
    one_clean_line(capsys.readouterr().err, "pixelzoo sample: error:", str(tmp_path / "f"), "not a directory")
    assert code == 2 and (tmp_path / "f").read_text() == "x"


# ------------------------------------------------------------------------------------------ OS and memory errors
def test_an_os_error_is_one_line(monkeypatch, capsys):
    """an OSError from inside a command (injected EIO with a file name) -> exit 1, one line with the
    path and the reason; on disk: nothing."""
    from pixelzoo.commands import presets

    def broken(args):
        raise OSError(errno.EIO, "Input/output error", "/data/broken.bin")

    monkeypatch.setattr(presets, "run", broken)
    assert main(["presets"]) == 1
    one_clean_line(capsys.readouterr().err, "pixelzoo presets: error:", "/data/broken.bin: Input/output error")


def test_a_memory_error_is_one_line(monkeypatch, capsys):
    """a MemoryError (injected) and PyTorch's "can't allocate memory" RuntimeError -> exit 1, one line
    saying what to reduce; on disk: nothing."""
    from pixelzoo.commands import presets

    for exc in (MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                                            "memory: you tried to allocate 800000000000 bytes")):
        def broken(args, exc=exc):
            raise exc

        monkeypatch.setattr(presets, "run", broken)
        assert main(["presets"]) == 1
        one_clean_line(capsys.readouterr().err, "pixelzoo presets: error:", "out of memory", "reduce -n")


# ------------------------------------------------------------------------------------------ sizes checked first
def test_sample_count_over_the_cap(run_dir, capsys):
    """sample -n 99999999999 -> argparse error, exit 2, naming the cap; on disk: nothing."""
    with pytest.raises(SystemExit) as info:
        main(["sample", str(run_dir), "-n", "99999999999"])
    assert info.value.code == 2
    one_clean_line(capsys.readouterr().err.splitlines()[-1], "argument -n", "at most 1000000")


def test_sample_count_over_the_memory(run_dir, monkeypatch, capsys):
    """sample -n 1000000 on a machine with 10 MB available (injected available_memory) -> exit 2 before
    sampling, one line with the estimate; on disk: nothing."""
    from pixelzoo import threads

    monkeypatch.setattr(threads, "available_memory", lambda: 10 * 2 ** 20)
    assert main(["sample", str(run_dir), "-n", "1000000", "--no-progress"]) == 2
    one_clean_line(capsys.readouterr().err, "pixelzoo sample: error:", "-n 1000000", "needs about", "lower -n")


def test_scale_over_the_pil_limit(run_dir, tmp_path, capsys):
    """sample --scale 100000 (a grid over PIL's ~89 M pixel limit) -> exit 2 before sampling, one line
    naming PIL's limit; on disk: no grid."""
    assert main(["sample", str(run_dir), "-n", "4", "--scale", "100000", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    one_clean_line(capsys.readouterr().err, "pixelzoo sample: error:", "--scale 100000", "decompression-bomb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed,message", [("1e23", "expected an integer"), (str(2 ** 63), "at most 9223372036854775807"),
                                          ("-1", "an integer >= 0")])
def test_seed_out_of_range(run_dir, seed, message, capsys):
    """sample --seed 1e23 / 2**63 / -1 -> argparse error, exit 2, saying the range; on disk: nothing."""
    with pytest.raises(SystemExit) as info:
        main(["sample", str(run_dir), "--seed", seed])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_seed_at_the_top_of_the_range_works(run_dir, tmp_path, capsys):
    """sample --seed 2**63-1 -> exit 0; on disk: the PNG and .npz."""
    assert main(["sample", str(run_dir), "-n", "2", "--seed", str(2 ** 63 - 1), "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s.npz").is_file()


def test_threads_over_the_bound(capsys, monkeypatch):
    """--threads 1000 and PIXELZOO_THREADS=1000 -> exit 2 naming the bound (4 x os.cpu_count()); on
    disk: nothing."""
    bound = 4 * (os.cpu_count() or 1)
    with pytest.raises(SystemExit) as info:
        main(["presets", "--threads", str(bound + 1)])
    assert info.value.code == 2 and f"at most {bound}" in capsys.readouterr().err
    monkeypatch.setenv("PIXELZOO_THREADS", str(bound + 1))
    assert main(["presets"]) == 2
    one_clean_line(capsys.readouterr().err, "PIXELZOO_THREADS must be at most", "cores")


def test_model_too_large_for_the_memory(tmp_path, capsys):
    """train --set model.channels=10000000 -> exit 2 before allocating, one line with the parameter
    count and the memory estimate; on disk: no run directory."""
    code = main(["train", "gated_pixelcnn/digits", "--steps", "1", "--out", str(tmp_path / "big"), *TINY,
                 "--set", "model.channels=10000000"])
    one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", "parameters", "needs about", "model.channels")
    assert code == 2 and not (tmp_path / "big").exists()


def test_training_step_too_large_for_the_memory(tmp_path, monkeypatch, capsys):
    """train with weights that fit but a batch whose activations do not (injected available_memory of
    1 MB; the tiny digits Gated model's weights, gradients and Adam's moments need ~0.1 MB, a batch of
    32 ~2 MB) -> exit 2 before allocating, one line with the activations' estimate and lower
    train.batch_size; on disk: nothing."""
    from pixelzoo import threads

    monkeypatch.setattr(threads, "available_memory", lambda: 2 ** 20)
    assert main(["train", "gated_pixelcnn/digits", "--out", str(tmp_path / "r"), *TINY,
                 "--set", "train.batch_size=32"]) == 2
    one_clean_line(capsys.readouterr().err, "pixelzoo train: error:", "on batches of 32", "of activations",
                   "lower train.batch_size")
    assert not (tmp_path / "r").exists()


def test_out_name_kept_as_given(run_dir, tmp_path, capsys):
    """sample --out samples.v1.final -> samples.v1.final.png and .npz (not samples.v1.png); --out x.png
    -> x.png and x.npz."""
    assert main(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "samples.v1.final"), "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.v1.final.npz", "samples.v1.final.png"]
    assert main(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "x.png"), "--no-progress"]) == 0
    assert (tmp_path / "x.png").is_file() and (tmp_path / "x.npz").is_file()


# ------------------------------------------------------------------------------------------ unclear messages
def test_model_value_of_the_wrong_type(tmp_path, capsys):
    """train --set model.channels=abc -> exit 2, one line naming model.channels and 'an integer'; on
    disk: no run directory."""
    code = main(["train", "gated_pixelcnn/digits", "--out", str(tmp_path / "r"), *TINY, "--set", "model.channels=abc"])
    one_clean_line(capsys.readouterr().err, "model.channels must be an integer, got 'abc'")
    assert code == 2 and not (tmp_path / "r").exists()


def test_text_file_given_as_npz(tmp_path, capsys):
    """train --data npz --data-dir notes.npz (a text file) -> exit 2, one line saying it is not an .npz
    archive (a text file); on disk: no run directory."""
    bad = tmp_path / "notes.npz"
    bad.write_text("x_train,x_test\n1,2\n")
    code = main(["train", "gated_pixelcnn/digits", "--data", "npz", "--data-dir", str(bad), "--out", str(tmp_path / "r"),
                 *TINY])
    line = one_clean_line(capsys.readouterr().err, str(bad), "is not an .npz archive", "text file")
    assert code == 2 and "pickled" not in line and not (tmp_path / "r").exists()


def test_text_file_given_as_samples_npz(tmp_path):
    """colorize/upscale/reconstruct IMAGES and evaluate --samples given a text file or a .npy -> an
    error saying it is not an .npz archive."""
    from pixelzoo.commands.colorize_upscale import given_images
    from pixelzoo.commands.evaluate import load_samples
    from pixelzoo.errors import ConfigError, DataError

    bad = tmp_path / "s.npz"
    bad.write_text("hello\n")
    with pytest.raises(ConfigError, match="is not an .npz archive"):
        given_images(str(bad), {}, 4, 0)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(DataError, match="single .npy array, not an .npz archive"):
        load_samples(tmp_path / "a.npy", (1, 8, 8), 17, 10)


def test_empty_images_npz(tmp_path):
    """an images .npz holding no images (shape (0, 1, 8, 8)) given to colorize/upscale/reconstruct or
    evaluate --samples -> an error saying it holds no images (not a request for --class)."""
    from pixelzoo.commands.colorize_upscale import given_images
    from pixelzoo.commands.evaluate import load_samples
    from pixelzoo.errors import ConfigError, DataError

    path = tmp_path / "empty.npz"
    np.savez(path, images=np.zeros((0, 1, 8, 8), np.uint8), labels=np.zeros(0, np.int64))
    with pytest.raises(ConfigError, match="holds no images"):
        given_images(str(path), {}, 4, 0)
    with pytest.raises(DataError, match="holds no images"):
        load_samples(path, (1, 8, 8), 17, 10)


@pytest.mark.parametrize("content", ["[]", "[1, 2]", '{"model": []}', "3"])
def test_config_json_not_an_object(run_dir, tmp_path, content, capsys):
    """a run whose config.json is a list, a number, or lacks the model/data objects -> exit 2, one line
    naming the file and what is expected; on disk: unchanged."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "config.json").write_text(content)
    assert main(["sample", str(run), "-n", "2", "--no-progress"]) == 2
    one_clean_line(capsys.readouterr().err, str(run / "config.json"), "expected a JSON object with 'model' and 'data'")
    assert (run / "config.json").read_text() == content
