"""``eval_mode``: run modules in evaluation mode and give each back the mode it had."""

from __future__ import annotations

import contextlib

import torch.nn as nn


@contextlib.contextmanager
def eval_mode(*modules):
    """Within the block every ``nn.Module`` among ``modules`` is in eval mode; afterwards (also on an
    error) each is back in the mode it had. Anything else given (a plain function) is left alone."""
    modules = [m for m in modules if isinstance(m, nn.Module)]
    before = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield modules[0] if len(modules) == 1 else modules
    finally:
        for m, mode in zip(modules, before):
            m.train(mode)
