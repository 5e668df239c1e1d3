"""Output heads: the distribution of one autoregressive step."""

import inspect

from ..errors import ConfigError
from .base import Head
from .categorical import CategoricalHead
from .gaussian_mixture import GaussianMixtureHead
from .logistic_mixture import LogisticMixtureHead, binned_logistic_log_prob, discretized_logistic_log_prob
from .quantile import QuantileHead, huber_quantile_loss

HEADS: dict[str, type[Head]] = {"categorical": CategoricalHead, "logistic_mixture": LogisticMixtureHead,
                                "quantile": QuantileHead, "gaussian_mixture": GaussianMixtureHead}


#: options of sampling (``model.sample(head_options=...)``), not of building a head
SAMPLING_OPTIONS = {"mode", "log_scale_shift"}
SAMPLING_HINT = ("; sampling options such as mode and log_scale_shift go to sampling: "
                 "model.sample(..., head_options={'mode': 'map'})")


def head_option_names(name: str) -> list[str]:
    """The options head ``name``'s constructor takes (besides the levels and channels)."""
    params = list(inspect.signature(HEADS[name].__init__).parameters.values())[3:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def create_head(name: str, num_levels: int, channels: int, **options) -> Head:
    """Build the head called ``name`` (see ``HEADS``)."""
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; choose one of {sorted(HEADS)}")
    valid = head_option_names(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"bad options for head {name!r}: it takes no option(s) {unknown} when it is built; "
                          f"its options: {valid or 'none'}{SAMPLING_HINT if set(unknown) & SAMPLING_OPTIONS else ''}")
    try:
        return HEADS[name](num_levels, channels, **options)
    except TypeError as e:
        raise ConfigError(f"bad options for head {name!r}: {e}") from e


__all__ = ["HEADS", "CategoricalHead", "GaussianMixtureHead", "Head", "LogisticMixtureHead", "QuantileHead", "create_head",
           "discretized_logistic_log_prob", "binned_logistic_log_prob", "huber_quantile_loss"]
