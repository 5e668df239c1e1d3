"""Tests of pixelzoo.data: readers, named data sets, bad input, augmentation."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelzoo.data import (
    DataSplits,
    ImageDataset,
    available_datasets,
    dataset_names,
    load_dataset,
    random_hflip,
    read_cifar10,
    read_idx,
    read_image_folder,
    read_npz,
)
from pixelzoo.data import patches as patches_mod
from pixelzoo.data import sources
from pixelzoo.errors import DataError

ALL_NAMES = ["digits", "fashion-mnist", "mnist-idx", "cifar10", "folder", "npz", "patches", "prepared"]

# ----------------------------------------------------------------------------------- fixtures


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B,
             np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}
    code = codes[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_dir(d: Path, n_train=6, n_test=4, hw=(5, 7), gz=False, max_label=9, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(d / f"{split}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, *hw), dtype=np.uint8), gz)
        labels = rng.integers(0, max_label + 1, n).astype(np.uint8)
        labels[0] = max_label
        write_idx(d / f"{split}-labels-idx1-ubyte{sfx}", labels, gz)
    return d


def write_cifar_dir(d: Path, n=4, protocol=2, str_keys=False) -> Path:
    rng = np.random.default_rng(1)
    d.mkdir(parents=True, exist_ok=True)
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        key = (lambda k: k) if str_keys else (lambda k: k.encode())
        batch = {key("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key("labels"): [int(v) for v in rng.integers(0, 10, n)],
                 key("batch_label"): b"fake batch"}
        (d / fname).write_bytes(pickle.dumps(batch, protocol=protocol))
    return d


def write_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image
    Image.fromarray(arr).save(path)
    return path


# ---------------------------------------------------------------------------------- registry


def test_names_and_available_datasets():
    assert dataset_names() == ALL_NAMES
    entries = available_datasets()
    assert [e["name"] for e in entries] == ALL_NAMES
    for e in entries:
        assert set(e) == {"name", "available", "detail"}
        assert isinstance(e["available"], bool) and e["detail"]
    by = {e["name"]: e for e in entries}
    assert by["digits"]["available"]
    assert "chelsea" in by["patches"]["detail"] or not by["patches"]["available"]


def test_unknown_name_and_option():
    with pytest.raises(DataError, match="fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="unknown option.*colour"):
        load_dataset("digits", colour=True)
    with pytest.raises(DataError, match="flip"):
        load_dataset("patches", flip=True)
    with pytest.raises(DataError, match="reads no files"):
        load_dataset("digits", data_dir="/tmp")


@pytest.mark.parametrize("name", ["mnist-idx", "cifar10", "folder", "npz"])
def test_path_datasets_need_data_dir(name, tmp_path):
    with pytest.raises(DataError, match="data_dir"):
        load_dataset(name)
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        load_dataset(name, data_dir=missing)


# ------------------------------------------------------------------------------------ digits


def test_digits_shapes_levels_and_fixed_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train), len(a.test)) == (1437, 360)
    assert a.image_shape == (1, 8, 8) and a.num_levels == 17 and a.num_classes == 10
    assert a.train.images.dtype == torch.uint8 and a.train.labels.dtype == torch.int64
    assert int(a.train.images.max()) == 16
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert torch.bincount(a.test.labels, minlength=10).min() >= 35   # stratified
    y = np.asarray(__import__("sklearn.datasets").datasets.load_digits().target)
    train, test = sources.digits_split_indices(y)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 1797
    # the split is pinned (legacy RandomState streams never change), not just repeatable
    assert test[:8].tolist() == [3, 7, 13, 19, 36, 38, 43, 48] and int(test.sum()) == 313341


# -------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_idx_round_trip(tmp_path, gz, dtype):
    arr = (np.arange(2 * 3 * 4) * 7 % 200).astype(dtype).reshape(2, 3, 4)
    got = read_idx(write_idx(tmp_path / "a.idx", arr, gz))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_idx_gzip_detected_by_magic_not_extension(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    plain_named_gz = write_idx(tmp_path / "x.gz", arr, gz=False)
    gz_named_plain = write_idx(tmp_path / "x-idx1-ubyte", arr, gz=True)
    np.testing.assert_array_equal(read_idx(plain_named_gz), arr)
    np.testing.assert_array_equal(read_idx(gz_named_plain), arr)


def test_idx_bad_inputs(tmp_path):
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "short").write_bytes(good[:-5])
    with pytest.raises(DataError, match=r"short.*truncated.*48.*43"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(good + b"\0")
    with pytest.raises(DataError, match=r"long.*too long.*48.*49"):
        read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(DataError, match="magic.*not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "code").write_bytes(b"\0\0\x07" + good[3:])
    with pytest.raises(DataError, match="type code 0x07"):
        read_idx(tmp_path / "code")
    (tmp_path / "header").write_bytes(good[:9])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "header")
    gz = gzip.compress(good)
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match=r"cut\.gz.*gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "garbled.gz").write_bytes(gz[:10] + b"\xff" * (len(gz) - 10))
    with pytest.raises(DataError, match=r"garbled\.gz.*gzip"):
        read_idx(tmp_path / "garbled.gz")
    with pytest.raises(DataError, match="not found.*absent"):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_dataset_and_padding(tmp_path, gz):
    d = write_mnist_dir(tmp_path / "m", gz=gz, max_label=4)
    s = load_dataset("mnist-idx", data_dir=d)
    assert (len(s.train), len(s.test)) == (6, 4)
    assert s.image_shape == (1, 5, 7) and s.num_levels == 256 and s.num_classes == 5
    np.testing.assert_array_equal(s.train.images[:, 0].numpy(),
                                  read_idx(next(d.glob("train-images*"))))
    p = load_dataset("mnist-idx", data_dir=d, pad_to=10)
    assert p.image_shape == (1, 10, 10)
    # 5 -> 10 rows: 2 above, 3 below; 7 -> 10 columns: 1 left, 2 right
    assert torch.equal(p.train.images[:, :, 2:7, 1:8], s.train.images)
    assert int(p.train.images[:, :, :2].sum() + p.train.images[:, :, 7:].sum()) == 0
    with pytest.raises(DataError, match="pad_to=4 is smaller"):
        load_dataset("mnist-idx", data_dir=d, pad_to=4)


def test_idx_count_mismatch_and_label_range(tmp_path):
    d = write_mnist_dir(tmp_path / "m")
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 3 labels but .*t10k-images.* 4 images"):
        load_dataset("mnist-idx", data_dir=d)
    d2 = write_mnist_dir(tmp_path / "f", max_label=10)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: label 10 is outside \[0, 10\)"):
        load_dataset("fashion-mnist", data_dir=d2)
    (d2 / "train-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=d2)


def test_fashion_mnist_missing_message(monkeypatch):
    monkeypatch.setattr(sources, "find_fashion_mnist_dir", lambda: None)
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion-mnist")


@pytest.mark.skipif(sources.find_fashion_mnist_dir() is None,
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package():
    s = load_dataset("fashion-mnist")
    assert (len(s.train), len(s.test)) == (60000, 10000)
    assert s.image_shape == (1, 28, 28) and s.num_levels == 256 and s.num_classes == 10
    assert torch.equal(torch.unique(s.train.labels), torch.arange(10))
    assert torch.equal(torch.unique(s.test.labels), torch.arange(10))
    p = load_dataset("fashion-mnist", pad_to=32)
    assert p.image_shape == (1, 32, 32)
    assert torch.equal(p.test.images[:, :, 2:30, 2:30], s.test.images)


# ------------------------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_reader(tmp_path, protocol):
    d = write_cifar_dir(tmp_path / "cifar-10-batches-py", protocol=protocol)
    x_train, y_train, x_test, y_test = read_cifar10(tmp_path)   # parent folder works too
    assert x_train.shape == (20, 3, 32, 32) and x_test.shape == (4, 3, 32, 32)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    with open(d / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(x_train[:4].reshape(4, -1), first[b"data"])
    assert y_train[:4].tolist() == first[b"labels"]
    s = load_dataset("cifar10", data_dir=d)
    assert s.image_shape == (3, 32, 32) and s.num_classes == 10 and len(s.train) == 20


def test_cifar_str_keys_and_bad_batches(tmp_path):
    d = write_cifar_dir(tmp_path / "c", str_keys=True)
    assert read_cifar10(d)[0].shape == (20, 3, 32, 32)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                   b"labels": [0, 10]}))
    with pytest.raises(DataError, match=r"data_batch_3: label 10 is outside"):
        read_cifar10(d)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                   b"labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_3: 2 images but 1 labels"):
        read_cifar10(d)
    (d / "data_batch_3").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        read_cifar10(d)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing CIFAR-10 batch files: data_batch_3"):
        read_cifar10(d)


def test_cifar_batch_with_numpy1_module_names(tmp_path):
    """Real CIFAR-10 files were pickled by numpy 1 (numpy.core.multiarray) in protocol 2."""
    d = write_cifar_dir(tmp_path / "c", protocol=2)
    raw = (d / "test_batch").read_bytes()
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != raw
    (d / "test_batch").write_bytes(old)
    x_test = read_cifar10(d)[2]
    assert x_test.shape == (4, 3, 32, 32)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, protocol):
    d = write_cifar_dir(tmp_path / "c")
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(marker)}
    (d / "test_batch").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(DataError, match=r"test_batch: refused to unpickle global (os|posix)\.system"):
        read_cifar10(d)
    assert not marker.exists()
    (d / "test_batch").write_bytes(pickle.dumps(_EvalEvil(), protocol=protocol))
    with pytest.raises(DataError, match=r"refused to unpickle global (builtins|__builtin__)\.eval"):
        load_dataset("cifar10", data_dir=d)


# ----------------------------------------------------------------------------------- folder


def test_folder_with_classes(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for cls, n in (("b_dog", 3), ("a_cat", 7)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            write_png(root / cls / f"{i}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    write_png(root / "b_dog" / "rgba.png", rgba)
    got = read_image_folder(root)
    assert got.class_names == ["a_cat", "b_dog"]
    assert got.images.shape == (11, 3, 6, 5) and got.labels.tolist() == [0] * 7 + [1] * 4
    np.testing.assert_array_equal(got.images[-1].transpose(1, 2, 0), rgba[..., :3])
    s = load_dataset("folder", data_dir=root, test_fraction=0.3)
    assert (len(s.train), len(s.test)) == (8, 3) and s.num_classes == 2
    assert s.image_shape == (3, 6, 5) and s.num_levels == 256
    s2 = load_dataset("folder", data_dir=root, test_fraction=0.3)
    assert torch.equal(s.test.images, s2.test.images)
    both = torch.cat([s.train.images, s.test.images]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 11   # no image in both splits


def test_folder_unlabelled_grayscale(tmp_path):
    for i in range(4):
        write_png(tmp_path / f"{i}.png", np.full((4, 4), i * 10, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    got = read_image_folder(tmp_path)
    assert got.images.shape == (4, 1, 4, 4) and got.labels is None and got.class_names is None
    s = load_dataset("folder", data_dir=tmp_path, test_fraction=0.25)
    assert s.num_classes is None and s.train.labels is None and len(s.test) == 1


def test_folder_bad_inputs(tmp_path):
    a = tmp_path / "sizes"
    a.mkdir()
    write_png(a / "1.png", np.zeros((4, 4), np.uint8))
    write_png(a / "2.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match=r"2\.png: image is 5x4 grayscale but 1\.png is 4x4"):
        read_image_folder(a)
    m = tmp_path / "modes"
    m.mkdir()
    write_png(m / "1.png", np.zeros((4, 4), np.uint8))
    write_png(m / "2.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"2\.png: image is 4x4 RGB"):
        read_image_folder(m)
    c = tmp_path / "corrupt"
    c.mkdir()
    write_png(c / "1.png", np.zeros((4, 4), np.uint8))
    good = (c / "1.png").read_bytes()
    (c / "2.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"2\.png: cannot decode image"):
        read_image_folder(c)
    (c / "2.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"2\.png: cannot decode image"):
        load_dataset("folder", data_dir=c)
    with pytest.raises(DataError, match="not found.*missing_dir"):
        read_image_folder(tmp_path / "missing_dir")
    e = tmp_path / "empty"
    e.mkdir()
    with pytest.raises(DataError, match="no images"):
        read_image_folder(e)
    with pytest.raises(DataError, match="test_fraction"):
        load_dataset("folder", data_dir=a, test_fraction=1.5)


# -------------------------------------------------------------------------------------- npz


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, (5, 3, 4, 6), dtype=np.uint8)
    np.savez(tmp_path / "nchw.npz", x_train=nchw, x_test=nchw[:2])
    np.savez(tmp_path / "nhwc.npz", x_train=nchw.transpose(0, 2, 3, 1).astype(np.int64),
             x_test=nchw[:2].transpose(0, 2, 3, 1), y_train=np.arange(5), y_test=np.array([0, 7]))
    np.savez(tmp_path / "nhw.npz", x_train=nchw[:, 0], x_test=nchw[:2, 0])
    for name in ("nchw", "nhwc"):
        x_train, _, x_test, _ = read_npz(tmp_path / f"{name}.npz")
        np.testing.assert_array_equal(x_train, nchw)
        assert x_train.dtype == np.uint8 and x_test.shape == (2, 3, 4, 6)
    s = load_dataset("npz", data_dir=tmp_path / "nhwc.npz")
    assert s.image_shape == (3, 4, 6) and s.num_classes == 8 and s.test.labels.tolist() == [0, 7]
    s = load_dataset("npz", data_dir=tmp_path / "nhw.npz")
    assert s.image_shape == (1, 4, 6) and s.num_classes is None and s.train.labels is None
    one = tmp_path / "one"
    one.mkdir()
    np.savez(one / "d.npz", x_train=nchw[:, :1] % 4, x_test=nchw[:1, :1] % 4)
    s = load_dataset("npz", data_dir=one, num_levels=4)
    assert s.num_levels == 4 and s.image_shape == (1, 4, 6)


def test_npz_bad_inputs(tmp_path):
    x = np.zeros((2, 1, 3, 3), np.int16)
    np.savez(tmp_path / "range.npz", x_train=x + 300, x_test=x)
    with pytest.raises(DataError, match=r"range\.npz: x_train: values span \[300, 300\]"):
        read_npz(tmp_path / "range.npz")
    np.savez(tmp_path / "lv.npz", x_train=x + 5, x_test=x)
    with pytest.raises(DataError, match=r"outside \[0, 4\)"):
        load_dataset("npz", data_dir=tmp_path / "lv.npz", num_levels=4)
    np.savez(tmp_path / "float.npz", x_train=x.astype(np.float32), x_test=x)
    with pytest.raises(DataError, match="dtype float32"):
        read_npz(tmp_path / "float.npz")
    np.savez(tmp_path / "nokey.npz", train=x)
    with pytest.raises(DataError, match=r"missing arrays \['x_test', 'x_train'\]"):
        read_npz(tmp_path / "nokey.npz")
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}], dtype=object), x_test=x)
    with pytest.raises(DataError, match=r"obj\.npz"):
        read_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "labels.npz", x_train=x, x_test=x, y_train=np.arange(3), y_test=np.arange(2))
    with pytest.raises(DataError, match="y_train: expected 2 labels"):
        read_npz(tmp_path / "labels.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match=r"junk\.npz"):
        read_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError, match=r"\.npz files"):
        read_npz(tmp_path)   # a directory with several .npz files is ambiguous


# ---------------------------------------------------------------------------------- patches


def test_patch_photo_lists_are_disjoint():
    train, test = set(patches_mod.PATCH_TRAIN_PHOTOS), set(patches_mod.PATCH_TEST_PHOTOS)
    assert train and test and not train & test
    used = train | test
    assert not {"chelsea", "cat"} <= used   # the same photograph under two names
    assert "logo" not in used


def test_patches_shapes_and_determinism():
    pytest.importorskip("skimage")
    a = load_dataset("patches", size=16, n_train=50, n_test=13, seed=3)
    b = load_dataset("patches", size=16, n_train=50, n_test=13, seed=3)
    c = load_dataset("patches", size=16, n_train=50, n_test=13, seed=4)
    assert a.image_shape == (3, 16, 16) and a.num_levels == 256 and a.num_classes is None
    assert (len(a.train), len(a.test)) == (50, 13) and a.train.labels is None
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)
    assert load_dataset("patches", size=64, n_train=2, n_test=2).image_shape == (3, 64, 64)
    with pytest.raises(DataError, match=r"size.*must be one of \[16, 32, 64\]"):
        load_dataset("patches", size=20)
    with pytest.raises(DataError, match="n_train"):
        load_dataset("patches", n_train=0)


def test_patches_come_from_the_right_photos(monkeypatch):
    names = patches_mod.PATCH_TRAIN_PHOTOS + patches_mod.PATCH_TEST_PHOTOS
    rows, cols = np.meshgrid(np.arange(120), np.arange(90), indexing="ij")

    def fake_photo(name):  # channel 0 = photo id, 1 = row, 2 = column
        return np.stack([np.full_like(rows, names.index(name)), rows, cols], -1).astype(np.uint8)

    monkeypatch.setattr(patches_mod, "load_photo", fake_photo)
    train, _, test, _ = patches_mod.make_patch_splits(size=16, n_train=60, n_test=30, seed=0)
    train_ids = {names.index(n) for n in patches_mod.PATCH_TRAIN_PHOTOS}
    test_ids = {names.index(n) for n in patches_mod.PATCH_TEST_PHOTOS}
    assert set(np.unique(train[:, 0]).tolist()) == train_ids
    assert set(np.unique(test[:, 0]).tolist()) == test_ids
    for crops in (train, test):   # each crop is one contiguous window
        assert (np.diff(crops[:, 1].astype(int), axis=1) == 1).all()
        assert (np.diff(crops[:, 2].astype(int), axis=2) == 1).all()
        assert (crops[:, 0] == crops[:, 0, :1, :1]).all()


def luma_by_hand(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of uint8 (N, 3, H, W), rounded half up, in exact integers: uint8 (N, 1, H, W)."""
    r, g, b = (rgb[:, i:i + 1].astype(np.int64) for i in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def fake_coordinate_photos(monkeypatch):
    """Every photograph 120 x 90: channel 0 = its index in TRAIN + TEST photos, 1 = row, 2 = column."""
    names = patches_mod.PATCH_TRAIN_PHOTOS + patches_mod.PATCH_TEST_PHOTOS
    rows, cols = np.meshgrid(np.arange(120), np.arange(90), indexing="ij")

    def fake_photo(name):
        return np.stack([np.full_like(rows, names.index(name)), rows, cols], -1).astype(np.uint8)

    monkeypatch.setattr(patches_mod, "load_photo", fake_photo)
    return names


def test_patches_photos_split_is_pinned():
    """split="photos" (RGB) gives, byte for byte, what it gave before the grey and split options."""
    pytest.importorskip("skimage")
    import hashlib
    train, _, test, _ = patches_mod.make_patch_splits(size=16, n_train=50, n_test=13, seed=3)
    assert hashlib.sha256(train.tobytes()).hexdigest() == \
        "3ec012f62ac8968d409282e6a29fd0f286d4134c550e891d2af288b3d59fa598"
    assert hashlib.sha256(test.tobytes()).hexdigest() == \
        "504c85c90b9961e580552fac8df2e567e6a3ca0737c531f75bdb6ad28fd91f1d"
    a = load_dataset("patches", size=16, n_train=50, n_test=13, seed=3, grey=False, split="photos")
    assert torch.equal(a.train.images, torch.from_numpy(train)) and torch.equal(a.test.images, torch.from_numpy(test))
    assert a.train.labels is None and a.test.labels is None and a.num_classes is None
    assert "RGB" in a.train.source and "photos" in a.train.source


@pytest.mark.parametrize("split", ["photos", "crops"])
def test_patches_grey_is_the_luma_of_the_rgb_crops(split):
    pytest.importorskip("skimage")
    opts = dict(size=16, n_train=50, n_test=13, seed=3, split=split)
    rgb = load_dataset("patches", **opts)
    grey = load_dataset("patches", grey=True, **opts)
    assert grey.image_shape == (1, 16, 16) and grey.num_levels == 256
    assert "grey" in grey.train.source and "RGB" in rgb.train.source and split in grey.train.source
    for g, c in ((grey.train, rgb.train), (grey.test, rgb.test)):
        assert g.images.dtype == torch.uint8 and tuple(g.images.shape) == (len(c), 1, 16, 16)
        np.testing.assert_array_equal(g.images.numpy(), luma_by_hand(c.images.numpy()))
        if split == "crops":
            assert torch.equal(g.labels, c.labels)
    assert grey.train.images.float().std() > 0    # real photographs, not a constant


def test_patches_grey_formula_by_hand(monkeypatch):
    """Each photograph one known colour; its grey crops are round(0.299 R + 0.587 G + 0.114 B)."""
    names = patches_mod.PATCH_TRAIN_PHOTOS + patches_mod.PATCH_TEST_PHOTOS
    colours = {   # (R, G, B) -> luma, worked out by hand
        (255, 0, 0): 76,        # 76.245
        (0, 255, 0): 150,       # 149.685: rounded, not truncated
        (0, 0, 255): 29,        # 29.07
        (255, 255, 255): 255,   # 255.0: the weights sum to 1
        (0, 0, 0): 0,
        (10, 20, 30): 18,       # 2.99 + 11.74 + 3.42 = 18.15
        (12, 0, 8): 5,          # 3.588 + 0.912 = 4.5 exactly: halves round up (not to even)
        (100, 150, 200): 141,   # 29.9 + 88.05 + 22.8 = 140.75
    }
    rgb_of = dict(zip(names, colours))

    def fake_photo(name):
        return np.broadcast_to(np.array(rgb_of[name], np.uint8), (40, 50, 3)).copy()

    monkeypatch.setattr(patches_mod, "load_photo", fake_photo)
    want = {i: v for i, v in enumerate(colours.values())}
    for split, test_ids in (("photos", (6, 7)), ("crops", range(6))):
        x_train, y_train, x_test, y_test = patches_mod.make_patch_splits(
            size=16, n_train=24, n_test=12, seed=0, grey=True, split=split)
        for x, ids in ((x_train, range(6)), (x_test, test_ids)):
            assert x.shape[1] == 1 and x.dtype == np.uint8
            assert set(np.unique(x).tolist()) == {want[i] for i in ids}
        if split == "photos":
            assert y_train is None and y_test is None
        else:
            for x, y in ((x_train, y_train), (x_test, y_test)):
                assert (x[:, 0] == np.array([want[i] for i in range(6)], np.uint8)[y][:, None, None]).all()


def test_grey_photo_cache_follows_the_rgb_photo(monkeypatch):
    """The grey conversion is cached, but never outlives the RGB array it was made from."""
    photo = {"value": 10}

    def fake_photo(name):
        return np.full((20, 20, 3), photo["value"], np.uint8)

    monkeypatch.setattr(patches_mod, "load_photo", fake_photo)
    assert (patches_mod.load_grey_photo("astronaut") == 10).all()
    photo["value"] = 200
    g = patches_mod.load_grey_photo("astronaut")
    assert g.shape == (20, 20, 1) and (g == 200).all() and not g.flags.writeable
    same = np.full((20, 20, 3), 7, np.uint8)
    monkeypatch.setattr(patches_mod, "load_photo", lambda name: same)
    first = patches_mod.load_grey_photo("coffee")
    assert patches_mod.load_grey_photo("coffee") is first   # converted once per photograph


def test_patches_crops_split_labels_by_photograph(monkeypatch):
    names = fake_coordinate_photos(monkeypatch)
    assert names[:6] == patches_mod.PATCH_TRAIN_PHOTOS   # so channel 0 of a crop is its label
    ds = load_dataset("patches", size=16, n_train=62, n_test=33, seed=5, split="crops")
    assert ds.num_classes == 6 and ds.image_shape == (3, 16, 16)
    for part, n in ((ds.train, 62), (ds.test, 33)):
        x, y = part.images.numpy(), part.labels.numpy()
        assert part.labels.dtype == torch.int64 and y.shape == (n,) and 0 <= y.min() and y.max() < 6
        share, extra = divmod(n, 6)
        assert np.bincount(y, minlength=6).tolist() == [share + (i < extra) for i in range(6)]
        assert (x[:, 0] == y[:, None, None]).all()          # each crop from the photograph its label names
        assert (np.diff(x[:, 1].astype(int), axis=1) == 1).all() and (np.diff(x[:, 2].astype(int), axis=2) == 1).all()
        assert not (np.diff(y) >= 0).all()                  # shuffled, labels in the crops' order
    def corners(x):   # (photo, top, left) of each crop
        return {tuple(c) for c in x[:, :, 0, 0].tolist()}

    assert len(corners(ds.test.images.numpy()) - corners(ds.train.images.numpy())) > 25   # own positions
    photos = load_dataset("patches", size=16, n_train=62, n_test=33, seed=5)
    assert torch.equal(ds.train.images, photos.train.images)   # the same train crops as split="photos"
    assert photos.train.labels is None and photos.test.labels is None and photos.num_classes is None
    assert set(np.unique(photos.test.images.numpy()[:, 0]).tolist()) == {6, 7}
    again = load_dataset("patches", size=16, n_train=62, n_test=33, seed=5, split="crops")
    other = load_dataset("patches", size=16, n_train=62, n_test=33, seed=6, split="crops")
    for a, b in ((ds.train, again.train), (ds.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(ds.test.images, other.test.images) and not torch.equal(ds.test.labels, other.test.labels)
    assert "crops" in ds.train.source and "label" in ds.train.source


def test_patches_bad_grey_and_split(monkeypatch):
    fake_coordinate_photos(monkeypatch)
    opts = dict(size=16, n_train=6, n_test=6)
    with pytest.raises(DataError, match=r"option split of dataset 'patches' must be one of 'photos', 'crops', got 'x'"):
        load_dataset("patches", split="x", **opts)
    for bad in ("yes", 2, 1.0, "true"):
        with pytest.raises(DataError, match=r"option grey of dataset 'patches' must be true or false"):
            load_dataset("patches", grey=bad, **opts)
    with pytest.raises(DataError, match="split"):
        patches_mod.make_patch_splits(size=16, n_train=6, n_test=6, split="Photos")
    with pytest.raises(DataError, match="grey"):
        patches_mod.make_patch_splits(size=16, n_train=6, n_test=6, grey="yes")
    for ok, channels in ((1, 1), (0, 3), (True, 1), (False, 3), (np.True_, 1), (None, 3)):
        assert load_dataset("patches", grey=ok, **opts).image_shape[0] == channels
    assert load_dataset("patches", split=None, **opts).num_classes is None   # None: the default, "photos"


def test_patches_without_skimage(monkeypatch):
    def missing():
        raise DataError(f"patches: {patches_mod.SKIMAGE_MISSING}")
    monkeypatch.setattr(patches_mod, "_skimage_data", missing)
    patches_mod.load_photo.cache_clear()
    try:
        with pytest.raises(DataError, match="pip install scikit-image"):
            load_dataset("patches", n_train=2, n_test=2)
    finally:
        patches_mod.load_photo.cache_clear()


# ----------------------------------------------------------------------- dataset and augment


def test_image_dataset_validation_and_subset():
    x = torch.randint(0, 4, (5, 1, 2, 2), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 1, 0])
    ds = ImageDataset("toy/train", x, y, num_levels=4, num_classes=3, source="memory")
    assert len(ds) == 5 and ds.image_shape == (1, 2, 2)
    sub = ds.subset([4, 0])
    assert torch.equal(sub.images, x[[4, 0]]) and sub.labels.tolist() == [0, 0]
    with pytest.raises(DataError, match="toy/train.*uint8"):
        ImageDataset("toy/train", x.long(), y, 4, 3, "memory")
    with pytest.raises(DataError, match=r"image value 3 is outside \[0, 3\)"):
        ImageDataset("toy/train", x | 3, y, 3, 3, "memory")
    with pytest.raises(DataError, match=r"label 2 is outside \[0, 2\)"):
        ImageDataset("toy/train", x, y, 4, 2, "memory")
    with pytest.raises(DataError, match="5 images but 4 labels"):
        ImageDataset("toy/train", x, y[:4], 4, 3, "memory")
    with pytest.raises(DataError, match="int64"):
        ImageDataset("toy/train", x, y.int(), 4, 3, "memory")
    with pytest.raises(DataError, match="shape"):
        ImageDataset("toy/train", x[:, 0], y, 4, 3, "memory")
    other = ImageDataset("toy/test", x, y, num_levels=5, num_classes=3, source="memory")
    with pytest.raises(DataError, match="num_levels"):
        DataSplits(ds, other)
    splits = DataSplits(ds, sub)
    assert splits.image_shape == (1, 2, 2) and splits.num_levels == 4 and splits.num_classes == 3


def test_image_dataset_wide_levels_need_int16_or_int32():
    """Code maps of a codebook larger than 256: int16 up to 32768 levels, int32 up to 65536; uint8
    keeps its 256-level limit and other dtypes are still refused."""
    from pixelzoo.data.dataset import image_dtype_for

    x = torch.tensor([0, 511, 7, 300], dtype=torch.int16).view(4, 1, 1, 1)
    ds = ImageDataset("codes/train", x, None, num_levels=512, num_classes=None, source="memory")
    assert ds.subset([1]).images.dtype == torch.int16 and int(ds.subset([1]).images) == 511
    assert ImageDataset("codes", x.int(), None, 65536, None, "memory").num_levels == 65536
    assert [image_dtype_for(k) for k in (2, 256, 257, 32768, 32769, 65536)] == [
        torch.uint8, torch.uint8, torch.int16, torch.int16, torch.int32, torch.int32]
    with pytest.raises(DataError, match=r"512 levels do not fit torch.uint8 .*use torch.int16"):
        ImageDataset("codes", x.clamp(max=255).to(torch.uint8), None, 512, None, "memory")
    with pytest.raises(DataError, match=r"40000 levels do not fit torch.int16"):
        ImageDataset("codes", x, None, 40000, None, "memory")
    with pytest.raises(DataError, match=r"in \[2, 65536\]"):
        ImageDataset("codes", x.int(), None, 65537, None, "memory")
    with pytest.raises(DataError, match=r"image value 511 is outside \[0, 300\)"):
        ImageDataset("codes", x, None, 300, None, "memory")
    with pytest.raises(DataError, match=r"image value -1 is outside \[0, 512\)"):
        ImageDataset("codes", x - 1, None, 512, None, "memory")
    for bad in (x.long(), x.float(), x.to(torch.int8)):
        with pytest.raises(DataError, match="must be uint8"):
            ImageDataset("codes", bad, None, 512, None, "memory")


def test_random_hflip():
    x = torch.arange(64 * 3 * 2 * 4, dtype=torch.uint8).reshape(64, 3, 2, 4)
    before = x.clone()
    a = random_hflip(x, torch.Generator().manual_seed(7))
    b = random_hflip(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(x, before)
    flipped = (a == x.flip(-1)).flatten(1).all(1)
    same = (a == x).flatten(1).all(1)
    assert bool((flipped ^ same).all())   # every image is exactly one of the two
    assert 10 < int(flipped.sum()) < 54
    assert torch.equal(random_hflip(x, torch.Generator().manual_seed(1), p=0.0), x)
    assert torch.equal(random_hflip(x, torch.Generator().manual_seed(1), p=1.0), x.flip(-1))
    with pytest.raises(DataError, match="p must be"):
        random_hflip(x, torch.Generator(), p=2.0)
