"""Models: trunks, the autoregressive model that joins a trunk to a head, the chain of levels and
the composites built on it. Importing this package registers every model (each module registers
its own with ``@register_model`` where it is defined)."""

from . import aux_pixelcnn, gated_pixelcnn, pixelcnnpp, pixeliqn, pixelsnail, vqvae2  # noqa: F401  (registers)
from .autoregressive import AutoregressiveModel, Trunk
from .gated_pixelcnn import GatedPixelCNNTrunk, build_gated_pixelcnn
from .pixelcnnpp import PixelCNNPPTrunk, build_pixelcnnpp

__all__ = [
    "AutoregressiveModel",
    "GatedPixelCNNTrunk",
    "PixelCNNPPTrunk",
    "Trunk",
    "build_gated_pixelcnn",
    "build_pixelcnnpp",
]
