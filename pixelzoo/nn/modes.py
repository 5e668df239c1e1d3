"""``eval_mode``: run modules in evaluation mode and give each back the mode it had."""

from __future__ import annotations

import contextlib

import torch.nn as nn


@contextlib.contextmanager
def eval_mode(*modules):
    """Within the block every ``nn.Module`` among ``modules`` is in eval mode; afterwards (also on an
    error) each is back in the mode it had. Anything else given (a plain function) is left alone."""
    given = [m for m in modules if isinstance(m, nn.Module)]
    # a module whose every submodule is in eval mode already is left alone: ``eval()`` and
    # ``train(False)`` would change nothing, and their walk over the modules costs more than this check
    # (a sampling call of a small model enters this block more than once)
    modules = [m for m in given if any(s.training for s in m.modules())]
    before = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield given[0] if len(given) == 1 else given
    finally:
        for m, mode in zip(modules, before):
            m.train(mode)
