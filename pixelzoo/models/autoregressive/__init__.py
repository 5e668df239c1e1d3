"""Autoregressive models: the model = trunk + output layer + head (``model.py``), conditional
models p(level given levels above) (``conditional.py``), the trunk registry (``trunks.py``), the
stepper seam (``steppers.py``), and one folder per trunk holding its network and its exact
incremental stepper side by side; PixelIQN is a trunk with the quantile head (``pixeliqn.py``).
Importing this package registers every trunk and autoregressive model."""

from .model import AutoregressiveModel, build_autoregressive
from .conditional import ConditionalAR
from .steppers import FullForwardStepper, Stepper
from .trunks import Trunk, list_trunks, register_trunk
from .gated_pixelcnn.trunk import GatedPixelCNNTrunk, build_gated_pixelcnn
from .pixelcnnpp.trunk import PixelCNNPPTrunk, build_pixelcnnpp
from .pixelsnail.trunk import PixelSNAILTrunk, build_pixelsnail
from .made.trunk import MADETrunk
from . import pixeliqn

__all__ = ["AutoregressiveModel", "ConditionalAR", "FullForwardStepper", "GatedPixelCNNTrunk", "MADETrunk",
           "PixelCNNPPTrunk", "PixelSNAILTrunk", "Stepper", "Trunk", "build_autoregressive", "build_gated_pixelcnn",
           "build_pixelcnnpp", "build_pixelsnail", "list_trunks", "pixeliqn", "register_trunk"]
