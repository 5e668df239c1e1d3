"""The feature network (LeNet classifier), its cache and fingerprint, the sample-quality metrics on
images (FID/IS/KID/PR, CAS, FID*, nearest-neighbour grids) and ``pixelzoo evaluate``."""

import json
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from pixelzoo.cli import main
from pixelzoo.data import DataSplits, ImageDataset, available_datasets, load_dataset
from pixelzoo.errors import CheckpointError, ConfigError
from pixelzoo.evaluation import (classification_accuracy_score, compute_features, create_classifier,
                                 data_fingerprint, fid_star, get_feature_network, load_classifier,
                                 nearest_neighbour_grid, real_vs_real, sample_quality, save_classifier,
                                 train_classifier)
from pixelzoo.evaluation import classifier as classifier_module
from pixelzoo.models.base import Reconstructs

TINY_STEPS = "8"
DIGITS_ID = "digits-lenet-128"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def tiny_net(digits):
    return train_classifier(digits, "digits", steps=int(TINY_STEPS), progress=False)


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIXELZOO_CLASSIFIER_STEPS", TINY_STEPS)
    return tmp_path / "cache" / "classifiers"


# ----------------------------------------------------------------------------------- classifier
@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 17), ((3, 9, 13), 256), ((2, 28, 28), 4)])
def test_classifier_shapes_and_loss(shape, levels):
    net = create_classifier("lenet", shape, levels, 7)
    x, y = torch.randint(0, levels, (5, *shape)), torch.randint(0, 7, (5,))
    assert net.features(x).shape == (5, 128) and (net.features(x) >= 0).all()   # after the ReLU
    assert net.logits(x).shape == (5, 7)
    net.eval()
    torch.testing.assert_close(net.probs(x).sum(-1), torch.ones(5))
    out = net.loss(x.to(torch.uint8), y)
    assert set(out) == {"loss", "accuracy"} and out["loss"].dim() == 0 and 0 <= float(out["accuracy"]) <= 1
    out["loss"].backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.has_likelihood is False and not hasattr(net, "sample")


def test_classifier_refuses_small_images_and_unlabelled_data():
    with pytest.raises(ConfigError, match="at least"):
        create_classifier("lenet", (1, 7, 8), 17, 10)
    with pytest.raises(ConfigError, match="classes"):
        create_classifier("lenet", (1, 8, 8), 17, None)


