"""Random square crops from the colour photographs that ship inside scikit-image.

Photographs (``cat`` is not used: it is the same photograph as ``chelsea``; nor is ``logo``, RGBA):

* training photographs: astronaut, coffee, rocket, hubble_deep_field, retina, colorwheel
* held-out photographs: chelsea, immunohistochemistry

Options of :func:`make_patch_splits` (and of ``load_dataset("patches", ...)``):

* ``split="photos"`` (default): train crops from the training photographs, test crops from the
  held-out ones, so the test set measures generalisation to unseen images rather than to unseen
  crops of seen images. Unlabelled.
* ``split="crops"``: train and test crops both from the six training photographs (the test crops at
  their own random positions, which may overlap train crops), each labelled by its photograph:
  label k is the index of the photograph in ``PATCH_TRAIN_PHOTOS`` (6 classes). Test and train
  then come from one distribution, so a classifier of "which photograph" can serve as the feature
  network of sample metrics. The train crops are those of ``split="photos"``.
* ``grey=False`` (default): RGB crops, uint8 (N, 3, size, size). ``grey=True``: one channel, the
  Rec. 601 luma of each pixel, round(0.299 R + 0.587 G + 0.114 B) with halves rounded up, in exact
  integer arithmetic ((299 R + 587 G + 114 B + 500) // 1000), uint8 (N, 1, size, size). Each
  photograph is converted once, then cropped, so grey crops are exactly the luma of the RGB crops
  drawn with the same options and seed.

Each split draws an equal share of its crops from every one of its photographs (the first
photographs take one more when the count does not divide evenly), at uniformly random
positions, then shuffles them (labels in the same order). Seeds: ``numpy.random.default_rng([seed,
0])`` for train and ``[seed, 1]`` for test, so the two splits are independent and each is fixed by
``seed``; neither ``grey`` nor the labels change which positions are drawn.
"""

from __future__ import annotations

import functools

import numpy as np

from pixelzoo.data._checks import bool_option, choice_option
from pixelzoo.errors import DataError
from pixelzoo.views import BT601

PATCH_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "colorwheel")
PATCH_TEST_PHOTOS = ("chelsea", "immunohistochemistry")
PATCH_SIZES = (16, 32, 64)
PATCH_SPLITS = ("photos", "crops")

SKIMAGE_MISSING = "scikit-image is not installed; install it with `pip install scikit-image`"


def _skimage_data():
    try:
        import skimage.data
    except ImportError as e:
        raise DataError(f"patches: {SKIMAGE_MISSING} ({e})") from e
    return skimage.data


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """The scikit-image photograph ``name`` as a read-only uint8 (H, W, 3) array."""
    data = _skimage_data()
    loader = getattr(data, name, None)
    if loader is None:
        raise DataError(f"patches: scikit-image has no photograph {name!r} (skimage.data.{name})")
    try:
        img = np.asarray(loader())
    except Exception as e:  # missing data file, failed fetch, ...
        raise DataError(f"patches: cannot load skimage.data.{name}() ({type(e).__name__}: {e})") from e
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"patches: skimage.data.{name}() is {img.dtype} {img.shape}, "
                        "expected a uint8 RGB image (H, W, 3)")
    img = np.ascontiguousarray(img)
    img.setflags(write=False)
    return img


