"""Small shared checks for the data readers: paths and option values."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pixelzoo.errors import DataError


def existing_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise DataError if it is not an existing file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if not p.is_file():
        raise DataError(f"{what} is not a regular file: {p}")
    return p


def existing_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """Return ``path`` as a Path, or raise DataError if it is not an existing directory."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if not p.is_dir():
        raise DataError(f"{what} is not a directory: {p}")
    return p


def int_option(name: str, value, *, minimum: int | None = None, maximum: int | None = None,
               choices: tuple[int, ...] | None = None, dataset: str = "") -> int:
    """Check that an option is an int (not bool) within bounds; return it."""
    where = f" of dataset {dataset!r}" if dataset else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"option {name}{where} must be an integer, got {value!r}")
    value = int(value)
    if choices is not None and value not in choices:
        raise DataError(f"option {name}{where} must be one of {list(choices)}, got {value}")
    if minimum is not None and value < minimum:
        raise DataError(f"option {name}{where} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise DataError(f"option {name}{where} must be <= {maximum}, got {value}")
    return value


def bool_option(name: str, value, *, dataset: str = "") -> bool:
    """Check that an option is a bool, or the integer 0 or 1 (JSON configs pass either); return a bool."""
    where = f" of dataset {dataset!r}" if dataset else ""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise DataError(f"option {name}{where} must be true or false (or 1 or 0), got {value!r}")


def choice_option(name: str, value, choices: tuple[str, ...], *, dataset: str = "") -> str:
    """Check that an option is one of the strings ``choices``; return it."""
    where = f" of dataset {dataset!r}" if dataset else ""
    if not isinstance(value, str) or value not in choices:
        raise DataError(f"option {name}{where} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
