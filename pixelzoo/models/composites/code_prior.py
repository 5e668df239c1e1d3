"""The prior over a map of VQ codes that VQ-VAE-2 and De Fauw et al.'s hierarchies share: a
PixelSNAIL-style trunk whose input is each code's learned embedding, and a categorical head."""

from __future__ import annotations

import torch
import torch.nn as nn

from ...errors import ConfigError
from ...heads import create_head
from ...nn import HorizontalConv, VerticalConv, feature_groups
from ..autoregressive.model import AutoregressiveModel
from ..autoregressive.pixelsnail.trunk import PixelSNAILTrunk, build_pixelsnail

#: defaults of the top prior (PixelSNAIL-style, with attention)
TOP_PRIOR_DEFAULTS = dict(channels=64, n_blocks=4, kernel_size=3, attention_every=2, heads=2, key_channels=None,
                          value_channels=None, dropout=0.1, attention_dropout=None, out_res_blocks=2,
                          out_hidden=None, code_embedding=32)


class CodeEmbedding(nn.Module):
    """Code indices, given as an AR model's scaled input ``x_s = k * 2 / (K - 1) - 1`` (B, 1, H, W),
    -> learned vectors (B, dim, H, W).

    ``u = (x_s + 1) (K - 1) / 2`` is the index; the output is ``E[k] + (u - k) (E[k+1] - E[k])`` with
    ``k = floor(u)``: exactly row ``E[u]`` at integer codes, and differentiable in ``x_s`` (so the
    gradient-based causality checks see through it).
    """

    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ConfigError(f"a code embedding needs num_codes >= 2 and dim >= 1, got {num_codes}, {dim}")
        self.num_codes = int(num_codes)
        self.weight = nn.Parameter(torch.randn(num_codes, dim))

    def forward(self, x_scaled: torch.Tensor) -> torch.Tensor:
        u = (x_scaled[:, 0] + 1.0) * ((self.num_codes - 1) / 2.0)
        k = torch.floor(u.detach() + 1e-3).clamp(0, self.num_codes - 2).long()
        t = (u - k).unsqueeze(-1).to(self.weight.dtype)
        low = self.weight[k]
        e = low + t * (self.weight[k + 1] - low)
        return e.permute(0, 3, 1, 2)


class CodeSNAILTrunk(PixelSNAILTrunk):
    """The PixelSNAIL trunk over a code map: the code at each position is first embedded
    (:class:`CodeEmbedding`), and the two input layers read the ``code_embedding`` channels as one
    group (mask A: the current position is never seen). Everything else is ``PixelSNAILTrunk``."""

    def __init__(self, num_codes: int, code_embedding: int, channels: int = 64, kernel_size: int = 3, **kwargs):
        super().__init__(image_channels=1, channels=channels, kernel_size=kernel_size, **kwargs)
        self.embedding = CodeEmbedding(num_codes, code_embedding)
        self.in_v = VerticalConv(code_embedding, channels, kernel_size)
        self.in_h = HorizontalConv(code_embedding, channels, kernel_size, torch.zeros(code_embedding, dtype=torch.long),
                                   feature_groups(channels, 1), include_own=False)

    def input_features(self, x):
        return self.embedding(x)


def build_code_prior(code_shape, num_codes: int, num_classes=None, spatial_channels: int = 0, code_embedding=32,
                     out_hidden=None, **trunk) -> AutoregressiveModel:
    """An autoregressive model over a (1, H, W) map of ``num_codes`` codes: ``CodeSNAILTrunk`` +
    categorical head, or exactly ``build_pixelsnail`` when ``code_embedding`` is 0/None."""
    shape = (1, *(int(s) for s in code_shape))
    if not code_embedding:
        return build_pixelsnail(shape, num_codes, num_classes, spatial_channels=spatial_channels,
                                out_hidden=out_hidden, **trunk)
    body = CodeSNAILTrunk(num_codes, int(code_embedding), num_classes=num_classes, spatial_channels=spatial_channels,
                          **trunk)
    head = create_head("categorical", num_codes, 1)
    return AutoregressiveModel(body, head, shape, num_codes, num_classes, spatial_channels, out_hidden)
