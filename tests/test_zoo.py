"""The zoo (``pixelzoo.zoo``, ``pixelzoo zoo``): entries found offline in the package, their
checksums verified at every load (a damaged, missing or unlisted file is a clear error), the
shipped weights giving the figure on their card, export of a trained run, and ``zoo:NAME`` in the
commands (outputs in ./zoo-NAME)."""

import json
import shutil

import pytest
import torch

import pixelzoo
from pixelzoo.cli import main
from pixelzoo.commands.zoo import export_entry
from pixelzoo.errors import CheckpointError, ConfigError
from pixelzoo.training import load_data, load_run_model
from pixelzoo.training.held_out import dataset_bits_per_dim
from pixelzoo.zoo import card, list_zoo, verify, zoo_entry, zoo_root

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=0", "--set", "train.eval_every=0", "--no-progress"]


def test_the_shipped_zoo_is_listed_verified_and_small(capsys):
    assert "digits" in list_zoo()
    assert main(["zoo"]) == 0 and "zoo:digits" in capsys.readouterr().out
    assert main(["zoo", "--verify"]) == 0
    size = sum(p.stat().st_size for p in zoo_root().rglob("*") if p.is_file())
    assert size < 60 * 2 ** 20  # the whole zoo under 60 MB
    assert main(["zoo", "digits"]) == 0
    out = capsys.readouterr().out
    for field in ("command: pixelzoo train gated_pixelcnn/digits", "commit:", "wall_seconds:", "test_bpd_full:",
                  "sample_metrics:", "images_seen:"):
        assert field in out


def test_the_shipped_weights_give_the_figure_on_their_card():
    """load_pretrained('zoo:digits') (float16 weights widened) scores the whole test set as its card says."""
    model = pixelzoo.load_pretrained("zoo:digits")
    c = card("digits")
    test = load_data(c["data"]).test
    assert len(test) == c["test_images"]
    key = "test_bpd_float16" if c["weights"] == "float16" else "test_bpd_full"
    assert dataset_bits_per_dim(model, test, 256) == pytest.approx(c[key], abs=1e-4)
    run_model, config = load_run_model("zoo:digits")
    assert config["data"] == c["data"] and torch.equal(next(run_model.parameters()), next(model.parameters()))


@pytest.fixture
def own_zoo(tmp_path, monkeypatch):
    """A copy of the shipped zoo under $PIXELZOO_ZOO, to damage."""
    root = tmp_path / "zoo"
    shutil.copytree(zoo_root(), root)
    monkeypatch.setenv("PIXELZOO_ZOO", str(root))
    return root


def test_a_damaged_entry_is_a_clear_error_never_a_silent_load(own_zoo, tmp_path, capsys, monkeypatch):
    weights = own_zoo / "digits" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the last weight
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors does not match its checksum"):
        pixelzoo.load_pretrained("zoo:digits")
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "zoo:digits", "-n", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not match its checksum" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "zoo-digits").exists()
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors missing"):
        verify(own_zoo / "digits")
    (own_zoo / "digits" / "model.safetensors").write_bytes(b"x")
    (own_zoo / "digits" / "extra.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="extra.bin not listed"):
        verify(own_zoo / "digits")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ConfigError, match="no zoo model 'digit'; did you mean digits"):
        zoo_entry("zoo:digit")
    assert main(["sample", "zoo:digit", "-n", "1"]) == 2


def test_zoo_models_work_in_the_commands_with_outputs_in_zoo_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "zoo:digits", "-n", "4", "--no-progress"]) == 0
    assert main(["score", "zoo:digits", "digits", "-n", "8", "--no-progress"]) == 0
    assert main(["evaluate", "zoo:digits", "-n", "16", "--no-progress"]) == 0
    assert main(["plot", "zoo:digits"]) == 0
    local = tmp_path / "zoo-digits"
    assert list((local / "samples").glob("*.png")) and list((local / "scores").glob("*.csv"))
    assert json.loads((local / "eval.json").read_text())["step"] == card("digits")["steps"]
    assert (local / "curves.png").is_file()
    assert not list(zoo_entry("digits").glob("eval*"))  # nothing written into the package