def luma(rgb: np.ndarray) -> np.ndarray:
    """The Rec. 601 luma of uint8 RGB (..., 3) as uint8 (..., 1): round(0.299 R + 0.587 G + 0.114 B),
    halves rounded up, computed exactly in integers as (299 R + 587 G + 114 B + 500) // 1000."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise DataError(f"patches: luma needs uint8 RGB values (..., 3), got {rgb.dtype} {rgb.shape}")
    x = rgb.astype(np.int32)
    s = BT601[0] * x[..., 0:1] + BT601[1] * x[..., 1:2] + BT601[2] * x[..., 2:3]   # 1000 * Y, at most 255000
    return np.clip((s + 500) // 1000, 0, 255).astype(np.uint8)


_GREY_PHOTOS: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # name -> (the RGB array, its luma)


def load_grey_photo(name: str) -> np.ndarray:
    """The luma of :func:`load_photo` ``(name)`` as a read-only uint8 (H, W, 1) array, converted once.

    The cache holds the RGB array it was made from and is used only while ``load_photo`` returns
    that same array, so a replaced (or cleared and reloaded) photograph is never shadowed."""
    rgb = load_photo(name)
    hit = _GREY_PHOTOS.get(name)
    if hit is not None and hit[0] is rgb:
        return hit[1]
    grey = np.ascontiguousarray(luma(rgb))
    grey.setflags(write=False)
    _GREY_PHOTOS[name] = (rgb, grey)
    return grey


def labelled_crops(photos: tuple[str, ...], n: int, size: int, rng: np.random.Generator, grey: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ``size`` x ``size`` crops, shared equally among ``photos``, and their labels:
    uint8 (n, C, size, size), C = 1 if ``grey`` else 3, and int64 (n,), the index in ``photos`` of
    each crop's photograph, in the crops' (shuffled) order."""
    share, extra = divmod(n, len(photos))
    offsets = np.arange(size)
    parts, labels = [], []
    for i, name in enumerate(photos):
        img = load_grey_photo(name) if grey else load_photo(name)
        h, w = img.shape[:2]
        if h < size or w < size:
            raise DataError(f"patches: photograph {name} ({w}x{h}) is smaller than size {size}")
        k = share + (1 if i < extra else 0)
        top = rng.integers(0, h - size + 1, size=k)
        left = rng.integers(0, w - size + 1, size=k)
        rows = (top[:, None] + offsets)[:, :, None]   # (k, size, 1)
        cols = (left[:, None] + offsets)[:, None, :]  # (k, 1, size)
        parts.append(img[rows, cols])                 # (k, size, size, C)
        labels.append(np.full(k, i, dtype=np.int64))
    order = rng.permutation(n)
    crops = np.concatenate(parts)[order]
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2)), np.concatenate(labels)[order]


def make_patch_splits(size: int = 32, n_train: int = 20000, n_test: int = 2000, seed: int = 0, *,
                      grey: bool = False, split: str = "photos"
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(x_train, y_train, x_test, y_test): uint8 (N, C, size, size) crops and int64 (N,) labels, the
    labels None for ``split="photos"``; see the module docstring for the options."""
    if size not in PATCH_SIZES:
        raise DataError(f"patches: size must be one of {list(PATCH_SIZES)}, got {size}")
    grey = bool_option("grey", grey, dataset="patches")
    split = choice_option("split", split, PATCH_SPLITS, dataset="patches")
    test_photos = PATCH_TEST_PHOTOS if split == "photos" else PATCH_TRAIN_PHOTOS
    x_train, y_train = labelled_crops(PATCH_TRAIN_PHOTOS, n_train, size, np.random.default_rng([seed, 0]), grey)
    x_test, y_test = labelled_crops(test_photos, n_test, size, np.random.default_rng([seed, 1]), grey)
    if split == "photos":
        return x_train, None, x_test, None
    return x_train, y_train, x_test, y_test


def patches_status() -> tuple[bool, str]:
    """(available, detail) for the patches data set, loading each photograph once."""
    try:
        import skimage
        for name in PATCH_TRAIN_PHOTOS + PATCH_TEST_PHOTOS:
            load_photo(name)
    except ImportError:
        return False, SKIMAGE_MISSING
    except DataError as e:
        return False, str(e)
    return True, (f"scikit-image {skimage.__version__}: train photos {', '.join(PATCH_TRAIN_PHOTOS)}; "
                  f"test photos {', '.join(PATCH_TEST_PHOTOS)}")
