"""PixelIQN: autoregressive implicit quantile networks (Ostrovski, Dabney, Munos 2018).

The network maps the image x and a map tau of quantile targets, one per sub-pixel (tau_i ~ U[0, 1]),
to Q(tau_i | x_<i) for every sub-pixel i, trained by the Huber quantile loss (eq. 2) towards the
observed x_i. Sampling feeds the rounded output back, one sub-pixel at a time: x_i = Q(tau_i | x_<i).

PixelIQN is not a model class of its own: it is a trunk (``gated_pixelcnn`` as in the paper, or any
registered trunk, ``trunk=``) with the quantile head (``pixelzoo.heads.QuantileHead``), built by the
generic ``build_autoregressive``. tau is the head's per-position input, which the autoregressive model
routes to the network in two places:

* through the trunk's per-position conditioning input, the path class-location conditioning takes
  (the paper's Fig. 2), on trunks whose spatial conditioning is causal (``Trunk.causal_spatial``:
  Gated PixelCNN, PixelSNAIL). The 1x1 projections are channel-masked so the features of colour
  group ``c`` see the taus of channels ``<= c`` of the pixel (and all taus of earlier pixels);
* through the output layer at the sub-pixel's own position (as in IQN), on every trunk. On a trunk
  whose conditioning is not causal per position (PixelCNN++: its streams read the same row), this is
  the only path, and the output layer also reads the pixel's earlier channels to keep colour ordered.

So Q_i depends on tau_i, on x_<i and on tau_<i (nuisance inputs the loss teaches it to ignore, since
they carry nothing about x_i beyond x_<i), never on anything after i; the registry's causality test
checks it with tau as an extra input. The temperature of sampling is the tau range: tau ~
U[0.5 - t/2, 0.5 + t/2], t in [0, 1] (t = 0: every sub-pixel its conditional median).

The model (an ``AutoregressiveModel``) has ``quantile(x, tau, y)``, ``quantile_density``, ``loss``
(``loss`` and ``quantile_loss``), ``sample``; ``log_prob`` and ``bits_per_dim`` raise ``NO_LIKELIHOOD``.
"""

from __future__ import annotations

from ...heads.quantile import NO_LIKELIHOOD
from ...registry import register_model
from .model import AutoregressiveModel, build_autoregressive

__all__ = ["NO_LIKELIHOOD", "build_pixeliqn"]


@register_model("pixeliqn")
def build_pixeliqn(image_shape, num_levels, num_classes=None, trunk="gated_pixelcnn", kappa=1.0,
                   tau_embedding="cosine", n_cos=16, out_hidden=None, spatial_channels=0, fp32_output=False,
                   **trunk_options) -> AutoregressiveModel:
    """PixelIQN on ``trunk`` (any registered trunk: ``gated_pixelcnn`` as in the paper, ``pixelsnail``,
    ``pixelcnnpp``); ``trunk_options`` are that trunk's hyper-parameters (e.g. ``channels``,
    ``n_layers``; ``shared_conditioning`` on ``gated_pixelcnn``: one tau projection for all layers);
    ``kappa``, ``tau_embedding`` and ``n_cos`` are the quantile head's; ``fp32_output``: the output
    layer in float32 under bf16 autocast (Q and its loss are float32 in any case)."""
    return build_autoregressive(trunk, image_shape, num_levels, num_classes, head="quantile",
                                head_options=dict(kappa=kappa, tau_embedding=tau_embedding, n_cos=n_cos),
                                out_hidden=out_hidden, spatial_channels=spatial_channels, fp32_output=fp32_output,
                                **trunk_options)
