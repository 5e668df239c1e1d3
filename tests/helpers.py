"""Shared test helpers: causal-order bookkeeping for the causality tests; leaving a spawned
process-group worker."""

import os
import sys

import torch


def raster_before(c_count, height, width, c, i, j):
    """Bool (C, H, W): True at sub-pixels strictly before (c, i, j) in raster order
    (earlier rows, earlier columns of row i, channels < c of pixel (i, j))."""
    before = torch.zeros(c_count, height, width, dtype=torch.bool)
    before[:, :i] = True
    before[:, i, :j] = True
    before[:c, i, j] = True
    return before


def dependency_grads(model, x, y=None, spatial=None):
    """Yield ((c, i, j), |d params[c, :, i, j] / d x_scaled|) summed over the batch, for every sub-pixel."""
    xs = model.scale(x).double().requires_grad_(True)
    model.double()
    params = model.params_from_scaled(xs, y, None if spatial is None else spatial.double())
    c_count, height, width = model.image_shape
    for c in range(c_count):
        for i in range(height):
            for j in range(width):
                (g,) = torch.autograd.grad(params[:, c, :, i, j].sum(), xs, retain_graph=True)
                yield (c, i, j), g.abs().sum(0)


def tau_dependency_grads(model, x, y=None, tau=None):
    """For a quantile model (tau as an extra input): yield ((c, i, j), |dQ[c, i, j] / d x_scaled|,
    |dQ[c, i, j] / d tau|), each summed over the batch, for every sub-pixel."""
    xs = model.scale(x).double().requires_grad_(True)
    tau = (torch.rand(x.shape) if tau is None else tau).double().requires_grad_(True)
    model.double()
    q = model.params_from_scaled(xs, y, None, tau=tau)[:, :, 0]
    c_count, height, width = model.image_shape
    for c in range(c_count):
        for i in range(height):
            for j in range(width):
                gx, gt = torch.autograd.grad(q[:, c, i, j].sum(), (xs, tau), retain_graph=True)
                yield (c, i, j), gx.abs().sum(0), gt.abs().sum(0)


def leave_spawned_worker():
    """End a process spawned for a gloo process group, after ``distributed.finish()``, without the
    interpreter's finalisation: there gloo's worker threads can still drop objects that need the
    GIL, and the process dies with SIGABRT ("terminate called without an active exception") after
    its work succeeded (seen under load in CI). Called only once the worker's checks have passed,
    so a failing check still fails the test through its exception."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def assert_numpy_steps_match(model, stepper_class, x, y, **options):
    """A stepper's one-image steps on NumPy views (``host`` default) against its PyTorch operations
    (``host=False``): the same features at every position of the one image ``x`` (1, 1, H, W), and the
    same images drawn with the same generator. ``options`` go to both steppers."""
    from pixelzoo.sampling.ancestral import ancestral_sample

    _, _, height, width = x.shape
    with torch.inference_mode():
        host = stepper_class(model, 1, y, **options)
        plain = stepper_class(model, 1, y, host=False, **options)
        assert host.on_host and not plain.on_host
        for i in range(height):
            for j in range(width):
                torch.testing.assert_close(host.features(x, i, j, 0), plain.features(x, i, j, 0), atol=1e-6, rtol=1e-6)
    images = {}
    for use_host in (True, False):
        model.stepper = lambda n, y=None, spatial=None, inputs=None, cached=None: stepper_class(
            model, n, y, spatial, inputs, host=None if use_host else False, **options)
        try:
            images[use_host] = ancestral_sample(model, 1, y=int(y[0]), generator=torch.Generator().manual_seed(5))
        finally:
            del model.stepper
    assert torch.equal(images[True], images[False])
