"""PixelCNN++ trunk (Salimans et al. 2017): two shifted streams, gated ResNet blocks, a U-Net of
resolutions with shortcut connections.

* Two streams: ``u`` sees the rows above (down-shifted 2x3 convolutions), ``ul`` the rows above and
  the pixels to the left (down-right-shifted 2x2 convolutions; it also reads ``u``). The input layer
  shifts them so that neither sees the current pixel: the trunk is causal at the level of pixels and
  does not mask colour channels (``channel_masked = False``), leaving the order of a pixel's channels
  to the head (the logistic mixture's linear coefficients, or the categorical head's channel term).
* Gated ResNet block: ``c1 = conv(concat_elu(x)) [+ nin(concat_elu(a))]``, dropout on
  ``concat_elu(c1)``, ``c2 = conv(.) + conditioning``, ``x + c2_a * sigmoid(c2_b)``.
* Up pass: ``nr_resnet`` blocks per resolution, strided shifted convolutions between resolutions;
  every output is stored. Down pass: ``nr_resnet`` blocks at the lowest resolution and
  ``nr_resnet + 1`` at each higher one, after a transposed shifted convolution; each block consumes
  one stored output of the up pass as its shortcut ``a`` (``u`` blocks: the stored ``u``; ``ul``
  blocks: the current ``u`` concatenated with the stored ``ul``), last stored first.
* The input carries an extra channel of ones, so zero padding is distinguishable from the image.
* Conditioning: class embedding and spatial map (``ConditioningBias``) added to ``c2`` of every
  block; the spatial map, given at image resolution, is average-pooled by 2 for each lower one.

Not PixelCNN++'s: weight normalisation with data-dependent initialisation (plain convolutions are
used, initialised N(0, 1/fan-in); the second convolution of each block starts at 0.1 of that scale,
as PixelCNN++'s ``init_scale=0.1``), and the output layer (the library's two masked 1x1 convolutions instead of
``nin(elu(ul))``).

The strided convolutions keep causality (a low-resolution position ``(I, J)`` reads only what
high-resolution ``(2I, 2J)`` may read), but feeding only the first rows of an image changes how the
strides align, so the trunk is not ``row_causal``. Sampling uses an exact incremental stepper
(``PixelCNNPPStepper``): every map of the trunk computes, per generated pixel, only the positions
whose inputs that pixel completes, about one forward pass per sample call in all.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ....registry import register_model
from ....errors import ConfigError
from ....nn import (
    ConditioningBias,
    DownRightShiftedConv2d,
    DownRightShiftedConvTranspose2d,
    DownShiftedConv2d,
    DownShiftedConvTranspose2d,
    concat_elu,
    down_shift,
    right_shift,
)
from ..model import AutoregressiveModel, build_autoregressive
from .stepper import PixelCNNPPStepper
from ..trunks import Trunk, register_trunk

MAX_RESOLUTIONS = 3


def lecun_init_(conv: nn.Module) -> None:
    """Weights ~ N(0, 1 / fan-in), zero bias: roughly variance-preserving, standing in for PixelCNN++'s
    data-dependent weight-norm initialisation. A transposed convolution with stride s feeds each
    output from about (kernel area / s^2) taps per input channel."""
    kh, kw = conv.kernel_size
    if isinstance(conv, nn.ConvTranspose2d):
        fan_in = conv.in_channels * max(1.0, kh * kw / (conv.stride[0] * conv.stride[1]))
    else:
        fan_in = conv.in_channels * kh * kw
    with torch.no_grad():
        conv.weight.normal_(0.0, fan_in ** -0.5)
        if conv.bias is not None:
            conv.bias.zero_()


class GatedResNet(nn.Module):
    """PixelCNN++'s gated residual block around a shifted convolution ``conv_cls``."""

    def __init__(self, channels, conv_cls, shortcut_channels, dropout, num_classes, spatial_channels):
        super().__init__()
        self.conv1 = conv_cls(2 * channels, channels)
        self.shortcut = nn.Conv2d(2 * shortcut_channels, channels, 1) if shortcut_channels else None
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = conv_cls(2 * channels, 2 * channels)
        for conv in (self.conv1, self.shortcut, self.conv2):
            if conv is not None:
                lecun_init_(conv)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)  # PixelCNN++'s init_scale=0.1: each block starts near identity
        self.cond = ConditioningBias(2 * channels, num_classes, spatial_channels)

    def forward(self, x, a=None, y=None, spatial=None):
        c1 = self.conv1(concat_elu(x))
        if self.shortcut is not None:
            c1 = c1 + self.shortcut(concat_elu(a))
        c2 = self.conv2(self.dropout(concat_elu(c1)))
        c2 = c2 + self.cond(y, spatial, x.shape[-2:])
        value, gate = c2.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


