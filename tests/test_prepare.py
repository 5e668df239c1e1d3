"""`pixelzoo prepare`: sources to shards and an index, preprocessing, resuming an interrupted run,
and bad input (a clear error that changes nothing). Tiny data: a few dozen small PNGs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelzoo.cli import main
from pixelzoo.data import load_dataset
from pixelzoo.data import prepare as prepare_module
from pixelzoo.data.prepare import Preprocessing, prepare
from pixelzoo.data.shards import INDEX_NAME, ShardedDataset, load_prepared
from pixelzoo.errors import DataError


def write_folder(root: Path, n=24, size=(12, 10), classes=("cat", "dog"), rgb=True, seed=0) -> Path:
    """``n`` random PNGs of ``size`` (W, H), split over class subfolders (none when ``classes`` is empty)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / classes[i % len(classes)] if classes else root
        d.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0], 3) if rgb else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(d / f"img{i:03d}.png")
    return root


def files_of(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else {}


def test_a_folder_prepared_loads_as_the_folder_data_set_does(tmp_path):
    src = write_folder(tmp_path / "src")
    r = prepare(str(src), tmp_path / "out", test_fraction=0.25, seed=3, shard_size=5, progress=False)
    assert r.written == 4 + 2 and r.kept == 0 and not r.already   # 18 train in shards of 5, 6 test
    index = json.loads((tmp_path / "out" / INDEX_NAME).read_text())
    assert index["class_names"] == ["cat", "dog"] and index["image_shape"] == [3, 10, 12]
    assert index["version"] == 1 and all(len(s["sha256"]) == 64 for s in index["splits"]["train"]["shards"])
    want = load_dataset("folder", src, test_fraction=0.25, seed=3)
    for stream in (False, True):
        got = load_dataset("prepared", tmp_path / "out", stream=stream)
        assert isinstance(got.train, ShardedDataset) == stream
        for a, b in ((want.train, got.train), (want.test, got.test)):
            assert torch.equal(a.images, b.images[:]) and torch.equal(a.labels, b.labels)
            assert torch.equal(a.images[[4, 0, 5]], b.images[torch.tensor([4, 0, 5])])
    again = prepare(str(src), tmp_path / "out", test_fraction=0.25, seed=3, shard_size=5, progress=False)
    assert again.already and again.written == 0


def test_preprocessing_centre_crop_resize_grey_and_the_celeba_box(tmp_path):
    src = write_folder(tmp_path / "src", n=6, size=(14, 10), classes=())
    pre = Preprocessing(center_crop=True, resize=4, grey=True)
    prepare(str(src), tmp_path / "a", pre, test_fraction=0.5, progress=False)
    got = load_prepared(tmp_path / "a")
    assert got.image_shape == (1, 4, 4) and got.num_classes is None and got.train.labels is None
    # the first training image by hand: centre 10x10 square, box-resized to 4x4, then Rec. 601 luma
    first = sorted(src.iterdir())[int(np.sort(np.random.RandomState(0).permutation(6)[3:])[0])]
    a = np.asarray(Image.open(first))[:, 2:12]
    small = np.stack([np.asarray(Image.fromarray(a[..., c]).resize((4, 4), Image.Resampling.BOX)) for c in range(3)], -1)
    s = small.astype(np.int64)
    y = (299 * s[..., 0] + 587 * s[..., 1] + 114 * s[..., 2] + 500) // 1000
    assert np.array_equal(got.train.images[0, 0].numpy(), y)
    big = write_folder(tmp_path / "big", n=4, size=(60, 100), classes=())
    prepare(str(big), tmp_path / "b", Preprocessing(crop=(25, 25, 50, 40)), progress=False)
    assert load_prepared(tmp_path / "b").image_shape == (3, 10, 10)   # 60-50 wide, 100-90 high


def test_mixed_sizes_need_resize_which_makes_them_one(tmp_path):
    src = write_folder(tmp_path / "src", n=6, classes=())
    write_folder(src, n=1, size=(9, 9), classes=(), seed=1)   # overwrites img000.png with a 9x9 image
    with pytest.raises(DataError, match=r"img00[01]\.png.*mixed sizes need --resize"):
        prepare(str(src), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()   # checked before anything is written
    prepare(str(src), tmp_path / "out", Preprocessing(resize=8), progress=False)
    assert load_prepared(tmp_path / "out").image_shape == (3, 8, 8)


def test_arrays_npz_and_digits(tmp_path):
    rng = np.random.default_rng(0)
    xs = {k: rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8) for k, n in (("x_train", 10), ("x_test", 4))}
    np.savez(tmp_path / "d.npz", **xs, y_train=np.arange(10) % 3, y_test=np.arange(4) % 3)
    prepare(str(tmp_path / "d.npz"), tmp_path / "n", shard_size=4, progress=False)
    got = load_prepared(tmp_path / "n")
    assert torch.equal(got.train.images, torch.from_numpy(xs["x_train"]).permute(0, 3, 1, 2))
    assert got.num_classes == 3
    with pytest.raises(DataError, match="own test split"):
        prepare(str(tmp_path / "d.npz"), tmp_path / "n2", test_fraction=0.2, progress=False)
    prepare("digits", tmp_path / "dg", Preprocessing(resize=4), progress=False)
    dg = load_prepared(tmp_path / "dg")
    assert dg.image_shape == (1, 4, 4) and dg.num_levels == 17 and int(dg.train.images.max()) <= 16


def test_an_interrupted_prepare_keeps_its_shards_and_finishes(tmp_path, monkeypatch):
    src = write_folder(tmp_path / "src", n=30)
    fresh = tmp_path / "fresh"
    prepare(str(src), fresh, shard_size=4, progress=False)
    real, calls = prepare_module._write_shard, []

    def dies_after_two(*args, **kwargs):
        calls.append(1)
        entry = real(*args, **kwargs)
        if len(calls) == 3:   # killed once the third shard is on disk, before the progress file records it
            raise KeyboardInterrupt
        return entry

    out = tmp_path / "out"
    monkeypatch.setattr(prepare_module, "_write_shard", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        prepare(str(src), out, shard_size=4, progress=False)
    assert not (out / INDEX_NAME).exists() and (out / "train-00002.images").is_file()
    with pytest.raises(DataError, match="did not finish.*prepare"):
        load_dataset("prepared", out)
    monkeypatch.setattr(prepare_module, "_write_shard", real)
    with pytest.raises(DataError, match="unfinished preparation.*other options"):
        prepare(str(src), out, shard_size=5, progress=False)   # refused: another preparation
    r = prepare(str(src), out, shard_size=4, progress=False)
    assert r.kept == 2 and r.written == 7 + 1 - 2
    assert files_of(out) == files_of(fresh)


def test_a_changed_or_damaged_shard_is_written_again_on_resume(tmp_path, monkeypatch):
    src = write_folder(tmp_path / "src", n=12)
    out = tmp_path / "out"
    real = prepare_module._write_shard
    monkeypatch.setattr(prepare_module, "_write_shard",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt) if a[3] >= 8 else real(*a, **k))
    with pytest.raises(KeyboardInterrupt):
        prepare(str(src), out, shard_size=4, progress=False)
    monkeypatch.setattr(prepare_module, "_write_shard", real)
    shard = out / "train-00000.images"
    shard.write_bytes(b"\0" * len(shard.read_bytes()))   # damaged: its checksum no longer matches
    r = prepare(str(src), out, shard_size=4, progress=False)
    assert r.kept == 1 and r.written == 2 + 1
    load_prepared(out)   # every checksum holds


# ------------------------------------------------------------------------------------ bad input


@pytest.fixture
def prepared(tmp_path):
    out = tmp_path / "p"
    prepare(str(write_folder(tmp_path / "src", n=16)), out, shard_size=4, progress=False)
    return out


def cli_error(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_shard_that_fails_its_checksum(prepared, capsys):
    shard = prepared / "train-00001.images"
    data = bytearray(shard.read_bytes())
    data[5] ^= 1
    shard.write_bytes(bytes(data))
    before = files_of(prepared)
    for stream in (False, True):
        with pytest.raises(DataError, match=r"train-00001\.images: fails its sha256 checksum"):
            load_dataset("prepared", prepared, stream=stream)
    load_dataset("prepared", prepared, verify=False)   # asked not to check: read as it is
    err = cli_error(["train", "gated_pixelcnn/digits", "--data", "prepared", "--data-dir", str(prepared), "--steps",
                     "1", "--out", str(prepared.parent / "run")], capsys)
    assert "checksum" in err and not (prepared.parent / "run").exists()
    assert files_of(prepared) == before


def test_a_truncated_shard(prepared, capsys):
    shard = prepared / "test-00000.labels"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(DataError, match=r"test-00000\.labels: truncated"):
        load_dataset("prepared", prepared, stream=True)
    assert "truncated" in cli_error(["datasets", str(prepared)], capsys)


def test_an_index_that_does_not_match_its_shards(prepared):
    index = json.loads((prepared / INDEX_NAME).read_text())
    index["splits"]["train"]["shards"][0]["count"] += 1
    index["splits"]["train"]["count"] += 1
    (prepared / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"train-00000\.images: truncated.*do not match"):
        load_dataset("prepared", prepared)
    index["splits"]["train"]["count"] += 1
    (prepared / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(DataError, match="counts .* but its shards hold"):
        load_dataset("prepared", prepared)
    (prepared / INDEX_NAME).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_dataset("prepared", prepared)


def test_an_empty_folder_and_a_folder_that_is_not_free(tmp_path, prepared, capsys):
    (tmp_path / "empty").mkdir()
    err = cli_error(["prepare", str(tmp_path / "empty"), str(tmp_path / "out"), "--no-progress"], capsys)
    assert "no images" in err and not (tmp_path / "out").exists()
    before = files_of(prepared)
    err = cli_error(["prepare", str(tmp_path / "src"), str(prepared), "--resize", "8", "--no-progress"], capsys)
    assert "another source or with other options" in err and files_of(prepared) == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    err = cli_error(["prepare", "digits", str(tmp_path / "mine"), "--no-progress"], capsys)
    assert "not empty" in err and files_of(tmp_path / "mine") == {"notes.txt": b"keep"}
    err = cli_error(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "o2"), "--no-progress"], capsys)
    assert "neither a data set" in err


def test_the_command_line_prepares_and_lists(tmp_path, capsys):
    src = write_folder(tmp_path / "src", n=8, size=(20, 16), classes=())
    assert main(["prepare", str(src), str(tmp_path / "out"), "--center-crop", "--resize", "8", "--grey",
                 "--test-fraction", "0.25", "--seed", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 train / 2 test images of 1x8x8" in out and "--data prepared --data-dir" in out
    assert main(["datasets", str(tmp_path / "out")]) == 0
    listed = capsys.readouterr().out
    assert "prepared " in listed and "6 train / 2 test images of 1x8x8" in listed


def test_idx_and_cifar_folders_are_recognised(tmp_path):
    from test_data import write_cifar_dir, write_mnist_dir

    for name, folder in (("mnist-idx", write_mnist_dir(tmp_path / "idx", gz=True)),
                         ("cifar10", write_cifar_dir(tmp_path / "cifar" / "cifar-10-batches-py").parent)):
        prepare(str(folder), tmp_path / f"{name}-out", shard_size=3, progress=False)
        want, got = load_dataset(name, folder), load_prepared(tmp_path / f"{name}-out")
        assert json.loads((tmp_path / f"{name}-out" / INDEX_NAME).read_text())["name"] == name
        for a, b in ((want.train, got.train), (want.test, got.test)):
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_pad_adds_level_zero_on_every_side_last(tmp_path, capsys):
    rng = np.random.default_rng(1)
    xs = {k: rng.integers(1, 256, (n, 28, 28), dtype=np.uint8) for k, n in (("x_train", 5), ("x_test", 3))}
    np.savez(tmp_path / "f.npz", **xs)
    assert main(["prepare", str(tmp_path / "f.npz"), str(tmp_path / "p"), "--pad", "2", "--no-progress"]) == 0
    assert "1x32x32" in capsys.readouterr().out
    got = load_prepared(tmp_path / "p")
    x = got.test.images.numpy()
    assert x.shape == (3, 1, 32, 32) and np.array_equal(x[:, 0, 2:30, 2:30], xs["x_test"])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not x[:, 0][:, border].any()
    src = write_folder(tmp_path / "src", n=4, size=(10, 10), classes=())   # after the resize and the grey view
    prepare(str(src), tmp_path / "q", Preprocessing(resize=6, grey=True, pad=1), test_fraction=0.5, progress=False)
    assert load_prepared(tmp_path / "q").image_shape == (1, 8, 8)
    with pytest.raises(DataError, match="pad must be"):
        Preprocessing(pad=-1)
    with pytest.raises(SystemExit) as e:
        main(["prepare", "digits", str(tmp_path / "r"), "--pad", "-2", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --pad: must be a number of pixels >= 0" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
