"""``meta_parameters``: build modules whose parameters live on the meta device (shapes, no memory),
to count a model's size or trace a training step's activations before allocating anything.

Building under ``torch.device("meta")`` puts every tensor the builder makes on the meta device, and a
builder that reads a value it computed (the colour-group masks, ``int(groups.max())``) then fails.
Here only the parameters move: each is swapped for a meta tensor of its shape as it is registered
(the real one is ``torch.empty``, never touched, freed at once), so initialisation costs nothing,
while the small tensors a builder computes with (groups, masks, buffers) stay real. ``model.to("meta")``
afterwards moves the buffers too, for a forward pass on the meta device.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


@contextlib.contextmanager
def meta_parameters():
    """Within the block every parameter registered on a module is a meta tensor of its shape and
    dtype (``requires_grad`` kept). Yields the list of the parameters registered so far (a builder
    that fails part-way leaves its count up to there)."""
    register = nn.Module.register_parameter
    registered: list[nn.Parameter] = []

    def on_meta(module, name, param):
        if param is not None and not param.is_meta:
            param = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
        if param is not None:
            registered.append(param)
        return register(module, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield registered
    finally:
        nn.Module.register_parameter = register
