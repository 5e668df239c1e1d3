"""The chain of levels: levels, their makers and links (``links.py``), the generic composite
``Chain`` and what its sampling returns (``chain.py``), the fingerprinted cache of what trained
makers make (``level_cache.py``), and the part specifications composites build their
autoregressive parts from (``part_specs.py``)."""

from .chain import Chain, SampledLevels
from .links import Level, Link, TrainedMaker, View

__all__ = ["Chain", "Level", "Link", "SampledLevels", "TrainedMaker", "View"]
