"""The Gated PixelCNN's incremental stepper (Ramachandran et al. 2017, "Fast generation for
convolutional autoregressive models"): every causal layer keeps a queue of the inputs it still needs,
and per generated position each layer computes only the output the next positions need, so drawing
a batch costs about one forward pass of the trunk (plus, for colour images, a column per channel).

A layer of the trunk (``pixelzoo.models.autoregressive.gated_pixelcnn.trunk.GatedLayer``) has two causal convolutions:

* the **vertical** one (``VerticalConv``: output row ``r`` reads input rows ``r-k//2 .. r``, every
  column) runs once per image row: once row ``r`` of the image is final, each layer computes just row
  ``r`` of its output from a queue of its input's last ``k//2 + 1`` rows (zeros above the image, the
  layer's top padding), in one ``conv2d`` over those rows. Row ``r`` of ``v_pre = V * v`` reaches the
  horizontal stack only through ``down_shift``, i.e. at row ``r + 1``: with the conditioning it is
  folded, once per row, into a per-column bias of the next row's horizontal convolution
  (``v_to_h(v_pre)`` as one matrix product over the row's columns + the conditioning's horizontal
  half + the biases, written in place into a buffer);
* the **horizontal** one (``HorizontalConv``: columns ``j-k//2 .. j`` of the same row) runs once per
  position: each layer keeps its input row so far, channel-last with ``k//2`` zero columns on the
  left (its left padding), and takes the window ending at the position as one matrix product with
  the masked kernel folded to a ``(taps * in_channels, 2F)`` matrix; then the gate, and the masked
  1x1 ``h_out`` with the residual as one ``addmm`` written straight into the next layer's queue.

At batch 1 a position costs its number of tensor operations, not their arithmetic, so a layer's
step is four of them on views made once per sample call (the window, the residual, the row's bias at
each column, the gate's buffers): no allocation of views or lists per position. The queues hold each
layer's input less the sum of the ``h_out`` biases below it (``_LayerQueues``), so that no separate
bias addition is needed; the offsets' share of the horizontal convolution is folded into the row's
bias once per sample call.

Conditioning: the trunk's spatial map (the model's spatial map and the embedding of the head's
per-position inputs, e.g. PixelIQN's tau, ``model.trunk_spatial``) is computed once per sample call
for the whole image; the conditioning bias (class embedding + 1x1 projection of that map) of a row is
computed once per row, from the map's row (once per call without a map, its horizontal half then
folded into every layer's constant bias; for one image, every row's at once, then cropped). The
output layer and the
head run per sub-pixel (``Stepper.params_from``: the output layer folded into two matrix products,
the head giving only the sub-pixel's channel) on the features and the head's inputs at that position.

Colour within a pixel: feature group ``g`` at ``(i, j)`` reads the pixel's channels ``< g`` (masks A
then B), so for channel ``c`` the stepper computes the column of ``(i, j)`` through every layer with the
channels drawn so far; its caches then hold that column, the later groups not yet final. No feature
reads the pixel's last channel, so the column computed for the last channel is final but for the
first layer's input queue, which holds the pixel itself: the next call rewrites it from the drawn
pixel. When later channels, whole pixels or whole rows are given (inpainting), the next call catches
up: the positions of the row before the one asked for are (re)computed from the final image in
raster order, and the vertical rows from the final rows. The horizontal stack of earlier rows is never
read again, so given rows cost one vertical row each.

One image on the CPU: the positions' operations run on NumPy views of the same buffers
(``_HostSteps``): an operation there costs about 0.4 us against about 1.3 us through PyTorch's
dispatcher, and a position of the fashion preset's 8 layers is 56 of them. The rows (the vertical
stack, the row's bias) stay PyTorch operations; for one image a row's vertical convolution is one
matrix product of its columns' windows (``conv2d``'s path for so small an input took twice as
long). Any other batch, device or dtype, or a call under autocast, takes the PyTorch path
(``host=False`` forces it).

Every step applies the same weights as the trunk's ``forward`` to the same inputs, so the parameters
equal the full-forward stepper's to float rounding (the sums of a matrix product and of a
convolution may be ordered differently). Sampling runs in eval mode: dropout is the identity.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from ..one_image import ScaledPixels, numpy_of, row_product, runs_on_numpy
from ..steppers import Stepper

_glu = torch._C._nn.glu  # glu(x, dim, out=): F.glu has no ``out``


class _LayerQueues:
    """One gated layer's folded weights and its queues (see the module docstring).

    The horizontal queues hold each layer's input less a constant, ``offset`` (F,): the sum of the
    ``h_out`` biases of the layers below (zero for the image). A layer's output is then one matrix
    product added to its input's stored value and written straight into the next layer's queue
    (``torch.addmm(..., out=)``); what the offsets add to the horizontal convolution, per column (the
    zero padding on the left has no offset), is folded into the row's per-column bias once per
    sample call, and the last layer's offset added back to the features."""

    def __init__(self, layer, n: int, width: int, dtype, device, offset: torch.Tensor | None, views: bool = True):
        self.layer = layer
        self.first = layer.first
        self.features = layer.h_out.weight.shape[0]
        h_conv, v_conv = layer.h_conv, layer.v_conv
        in_channels = h_conv.weight.shape[1]
        # horizontal: a (taps * in, 2F) matrix, taps oldest first as in the queue's window
        self.h_pad = h_conv.half
        self.h_taps = h_conv.half + 1
        taps = (h_conv.weight * h_conv.mask)[:, :, 0, :].permute(2, 1, 0)  # (taps, in, 2F)
        self.h_weight = taps.reshape(-1, h_conv.weight.shape[0]).contiguous()
        self.out_weight = (layer.h_out.weight * layer.h_out.mask)[:, :, 0, 0].t().contiguous()
        #: the offset of this layer's input (None: zero) and of its output
        self.offset_in = offset
        self.offset_out = layer.h_out.bias if self.first else offset + layer.h_out.bias
        # per column j, what the input's offset adds to the horizontal convolution: the taps that
        # read columns >= 0, (W, 1, 2F)
        self.offset_bias = None
        if offset is not None:
            per_tap = torch.einsum("tio,i->to", taps, offset)  # (taps, 2F)
            reach = torch.arange(width)[:, None] - self.h_pad + torch.arange(self.h_taps)[None, :] >= 0
            self.offset_bias = (reach.to(per_tap.dtype) @ per_tap)[:, None, :]
        #: ``v_to_h`` as an (in, out) matrix, and per column what the row's bias always adds: the biases
        #: of ``v_to_h`` and of the horizontal convolution, the input offset's share, (W, 1, 2F)
        self.v2h_weight = layer.v_to_h.weight[:, :, 0, 0].t().contiguous()
        const = (layer.v_to_h.bias + h_conv.bias).expand(width, 1, -1)
        self.const_bias = (const if self.offset_bias is None else const + self.offset_bias).contiguous()
        #: the layer's input on the current row so far, (n, pad + W, in) with zero padding on the left
        self.h_queue = torch.zeros(n, self.h_pad + width, in_channels, dtype=dtype, device=device)
        #: per column of the current row, the horizontal convolution's bias and everything it adds
        #: from outside the row (the vertical stack, the conditioning, the input's offset), (W, n, 2F);
        #: rewritten in place once per row
        self.row_bias = torch.zeros(width, n, 2 * self.features, dtype=dtype, device=device)
        self.pre = torch.zeros(n, 2 * self.features, dtype=dtype, device=device)  # a position's gate input
        self.pre_tanh, self.pre_sigmoid = self.pre[:, : self.features], self.pre[:, self.features :]
        self.gated = torch.zeros(n, self.features, dtype=dtype, device=device)  # the gate's output
        # the views a position reads and writes, made once (a view costs as much as a small product):
        # per column, the window of the queue ending there (n, taps * in), the input there (the
        # residual), the row's bias there; not made (``views`` False) for the NumPy steps of one image
        self.windows = self.inputs = self.biases = None
        if views:
            self.windows = [self.h_queue[:, j : j + self.h_taps].flatten(1) for j in range(width)]
            self.inputs = [self.h_queue[:, self.h_pad + j] for j in range(width)]
            self.biases = list(self.row_bias.unbind(0))
        self.targets: list[torch.Tensor] = []  # per column, where the output goes (``GatedStepper``)
        # vertical: the layer's input rows r-k//2 .. r, zero-padded left and right, (n, in, k//2 + 1, W + 2 pad)
        self.v_pad = v_conv.half
        self.v_queue = torch.zeros(n, in_channels, v_conv.half + 1, width + 2 * v_conv.half, dtype=dtype, device=device)
        #: one image: the row's convolution as one matrix product of its columns' windows (n, in, kh, kw)
        #: with the kernel as an (in * kh * kw, 2F) matrix, cheaper there than ``conv2d``'s small-input
        #: path (larger batches convolve)
        self.v_matrix = v_conv.weight.flatten(1).t().contiguous() if n == 1 else None
        self.v_pre: torch.Tensor | None = None  # the last vertical row of V * v, (n, 2F, 1, W)
        self.v_out: torch.Tensor | None = None  # the last vertical row of the layer's output, (n, F, 1, W)

    def vertical_row(self, row: torch.Tensor, cv) -> torch.Tensor:
        """The layer's vertical output on the next row, given its input there ``row`` (n, in, 1, W) and
        the row's vertical conditioning bias ``cv`` (or None)."""
        padded = F.pad(row, (self.v_pad, self.v_pad))
        self.v_queue = torch.cat([self.v_queue[:, :, 1:], padded], dim=2)
        conv = self.layer.v_conv
        if self.v_matrix is None:
            self.v_pre = F.conv2d(self.v_queue, conv.weight, conv.bias)
        else:
            self.v_pre = row_product(self.v_queue, self.v_matrix, conv.bias, self.v_pad)
        # gate(v_pre + cv) as tanh in place on the first half of a copy, then GLU: four operations
        # against the gate's five (``v_pre`` itself is read again by ``start_row``)
        pre = self.v_pre.clone() if cv is None else self.v_pre + cv
        pre[:, : self.features].tanh_()
        self.v_out = _glu(pre, 1)
        return self.v_out

    def start_row(self, above: bool, ch) -> None:
        """The row's per-column bias of the horizontal convolution, in place: ``v_to_h`` of the vertical
        stack's row above (``down_shift``; zeros on row 0, ``above`` False) as one matrix product over
        the row's columns, the constant biases and the input offset's share (``const_bias``), the
        horizontal conditioning ``ch`` ((n, 2F, 1, 1) or by column (n, 2F, 1, W))."""
        row_bias = self.row_bias
        if above:  # (n, W, 2F) from the row's columns, laid out by column with the constant added
            v_to_h = torch.matmul(self.v_pre[:, :, 0].transpose(1, 2), self.v2h_weight)
            torch.add(v_to_h.transpose(0, 1), self.const_bias, out=row_bias)
        else:
            row_bias.copy_(self.const_bias)
        if ch is not None:
            row_bias.add_(ch[:, :, 0, :].permute(2, 0, 1))

    def plan(self) -> tuple:
        """What a layer's step at a position reads, as one tuple (``GatedStepper._position`` runs every
        layer's step inline from these: a method call per layer costs as much as an operation)."""
        return (self.biases, self.windows, self.h_weight, self.pre, self.pre_tanh, self.gated, self.out_weight,
                None if self.first else self.inputs, self.targets)


