"""The chain of levels: levels, their makers and links (``links.py``), the generic composite
``Chain`` (``chain.py``), the fingerprinted cache of what trained makers make (``level_cache.py``),
and the part specifications composites build their autoregressive parts from (``part_specs.py``)."""

from .chain import Chain, Encoder, Level, Link, View

__all__ = ["Chain", "Encoder", "Level", "Link", "View"]
