"""``pixelzoo serve``: a local web page over trained models (see ``app.py`` for the routes, ``jobs.py``
for the work queue, ``work.py`` for the computations, ``checks.py`` for the request values)."""

from .server import PageServer

__all__ = ["PageServer"]
