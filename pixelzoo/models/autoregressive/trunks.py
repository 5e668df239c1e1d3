"""Causal trunks: the base class and the registry of trunks by name.

A trunk registers itself where it is defined, with ``@register_trunk("name")`` on its class; the
generic builder ``pixelzoo.models.autoregressive.model.build_autoregressive`` builds any registered trunk
by name through ``Trunk.from_shape``, so no model switches on trunk names.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...errors import ConfigError


class Trunk(nn.Module):
    """Base class of causal trunks.

    ``forward(x_scaled, y, spatial)`` returns features (B, out_channels, H, W); feature group ``g``
    (``out_groups``) at pixel ``p`` depends only on pixels before ``p`` and, if ``channel_masked``,
    on channels ``< g`` of ``p``. ``row_causal`` trunks never let output row ``i`` see input rows
    after ``i``, so feeding the first ``i + 1`` rows gives the first ``i + 1`` output rows exactly.
    ``causal_spatial`` trunks take ``spatial_groups`` (a colour group per spatial channel) and then
    let the spatial map at pixel ``q`` reach outputs at pixels after ``q`` and, at ``q`` itself, only
    feature groups ``>=`` the channel's group: a map given per sub-pixel (a head's per-position
    inputs, e.g. PixelIQN's tau) is then an autoregressive input like the image.

    A trunk may offer an incremental stepper for sampling (``incremental_stepper``; the Gated
    PixelCNN's per-layer queues, ``pixelzoo.models.autoregressive.gated_pixelcnn.stepper``; PixelCNN++'s per-map stepper;
    PixelSNAIL's per-layer caches, ``pixelzoo.models.autoregressive.pixelsnail.stepper``); the model falls back to the
    full-forward stepper.
    """

    channel_masked: bool = True
    row_causal: bool = False
    causal_spatial: bool = False
    #: the name the trunk is registered under (set by ``register_trunk``; an unregistered subclass,
    #: e.g. VQ-VAE-2's ``CodeSNAILTrunk``, inherits its parent's)
    trunk_name: str | None = None
    out_channels: int
    out_groups: torch.Tensor

    @classmethod
    def from_shape(cls, image_shape, num_classes=None, spatial_channels: int = 0, spatial_groups=None,
                   **options) -> "Trunk":
        """Build the trunk for images of ``image_shape`` (C, H, W) with its hyper-parameters ``options``.
        ``spatial_groups`` (one colour group per spatial channel) is given only to ``causal_spatial``
        trunks. Trunks whose constructor needs more than the channel count override this."""
        kw = dict(num_classes=num_classes, spatial_channels=spatial_channels)
        if spatial_groups is not None:
            kw["spatial_groups"] = spatial_groups
        return cls(int(image_shape[0]), **options, **kw)

    def incremental_stepper(self, model, n: int, y=None, spatial=None, inputs=None):
        """A stepper (see ``pixelzoo.models.autoregressive.steppers``) that computes the parameters of each sampled
        sub-pixel of ``model`` (whose trunk this is) incrementally, or None when this trunk has none
        (the model then uses the full-forward stepper)."""
        return None


TRUNKS: dict[str, type[Trunk]] = {}


def register_trunk(name: str):
    """Class decorator: register a ``Trunk`` subclass under ``name``."""

    def decorate(cls: type[Trunk]) -> type[Trunk]:
        if name in TRUNKS:
            raise ConfigError(f"trunk {name!r} is registered twice")
        if not (isinstance(cls, type) and issubclass(cls, Trunk)):
            raise ConfigError(f"register_trunk({name!r}) needs a Trunk subclass, got {cls!r}")
        cls.trunk_name = name
        TRUNKS[name] = cls
        return cls

    return decorate


def list_trunks() -> list[str]:
    return sorted(TRUNKS)


def trunk_class(name: str) -> type[Trunk]:
    if name not in TRUNKS:
        raise ConfigError(f"unknown trunk {name!r}; choose one of {list_trunks()}")
    return TRUNKS[name]
