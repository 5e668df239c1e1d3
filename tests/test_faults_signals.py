"""Faults that schedulers and users cause while a run trains: signals (by subprocess, as SLURM,
Kubernetes, `timeout` and Ctrl-C send them), two writers on one run (the lock), metrics left by a
killed run, a finished run resumed again, a broken line in metrics.jsonl.

Each test's docstring is one row of the fault matrix: the case, then the expected outcome.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pixelzoo.cli import build_parser, main
from pixelzoo.errors import TrainingError, TrainingStopped
from pixelzoo.training import Trainer, resume_run, start_run
from pixelzoo.training.checkpoint import read_checkpoint
from pixelzoo.training.lock import RunLock

TINY = {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3}
SLOW = {"name": "gated_pixelcnn", "channels": 64, "n_layers": 8, "first_kernel_size": 3}  # ~0.1 s a step


def config(steps=100_000, model=TINY, **train):
    base = {"steps": steps, "batch_size": 16, "lr": 3e-3, "polyak": 0.9, "log_every": 1, "eval_every": 0,
            "checkpoint_every": 50, "num_samples": 0, "flip": True, "eval_images": 50, "final_eval_images": 50}
    base.update(train)
    return {"model": dict(model), "data": {"name": "digits"}, "train": base}


def launch(tmp_path, cfg, *args, name="run"):
    """`python -m pixelzoo train CONFIG --out RUN` in a subprocess (run directory, process)."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    run = tmp_path / name
    proc = subprocess.Popen([sys.executable, "-m", "pixelzoo", "train", str(path), "--out", str(run), "--no-progress",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    return run, proc


def wait_rows(run, proc, n=3, timeout=120):
    """Wait until the run has logged ``n`` rows (the training loop runs, handlers installed)."""
    path, t0 = run / "metrics.jsonl", time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run logged nothing in time")


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def training_steps(run):
    return [r["step"] for r in rows(run) if "train_loss" in r]


def leftovers(run):
    """Temporary files and locks left in a run directory (there should be none)."""
    return sorted(p.name for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".lock")


def step_of(run):
    return read_checkpoint(run / "checkpoint.safetensors")[0]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)],
                         ids=["SIGTERM", "SIGINT", "SIGUSR1"])
def test_a_signal_finishes_the_step_checkpoints_and_prints_the_resume_command(tmp_path, sig, code):
    """SIGTERM / SIGINT / SIGUSR1 to `pixelzoo train` | exit 143 / 130 / 138, "stopped by SIG... at step S",
    the resume command; on disk: checkpoint at step S, metrics.jsonl with each step once up to S, no .lock or .tmp"""
    run, proc = launch(tmp_path, config())
    wait_rows(run, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    name = signal.Signals(sig).name
    assert f"{name} received" in err and f"stopped by {name} at step" in err, err
    assert f"Resume with: pixelzoo train --resume {run}" in err and "Traceback" not in err, err
    stopped = int(err.split(f"stopped by {name} at step ")[1].split()[0])
    assert step_of(run) == stopped
    steps = training_steps(run)
    assert len(steps) == len(set(steps)) and max(steps) == stopped
    assert leftovers(run) == []


def test_a_second_signal_aborts_at_once_and_the_previous_checkpoint_stays(tmp_path):
    """SIGTERM, then SIGTERM again while the step finishes | exit 143 at once, "aborted at once by a second
    signal"; on disk: the previous checkpoint intact (a step of checkpoint_every), no .tmp or .lock"""
    run, proc = launch(tmp_path, config(model=SLOW, batch_size=64, checkpoint_every=2))
    wait_rows(run, proc, n=3)
    proc.send_signal(signal.SIGTERM)
    seen = ""
    while "received" not in seen:  # the first signal is noted: the step is finishing
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == 143, err
    assert "aborted at once by a second signal (SIGTERM)" in err and "stopped by SIGTERM at step" not in err, err
    assert "Resume with: pixelzoo train --resume" in err and "Traceback" not in err
    assert step_of(run) % 2 == 0 and step_of(run) >= 2  # a regular checkpoint, readable
    assert leftovers(run) == []


def test_python_api_signal_stops_with_training_stopped_and_restores_handlers(tmp_path, monkeypatch):
    """SIGUSR1 during `start_run(...).train()` in Python | TrainingStopped(exit_code=138) naming the checkpoint and
    the resume command, the caller's signal handlers back; on disk: checkpoint at the step, no .lock"""
    real_loss = Trainer.loss

    def loss(self, x, y, **extras):
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)
        return real_loss(self, x, y, **extras)

    monkeypatch.setattr(Trainer, "loss", loss)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    runner = start_run(config(10), tmp_path / "r", progress=False, tensorboard=False)
    with pytest.raises(TrainingStopped, match=r"stopped by SIGUSR1 at step 4 of 10: checkpoint written to .*"
                                              r"Resume with: pixelzoo train --resume") as stopped:
        runner.train()
    assert stopped.value.exit_code == 138
    assert {s: signal.getsignal(s) for s in before} == before
    assert step_of(runner.run_dir) == 4 and leftovers(runner.run_dir) == []
    monkeypatch.setattr(Trainer, "loss", real_loss)
    assert resume_run(runner.run_dir, progress=False, tensorboard=False).train()["step"] == 10


