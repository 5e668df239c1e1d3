"""pixelzoo: the PixelCNN family of autoregressive image models, and the methods that give it
auxiliary structure, in one PyTorch library."""

from .errors import CheckpointError, ConfigError, DataError, PixelzooError, TrainingError
from . import models  # noqa: F401  (registers every model)
from .pretrained import load_pretrained, save_pretrained
from .registry import create_model, list_models, list_presets, load_preset, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PixelzooError",
    "TrainingError",
    "create_model",
    "list_models",
    "list_presets",
    "load_pretrained",
    "load_preset",
    "register_model",
    "save_pretrained",
]