class _HostSteps:
    """Every layer's step at a position (``GatedStepper._position``) and its vertical row and row bias
    (``_LayerQueues.vertical_row``, ``start_row``) on NumPy views of the stepper's own buffers, for one
    image (n = 1) on the CPU: the same products, the gate as ``tanh(a) * expit(b)``, the residual and
    the features' offset, equal to the PyTorch path's to float rounding. A layer's vertical input rows
    are kept channel-last, (kh, pad + W + pad, in), and its ``v_pre`` / ``v_out`` are PyTorch views of
    the NumPy rows, as the other path's are laid out."""

    def __init__(self, stepper: "GatedStepper"):
        host = numpy_of
        # per column, per layer, the 1-D views a step reads and writes, sliced from one NumPy array per
        # buffer (a tensor's ``numpy()`` per view would cost as much again as the stepper's creation;
        # 1-D products are the cheaper BLAS call)
        queues = [host(q.h_queue)[0] for q in stepper.queues]  # (pad + W, in) each
        out = host(stepper._out)[0]
        width = stepper.width
        self.columns: list[list[tuple]] = [[] for _ in range(width)]
        for k, q in enumerate(stepper.queues):
            f, h_queue = q.features, queues[k]
            pre, row_bias, gated = host(q.pre)[0], host(q.row_bias)[:, 0], host(q.gated)[0]
            weights = host(q.h_weight), host(q.out_weight)
            tmp = np.empty_like(gated)
            after = stepper.queues[k + 1] if k + 1 < len(queues) else None
            for j in range(width):
                target = out if after is None else queues[k + 1][after.h_pad + j]
                self.columns[j].append((h_queue[j : j + q.h_taps].reshape(-1), weights[0], pre, row_bias[j],
                                        pre[:f], pre[f:], gated, weights[1], tmp,
                                        None if q.first else h_queue[q.h_pad + j], target))
        self.out, self.offset = out, host(stepper._out_offset)
        self.features = torch.empty_like(stepper._out)  # the features of the last position, reused
        self._features = host(self.features)[0]
        #: a pixel's first-layer input: its scaled levels
        first = stepper.queues[0]
        self.first_inputs = [queues[0][first.h_pad + j] for j in range(width)]  # (in,) each
        self.pixels = ScaledPixels(stepper.model.num_levels, stepper._level_step, stepper._out.dtype)
        # per layer, the vertical stack's rows: its input rows (kh, pad + W + pad, in), their windows by
        # output column (a strided view, W x (kh, kw, in)) and a buffer to gather them into, the kernel
        # as a (kh * kw * in, 2F) matrix, v_pre (W, 2F), the gate's input and v_out (W, F)
        self.rows = []
        for q in stepper.queues:
            weight = host(q.layer.v_conv.weight)  # (2F, in, kh, kw)
            two_f, c_in, kh, kw = weight.shape
            dtype = weight.dtype
            inputs = np.zeros((kh, width + 2 * q.v_pad, c_in), dtype=dtype)
            s0, s1, s2 = inputs.strides
            windows = np.lib.stride_tricks.as_strided(inputs, (width, kh, kw, c_in), (s1, s0, s1, s2), writeable=False)
            v_pre, gate_in = np.zeros((width, two_f), dtype=dtype), np.zeros((width, two_f), dtype=dtype)
            v_out = np.zeros((width, two_f // 2), dtype=dtype)
            q.v_pre = torch.from_numpy(v_pre).t()[None, :, None, :]
            q.v_out = torch.from_numpy(v_out).t()[None, :, None, :]
            self.rows.append((q, inputs, windows, np.empty((width, kh, kw, c_in), dtype=dtype),
                              np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, two_f)),
                              host(q.layer.v_conv.bias), v_pre, gate_in, v_out, host(q.v2h_weight),
                              host(q.row_bias)[:, 0]))

    @staticmethod
    def _by_column(t: torch.Tensor) -> np.ndarray:
        """A conditioning bias (1, 2F, 1, 1 or W) as (1 or W, 2F)."""
        return t.detach().numpy()[0, :, 0, :].T

    def vertical_row(self, row: torch.Tensor, conditioning: list) -> None:
        """Every layer's vertical output on the next row, from the first layer's input there ``row``
        (1, in, 1, W) and the row's conditioning (per layer, (vertical, horizontal) or Nones)."""
        v = row.detach().numpy()[0, :, 0, :].T  # (W, in)
        for (q, inputs, windows, gathered, matrix, bias, v_pre, gate_in, v_out, _, _), (cv, _) in zip(self.rows, conditioning):
            width, f = v_out.shape
            inputs[:-1] = inputs[1:]  # NumPy copies overlapping rows correctly
            inputs[-1, q.v_pad : q.v_pad + width] = v
            np.copyto(gathered, windows)
            np.dot(gathered.reshape(width, -1), matrix, out=v_pre)
            np.add(v_pre, bias, out=v_pre)
            pre = v_pre if cv is None else np.add(v_pre, self._by_column(cv), out=gate_in)
            np.tanh(pre[:, :f], out=gate_in[:, :f])
            expit(pre[:, f:], out=gate_in[:, f:])
            v = np.multiply(gate_in[:, :f], gate_in[:, f:], out=v_out)

    def start_row(self, above: bool, conditioning: list) -> None:
        """Every layer's row bias (``_LayerQueues.start_row``), ``conditioning`` as for ``vertical_row``."""
        for (q, _, _, _, _, _, v_pre, _, _, v2h, row_bias), (_, ch) in zip(self.rows, conditioning):
            const = q.const_bias.detach().numpy()[:, 0]
            if above:
                np.dot(v_pre, v2h, out=row_bias)
                np.add(row_bias, const, out=row_bias)
            else:
                np.copyto(row_bias, const)
            if ch is not None:
                np.add(row_bias, self._by_column(ch), out=row_bias)

    def write_input(self, x: torch.Tensor, i: int, j: int, width: int) -> bool:
        """The first layer's input at (i, j) from the images ``x`` (levels); False when ``x`` has no
        NumPy view (not contiguous): the caller writes it."""
        return self.pixels.write(x, i * width + j, self.first_inputs[j])

    def position(self, j: int) -> torch.Tensor:
        """Every layer's step at column ``j``; the features (n, F), a buffer rewritten at the next call."""
        dot, add, tanh, multiply = np.dot, np.add, np.tanh, np.multiply
        for window, h_weight, pre, bias, pre_tanh, pre_sigmoid, gated, out_weight, tmp, residual, target in self.columns[j]:
            dot(window, h_weight, out=pre)
            add(pre, bias, out=pre)
            tanh(pre_tanh, out=pre_tanh)
            expit(pre_sigmoid, out=pre_sigmoid)
            multiply(pre_tanh, pre_sigmoid, out=gated)
            if residual is None:
                dot(gated, out_weight, out=target)
            else:
                dot(gated, out_weight, out=tmp)
                add(tmp, residual, out=target)
        add(self.out, self.offset, out=self._features)
        return self.features


