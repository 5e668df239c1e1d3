"""Fixed image views: pure, deterministic functions of integer images (B, C, H, W) -> coarser levels.

A view makes the level above the pixels in an auxiliary-variable model (Kolesnikov & Lampert 2017):
X_hat = psi(X). Every function here works in exact integer arithmetic (no float rounding can move a
value across a bin edge), accepts any integer dtype and returns ``torch.long``.

* ``quantize(x, levels_in, levels_out)`` = floor(x * levels_out / levels_in): ``levels_out`` equal
  bins of [0, levels_in).
* ``grayscale4(x, levels=256, out_levels=16)``: the ITU-R BT.601 luma
  Y = 0.299 R + 0.587 G + 0.114 B of an RGB image, binned like ``quantize``:
  gray = floor(out_levels * Y / levels), computed as ``(299 R + 587 G + 114 B) * out_levels //
  (1000 * levels)``, i.e. exactly, without first rounding Y to an integer. A 1-channel image is
  its own luma: the view is ``quantize(x, levels, out_levels)`` (the same formula with R = G = B).
  With 256 levels and 16 gray levels: gray = floor(Y / 16).
* ``downsample2x(x)``: the mean of each 2x2 block rounded half up, floor(mean + 1/2), computed as
  ``(sum + 2) // 4``; stays in [0, levels). H and W must be even.
* ``pyramid(x, n)``: ``[x, d(x), d(d(x)), ..., d^n(x)]`` (n + 1 levels, finest first).

Display helpers (not inverses, which do not exist): ``gray_to_image`` puts gray levels at their bin
centres on the image's scale, ``upsample_nearest`` enlarges a low-resolution level for a grid.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

#: ITU-R BT.601 luma weights, in thousandths (they sum to 1000).
BT601 = (299, 587, 114)


def _check_int(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ConfigError(f"{what}: expected integer images, got dtype {x.dtype}")
    if x.dim() != 4:
        raise ConfigError(f"{what}: expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    return x.long()


def has_values(t: torch.Tensor) -> bool:
    """Whether ``t``'s values can be checked: it holds some, and it is not on the meta device (where a
    model's training step is traced for its memory, shapes only)."""
    return t.numel() > 0 and not t.is_meta


def _check_range(x: torch.Tensor, levels: int, what: str) -> None:
    if has_values(x) and (int(x.min()) < 0 or int(x.max()) >= levels):
        raise ConfigError(f"{what}: values must lie in [0, {levels}), got [{int(x.min())}, {int(x.max())}]")


def quantize(x: torch.Tensor, levels_in: int, levels_out: int) -> torch.Tensor:
    """floor(x * levels_out / levels_in): integer images in [0, levels_in) -> [0, levels_out)."""
    if not 1 <= levels_out <= levels_in:
        raise ConfigError(f"quantize: need 1 <= levels_out <= levels_in, got {levels_out} and {levels_in}")
    if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ConfigError(f"quantize: expected an integer tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    x = x.long()
    _check_range(x, levels_in, "quantize")
    return x * levels_out // levels_in


def grayscale4(x: torch.Tensor, levels: int = 256, out_levels: int = 16) -> torch.Tensor:
    """Quantised BT.601 luma (B, 1, H, W) in [0, out_levels) of RGB or 1-channel images in [0, levels)."""
    x = _check_int(x, "grayscale4")
    _check_range(x, levels, "grayscale4")
    if not 1 <= out_levels <= levels:
        raise ConfigError(f"grayscale4: need 1 <= out_levels <= levels, got {out_levels} and {levels}")
    c = x.shape[1]
    if c == 1:
        return x * out_levels // levels
    if c != 3:
        raise ConfigError(f"grayscale4: expected 1 or 3 channels, got {c}")
    r, g, b = BT601
    luma1000 = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]   # 1000 * Y, exact
    return luma1000 * out_levels // (1000 * levels)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 block means rounded half up, (sum + 2) // 4: (B, C, H, W) -> (B, C, H/2, W/2)."""
    x = _check_int(x, "downsample2x")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ConfigError(f"downsample2x: height and width must be even, got {h}x{w}")
    s = x[..., 0::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]
    return (s + 2) // 4


def pyramid(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """``[x, d(x), ..., d^n(x)]`` with ``d = downsample2x``: n + 1 levels, finest first."""
    x = _check_int(x, "pyramid")
    if int(n) != n or n < 0:
        raise ConfigError(f"pyramid: n must be a non-negative integer, got {n!r}")
    h, w = x.shape[-2:]
    if h % (2 ** n) or w % (2 ** n):
        raise ConfigError(f"pyramid: a {h}x{w} image cannot be halved {n} time(s) exactly")
    levels = [x]
    for _ in range(int(n)):
        levels.append(downsample2x(levels[-1]))
    return levels


# ---------------------------------------------------------------------- display helpers
def gray_to_image(gray: torch.Tensor, gray_levels: int, levels: int, channels: int) -> torch.Tensor:
    """Gray levels -> image levels at the bin centres, floor((g + 1/2) * levels / gray_levels),
    repeated over ``channels``: for showing a gray view next to images (not an inverse)."""
    g = _check_int(gray, "gray_to_image")
    v = (2 * g + 1) * levels // (2 * gray_levels)
    return v.clamp(0, levels - 1).expand(-1, channels, -1, -1).contiguous()


def stretch_levels(x: torch.Tensor, levels_in: int, levels_out: int) -> torch.Tensor:
    """Levels [0, levels_in) spread over [0, levels_out), the top level to the top, rounded: for showing
    a level of few values (a 16-level gray view, codes) on the data's levels (not an inverse of quantize)."""
    if levels_in == levels_out:
        return x
    return (x.float() * ((levels_out - 1) / (levels_in - 1))).round().long()


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each pixel repeated ``factor`` x ``factor`` times (for showing a low-resolution level)."""
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
