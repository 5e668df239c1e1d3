"""Every value a page request carries, checked before any work: counts, classes, temperatures,
seeds, images (a test image by index, or an upload decoded in memory, never written to disk) and
masks. A bad value raises :class:`BadRequest` naming the field and what it must be; the app answers
it with a 4xx status and that message."""

from __future__ import annotations

import base64
import binascii
import io
import math

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import PixelzooError
from ..evaluation.scoring import fit_images

MAX_SAMPLES = 64          # images per sampling request
MAX_PER_IMAGE = 16        # completions / colourisations / upscalings / reconstructions per image
MAX_TEMPERATURE = 10.0
MAX_SEED = 2**31 - 1
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # an uploaded image, decoded from its data URI
MAX_UPLOAD_PIXELS = 2048 * 2048
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")


class BadRequest(PixelzooError):
    """A request value that is missing or out of range; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _number(body, key: str, low, high, default, integral: bool):
    what = f"{'an integer' if integral else 'a number'} from {low:g} to {high:g}"
    value = body.get(key, default)
    if value is None:
        raise BadRequest(f"{key} is required ({what})")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"{key} must be {what}, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{key} must be {what}, got {value!r}") from None
    if not math.isfinite(number) or (integral and number != int(number)) or not low <= number <= high:
        raise BadRequest(f"{key} must be {what}, got {value!r}")
    return int(number) if integral else number


def integer(body, key: str, low: int, high: int, default=None) -> int:
    """``body[key]`` (a dict or the query's arguments) as an integer in [low, high]; numbers written as text are read."""
    return _number(body, key, low, high, default, integral=True)


def real(body, key: str, low: float, high: float, default=None) -> float:
    """``body[key]`` as a finite number in [low, high]."""
    return _number(body, key, low, high, default, integral=False)


def class_of(body: dict, model) -> int | None:
    """The ``class`` field: absent/null/"" for none, else a class of the model."""
    value = body.get("class")
    if value is None or value == "":
        return None
    if not model.num_classes:
        raise BadRequest("this model is not class-conditional: class does not apply")
    return integer(body, "class", 0, model.num_classes - 1)


def flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false, got {value!r}")
    return value


def decode_upload(uri) -> tuple[torch.Tensor, int]:
    """An uploaded picture (a ``data:image/...;base64,`` URI) as (1, C, H, W) integer levels of 256,
    C = 1 for a grey picture, else 3 (alpha dropped); decoded in memory."""
    if not isinstance(uri, str) or not uri.startswith("data:image/") or ";base64," not in uri:
        raise BadRequest("upload must be an image as a data:image/...;base64, URI")
    try:
        raw = base64.b64decode(uri.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("upload is not valid base64") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"upload is {len(raw)} bytes; at most {MAX_UPLOAD_BYTES} are accepted", status=413)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.format not in UPLOAD_FORMATS:
                raise BadRequest(f"upload is a {im.format} image; accepted: {', '.join(UPLOAD_FORMATS)}", status=415)
            if im.width * im.height > MAX_UPLOAD_PIXELS:
                raise BadRequest(f"upload is {im.width}x{im.height} pixels; at most {MAX_UPLOAD_PIXELS} pixels", status=413)
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F") or (im.mode == "P" and _grey_palette(im))
            arr = np.asarray(im.convert("L" if grey else "RGB"))
    except UnidentifiedImageError:
        raise BadRequest(f"upload is not an image in a known format ({', '.join(UPLOAD_FORMATS)})", status=415) from None
    except (OSError, SyntaxError, ValueError) as e:  # a truncated or corrupt file of a known format
        raise BadRequest(f"upload cannot be decoded ({type(e).__name__}: {e})", status=415) from None
    x = torch.from_numpy(arr.copy()).long()
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    return x, 256


def _grey_palette(im) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def image_of(body: dict, model, test) -> tuple[torch.Tensor, int | None]:
    """(image (C, H, W) long, its label or None) from ``test_index`` (an image of the model's test
    split ``test``, a callable giving it) or ``upload`` (converted to the model's size, channels and
    levels when ``fit`` is true, else refused naming what the model takes)."""
    if "upload" in body and body["upload"] is not None:
        x, levels = decode_upload(body["upload"])
        try:
            x = fit_images(x, levels, model.image_shape, model.num_levels, fit=flag(body, "fit"),
                           fit_option="tick 'convert'")
        except PixelzooError as e:
            raise BadRequest(str(e)) from None
        return x[0], None
    data = test()
    index = integer(body, "test_index", 0, len(data) - 1)
    label = None if data.labels is None else int(data.labels[index])
    return data.images[index].long(), label


def mask_of(body: dict, height: int, width: int) -> torch.Tensor:
    """The ``mask`` field: a string of ``height * width`` characters '1' (pixel kept) or '0', row by row."""
    value = body.get("mask")
    if not isinstance(value, str) or len(value) != height * width or set(value) - {"0", "1"}:
        raise BadRequest(f"mask must be a string of {height * width} characters '0' or '1' (one per pixel, "
                         f"row by row), got {type(value).__name__} of length {len(value) if hasattr(value, '__len__') else '-'}")
    return torch.tensor([c == "1" for c in value], dtype=torch.bool).view(height, width)
