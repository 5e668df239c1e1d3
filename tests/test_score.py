"""Scoring new images (``pixelzoo score``, ``pixelzoo.evaluation.scoring``): the scores against the
models' own likelihoods, the class marginal by hand, the AUROC by hand and against scikit-learn,
image fitting, and the command line's files and errors."""

import json
import math

import numpy as np
import pytest
import torch

import pixelzoo
from conftest import tiny_model_args
from test_registry_composites import make
from pixelzoo.cli import main
from pixelzoo.errors import ConfigError, DataError
from pixelzoo.evaluation.metrics import auroc
from pixelzoo.evaluation.scoring import fit_images, score_images, surprise_maps

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=0", "--set", "train.eval_every=0", "--no-progress"]


def gated(classes=None, shape=(1, 4, 4), levels=5):
    name, hp = tiny_model_args("gated_pixelcnn")
    torch.manual_seed(0)
    return pixelzoo.create_model(name, shape, levels, classes, **hp).eval()


def images(model, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.num_levels, (n, *model.image_shape), generator=g)


def test_an_autoregressive_models_score_is_its_exact_bits_per_dim():
    model = gated()
    x = images(model)
    scores = score_images(model, x, batch_size=4)
    assert set(scores) == {"bpd"}
    torch.testing.assert_close(scores["bpd"], model.bits_per_dim(x).double(), rtol=1e-6, atol=1e-6)


def test_a_class_conditional_model_is_scored_by_its_class_marginal():
    """log p(x) = log (1/C) sum_c p(x | c), by hand; with use_labels, log p(x | y)."""
    model = gated(classes=3)
    x = images(model)
    dims = x[0].numel() * math.log(2.0)
    per_class = torch.stack([model.bits_per_dim(x, torch.full((len(x),), c)).double() * -dims for c in range(3)])
    by_hand = -(torch.logsumexp(per_class, 0) - math.log(3)) / dims
    torch.testing.assert_close(score_images(model, x)["bpd"], by_hand, rtol=1e-6, atol=1e-6)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    torch.testing.assert_close(score_images(model, x, y, use_labels=True)["bpd"], model.bits_per_dim(x, y).double(),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="without labels"):
        score_images(model, x, None, use_labels=True)


@pytest.mark.parametrize("name", ["grayscale_pixelcnn", "pyramid_pixelcnn"])
def test_a_chains_parts_add_up_to_its_bound(name):
    model = make(name).eval()
    x = images(model, n=4)
    y = torch.tensor([0, 1, 2, 0])
    scores = score_images(model, x, y, use_labels=True, batch_size=3)
    parts = [k for k in scores if k.startswith("bpd_")]
    assert sorted(parts) == sorted(f"bpd_{p}" for p in model.bits_per_dim_parts(x, y))
    torch.testing.assert_close(sum(scores[k] for k in parts), scores["bpd"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(scores["bpd"], model.bits_per_dim(x, y).double(), rtol=1e-5, atol=1e-5)
    marginal = score_images(model, x)["bpd"]  # no labels: the marginal is below every class's bound
    assert (marginal <= scores["bpd"] + math.log2(model.num_classes) / x[0].numel() + 1e-9).all()


def test_a_latent_variable_model_gives_its_elbo_and_iwae_bound():
    model = make("agave").eval()
    x = images(model, n=3)
    y = torch.tensor([0, 1, 2])
    scores = score_images(model, x, y, use_labels=True, samples=8, seed=3)
    assert set(scores) == {"bpd", "elbo_bpd", "iwae_bpd"}
    assert (scores["iwae_bpd"] <= scores["elbo_bpd"] + 1e-9).all()  # IWAE is the tighter bound
    torch.testing.assert_close(scores["bpd"], scores["iwae_bpd"])
    g = torch.Generator().manual_seed(3)
    log_w = model.log_weights(x, 8, y, generator=g).double()
    dims = x[0].numel() * math.log(2.0)
    torch.testing.assert_close(scores["elbo_bpd"], -log_w.mean(0) / dims)
    with pytest.raises(ConfigError, match="latent-variable"):
        surprise_maps(model, x, y, use_labels=True)


def test_a_model_without_likelihood_cannot_score():
    name, hp = tiny_model_args("pixeliqn")
    model = pixelzoo.create_model(name, (1, 4, 4), 5, None, **hp)
    for m in (model, make("vqvae2")):
        with pytest.raises(ConfigError, match="has no likelihood and no bound"):
            score_images(m, images(m))


def test_surprise_maps_add_up_to_the_bits_of_each_image():
    model = gated()
    x = images(model)
    maps = surprise_maps(model, x, batch_size=4)
    assert maps.shape == (6, 4, 4) and (maps >= 0).all()
    torch.testing.assert_close(maps.flatten(1).sum(1) / x[0].numel(), model.bits_per_dim(x).double(),
                               rtol=1e-6, atol=1e-6)
    chain = make("pyramid_pixelcnn").eval()  # the part modelling the image, given the levels above
    xc, y = images(chain, n=2), torch.tensor([1, 2])
    bits = chain.log_prob_maps(xc, y)[chain.links[chain.level_order[0]].part].sum((1, 2, 3)) / -math.log(2.0)
    torch.testing.assert_close(surprise_maps(chain, xc, y, use_labels=True).flatten(1).sum(1), bits.double(),
                               rtol=1e-6, atol=1e-4)  # float32 sums in two orders


def test_auroc_by_hand_and_against_scikit_learn():
    # positives above negatives: (2 vs 1, 2, 3) = 1 + 1/2 + 0, (4 vs all) = 3 -> 4.5 / 6
    assert auroc([1, 2, 3], [2, 4]) == pytest.approx(0.75)
    assert auroc([1, 2], [3, 4]) == 1.0 and auroc([3, 4], [1, 2]) == 0.0 and auroc([1, 1], [1]) == 0.5
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 200).round(1), rng.normal(0.7, 1, 150).round(1)  # rounded: many ties
    expected = metrics.roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[neg, pos])
    assert auroc(neg, pos) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(DataError):
        auroc([], [1.0])


