"""Models: trunks, the autoregressive model that joins a trunk to a head, composite models."""

from .autoregressive import AutoregressiveModel, Trunk
from .gated_pixelcnn import GatedPixelCNNTrunk, build_gated_pixelcnn

__all__ = ["AutoregressiveModel", "GatedPixelCNNTrunk", "Trunk", "build_gated_pixelcnn"]