def test_save_load_and_fingerprint_mismatch_refused(digits, tiny_net, tmp_path, capsys):
    cfg = tiny_net.config
    assert cfg["feature_id"] == DIGITS_ID and 0 <= cfg["test_accuracy"] <= 1
    assert cfg["fingerprint"] == data_fingerprint("digits", digits) and cfg["training"]["flip"] is False
    save_classifier(tiny_net, tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf", fingerprint=data_fingerprint("digits", digits))
    x = digits.test.images[:4]
    torch.testing.assert_close(loaded.features(x), tiny_net.eval().features(x), rtol=0, atol=0)
    # the same sizes and shape but other test images: another data set
    other_test = ImageDataset("digits/test", digits.test.images.flip(-1), digits.test.labels, 17, 10, "flipped")
    other = data_fingerprint("digits", DataSplits(digits.train, other_test))
    with pytest.raises(CheckpointError, match="trained on other data.*hash"):
        load_classifier(tmp_path / "clf", fingerprint=other)
    # the command line refuses a saved classifier whose fingerprint does not match the data
    cfg = json.loads((tmp_path / "clf" / "config.json").read_text())
    cfg["fingerprint"]["hash"] = "0" * 64
    (tmp_path / "clf" / "config.json").write_text(json.dumps(cfg))
    assert main(["evaluate", "--real", "digits", "--feature-net", str(tmp_path / "clf"), "--metrics", "fid",
                 "--no-progress"]) == 2
    assert "trained on other data" in capsys.readouterr().err


def test_get_feature_network_trains_once_then_loads(digits, tiny_cache, monkeypatch):
    first = get_feature_network("digits", splits=digits, progress=False)
    dirs = list(tiny_cache.iterdir())
    assert len(dirs) == 1 and dirs[0].name.startswith(DIGITS_ID) and (dirs[0] / "model.safetensors").is_file()
    assert first.config["training"]["steps"] == int(TINY_STEPS)

    def no_training(*a, **k):
        raise AssertionError("a cached feature network must not be retrained")

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    second = get_feature_network("digits", progress=False)   # loads the data itself
    for (k, v), (k2, v2) in zip(first.state_dict().items(), second.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(CheckpointError, match="no cached feature network"):
        get_feature_network("digits", cache_dir=tiny_cache.parent / "empty", train_if_missing=False)


def test_stale_cache_entry_is_retrained(digits, tiny_cache):
    get_feature_network("digits", splits=digits, progress=False)
    (d,) = tiny_cache.iterdir()
    cfg = json.loads((d / "config.json").read_text())
    cfg["fingerprint"]["n_test"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="other data"):
        get_feature_network("digits", splits=digits, train_if_missing=False)
    net = get_feature_network("digits", splits=digits, progress=False)
    assert net.config["fingerprint"]["n_test"] == len(digits.test)


def test_feature_network_on_grey_patches_labelled_by_photograph(tmp_path):
    """patches with split="crops" are labelled (6 photographs), so they get a feature network."""
    pytest.importorskip("skimage")
    options = {"size": 16, "grey": True, "split": "crops", "n_train": 600, "n_test": 200}
    net = get_feature_network("patches", data_options=options, cache_dir=tmp_path, steps=50, progress=False)
    assert net.num_classes == 6 and net.image_shape == (1, 16, 16)
    assert net.config["fingerprint"]["num_classes"] == 6 and net.config["training"]["steps"] == 50
    assert net.config["test_accuracy"] > 0.3   # chance is 1/6: the labels name what the crops show
    splits = load_dataset("patches", **options)
    f = compute_features(net, splits.test.images, batch_size=64)
    assert f.shape == (200, 128) and np.isfinite(f).all()
    (d,) = tmp_path.iterdir()
    assert d.name.startswith("patches-lenet-128-")


# ----------------------------------------------------------------------------------- metrics on images
def test_compute_features_and_sample_quality(digits, tiny_net):
    x = digits.test.images[:40]
    f = compute_features(tiny_net, x, batch_size=16)
    assert f.shape == (40, 128) and f.dtype == np.float64
    plain = compute_features(lambda b: b.flatten(1).float(), x.long(), batch_size=7)   # any callable
    assert plain.shape == (40, 64)
    np.testing.assert_array_equal(plain, x.flatten(1).double().numpy())
    out = sample_quality(digits.train.images[:60], digits.test.images[:60], tiny_net, kid_subsets=5)
    assert set(out) == {f"{m}[{DIGITS_ID}]" for m in ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall")}
    assert out[f"fid[{DIGITS_ID}]"] >= 0 and 1 <= out[f"is[{DIGITS_ID}]"] <= 10
    same = sample_quality(x, x, tiny_net, ["fid", "pr"])
    assert same[f"fid[{DIGITS_ID}]"] < 1e-6 and same[f"precision[{DIGITS_ID}]"] == 1.0
    named = sample_quality(x, x, lambda b: b.flatten(1).float(), ["fid"], name="pixels")
    assert list(named) == ["fid[pixels]"]
    with pytest.raises(ConfigError, match="probs"):
        sample_quality(x, x, lambda b: b.flatten(1).float(), ["is"])


def test_cas_with_real_images_as_samples(digits, tiny_net):
    out = classification_accuracy_score(digits.train.images, digits.train.labels, digits.test, net=tiny_net,
                                        steps=int(TINY_STEPS))
    keys = {f"{m}[{DIGITS_ID}]" for m in ("cas_top1", "cas_top5", "real_top1", "real_top5")}
    assert set(out) == keys and all(0 <= v <= 1 for v in out.values())
    assert out[f"cas_top5[{DIGITS_ID}]"] >= out[f"cas_top1[{DIGITS_ID}]"]
    # the same architecture, steps and seed on the same real images: the feature network's accuracy
    assert out[f"cas_top1[{DIGITS_ID}]"] == pytest.approx(out[f"real_top1[{DIGITS_ID}]"], abs=0.05)


class _Identity(nn.Module, Reconstructs):
    def forward(self, x):
        return x

    def reconstruct(self, x):
        return x


def test_fid_star_needs_reconstruct(digits, tiny_net):
    with pytest.raises(ConfigError, match="reconstruct"):
        fid_star(nn.Linear(1, 1), digits.train.images[:20], digits.test.images[:20], tiny_net)
    out = fid_star(_Identity(), digits.train.images[:50], digits.test.images[:50], tiny_net)
    ref = sample_quality(digits.train.images[:50], digits.test.images[:50], tiny_net, ["fid"])
    assert out[f"fid_star[{DIGITS_ID}]"] == pytest.approx(ref[f"fid[{DIGITS_ID}]"])


def test_nearest_neighbour_grids(digits, tiny_net, tmp_path):
    train = digits.train.images
    queries = train[[5, 17, 99]]
    pix = nearest_neighbour_grid(queries, train, 17, tmp_path / "nn-pixel.png", k=4)
    assert (tmp_path / "nn-pixel.png").is_file() and pix["indices"].shape == (3, 4)
    assert list(pix["indices"][:, 0]) == [5, 17, 99] and np.allclose(pix["distances"][:, 0], 0)
    feat = nearest_neighbour_grid(queries, train, 17, tmp_path / "nn-feat.png", k=4, rows=2, net=tiny_net)
    assert (tmp_path / "nn-feat.png").is_file() and feat["indices"].shape == (2, 4)
    from PIL import Image
    w, h = Image.open(tmp_path / "nn-pixel.png").size
    assert w > h   # 3 rows of 5 tiles


def test_real_vs_real(digits, tiny_net):
    out = real_vs_real(digits, tiny_net, ["fid", "pr"], n=100)
    assert out["n"] == 100 and out[f"fid[{DIGITS_ID}]"] >= 0 and 0 <= out[f"recall[{DIGITS_ID}]"] <= 1


# ----------------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evalrun") / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "3", "--out", str(out), "--set", "model.channels=8",
                 "--set", "model.n_layers=2", "--set", "train.num_samples=0", "--set", "train.eval_every=0",
                 "--no-progress"]) == 0
    return out


def test_cli_evaluate_sample_metrics(tiny_run, tiny_cache, capsys):
    t0 = time.perf_counter()
    assert main(["evaluate", str(tiny_run), "--metrics", "bpd,fid,is,kid,pr,nn", "-n", "20", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((tiny_run / "eval.json").read_text())
    assert result["test_images"] == 20 and 0 < result["test_bpd"] < 10 and result["step"] == 3
    for m in ("fid", "is", "kid", "precision", "recall"):
        assert f"{m}[{DIGITS_ID}]" in result and f"{m}[{DIGITS_ID}]" in printed
    assert result["feature_net"] == DIGITS_ID and result["num_samples"] == 20
    assert "test set" in result["reference"] and "test set" in printed
    assert (tiny_run / result["nn_pixel_grid"]).is_file()
    assert (tiny_run / result[f"nn_feature_grid[{DIGITS_ID}]"]).is_file()
    assert len(list(tiny_cache.iterdir())) == 1   # the feature network was trained once and cached
    # the default is still bits/dim only, merged into the same step's eval.json; samples are reused
    assert main(["evaluate", str(tiny_run), "--no-progress"]) == 0
    result = json.loads((tiny_run / "eval.json").read_text())
    assert result["test_images"] == 360 and f"fid[{DIGITS_ID}]" in result
    assert main(["evaluate", str(tiny_run), "--metrics", "cas", "-n", "20", "--cas-steps", "3", "--no-progress"]) == 0
    result = json.loads((tiny_run / "eval.json").read_text())
    assert 0 <= result[f"cas_top1[{DIGITS_ID}]"] <= result[f"cas_top5[{DIGITS_ID}]"] <= 1
    assert any("reused" in n for n in result["notes"])
    assert time.perf_counter() - t0 < 60


def test_cli_train_classifier_feature_net_real_and_errors(tiny_run, tiny_cache, tmp_path, capsys):
    out = tmp_path / "clf"
    assert main(["train-classifier", "digits", "--steps", "4", "--out", str(out), "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file() and (out / "metrics.jsonl").is_file()
    assert main(["evaluate", str(tiny_run), "--metrics", "fid", "-n", "12", "--feature-net", str(out),
                 "--no-progress"]) == 0
    assert json.loads((tiny_run / "eval.json").read_text())["feature_net_dir"] == str(out)
    real = tmp_path / "real.json"
    assert main(["evaluate", "--real", "digits", "-n", "50", "--metrics", "fid,pr", "--feature-net", str(out),
                 "--out", str(real), "--no-progress"]) == 0
    floor = json.loads(real.read_text())
    assert floor["n"] == 50 and f"fid[{DIGITS_ID}]" in floor and f"precision[{DIGITS_ID}]" in floor
    capsys.readouterr()
    assert main(["evaluate", str(tiny_run), "--metrics", "fid_star", "-n", "4", "--no-progress"]) == 2
    assert "reconstruct" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--metrics", "fid,bogus", "--no-progress"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["evaluate", "--no-progress"]) == 2


def _fashion_available():
    return any(d["name"] == "fashion-mnist" and d["available"] for d in available_datasets())


@pytest.mark.slow
@pytest.mark.skipif(not _fashion_available(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) not installed")
def test_fashion_mnist_feature_network_reaches_90_percent(monkeypatch):
    monkeypatch.delenv("PIXELZOO_CLASSIFIER_STEPS", raising=False)
    net = train_classifier(load_dataset("fashion-mnist"), "fashion-mnist", progress=False)
    assert net.config["feature_id"] == "fashion-mnist-lenet-128"
    assert net.config["test_accuracy"] >= 0.90