class GatedStepper(Stepper):
    """The incremental stepper of ``GatedPixelCNNTrunk``: per-layer queues for the vertical stack
    (once per row) and the horizontal stack (once per position); see the module docstring."""

    #: the largest batch, and the most bytes, for which the conditioning bias of the whole map is
    #: computed at once
    COND_MAP_MAX_BATCH = 1
    COND_MAP_BYTES = 64 * 2 ** 20

    def __init__(self, model, n, y=None, spatial=None, inputs=None, image_input: bool = False,
                 host: bool | None = None):
        super().__init__(model, n, y, spatial, inputs)
        self.trunk = model.trunk
        #: the first layer reads the scaled image itself (the trunk's ``input_features`` is not
        #: overridden) and levels are integers: a pixel's input is then two operations into its queue
        self._scaled_levels = bool(image_input) and not model.continuous
        self._level_step = 2.0 / (model.num_levels - 1)
        self.channels, self.height, self.width = (int(s) for s in model.image_shape)
        weight = self.trunk.layers[0].h_conv.weight
        #: one image on the CPU in a float dtype, outside autocast: the positions on NumPy views
        #: (``_HostSteps``); ``host=False`` keeps the PyTorch operations
        on_host = host is not False and runs_on_numpy(self.n, weight)
        self.queues = []
        offset = None
        for layer in self.trunk.layers:
            self.queues.append(_LayerQueues(layer, self.n, self.width, weight.dtype, weight.device, offset,
                                            views=not on_host))
            offset = self.queues[-1].offset_out
        #: where each layer writes its output at a position: the next layer's queue there, the last
        #: layer into ``_out``, the features less their offset
        self._out = torch.zeros(self.n, self.queues[-1].features, dtype=weight.dtype, device=weight.device)
        self._out_offset = self.queues[-1].offset_out
        self._plans: list[tuple] = []
        if not on_host:
            for q, after in zip(self.queues, self.queues[1:]):
                q.targets = after.inputs
            self.queues[-1].targets = [self._out] * self.width
            self._plans = [q.plan() for q in self.queues]
        #: the first layer's own tap is fully masked (one channel: mask A reads no channel of the
        #: pixel), so the pixel's input is not needed while it is computed: the refresh writes it
        self._own_input_unread = self.channels == 1
        # the trunk's spatial map (the spatial map and the head's input embedding), once per sample call
        self.trunk_map = model.trunk_spatial(spatial, **self.inputs)
        self._cond: dict[int, list] = {}
        #: with a map, every row's conditioning bias in one product per layer for a small batch (where a
        #: row's few operations cost more than their arithmetic; per layer (n, 4F, H, W), 64 MB at most),
        #: else one row at a time (a larger batch reads a row of the whole map's bias scattered, slower)
        self._cond_all: list | None = None
        cond_bytes = self.n * sum(4 * q.features for q in self.queues) * self.height * self.width * weight.element_size()
        self._cond_whole_map = (self.trunk_map is not None and self.n <= self.COND_MAP_MAX_BATCH
                                and cond_bytes <= self.COND_MAP_BYTES)
        self._cond_folded = False  # without a map: the horizontal conditioning is in the layers' constant biases
        self.v_rows = 0  # vertical rows computed
        self.row: int | None = None  # the row the horizontal queues are set up for
        self.done = 0  # positions (raster index) whose column in the queues is final
        self.stale_input: int | None = None  # a position whose image input was not final when computed
        #: per position (raster index), the view ``x[:, :, i, j]`` of the images the sampler passes,
        #: made in one call for the whole image the first time that tensor is seen
        self._x: torch.Tensor | None = None
        self._x_pixels: tuple[torch.Tensor, ...] = ()
        self._host = _HostSteps(self) if on_host else None
        self.on_host = self._host is not None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input at the positions of ``x`` (n, C, h, w): the scaled image, through the
        trunk's ``input_features`` (a code map's embedding)."""
        return self.trunk.input_features(self.model.scale(x))

    def _write_input(self, x: torch.Tensor, i: int, j: int) -> None:
        """The first layer's input at (i, j) of the current row, into its queue."""
        if self._scaled_levels and self._host is not None and self._host.write_input(x, i, j, self.width):
            return
        first = self.queues[0]
        slot = first.inputs[j] if first.inputs is not None else first.h_queue[:, first.h_pad + j]
        if self._scaled_levels:  # scale_levels, value for value: x * 2 / (K - 1) - 1
            torch.mul(self._pixel_of(x, i, j), self._level_step, out=slot).sub_(1.0)
        else:
            slot.copy_(self._input(x[:, :, i : i + 1, j : j + 1])[:, :, 0, 0])

    def _pixel_of(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """``x[:, :, i, j]``, as a view made once per images tensor (the sampler passes the same one)."""
        if x is not self._x:
            if not x.is_contiguous():
                return x[:, :, i, j]
            self._x, self._x_pixels = x, x.view(x.shape[0], x.shape[1], -1).unbind(2)
        return self._x_pixels[i * self.width + j]

    # ------------------------------------------------------------------ per row
    def _conditioning(self, r: int) -> list:
        """Per layer, the (vertical, horizontal) halves of row ``r``'s conditioning bias (None, None
        without conditioning)."""
        if self.trunk_map is None:  # no map: the same bias on every row
            r = 0
        elif self._cond_all is None and self._cond_whole_map:  # the whole map's bias at once, then crops
            self._cond_all = self.trunk.conditioning(self.y, self.trunk_map, (self.height, self.width))
        if self._cond_all is not None:
            return [tuple(None if t is None else t[..., r : r + 1, :] if t.shape[-2] > 1 else t for t in halves)
                    for halves in self._cond_all]
        if r not in self._cond:
            sp = None if self.trunk_map is None else self.trunk_map[..., r : r + 1, :]
            self._cond = {k: v for k, v in self._cond.items() if k >= r - 1}
            self._cond[r] = self.trunk.conditioning(self.y, sp, (1, self.width))
        return self._cond[r]

    def _vertical_row(self, x: torch.Tensor, r: int) -> None:
        """Row ``r`` of every layer's vertical stack (image rows ``<= r`` final)."""
        v = self._input(x[:, :, r : r + 1])
        if self._host is not None:
            self._host.vertical_row(v, self._conditioning(r))
            return
        for q, (cv, _) in zip(self.queues, self._conditioning(r)):
            v = q.vertical_row(v, cv)

    def _start_row(self, x: torch.Tensor, i: int) -> None:
        """Ready for row ``i``: the vertical rows above it, and each layer's bias of row ``i``."""
        while self.v_rows < i:
            self._vertical_row(x, self.v_rows)
            self.v_rows += 1
        conditioning = self._conditioning(i)
        if self.trunk_map is None:  # the same horizontal conditioning on every row: into the constant biases, once
            if not self._cond_folded:
                for q, (_, ch) in zip(self.queues, conditioning):
                    if ch is not None:
                        q.const_bias = (q.const_bias + ch[:, :, 0, :].permute(2, 0, 1)).contiguous()
                self._cond_folded = True
            conditioning = [(None, None)] * len(self.queues)
        if self._host is not None:
            self._host.start_row(i > 0, conditioning)
        else:
            for q, (_, ch) in zip(self.queues, conditioning):
                q.start_row(i > 0, ch)
        self.row = i
        self.done = max(self.done, i * self.width)

    # ------------------------------------------------------------------ per position
    def _position(self, x: torch.Tensor, i: int, j: int, write_input: bool = True) -> torch.Tensor:
        """The trunk's features (n, F) at (i, j) of the current row; writes the column into every queue
        (the image input there too, unless ``write_input`` is False)."""
        if self._host is not None:
            if write_input:
                self._write_input(x, i, j)
            return self._host.position(j)
        if write_input:
            self._write_input(x, i, j)
        # every layer's ``position(j)``, inline
        for biases, windows, h_weight, pre, pre_tanh, gated, out_weight, inputs, targets in self._plans:
            torch.addmm(biases[j], windows[j], h_weight, out=pre)
            pre_tanh.tanh_()
            _glu(pre, 1, out=gated)
            if inputs is None:  # the first layer: no residual
                torch.mm(gated, out_weight, out=targets[j])
            else:
                torch.addmm(inputs[j], gated, out_weight, out=targets[j])
        return self._out + self._out_offset

    def features(self, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """The trunk's features (n, F, 1, 1) at (i, j) when sub-pixel (c, i, j) is next: every
        sub-pixel before it in ``x`` is final (as for ``params``)."""
        return self._features(x, i, j, c).clone()[:, :, None, None]

    def _features(self, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """``features`` as (n, F)."""
        if self.stale_input is not None:  # the last pixel computed is final now: its input column too
            si, sj = divmod(self.stale_input, self.width)
            if si == i:
                self._write_input(x, si, sj)
            self.stale_input = None
        if self.row != i:
            self._start_row(x, i)
        p = i * self.width + j
        for q in range(self.done, p):  # catch up on given positions of the row
            self._position(x, i, q - i * self.width)
        feats = self._position(x, i, j, write_input=not self._own_input_unread)
        if c == self.channels - 1:
            # no feature reads a pixel's last channel: the column is final but for the first layer's
            # input, the pixel itself (refreshed at the next call)
            self.done, self.stale_input = p + 1, p
        else:
            self.done = p
        return feats

    def layer_outputs(self, j: int) -> list[torch.Tensor]:
        """Per layer but the last, its horizontal output (n, F) at column ``j`` of the current row as
        the queues hold it (the next layer's input); the last layer's is ``features``."""
        return [q.h_queue[:, q.h_pad + j] + q.offset_in for q in self.queues[1:]]

    def params(self, x, i, j, c):
        return self.params_from(self._features(x, i, j, c), x, i, j, c)
