"""Models: trunks, the autoregressive model that joins a trunk to a head, composite models."""

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