def test_a_signal_in_one_part_checkpoints_that_part_and_stops_the_composite(tmp_path, monkeypatch):
    """SIGTERM while a composite trains its first part | TrainingStopped(143) naming the part, resume command with
    RUN; on disk: that part's checkpoint at the step, later parts untrained; the resume trains the rest"""
    real_loss = Trainer.loss

    def loss(self, x, y, **extras):
        if self.run_dir.name == "prior" and self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, x, y, **extras)

    cfg = config(5, polyak=None)
    cfg["model"] = {"name": "grayscale_pixelcnn", "gray_levels": 4,
                    "prior": {**TINY, "out_hidden": 8},
                    "conditional": {"name": "pixelcnnpp", "nr_resnet": 1, "nr_filters": 8, "dropout": 0.0,
                                    "head_options": {"n_mix": 2}},
                    "embedding": {"channels": 8, "n_blocks": 2, "out_channels": 4}}
    monkeypatch.setattr(Trainer, "loss", loss)
    run = tmp_path / "comp"
    runner = start_run(cfg, run, progress=False, tensorboard=False)
    with pytest.raises(TrainingStopped, match=r"at step 3 of 5 \(part prior\).*--resume " + str(run)) as stopped:
        runner.train()
    assert stopped.value.exit_code == 143
    assert step_of(run / "parts" / "prior") == 3
    assert not (run / "parts" / "conditional" / "checkpoint.safetensors").exists() and leftovers(run) == []
    monkeypatch.setattr(Trainer, "loss", real_loss)
    result = resume_run(run, progress=False, tensorboard=False).train()
    assert result["parts"]["prior"]["step"] == 5 and result["parts"]["conditional"]["step"] == 5