def test_export_entry_round_trip(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "3", "--out", str(run), *TINY]) == 0
    entry = export_entry(run, "tiny", {"command": "test"}, root=tmp_path / "zoo", samples=4)
    verify(entry)
    c = json.loads((entry / "card.json").read_text())
    assert c["command"] == "test" and c["model"] == "gated_pixelcnn" and c["test_images"] == 360
    # float16 exactly when it moves the whole test set's bits/dim by under 0.001
    assert c["float16_change"] == pytest.approx(abs(c["test_bpd_float16"] - c["test_bpd_full"]), abs=1.0001e-4)
    assert (c["weights"] == "float16") == (c["float16_change"] < 1e-3)
    model, _ = load_run_model(run)
    shipped = pixelzoo.load_pretrained(entry)
    for (name, a), b in zip(model.state_dict().items(), shipped.state_dict().values()):
        tol = 1e-3 * max(1.0, float(a.abs().max())) if c["weights"] == "float16" else 0.0
        torch.testing.assert_close(b, a, rtol=0, atol=tol, msg=name)
    assert (entry / "samples.png").is_file() and (entry / "metrics.jsonl").is_file()
    again = export_entry(run, "tiny", {"command": "again"}, root=tmp_path / "zoo", samples=4)  # replaces it whole
    assert json.loads((again / "card.json").read_text())["command"] == "again"
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["tiny"]


def test_export_of_a_composite_without_a_likelihood_gives_each_part_its_figure(tmp_path, capsys, monkeypatch):
    """VQ-VAE-2 has no likelihood of x: its card holds each part's figure on the whole test set (the
    autoencoder's loss, each prior's bits per code), measured as training measures them, in float32
    and float16; float16 is kept only when every part moves by under 0.001."""
    config = {"model": {"name": "vqvae2",
                        "autoencoder": dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=8, num_codes=16,
                                            levels=[2, 2]),
                        "top_prior": dict(channels=8, n_blocks=1, kernel_size=3, attention_every=1, heads=2,
                                          out_res_blocks=1, code_embedding=6, dropout=0.0),
                        "bottom_prior": dict(channels=8, n_blocks=1, kernel_size=3, code_embedding=6, dropout=0.0,
                                             cond_embedding=4, cond_channels=8, cond_res_channels=8, cond_blocks=1,
                                             spatial_channels=4)},
              "data": {"name": "digits"}, "train": {"steps": 3, "lr": 0.001, "num_samples": 0, "eval_every": 0}}
    path = tmp_path / "vq.json"
    path.write_text(json.dumps(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run), "--no-progress"]) == 0
    entry = export_entry(run, "vq", {"command": "test"}, root=tmp_path / "zoo", samples=4)
    c = json.loads((entry / "card.json").read_text())
    parts = {"autoencoder": "test_loss", "top_prior": "test_bpd", "bottom_prior": "test_bpd"}
    for part, key in parts.items():  # the figure each part's training wrote at its end, on the whole test set
        final = [json.loads(line) for line in (run / "parts" / part / "metrics.jsonl").read_text().splitlines()]
        assert c[f"{key}_{part}_full"] == pytest.approx(final[-1][f"{key}_full"], abs=1e-4)
    moved = max(abs(c[f"{key}_{p}_float16"] - c[f"{key}_{p}_full"]) for p, key in parts.items())
    assert c["float16_change"] == pytest.approx(moved, abs=1.0001e-4)  # the card's figures are rounded to 4 decimals
    assert (c["weights"] == "float16") == (c["float16_change"] < 1e-3)
    assert "test_bpd_full" not in c and "test_loss_full" not in c
    shipped = pixelzoo.load_pretrained(entry)  # an entry's folder: its checksums verified, float16 widened
    assert type(shipped).__name__ == "VQVAE2Model"
    monkeypatch.setenv("PIXELZOO_ZOO", str(tmp_path / "zoo"))
    assert main(["zoo"]) == 0 and "3 parts' figures" in capsys.readouterr().out
    assert main(["zoo", "vq"]) == 0
    out = capsys.readouterr().out
    assert all(f"{key}_{p}_full: " in out and f"{key}_{p}_float16: " in out for p, key in parts.items())
    weights = entry / "parts" / "top_prior" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="does not match its checksum"):  # never a silent load by path
        pixelzoo.load_pretrained(entry)


