"""Reader for a directory of image files (PNG, JPEG, BMP), optionally one subdirectory per class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pixelzoo.data._checks import existing_dir
from pixelzoo.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: PIL modes that load as one channel (grayscale)
GREY_MODES = ("1", "L", "LA")


class FolderImages(NamedTuple):
    """What :func:`read_image_folder` returns."""

    images: np.ndarray              # uint8 (N, C, H, W), C = 1 (grayscale) or 3 (RGB)
    labels: np.ndarray | None       # int64 (N,), index into class_names; None if unlabelled
    class_names: list[str] | None   # sorted subdirectory names; None if unlabelled
    files: list[Path]               # the file of each image, in order


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: Path) -> np.ndarray:
    """One image as uint8 (H, W) for grayscale or (H, W, 3) for colour."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in GREY_MODES:
                im = im.convert("L")
            elif mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise DataError(f"{path}: {mode} images (16-bit or float) are not supported; "
                                "save them as 8-bit grayscale or RGB")
            elif mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e


def image_header(path: Path) -> tuple[int, int, bool]:
    """(width, height, grey) of an image file from its header, without decoding the pixels; grey: it
    loads as one channel (see :func:`load_image`). A file that is no image is a DataError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
            mode = im.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read the image header ({type(e).__name__}: {e})") from e
    return width, height, mode in GREY_MODES


class FolderListing(NamedTuple):
    """What :func:`list_image_folder` returns: the files of a folder, without reading them."""

    files: list[Path]               # every image file, classes in order, files sorted within each
    labels: np.ndarray | None       # int64 (N,), index into class_names; None if unlabelled
    class_names: list[str] | None   # sorted subdirectory names; None if unlabelled


def list_image_folder(path: str | os.PathLike) -> FolderListing:
    """The image files of ``path``; if it has subdirectories, each one is a class (label i = the i-th
    sorted name), files in sorted order. An empty folder, an empty class folder or an image beside
    class folders is a DataError naming it."""
    root = existing_dir(path, "image folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        files = _image_files(root)
        if not files:
            raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) and no class subdirectories")
        return FolderListing(files, None, None)
    stray = _image_files(root)
    if stray:
        raise DataError(f"{root}: has class subdirectories but also the image {stray[0].name} "
                        "at top level; move it into a class folder")
    files, labels = [], []
    for label, d in enumerate(subdirs):
        found = _image_files(d)
        if not found:
            raise DataError(f"{d}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    return FolderListing(files, np.asarray(labels, dtype=np.int64), [d.name for d in subdirs])


def read_image_folder(path: str | os.PathLike) -> FolderImages:
    """Read every image in ``path`` (see :func:`list_image_folder`) into memory.

    RGBA, palette and other colour modes become RGB; 1-bit and grayscale+alpha become
    grayscale. All images must have the same size and channel count: the first file that differs
    is named in the DataError.
    """
    files, y, class_names = list_image_folder(path)
    arrays = []
    for f in files:
        a = load_image(f)
        if arrays and a.shape != arrays[0].shape:
            raise DataError(
                f"{f}: image is {_describe(a)} but {files[0].name} is {_describe(arrays[0])}; "
                "all images in the folder must have the same size and mode")
        arrays.append(a)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return FolderImages(np.ascontiguousarray(x), y, class_names, files)


def _describe(a: np.ndarray) -> str:
    mode = "grayscale" if a.ndim == 2 else "RGB"
    return f"{a.shape[1]}x{a.shape[0]} {mode}"