def test_second_process_on_a_run_is_refused_naming_the_holder(tmp_path, capsys):
    """`pixelzoo train --resume RUN --steps N` while another process trains RUN | exit 2, "being trained by process
    PID on HOST since TIME"; on disk: nothing written by it (config.json unchanged); the lock goes with its holder"""
    run, proc = launch(tmp_path, config())
    try:
        wait_rows(run, proc)
        cfg_before = (run / "config.json").read_text()
        assert main(["train", "--resume", str(run), "--steps", "999999", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"is being trained by process {proc.pid} on {socket.gethostname()} since" in err, err
        assert (run / "config.json").read_text() == cfg_before
        with pytest.raises(TrainingError, match=f"process {proc.pid}"):
            resume_run(run, progress=False, tensorboard=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143 and leftovers(run) == []


def test_a_runner_holds_the_lock_until_train_ends(tmp_path):
    """A second `resume_run` in the same process while the first runner has not trained | TrainingError naming
    this process; after the first runner trains (or `close()`), resuming works; on disk: no .lock after"""
    runner = start_run(config(3), tmp_path / "r", progress=False, tensorboard=False)
    assert (runner.run_dir / ".lock").is_file()
    with pytest.raises(TrainingError, match=f"being trained by process {os.getpid()}"):
        resume_run(runner.run_dir, progress=False, tensorboard=False)
    runner.train()
    assert leftovers(runner.run_dir) == []
    again = resume_run(runner.run_dir, steps=4, progress=False, tensorboard=False)
    again.close()
    assert leftovers(runner.run_dir) == []


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    """RUN/.lock left by a process that died (SIGKILL) | resume says "taking over the stale lock ... of process
    PID" and trains; on disk: the run continued, no .lock after"""
    runner = start_run(config(3), tmp_path / "r", progress=False, tensorboard=False)
    runner.train()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (runner.run_dir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "node7", "since": "2024-01-01T00:00"}))
    capsys.readouterr()
    assert resume_run(runner.run_dir, steps=5, progress=False, tensorboard=False).train()["step"] == 5
    err = capsys.readouterr().err
    assert f"taking over the stale lock {runner.run_dir / '.lock'} of process {dead.pid} on node7" in err, err
    assert leftovers(runner.run_dir) == []


def test_a_held_lock_is_refused_even_when_its_file_names_no_one(tmp_path):
    """A lock taken with RunLock by another holder | a second RunLock on the directory raises TrainingError; after
    release the file is gone and it can be taken"""
    first = RunLock(tmp_path).acquire()
    with pytest.raises(TrainingError, match="is being trained by process"):
        RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire().release()


def test_sigkill_then_resume_drops_the_rows_past_the_checkpoint(tmp_path):
    """SIGKILL between checkpoints, then `--resume` | the rows logged after the checkpoint are dropped (said on
    stderr), the stale lock is taken over; on disk: metrics.jsonl holds each step once"""
    run, proc = launch(tmp_path, config(checkpoint_every=10))
    wait_rows(run, proc, n=25)
    proc.kill()
    proc.communicate()
    at = step_of(run)
    if max(training_steps(run)) <= at:  # the kill landed right after a checkpoint: a row past it, as a kill leaves
        last = [r for r in rows(run) if r["step"] == max(training_steps(run))][-1]
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({**last, "step": at + 1}) + "\n")
    assert max(training_steps(run)) > at
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 9999, "train_lo')  # a line cut short by the kill
    done = subprocess.run([sys.executable, "-m", "pixelzoo", "train", "--resume", str(run), "--steps", str(at + 30),
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"past the checkpoint's step {at}" in done.stderr and "taking over the stale lock" in done.stderr
    steps = training_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == at + 30
    assert all(r["step"] <= at + 30 for r in rows(run)) and leftovers(run) == []


def test_resuming_a_finished_run_supersedes_its_final_evaluation(tmp_path):
    """`resume_run(RUN).train()` of a finished run without steps, twice | it re-evaluates; on disk: one final
    evaluation row (test_bpd_full) in metrics.jsonl, not one per resume"""
    runner = start_run(config(3), tmp_path / "r", progress=False, tensorboard=False)
    runner.train()
    for _ in range(2):
        assert resume_run(runner.run_dir, progress=False, tensorboard=False).train()["step"] == 3
    finals = [r for r in rows(runner.run_dir) if "test_bpd_full" in r]
    assert len(finals) == 1 and finals[0]["step"] == 3
    steps = training_steps(runner.run_dir)
    assert steps == sorted(set(steps))


def test_plot_skips_a_broken_metrics_line_with_a_warning(tmp_path, capsys):
    """`pixelzoo plot RUN` with a line of metrics.jsonl cut short | exit 0, a warning naming the file and line;
    on disk: the PNG written, metrics.jsonl untouched"""
    runner = start_run(config(4), tmp_path / "r", progress=False, tensorboard=False)
    runner.train()
    metrics = runner.run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:12]
    metrics.write_text("\n".join(lines) + "\n")
    assert main(["plot", str(runner.run_dir), "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert f"warning: {metrics}, line 2: not valid JSON" in err and "skipped" in err, err
    assert (tmp_path / "p.png").is_file() and metrics.read_text() == "\n".join(lines) + "\n"


def test_train_help_documents_the_exit_codes():
    """`pixelzoo train --help` | its epilog names SIGTERM, SIGINT, SIGUSR1 and the exit codes 143, 130, 138"""
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "SIGUSR1" in text and "143, 130, 138" in text