def max_resolutions(height: int, width: int, limit: int = MAX_RESOLUTIONS) -> int:
    """The largest number of resolutions (<= ``limit``) for which every one halves the size exactly."""
    r = 1
    while r < limit and height % (2 ** r) == 0 and width % (2 ** r) == 0:
        r += 1
    return r


@register_trunk("pixelcnnpp")
class PixelCNNPPTrunk(Trunk):
    channel_masked = False
    row_causal = False

    @classmethod
    def from_shape(cls, image_shape, num_classes=None, spatial_channels=0, spatial_groups=None, **options):
        """Spatial conditioning here is not causal per position (``spatial_groups`` must be None)."""
        if spatial_groups is not None:
            raise ConfigError("the PixelCNN++ trunk has no causal spatial conditioning (spatial_groups)")
        c, h, w = (int(s) for s in image_shape)
        return cls(c, (h, w), num_classes=num_classes, spatial_channels=spatial_channels, **options)

    def __init__(self, image_channels, image_size, nr_resnet=5, nr_filters=160, n_resolutions=None,
                 dropout=0.5, num_classes=None, spatial_channels=0):
        super().__init__()
        height, width = (int(s) for s in image_size)
        if int(nr_resnet) != nr_resnet or nr_resnet < 1:
            raise ConfigError(f"nr_resnet must be a positive integer, got {nr_resnet!r}")
        if int(nr_filters) != nr_filters or nr_filters < 1:
            raise ConfigError(f"nr_filters must be a positive integer, got {nr_filters!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {dropout}")
        if n_resolutions is None:
            n_resolutions = max_resolutions(height, width)
        n_resolutions = int(n_resolutions)
        if not 1 <= n_resolutions <= MAX_RESOLUTIONS:
            raise ConfigError(f"n_resolutions must lie in 1..{MAX_RESOLUTIONS}, got {n_resolutions}")
        step = 2 ** (n_resolutions - 1)
        if height % step or width % step:
            raise ConfigError(
                f"a {height}x{width} image cannot be halved {n_resolutions - 1} time(s) exactly; "
                f"use n_resolutions <= {max_resolutions(height, width)}"
            )
        self.nr_resnet = int(nr_resnet)
        self.n_resolutions = n_resolutions
        nf = self.out_channels = int(nr_filters)
        self.register_buffer("out_groups", torch.zeros(nf, dtype=torch.long), persistent=False)

        def block(conv_cls, shortcut):
            return GatedResNet(nf, conv_cls, shortcut, dropout, num_classes, spatial_channels)

        cin = image_channels + 1  # + a channel of ones
        self.u_in = DownShiftedConv2d(cin, nf, (2, 3))
        self.ul_in_up = DownShiftedConv2d(cin, nf, (1, 3))
        self.ul_in_left = DownRightShiftedConv2d(cin, nf, (2, 1))

        R = n_resolutions
        self.up_u = nn.ModuleList()
        self.up_ul = nn.ModuleList()
        for _ in range(R):
            self.up_u.append(nn.ModuleList([block(DownShiftedConv2d, 0) for _ in range(nr_resnet)]))
            self.up_ul.append(nn.ModuleList([block(DownRightShiftedConv2d, nf) for _ in range(nr_resnet)]))
        self.down_u_conv = nn.ModuleList([DownShiftedConv2d(nf, nf, (2, 3), stride=2) for _ in range(R - 1)])
        self.down_ul_conv = nn.ModuleList([DownRightShiftedConv2d(nf, nf, (2, 2), stride=2) for _ in range(R - 1)])

        # down pass, from the lowest resolution up: nr_resnet blocks there, nr_resnet + 1 above
        self.dn_u = nn.ModuleList()
        self.dn_ul = nn.ModuleList()
        for r in range(R):
            n = nr_resnet if r == 0 else nr_resnet + 1
            self.dn_u.append(nn.ModuleList([block(DownShiftedConv2d, nf) for _ in range(n)]))
            self.dn_ul.append(nn.ModuleList([block(DownRightShiftedConv2d, 2 * nf) for _ in range(n)]))
        self.up_u_deconv = nn.ModuleList([DownShiftedConvTranspose2d(nf, nf, (2, 3), 2) for _ in range(R - 1)])
        self.up_ul_deconv = nn.ModuleList([DownRightShiftedConvTranspose2d(nf, nf, (2, 2), 2) for _ in range(R - 1)])
        for conv in (self.u_in, self.ul_in_up, self.ul_in_left, *self.down_u_conv, *self.down_ul_conv,
                     *self.up_u_deconv, *self.up_ul_deconv):
            lecun_init_(conv)

    def forward(self, x, y=None, spatial=None):
        b, _, h, w = x.shape
        x = torch.cat([x, torch.ones(b, 1, h, w, dtype=x.dtype, device=x.device)], dim=1)
        R = self.n_resolutions
        spatials = [spatial]
        for _ in range(R - 1):
            spatials.append(None if spatial is None else F.avg_pool2d(spatials[-1], 2))

        # ---- up pass
        u = down_shift(self.u_in(x))
        ul = down_shift(self.ul_in_up(x)) + right_shift(self.ul_in_left(x))
        us, uls = [u], [ul]
        for r in range(R):
            if r > 0:
                u = self.down_u_conv[r - 1](u)
                ul = self.down_ul_conv[r - 1](ul)
                us.append(u)
                uls.append(ul)
            for bu, bul in zip(self.up_u[r], self.up_ul[r]):
                u = bu(u, None, y, spatials[r])
                ul = bul(ul, u, y, spatials[r])
                us.append(u)
                uls.append(ul)

        # ---- down pass
        u, ul = us.pop(), uls.pop()
        for k, r in enumerate(range(R - 1, -1, -1)):
            if k > 0:
                u = self.up_u_deconv[r](u)
                ul = self.up_ul_deconv[r](ul)
            for bu, bul in zip(self.dn_u[k], self.dn_ul[k]):
                u = bu(u, us.pop(), y, spatials[r])
                ul = bul(ul, torch.cat([u, uls.pop()], dim=1), y, spatials[r])
        assert not us and not uls
        return ul

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None):
        """The exact per-position stepper (``pixelzoo.models.autoregressive.pixelcnnpp.stepper``): each map of the
        trunk computes, per generated pixel, only the positions that pixel completes."""
        return PixelCNNPPStepper(model, n, y, spatial, inputs)


@register_model("pixelcnnpp")
def build_pixelcnnpp(image_shape, num_levels, num_classes=None, nr_resnet=5, nr_filters=160, n_resolutions=None,
                     dropout=0.5, out_hidden=None, spatial_channels=0, head="logistic_mixture",
                     head_options=None) -> AutoregressiveModel:
    """PixelCNN++ with a logistic-mixture head by default (``head_options`` e.g. ``{"n_mix": 10}``).
    ``n_resolutions`` None takes the most (up to 3) that the image size allows."""
    return build_autoregressive("pixelcnnpp", image_shape, num_levels, num_classes, head=head,
                                head_options=head_options, out_hidden=out_hidden, spatial_channels=spatial_channels,
                                nr_resnet=nr_resnet, nr_filters=nr_filters, n_resolutions=n_resolutions,
                                dropout=dropout)