def test_fit_images_converts_only_when_asked():
    rgb = torch.tensor([[[[255]], [[0]], [[0]]], [[[0]], [[255]], [[255]]]])  # (2, 3, 1, 1): red, cyan
    with pytest.raises(ConfigError, match=r"the images are 3x1x1 .* 256 levels; the model takes 1x2x2 .* 16 levels"):
        fit_images(rgb, 256, (1, 2, 2), 16)
    grey = fit_images(rgb, 256, (1, 2, 2), 16, fit=True)
    # BT.601 luma of red 76.2 -> 76, of cyan 178.8 -> 179; then 16 levels: floor(v * 16 / 256)
    assert grey.shape == (2, 1, 2, 2) and grey[:, 0, 0, 0].tolist() == [76 * 16 // 256, 179 * 16 // 256]
    up = fit_images(torch.tensor([[[[0, 1], [2, 3]]]]), 4, (3, 2, 2), 256, fit=True)  # 1 -> 3 channels, 4 -> 256
    assert up.shape == (1, 3, 2, 2) and up[0, 0].flatten().tolist() == [32, 96, 160, 224]
    same = torch.randint(0, 5, (2, 1, 4, 4))
    assert torch.equal(fit_images(same, 5, (1, 4, 4), 5), same)
    down = fit_images(torch.arange(16).reshape(1, 1, 4, 4), 16, (1, 2, 2), 16, fit=True)  # area: 2x2 means
    assert down.flatten().tolist() == [round(2.5), round(4.5), round(10.5), round(12.5)]


# ---------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "3", "--out", str(out), *TINY]) == 0
    return out


def test_score_writes_csv_json_histogram_and_heatmap(run_dir, tmp_path, capsys):
    assert main(["score", str(run_dir), "digits", "-n", "20", "--heatmap", "4", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "digits/test (20 images): mean bpd" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "index,label,bpd" and len(rows) == 21
    assert summary["count"] == 20 and summary["scores"][summary["images"]]["bpd"]["mean"] == pytest.approx(
        np.mean([float(r.split(",")[2]) for r in rows[1:]]), abs=1e-5)
    for name in ("s.png", "s-heatmap.png", "s-heatmap.npz"):
        assert (tmp_path / name).stat().st_size > 0
    with np.load(tmp_path / "s-heatmap.npz") as maps:
        assert maps["bits"].shape == (4, 8, 8)


def test_score_against_reports_the_auroc(run_dir, tmp_path, capsys):
    """digits against random noise images (an .npz), the labels marginalised: the AUROC is printed
    and saved, and equals the AUROC of the two CSVs' scores."""
    noise = np.random.default_rng(0).integers(0, 17, (20, 1, 8, 8))
    np.savez(tmp_path / "noise.npz", images=noise)
    assert main(["score", str(run_dir), "digits", "--against", str(tmp_path / "noise.npz"), "-n", "20",
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "AUROC" in capsys.readouterr().out
    summary = json.loads((tmp_path / "a.json").read_text())
    assert 0.0 <= summary["auroc"] <= 1.0 and summary["against"].startswith(str(tmp_path / "noise.npz"))
    assert main(["score", str(run_dir), str(tmp_path / "noise.npz"), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    inl = [float(r.split(",")[2]) for r in (tmp_path / "a.csv").read_text().splitlines()[1:]]
    outl = [float(r.split(",")[2]) for r in (tmp_path / "b.csv").read_text().splitlines()[1:]]
    assert summary["auroc"] == pytest.approx(auroc(inl, outl), abs=1e-6)


def test_score_bad_inputs_are_one_line_errors(run_dir, tmp_path, capsys):
    np.savez(tmp_path / "big.npz", images=np.zeros((3, 1, 12, 12), np.uint8))
    cases = [([str(tmp_path / "big.npz")], "the images are 1x12x12"),
             (["digits", "-n", "5000"], "-n 5000 asks for more images"),
             ([str(tmp_path / "missing.npz")], "no such file"),
             (["digits", "--use-labels", "--against", str(tmp_path / "big.npz"), "--fit"], "without labels"),
             (["no-such-data"], "unknown")]
    for extra, message in cases:
        assert main(["score", str(run_dir), *extra, "--out", str(tmp_path / "x"), "--no-progress"]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("x*"))  # nothing written by a failed command
    assert main(["score", str(run_dir), str(tmp_path / "big.npz"), "--fit", "--out", str(tmp_path / "f"),
                 "--no-progress"]) == 0
