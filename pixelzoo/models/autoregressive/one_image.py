"""What the incremental steppers' one-image paths share.

At batch 1 a sampling step costs its number of operations, not their arithmetic: about 1.3 us each
through PyTorch's dispatcher against about 0.4 us for a NumPy ufunc or BLAS call on the same memory.
So for one image on the CPU (``runs_on_numpy``) the Gated, PixelCNN++ and PixelSNAIL steppers step on
NumPy views of their own buffers (``Stepper.on_host``). Here: that condition, a pixel's scaled input
from the sampler's images (``ScaledPixels``), the ELU on NumPy (``elu``), and a row's convolution of
one image as one PyTorch product of its windows (``row_product``), which the PyTorch paths use.
"""

from __future__ import annotations

import numpy as np
import torch


def numpy_of(t: torch.Tensor) -> np.ndarray:
    """``t``'s memory as a NumPy array (no copy)."""
    return t.detach().numpy()


def runs_on_numpy(n: int, like: torch.Tensor) -> bool:
    """Whether a stepper of ``n`` images with buffers like ``like`` may step on NumPy: one image on the
    CPU in float32/float64, outside autocast (whose lower precision the NumPy path would not follow)."""
    return (n == 1 and like.device.type == "cpu" and like.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled("cpu"))


class ScaledPixels:
    """A pixel's input as ``scale_levels`` gives it, ``x * step - 1`` value for value (a table of the
    ``num_levels`` values made by those PyTorch operations), read from a NumPy view of the sampler's
    images made once per images tensor (the sampler passes the same one at every step)."""

    def __init__(self, num_levels: int, step: float, dtype: torch.dtype):
        table = torch.empty(num_levels, dtype=dtype)
        self.table = numpy_of(torch.mul(torch.arange(num_levels), step, out=table).sub_(1.0))
        self._x: torch.Tensor | None = None
        self._pixels: np.ndarray | None = None

    def write(self, x: torch.Tensor, raster: int, out: np.ndarray) -> bool:
        """Pixel ``raster`` (raster index) of the one image in ``x`` (1, C, H, W), scaled, into ``out``
        (C,); False when ``x`` has no NumPy view (not contiguous): the caller writes it."""
        if x is not self._x:
            if not x.is_contiguous():
                return False
            self._x, self._pixels = x, numpy_of(x).reshape(x.shape[0], x.shape[1], -1)
        np.take(self.table, self._pixels[0, :, raster], out=out)
        return True


def elu(v: np.ndarray, low: np.ndarray, zeros: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The ELU of ``v`` into ``out`` (may be ``v``), in three ufuncs: ``max(v, expm1(min(v, 0)))``, as
    ``expm1(v) >= v``. ``low`` is a buffer of ``v``'s shape, ``zeros`` zeros of it (a scalar 0 costs
    NumPy an operation as much again)."""
    np.minimum(v, zeros, out=low)
    np.expm1(low, low)
    return np.maximum(v, low, out=out)


def row_product(padded: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, half: int) -> torch.Tensor:
    """One output row of a convolution of one image: its input rows ``padded`` (1, in, kh, W + 2 half),
    zero-padded left and right, the kernel as an (in * kh * kw, out) ``matrix``; (1, out, 1, W) as
    ``conv2d`` gives it. One product of the row's windows (n, in, kh, kw): ``conv2d``'s path for so
    small an input took twice as long."""
    _, c_in, kh, wide = padded.shape
    width = wide - 2 * half
    windows = padded.as_strided((width, c_in, kh, 2 * half + 1), (1, kh * wide, wide, 1))
    return torch.addmm(bias, windows.reshape(width, -1), matrix).t()[None, :, None, :]
