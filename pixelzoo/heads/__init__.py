"""Output heads: the distribution of one autoregressive step."""

from ..errors import ConfigError
from .base import Head
from .categorical import CategoricalHead
from .gaussian_mixture import GaussianMixtureHead
from .logistic_mixture import LogisticMixtureHead, binned_logistic_log_prob, discretized_logistic_log_prob
from .quantile import QuantileHead, huber_quantile_loss

HEADS: dict[str, type[Head]] = {"categorical": CategoricalHead, "logistic_mixture": LogisticMixtureHead,
                                "quantile": QuantileHead, "gaussian_mixture": GaussianMixtureHead}


def create_head(name: str, num_levels: int, channels: int, **options) -> Head:
    """Build the head called ``name`` (see ``HEADS``)."""
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; choose one of {sorted(HEADS)}")
    try:
        return HEADS[name](num_levels, channels, **options)
    except TypeError as e:
        raise ConfigError(f"bad options for head {name!r}: {e}") from e


__all__ = ["HEADS", "CategoricalHead", "GaussianMixtureHead", "Head", "LogisticMixtureHead", "QuantileHead", "create_head",
           "discretized_logistic_log_prob", "binned_logistic_log_prob", "huber_quantile_loss"]
