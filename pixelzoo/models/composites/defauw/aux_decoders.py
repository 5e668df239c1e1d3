"""Auxiliary decoders (De Fauw, Dieleman & Simonyan 2019, section 4): the networks that give an
encoder its learning signal, in place of the autoregressive decoder, and the residual networks they
are built of.

Every network here is a ResNet in the v2 "full pre-activation" form without batch normalisation
(appendix A): each residual block is ``x + 1x1(relu(3x3(relu(x))))``, the 3x3 convolution into a
narrower "residual bottleneck" (``res_hidden``) and the 1x1 back to ``hidden``; a final ReLU precedes
the output convolution. Discrete inputs (images and codes) are presented one-hot, so a masked
position (all zeros) differs from a black pixel or code 0 (``one_hot_levels``).

* ``FeedForwardDecoder`` (section 4.1, Algorithm 2): the quantised codes, upsampled at the start by a
  sub-pixel convolution (a convolution to ``hidden * f^2`` channels and a pixel shuffle), then a
  ResNet, to a reconstruction of the level's input: the mean squared error on the pixels (scaled to
  [-1, 1]) at level 1, the categorical NLL of the codes of the level below above it.
* ``MSPDecoder`` (section 4.2, Algorithm 3): masked self-prediction. A teacher ``T`` (a ResNet at the
  input's resolution) sees the input with square regions of size ``s`` masked out (``msp_masks``) and
  predicts the middle position of each region (categorical over the input's values, each channel of
  the position); at the same time the student's decoder ``A`` (the same upsampling ResNet as the
  feed-forward decoder, categorical output) sees the codes of the *unmasked* input and is trained to
  match the teacher there: ``KL(p_T || p_A)`` at the middle positions, the teacher held fixed in it.

Masks (appendix A): a region's centre is drawn uniformly over the map (distinct centres within an
image; a region at a border is clipped to the map, so every position can be a target), all regions
of an image are masked at once, and the number per image follows the mask size as in the paper
(``default_masks_per_image``: 30 for sizes 1 and 3, 10 for 5 and 7, 3 for 9 to 15, 1 for 17 and
19), unless given.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from ....errors import ConfigError
from ....nn.levels import one_hot_levels, scale_levels
from ....nn.residual import ResidualStack, SubPixelResNet, check_widths

#: masks per image by mask size (appendix A)
MASKS_PER_IMAGE = {1: 30, 3: 30, 5: 10, 7: 10, 9: 3, 11: 3, 13: 3, 15: 3, 17: 1, 19: 1}


def _categorical(logits: torch.Tensor, channels: int, num_levels: int) -> torch.Tensor:
    """(B, C * K, H, W) -> log-probabilities (B, C, K, H, W)."""
    b, _, h, w = logits.shape
    return F.log_softmax(logits.float().view(b, channels, num_levels, h, w), dim=2)


class FeedForwardDecoder(nn.Module):
    """A_l of Algorithm 2: quantised codes (B, code_dim, h, w) -> a reconstruction of the level's input
    (B, C, H, W), H = factor * h; ``target`` "mse" (level 1: pixels on [-1, 1]) or "categorical"
    (codes of the level below, K values each)."""

    def __init__(self, code_dim: int, input_shape, num_levels: int, factor: int, target: str, hidden: int = 64,
                 res_hidden: int = 32, n_blocks: int = 2):
        super().__init__()
        if target not in ("mse", "categorical"):
            raise ConfigError(f"the feed-forward decoder's target is 'mse' or 'categorical', got {target!r}")
        self.channels = int(input_shape[0])
        self.num_levels = int(num_levels)
        self.target = target
        out = self.channels if target == "mse" else self.channels * self.num_levels
        self.net = SubPixelResNet(code_dim, out, factor, hidden, res_hidden, n_blocks, "aux_decoder")

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        """The reconstruction: values on [-1, 1] (B, C, H, W) for "mse", log-probabilities
        (B, C, K, H, W) for "categorical"."""
        out = self.net(z_q)
        return out if self.target == "mse" else _categorical(out, self.channels, self.num_levels)

    def terms(self, x: torch.Tensor, z_q: torch.Tensor) -> dict:
        """The auxiliary loss of the level's input ``x`` (integers) given the codes, with its gradient:
        ``aux_mse`` (the mean squared error per sub-pixel) or ``aux_nll`` (nats per sub-pixel)."""
        out = self(z_q)
        if self.target == "mse":
            return {"aux_mse": (out.float() - scale_levels(x, self.num_levels)).pow(2).mean()}
        return {"aux_nll": -out.gather(2, x.long().unsqueeze(2)).mean()}

    def loss(self, x: torch.Tensor, z_q: torch.Tensor) -> dict:
        """``loss`` = the term of ``terms``, reported detached under its name."""
        t = self.terms(x, z_q)
        return {"loss": sum(t.values()), **{k: v.detach() for k, v in t.items()}}


def default_masks_per_image(size: int) -> int:
    """The number of masked regions per image for a mask size (appendix A)."""
    if size not in MASKS_PER_IMAGE:
        raise ConfigError(f"the paper gives masks per image for the odd mask sizes 1 to 19, not {size}: give "
                          "masks_per_image")
    return MASKS_PER_IMAGE[size]


def msp_masks(batch: int, height: int, width: int, size: int, count: int, generator: torch.Generator | None = None,
              device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` square regions of ``size`` x ``size`` per image, centres distinct and uniform over the
    map (regions clipped at its borders). Returns ``(keep, targets)``: ``keep`` (B, 1, H, W) bool, False
    inside any region (the input mask m_i); ``targets`` (B, H, W) bool, True exactly at the centres
    (the output mask m_o)."""
    if count < 1 or count > height * width:
        raise ConfigError(f"masks per image must lie in [1, {height * width}] for a {height}x{width} map, got {count}")
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"the mask size must be odd (a region has a middle position), got {size}")
    order = torch.rand(batch, height * width, generator=generator).argsort(dim=1)[:, :count]
    targets = torch.zeros(batch, height * width, dtype=torch.bool).scatter_(1, order, True).view(batch, height, width)
    masked = F.max_pool2d(targets[:, None].float(), size, stride=1, padding=size // 2) > 0
    return (~masked).to(device), targets.to(device)


class MSPDecoder(nn.Module):
    """Masked self-prediction (Algorithm 3): the teacher T_l and the student's auxiliary decoder A_l.

    ``input_shape`` (C, H, W) with ``num_levels`` K values: the level's input; ``code_dim`` the
    channels of the quantised codes at 1/``factor`` of its resolution. ``teacher`` and ``student``
    are the widths of the two ResNets (``hidden``, ``res_hidden``, ``n_blocks``).
    """

    def __init__(self, code_dim: int, input_shape, num_levels: int, factor: int, mask_size: int = 3,
                 masks_per_image: int | None = None, teacher: dict | None = None, student: dict | None = None):
        super().__init__()
        self.channels, self.height, self.width = (int(s) for s in input_shape)
        self.num_levels = int(num_levels)
        if not isinstance(mask_size, int) or mask_size < 1 or mask_size % 2 == 0:
            raise ConfigError(f"mask_size must be an odd positive integer (a region has a middle), got {mask_size!r}")
        self.mask_size = mask_size
        self.masks_per_image = default_masks_per_image(mask_size) if masks_per_image is None else int(masks_per_image)
        if not 1 <= self.masks_per_image <= self.height * self.width:
            raise ConfigError(f"masks_per_image must lie in [1, {self.height * self.width}] for a "
                              f"{self.height}x{self.width} input, got {masks_per_image!r}")
        t = {"hidden": 64, "res_hidden": 32, "n_blocks": 4, **(teacher or {})}
        s = {"hidden": 64, "res_hidden": 32, "n_blocks": 2, **(student or {})}
        check_widths("teacher", t["hidden"], t["res_hidden"], t["n_blocks"])
        if 1 + t["n_blocks"] <= mask_size // 2:  # the teacher's reach: its 3x3 convolutions, one position each
            raise ConfigError(f"the teacher reaches {1 + t['n_blocks']} positions from a middle, which is all inside "
                              f"its {mask_size}x{mask_size} masked region: give it at least {mask_size // 2} blocks")
        k = self.channels * self.num_levels
        self.teacher = nn.Sequential(nn.Conv2d(k, t["hidden"], 3, padding=1),
                                     ResidualStack(t["hidden"], t["res_hidden"], t["n_blocks"]),
                                     nn.Conv2d(t["hidden"], k, 1))
        self.student = SubPixelResNet(code_dim, k, factor, s["hidden"], s["res_hidden"], s["n_blocks"], "aux_decoder")

    def masks(self, batch: int, generator: torch.Generator | None = None, device=None):
        """``(keep, targets)`` for a batch (``msp_masks`` with this decoder's size and count)."""
        return msp_masks(batch, self.height, self.width, self.mask_size, self.masks_per_image, generator, device)

    def teacher_log_probs(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """log p_T(x_ij | x . m_i) for every value, (B, C, K, H, W): the teacher sees x one-hot with
        the masked positions all zeros."""
        return _categorical(self.teacher(one_hot_levels(x, self.num_levels, keep)), self.channels, self.num_levels)

    def student_log_probs(self, z_q: torch.Tensor) -> torch.Tensor:
        """log p_A(x_ij | E(x)) for every value, (B, C, K, H, W), from the quantised codes."""
        return _categorical(self.student(z_q), self.channels, self.num_levels)

    def terms(self, x: torch.Tensor, z_q: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """For fresh masks, with their gradients: ``teacher_nll`` (L_MSP: -log p_T of the middle
        positions, nats per sub-pixel; trains the teacher) and ``distill_kl`` (L_dist: KL(p_T || p_A)
        there, nats per sub-pixel, the teacher held fixed; trains the student)."""
        keep, targets = self.masks(x.shape[0], generator, x.device)
        log_t = self.teacher_log_probs(x, keep)
        log_a = self.student_log_probs(z_q)
        sel = targets[:, None].expand(-1, self.channels, -1, -1)           # (B, C, H, W)
        nll = -log_t.gather(2, x.long().unsqueeze(2))[:, :, 0][sel].mean()
        lt = log_t.detach()
        kl = (lt.exp() * (lt - log_a)).sum(2)[sel].mean()
        return {"teacher_nll": nll, "distill_kl": kl}

    def loss(self, x: torch.Tensor, z_q: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """``loss`` = ``teacher_nll`` + ``distill_kl`` (``terms``), each reported detached."""
        t = self.terms(x, z_q, generator)
        return {"loss": sum(t.values()), **{k: v.detach() for k, v in t.items()}}
