"""Output heads: the distribution of one autoregressive step."""

from ..errors import ConfigError
from .base import Head
from .categorical import CategoricalHead

HEADS: dict[str, type[Head]] = {"categorical": CategoricalHead}


def create_head(name: str, num_levels: int, channels: int, **options) -> Head:
    """Build the head called ``name`` (see ``HEADS``)."""
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name](num_levels, channels, **options)


__all__ = ["HEADS", "CategoricalHead", "Head", "create_head"]
