"""``pixelzoo plot``: training and test curves of several runs in one PNG, the parts of a composite
run as lines of their own, and clear errors (exit 2) for runs it cannot read."""

import json

from PIL import Image

from pixelzoo.cli import main
from pixelzoo.commands.plot import curves, plot_runs
from pixelzoo.training.logger import MetricsLogger


def write_run(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = MetricsLogger(run_dir, tensorboard=False)
    for row in rows:
        logger.log(**row)
    logger.close()
    return run_dir


def likelihood_run(run_dir, offset=0.0, steps=(2, 4, 6)):
    """Rows as the trainer writes them: training means, periodic test bits/dim, the final full test."""
    rows = []
    for s in steps:
        rows.append(dict(step=s, train_loss=2.0 - 0.1 * s + offset, train_bpd=2.9 - 0.1 * s + offset,
                         images_per_s=100.0, lr=1e-3))
        rows.append(dict(step=s, test_bpd=3.0 - 0.1 * s + offset))
    rows.append(dict(step=steps[-1], test_bpd_full=2.5 + offset))
    return write_run(run_dir, rows)


def is_png(path, min_width=400):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_width and im.size[1] >= 200, im.size
        return im.size


def test_plot_command_writes_the_curves_of_two_runs(tmp_path, capsys):
    a = likelihood_run(tmp_path / "a")
    b = likelihood_run(tmp_path / "b", offset=0.5, steps=(3, 6, 9, 12))
    out = tmp_path / "curves.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert is_png(out) == (1200, 420)                 # two panels: training and test bits/dim
    r = plot_runs([a, b], out=tmp_path / "again.png")
    assert r["panels"] == ["train_bpd", "test_bpd"]
    assert set(r["series"]["train_bpd"]) == set(r["series"]["test_bpd"]) == {str(a), str(b)}
    assert r["series"]["train_bpd"][str(a)] == ([2, 4, 6], [2.7, 2.5, 2.3])
    steps, values = r["series"]["test_bpd"][str(b)]
    assert steps == [3, 6, 9, 12] and values == [3.2, 2.9, 2.6, 2.3]
    assert r["full"]["test_bpd"] == {str(a): ([6], [2.5]), str(b): ([12], [3.0])}
    # chosen panels; default output in the first run
    r = plot_runs([a, b], metrics="train_loss,lr")
    assert r["panels"] == ["train_loss", "lr"] and r["png"] == str(a / "curves.png")
    is_png(a / "curves.png")


def test_a_model_without_likelihood_shows_its_loss_next_to_bits_per_dim(tmp_path):
    a = likelihood_run(tmp_path / "softmax")
    iqn = write_run(tmp_path / "iqn", [dict(step=s, train_loss=1.0 / s) for s in (1, 2, 3)] +
                    [dict(step=3, test_loss=0.4), dict(step=3, test_loss_full=0.45)])
    r = plot_runs([a, iqn], out=tmp_path / "p.png")
    assert r["panels"] == ["train_loss", "train_bpd", "test_bpd", "test_loss"]
    assert list(r["series"]["train_loss"]) == [str(iqn)] and list(r["series"]["train_bpd"]) == [str(a)]
    assert r["series"]["test_loss"] == {str(iqn): ([3], [0.4])}
    assert is_png(tmp_path / "p.png") == (2400, 420)


def test_a_composite_run_plots_every_part(tmp_path, capsys):
    run = tmp_path / "gray"
    likelihood_run(run / "parts" / "prior")
    likelihood_run(run / "parts" / "conditional", offset=1.0, steps=(5, 10))
    write_run(run, [dict(step=0, test_bpd_full=4.1, test_bpd_prior=1.0, test_bpd_conditional=3.1)])
    flat = likelihood_run(tmp_path / "flat")
    r = plot_runs([run, flat], out=tmp_path / "c.png")
    labels = {f"{run}/prior", f"{run}/conditional", str(flat)}
    assert set(r["series"]["train_bpd"]) == set(r["series"]["test_bpd"]) == labels
    assert r["series"]["test_bpd"][f"{run}/conditional"] == ([5, 10], [3.5, 3.0])
    assert r["finals"] == {str(run): 4.1}
    is_png(tmp_path / "c.png")
    assert main(["plot", str(run), "--out", str(tmp_path / "d.png")]) == 0
    assert f"{run}/conditional" in capsys.readouterr().out


def test_a_resumed_run_keeps_the_last_value_of_a_step():
    rows = [dict(step=1, train_bpd=3.0), dict(step=2, train_bpd=2.0), dict(step=2, train_bpd=2.2),
            dict(step=3, train_bpd=1.5, note="text", nan=float("nan"))]
    assert curves(rows) == {"train_bpd": ([1, 2, 3], [3.0, 2.2, 1.5])}


def test_bad_runs_are_clear_errors_with_exit_2(tmp_path, capsys):
    good = likelihood_run(tmp_path / "good")

    def fails(*args, says):
        assert main(["plot", *map(str, args), "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
        assert not (tmp_path / "x.png").exists()

    fails(good, tmp_path / "missing", says=f"{tmp_path / 'missing'}: no such run directory")
    (tmp_path / "bare").mkdir()
    fails(tmp_path / "bare", says="no metrics.jsonl")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("\n")
    fails(good, tmp_path / "empty", says=f"{tmp_path / 'empty' / 'metrics.jsonl'}: no rows")
    corrupt = likelihood_run(tmp_path / "corrupt")
    (corrupt / "metrics.jsonl").write_text(json.dumps({"train_bpd": 1.0}) + "\n")  # its only line is broken
    fails(corrupt, says=f"{corrupt / 'metrics.jsonl'}, line 1: not a JSON object with an integer 'step', skipped")
    fails(good, "--metrics", "test_bpd,fid", says="unknown metric(s) ['fid']")
    fails(good, "--metrics", "test_loss", says="nothing to plot")
    fails(good, good, says="is given twice")


def test_a_resumed_run_logs_each_step_once_in_tensorboard_too(tmp_path):
    """A run killed at step 5 after its checkpoint of step 3, then resumed: metrics.jsonl and
    TensorBoard both hold steps 1-3 of the first process and step 4 of the second, once each."""
    import time

    import pytest

    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    first = MetricsLogger(tmp_path)
    for step in range(1, 6):
        first.log(step, train_loss=float(step))
    first.close()
    # TensorBoard reads event files in name order, and a name starts with its second: a resumed
    # process starts at least a second later than the one it follows
    time.sleep(1.1)
    second = MetricsLogger(tmp_path)
    assert second.keep_until(3) == 2
    second.log(4, train_loss=40.0)
    second.close()
    assert [(r["step"], r["train_loss"]) for r in second.read()] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    events = accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
