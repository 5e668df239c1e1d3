"""The output layer and the head of one sampling step, at one pixel, as few tensor operations as the
step affords: at batch 1 a step costs its number of operations, not their arithmetic.

``AutoregressiveModel.params_from_features`` runs the output layer as modules (masked 1x1
convolutions that multiply their weights by their masks on every call) and the head's
``subpixel_params`` for every channel of the pixel. A step needs one channel's parameters: here the
output layer's masked weights are folded once per sample call into ``(in, out)`` matrices, the layer
is two matrix products with their ReLUs, and the head gives just channel ``c``'s parameters
(``Head.step_params``), reading the pixel's scaled values only when it needs them.

Same weights, same inputs: the parameters equal ``params_from_features``'s to float rounding. A
model whose output layer reads the head's per-position inputs (``InputOutput``), or one run under
autocast, takes the general path.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _matrix(conv) -> tuple[torch.Tensor, torch.Tensor]:
    """A masked 1x1 convolution (``GroupedPointwise``) as ``(in, out)`` weights and its bias."""
    return (conv.weight * conv.mask)[:, :, 0, 0].t().contiguous(), conv.bias


class StepOutput:
    """``model.params_from_features`` at one pixel, for one channel (see the module docstring)."""

    def __init__(self, model):
        self.model = model
        self.head = model.head
        out = model.output
        plain = isinstance(out, nn.Sequential) and len(out) == 4 and not model.extra_inputs
        #: (w1, b1, w2, b2) of relu -> 1x1 -> relu -> 1x1, or None: the general path
        self.mats = None
        if plain:
            (w1, b1), (w2, b2) = _matrix(out[1]), _matrix(out[3])
            self.mats = (w1, b1, w2, b2)

    def __call__(self, feats: torch.Tensor, x: torch.Tensor, i: int, j: int, c: int, inputs: dict) -> torch.Tensor:
        """Sub-pixel ``(c, i, j)``'s parameters (n, P) from the trunk's features there ``feats``
        (n, F); ``x`` the images so far, ``inputs`` the head's per-position inputs at the pixel."""
        model = self.model
        if self.mats is None or torch.is_autocast_enabled(feats.device.type):
            pix = x[:, :, i : i + 1, j : j + 1]
            return model.params_from_features(feats[:, :, None, None], model.scale(pix), **inputs)[:, c, :, 0, 0]
        w1, b1, w2, b2 = self.mats
        hidden = torch.addmm(b1, torch.relu(feats), w1).relu_()
        raw = torch.addmm(b2, hidden, w2)
        return self.head.step_params(raw, c, lambda: model.scale(x[:, :, i, j]))
