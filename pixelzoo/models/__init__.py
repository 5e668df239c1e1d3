"""Models, by role: ``base.py`` (the model base, units, training plans, declared capabilities);
``autoregressive/`` (the model = trunk + head, conditional models, trunks and their steppers);
``chain/`` (levels, makers, links, the chain, the level cache); ``composites/`` (one builder of a
chain per paper's model). Importing this package registers every model and trunk (each module
registers its own with ``@register_model`` / ``@register_trunk`` where it is defined)."""

from .base import PixelzooModel, TrainingPlan, Unit
from .autoregressive import (AutoregressiveModel, FullForwardStepper, GatedPixelCNNTrunk, PixelCNNPPTrunk, Stepper,
                             Trunk, build_autoregressive, build_gated_pixelcnn, build_pixelcnnpp, list_trunks,
                             register_trunk)
from .chain import Chain, Level, Link, SampledLevels, TrainedMaker, View
from . import composites

__all__ = [
    "AutoregressiveModel",
    "Chain",
    "FullForwardStepper",
    "GatedPixelCNNTrunk",
    "Level",
    "Link",
    "PixelCNNPPTrunk",
    "PixelzooModel",
    "SampledLevels",
    "Stepper",
    "TrainingPlan",
    "TrainedMaker",
    "Trunk",
    "Unit",
    "View",
    "build_autoregressive",
    "build_gated_pixelcnn",
    "build_pixelcnnpp",
    "composites",
    "list_trunks",
    "register_trunk",
]
