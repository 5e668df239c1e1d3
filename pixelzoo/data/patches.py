"""Random square RGB crops from the colour photographs that ship inside scikit-image.

Training and test crops come from different photographs, so the test set measures
generalisation to unseen images rather than to unseen crops of seen images:

* train: astronaut, coffee, rocket, hubble_deep_field, retina, colorwheel
* test: chelsea, immunohistochemistry

``cat`` is not used (it is the same photograph as ``chelsea``), nor is ``logo`` (RGBA).
Each split draws an equal share of its crops from every one of its photographs (the first
photographs take one more when the count does not divide evenly), at uniformly random
positions, then shuffles them. Seeds: ``numpy.random.default_rng([seed, 0])`` for train and
``[seed, 1]`` for test, so the two splits are independent and each is fixed by ``seed``.
"""

from __future__ import annotations

import functools

import numpy as np

from pixelzoo.errors import DataError

PATCH_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "colorwheel")
PATCH_TEST_PHOTOS = ("chelsea", "immunohistochemistry")
PATCH_SIZES = (16, 32, 64)

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


def random_crops(photos: tuple[str, ...], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size`` x ``size`` crops, shared equally among ``photos``; uint8 (n, 3, size, size)."""
    share, extra = divmod(n, len(photos))
    offsets = np.arange(size)
    parts = []
    for i, name in enumerate(photos):
        img = load_photo(name)
        h, w = img.shape[:2]
        if h < size or w < size:
            raise DataError(f"patches: photograph {name} ({w}x{h}) is smaller than size {size}")
        k = share + (1 if i < extra else 0)
        top = rng.integers(0, h - size + 1, size=k)
        left = rng.integers(0, w - size + 1, size=k)
        rows = (top[:, None] + offsets)[:, :, None]   # (k, size, 1)
        cols = (left[:, None] + offsets)[:, None, :]  # (k, 1, size)
        parts.append(img[rows, cols])                 # (k, size, size, 3)
    crops = np.concatenate(parts)[rng.permutation(n)]
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


def make_patches(size: int = 32, n_train: int = 20000, n_test: int = 2000, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) crops as uint8 (N, 3, size, size); see the module docstring for the split."""
    if size not in PATCH_SIZES:
        raise DataError(f"patches: size must be one of {list(PATCH_SIZES)}, got {size}")
    train = random_crops(PATCH_TRAIN_PHOTOS, n_train, size, np.random.default_rng([seed, 0]))
    test = random_crops(PATCH_TEST_PHOTOS, n_test, size, np.random.default_rng([seed, 1]))
    return train, test


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