def test_update_card_keeps_the_entry_verified(own_zoo):
    from pixelzoo.commands.zoo import update_card

    before = card("digits")
    update_card("digits", {"sample_metrics": {"count": 1}}, root=own_zoo)
    verify(own_zoo / "digits")
    after = card("digits")
    assert after["sample_metrics"] == {"count": 1} and after["steps"] == before["steps"]
    (own_zoo / "digits" / "samples.png").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="samples.png does not match"):  # a damaged entry is not re-listed
        update_card("digits", {"x": 1}, root=own_zoo)
    assert "x" not in card("digits")


def test_the_floor_is_measured_on_the_images_the_model_was(monkeypatch):
    """A card's data floor for a model of padded images comes from the padded data set (and so from
    the feature network of that shape the model's samples are measured with)."""
    from pixelzoo.commands import evaluate

    seen = {}

    def load(name, data_dir=None, **options):
        seen.update(name=name, options=options)
        raise RuntimeError("loaded")

    monkeypatch.setattr(evaluate, "load_dataset", load)
    with pytest.raises(RuntimeError, match="loaded"):
        evaluate.evaluate_real("fashion-mnist", None, "fid", 10, progress=False, data_options={"pad_to": 32})
    assert seen == {"name": "fashion-mnist", "options": {"pad_to": 32}}


@pytest.mark.parametrize("command, name", [("reconstruct", "fashion-vqvae2"), ("upscale", "fashion-pyramid"),
                                           ("reconstruct", "fashion-agave-aiqn"), ("reconstruct", "fashion-defauw"),
                                           ("colorize", "patches-grayscale")])
def test_the_composite_entries_work_in_their_commands(tmp_path, monkeypatch, command, name):
    """Each composite of the zoo in the command it is for, its outputs in ./zoo-NAME, nothing written
    into the package; its card gives the steps of every part it trained."""
    monkeypatch.chdir(tmp_path)
    given = ["test", "-n", "2", "--per-image", "1"]
    assert main([command, f"zoo:{name}", *given, "--no-progress", "--threads", "1"]) == 0
    assert list((tmp_path / f"zoo-{name}").rglob("*.png"))
    verify(zoo_entry(name, check=False))
    c = card(name)
    assert set(c["steps"]) == set(c["images_seen"]) >= {p.name for p in (zoo_entry(name) / "parts").iterdir()}


def test_a_deterministic_reconstruction_is_the_models_own(tmp_path, monkeypatch, capsys):
    """`pixelzoo reconstruct` of a VQ-VAE-2: each given image next to model.reconstruct of it; one per image."""
    import numpy as np

    monkeypatch.chdir(tmp_path)
    assert main(["reconstruct", "zoo:fashion-vqvae2", "test", "-n", "3", "--no-progress", "--out", "r.png"]) == 0
    assert "each image, then its reconstruction" in capsys.readouterr().out
    saved = np.load(tmp_path / "r.npz")
    model, _ = load_run_model("zoo:fashion-vqvae2")
    given = torch.from_numpy(saved["given"]).long()
    assert given.shape == (3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(saved["images"]).long(), model.reconstruct(given))
    assert main(["reconstruct", "zoo:fashion-vqvae2", "test", "--per-image", "2", "--no-progress"]) == 2
    assert "deterministic: one per image" in capsys.readouterr().err
