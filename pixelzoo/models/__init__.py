"""Models: trunks, the autoregressive model that joins a trunk to a head, the chain of levels and
the composites built on it, training plans. Importing this package registers every model and trunk
(each module registers its own with ``@register_model`` / ``@register_trunk`` where it is defined)."""

from . import agave, aux_pixelcnn, defauw, gated_pixelcnn, made, pixelcnnpp, pixeliqn, pixelsnail, vqvae2
from .autoregressive import AutoregressiveModel, build_autoregressive
from .gated_pixelcnn import GatedPixelCNNTrunk, build_gated_pixelcnn
from .hierarchy import Chain, Encoder, Level, Link, View
from .pixelcnnpp import PixelCNNPPTrunk, build_pixelcnnpp
from .plan import PixelzooModel, TrainingPlan, Unit
from .steppers import FullForwardStepper, Stepper
from .trunks import Trunk, list_trunks, register_trunk

__all__ = [
    "AutoregressiveModel",
    "agave",
    "Chain",
    "Encoder",
    "FullForwardStepper",
    "GatedPixelCNNTrunk",
    "Level",
    "Link",
    "PixelCNNPPTrunk",
    "PixelzooModel",
    "Stepper",
    "TrainingPlan",
    "Trunk",
    "Unit",
    "View",
    "aux_pixelcnn",
    "build_autoregressive",
    "build_gated_pixelcnn",
    "build_pixelcnnpp",
    "defauw",
    "gated_pixelcnn",
    "list_trunks",
    "made",
    "pixelcnnpp",
    "pixeliqn",
    "pixelsnail",
    "register_trunk",
    "vqvae2",
]
