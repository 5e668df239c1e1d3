"""The PixelSNAIL trunk's incremental stepper (Ramachandran et al. 2017, "Fast generation for
convolutional autoregressive models"): every causal layer keeps a cache of the inputs it still needs,
and per position each layer computes only the outputs the next positions need, so drawing a batch
costs about one forward pass of the trunk (plus, for colour images, one column per channel).

The trunk (``pixelzoo.models.autoregressive.pixelsnail.trunk``) has three kinds of causal layer:

* **vertical** convolutions (``VerticalConv``: output row ``r`` reads input rows ``r-k//2 .. r``, every
  column): once row ``r`` of the image is final, each layer computes its row ``r`` from a buffer of
  its input's last ``k//2`` rows (zeros above the image, the layer's top padding). Row ``r`` of each
  layer's output reaches the horizontal stream only through ``down_shift``, i.e. at row ``r + 1``.
* **horizontal** convolutions (``HorizontalConv``: columns ``j-k//2 .. j`` of the same row): a buffer
  of each layer's input row (reused from row to row: a window reads only its row's earlier columns),
  channel-last (``k//2`` zero columns on the left, the layer's left
  padding); per position each layer writes its input column and takes the window ending there as one
  matrix product with the masked kernel folded to a ``(taps * in, out)`` matrix (the attention's 1x1
  projections of one position are matrix products too: ``conv2d``'s overhead dominates there).
* **attention** (``CausalSelfAttention2d``): a key/value cache over raster positions; per position one
  new key and value and one query (from the position's own features with ``include_self``, else
  from the previous position's with this position's code), attending over the keys cached so far.
  The sinusoidal position code is computed once for the whole map (it depends on ``(i, j)`` only);
  at one position the query, key and value projections are one matrix product over the input
  features, with the position code's share (and the biases, and the query's 1/sqrt(d_k)) tabulated
  per position once per sample call.

Per position everything is a matrix product on (n, channels) rows, with every additive term of a
layer (the vertical stream's share, the conditioning bias, the convolution's bias) folded into the
product's bias once per row: the per-position cost at small batches is the number of operations.

The 1x1 parts (``v_to_h``, conditioning biases, gates, the output stack) are position-wise. The
conditioning bias of a row (class embedding + projection of the trunk's spatial map, which the
stepper computes once per sample call with ``model.trunk_spatial``) is computed once per row.

Colour channels within a pixel: feature group ``g`` at ``(i, j)`` reads the pixel's channels ``< g``,
so for channel ``c`` the stepper recomputes the column of ``(i, j)`` through every layer with the
channels drawn so far (its caches then hold that column, the later groups not yet final). No feature
reads the pixel's last channel, so the column computed for the last channel is final but for the
input layer's buffer, which holds the pixel itself: the next call rewrites it from the drawn pixel,
one position-wise input, not a column through the layers. When that
channel (or the whole pixel, or whole rows) is given, the next call catches up: every position
before the one asked for is (re)computed from the final image, in raster order, before it.
A given row is caught up in one pass over the row (its attention queries masked as in the layer);
without attention the horizontal stream of earlier rows is never read again, so the catch-up runs
only over the vertical rows and the current row.

One image on the CPU: a position's operations run on NumPy views of the same buffers and caches
(``_HostPositions``: an operation there costs about 0.4 us against about 1.3 us through PyTorch's
dispatcher, and a position is some 60 of them); the rows and catching up on given positions stay
PyTorch operations. Any other batch, device or dtype, a call under autocast, dropout that acts
(training mode), and ``host=False`` take the PyTorch path.

Every step runs the same modules and weights as the trunk's ``forward`` on crops of the same inputs,
so the parameters equal the full-forward stepper's to float rounding (the sums in a convolution or a
softmax over fewer terms may be ordered differently).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from ....nn import gate
from ....nn.attention import sinusoidal_positions
from ..one_image import ScaledPixels, elu, numpy_of, row_product, runs_on_numpy
from ..steppers import Stepper

# the operators themselves: at batch 1 the Python wrappers of ``F.elu`` / ``F.elu_`` / ``F.glu`` cost as
# much as the operations
_elu, _elu_, _glu = torch._C._nn.elu, torch._C._nn.elu_, torch._C._nn.glu


class _HostPositions:
    """``SnailStepper._position`` for one image (n = 1) on the CPU, on NumPy views of the stepper's
    buffers, caches and folded weights (every array 1-D per position): the same products, the ELU as
    ``max(v, expm1(min(v, 0)))`` (``expm1(v) >= v``), the gate as ``tanh(a) * expit(b)``, the
    attention's scores, softmax and values over the cached prefix; equal to the PyTorch path to float
    rounding."""

    def __init__(self, stepper: "SnailStepper"):
        self.stepper = stepper
        dtype = stepper.h_mats[0].dtype
        width = stepper.width
        self.mats = [numpy_of(m) for m in stepper.h_mats]
        buffers = [numpy_of(b)[0] for b in stepper.h_buffers]  # (pad + W, in) each
        self.windows = [[buf[j : j + conv.half + 1].reshape(-1) for j in range(width)]
                        for buf, conv in zip(buffers, stepper.h_convs)]
        self.slots = [[buf[conv.half + j] for j in range(width)] for buf, conv in zip(buffers, stepper.h_convs)]
        self.biases = [list(numpy_of(b)[:, 0]) for b in stepper.col_bias]  # per column (out,)
        channels = stepper.trunk.out_channels
        self.out_mats = [tuple(numpy_of(t) for t in mats) for mats in stepper.out_mats]
        # the widest vector a position passes through an ELU: the ELU's buffers and the scratch one
        widest = max([channels] + [m.shape[1] for m in self.mats] + [w1.shape[1] for w1, _, _, _ in self.out_mats])
        dt = numpy_of(stepper._h).dtype
        self.h = np.zeros(channels, dtype=dt)
        self.low, self.zeros, self.tmp = (np.zeros(widest, dtype=dt) for _ in range(3))
        self.pre = np.zeros(2 * channels, dtype=dt)
        self.gated = np.zeros(channels, dtype=dt)
        self.attended = np.zeros(channels, dtype=dt)
        self.hidden = [np.zeros(w1.shape[1], dtype=dt) for w1, _, _, _ in self.out_mats]
        self.features = torch.zeros(1, channels, dtype=dtype)  # the features of the last position, reused
        self._features = numpy_of(self.features)[0]
        self.pixels = ScaledPixels(stepper.model.num_levels, stepper._level_step, dtype)
        self.attention = {}
        for b, att in stepper.attention.items():
            stepper._cache(b, stepper._h)
            proj = stepper.projections[b]
            keys, values = numpy_of(stepper.keys[b])[0], numpy_of(stepper.values[b])[0]  # (heads, d_k, HW), (heads, HW, d_v)
            buf = np.zeros(numpy_of(stepper._step_buffers[b][0]).shape[1], dtype=self.h.dtype)
            kc, vc, nh = att.key_channels, att.value_channels, att.heads
            q_width = kc if att.include_self else 0
            w_out, b_out = (numpy_of(t) for t in proj["out"])
            entry = {"include_self": att.include_self, "keys": keys, "values": values, "buf": buf,
                     "q": buf[:q_width].reshape(nh, 1, -1) if q_width else None,
                     "k": buf[q_width : q_width + kc].reshape(nh, -1), "v": buf[q_width + kc :].reshape(nh, -1),
                     "out": (w_out, b_out), "scores": np.zeros((nh, 1, keys.shape[-1]), dtype=self.h.dtype),
                     "attended": np.zeros((nh, 1, vc // nh), dtype=self.h.dtype)}
            if att.include_self:
                entry["qkv"] = tuple(numpy_of(t) for t in proj["qkv"])
            else:
                entry["kv"] = tuple(numpy_of(t) for t in proj["kv"])
                entry["wq"] = tuple(numpy_of(t) for t in proj["q"])
                entry["inputs"] = numpy_of(stepper.att_inputs[b])[0]  # (F, HW)
            self.attention[b] = entry

    def elu(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The ELU of the vector ``v`` into ``out``, with this stepper's buffers."""
        return elu(v, self.low[: v.shape[0]], self.zeros[: v.shape[0]], out)

    def write_input(self, x: torch.Tensor, i: int, j: int) -> bool:
        """The input layers' input at (i, j) from the images ``x`` (levels); False when ``x`` has no NumPy
        view (not contiguous): the caller writes it."""
        return self.pixels.write(x, i * self.stepper.width + j, self.slots[0][j])

    def attend(self, b: int, a: np.ndarray, p: int) -> np.ndarray:
        """``SnailStepper._attend_one`` of attention layer ``b`` at raster position ``p``, its input ``a``."""
        e = self.attention[b]
        buf, keys, values = e["buf"], e["keys"], e["values"]
        if e["include_self"]:
            w, table = e["qkv"]
            q, m = e["q"], p + 1
        else:  # the query from the previous position's input with this position's code
            w, table = e["kv"]
            e["inputs"][:, p] = a
            q, m = None, p
            if p:
                wq, tq = e["wq"]
                q = (np.dot(e["inputs"][:, p - 1], wq) + tq[p]).reshape(keys.shape[0], 1, -1)
        np.dot(a, w, out=buf)
        np.add(buf, table[p], buf)
        keys[:, :, p] = e["k"]
        values[:, p, :] = e["v"]
        w_out, b_out = e["out"]
        if m == 0:  # the first position alone attends to nothing
            return b_out
        scores = e["scores"][:, :, :m]
        np.matmul(q, keys[:, :, :m], out=scores)
        np.subtract(scores, scores.max(axis=-1, keepdims=True), scores)
        np.exp(scores, scores)
        np.divide(scores, scores.sum(axis=-1, keepdims=True), scores)
        attended = np.matmul(scores, values[:, :m], out=e["attended"])
        np.dot(attended.reshape(-1), w_out, out=self.attended)
        return np.add(self.attended, b_out, self.attended)

    def position(self, p: int, j: int) -> torch.Tensor:
        """The trunk's features at raster position ``p`` (column ``j``), a buffer rewritten at the next call."""
        dot, add, mats, windows, slots, biases = np.dot, np.add, self.mats, self.windows, self.slots, self.biases
        h, tmp, pre, gated = self.h, self.tmp, self.pre, self.gated
        dot(windows[0][j], mats[0], out=h)
        add(h, biases[0][j], h)
        channels = h.shape[0]
        for b in range(len(self.stepper.dropouts)):
            k = 1 + 2 * b
            self.elu(h, slots[k][j])
            first = tmp[: mats[k].shape[1]]
            dot(windows[k][j], mats[k], out=first)
            add(first, biases[k][j], first)
            self.elu(first, slots[k + 1][j])
            dot(windows[k + 1][j], mats[k + 1], out=pre)
            add(pre, biases[k + 1][j], pre)
            pre_tanh, pre_sigmoid = pre[:channels], pre[channels:]
            np.tanh(pre_tanh, pre_tanh)
            expit(pre_sigmoid, pre_sigmoid)
            np.multiply(pre_tanh, pre_sigmoid, gated)
            add(h, gated, h)
            if b in self.attention:
                add(h, self.attend(b, self.elu(h, self.gated), p), h)
        out = self._features
        np.copyto(out, h)  # the stream's buffer is the next position's
        for (w1, b1, w2, b2), hidden in zip(self.out_mats, self.hidden):  # the output stack's residual blocks
            dot(self.elu(out, tmp[:channels]), w1, out=hidden)
            add(hidden, b1, hidden)
            self.elu(hidden, hidden)
            add(out, b2, out)
            add(out, dot(hidden, w2), out)
        return self.features


class SnailStepper(Stepper):
    """The incremental stepper of ``PixelSNAILTrunk`` (and subclasses that change only the input
    features, ``input_features``, e.g. VQ-VAE-2's ``CodeSNAILTrunk``); see the module docstring."""

    def __init__(self, model, n, y=None, spatial=None, inputs=None, image_input: bool = False,
                 host: bool | None = None):
        super().__init__(model, n, y, spatial, inputs)
        trunk = self.trunk = model.trunk
        #: the input layers read the scaled image itself and levels are integers: a pixel's input is
        #: then two operations into its buffer, from views of the sampler's images made once
        self._scaled_levels = bool(image_input) and not model.continuous
        self._level_step = 2.0 / (model.num_levels - 1)
        self._x: torch.Tensor | None = None
        self._x_pixels: tuple[torch.Tensor, ...] = ()
        self.channels, self.height, self.width = (int(s) for s in model.image_shape)
        # the trunk's spatial map, once per sample call (the spatial map and the head's input embedding)
        self.trunk_map = model.trunk_spatial(spatial, **self.inputs)
        self.attention = {int(b): att for b, att in trunk.attention.items()}
        # the horizontal convolutions' masked weights, as their forward computes them
        self.h_convs = [trunk.in_h] + [conv for block in trunk.blocks for conv in (block.h_conv1, block.h_conv2)]
        self.h_weights = [conv.weight * conv.mask for conv in self.h_convs]
        # ... and folded for one position: (taps * in, out), taps oldest first as in a buffer's window
        self.h_mats = [w[:, :, 0, :].permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous() for w in self.h_weights]
        # the output stack's masked 1x1 weights, as matrices (in, out)
        def masked(conv):
            return (conv.weight * conv.mask).flatten(1).t().contiguous()

        self.out_mats = [(masked(blk.conv1), blk.conv1.bias, masked(blk.conv2), blk.conv2.bias)
                         for blk in trunk.out_stack]
        self.dropouts = [None if isinstance(block.dropout, torch.nn.Identity) else block.dropout
                         for block in trunk.blocks]
        self.v_convs = [trunk.in_v] + [conv for block in trunk.blocks for conv in (block.v_conv1, block.v_conv2)]
        self.v_buffers: list[torch.Tensor | None] = [None] * len(self.v_convs)
        self._v_matrices: dict[int, torch.Tensor] = {}  # one image: vertical kernels as matrices, made at first use
        self.v_rows_done = 0  # vertical rows computed
        self.v_last: list[torch.Tensor | None] = [None] * (len(trunk.blocks) + 1)  # each stream's last row
        self.done = 0  # positions (raster index) whose column in the caches is final
        self.row: int | None = None  # the row the horizontal buffers are set up for
        self.stale_input: int | None = None  # a committed position whose image input was not yet final
        self._cond: dict[int, list] = {}
        self.positions: dict[int, torch.Tensor] = {}
        self.keys: dict[int, torch.Tensor] = {}
        self._step_buffers: dict[int, tuple] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.projections = {b: self._projections(att) for b, att in self.attention.items()}
        #: the attention probabilities' dropout where it acts (training mode), else None (sampling)
        self.att_dropout = {b: att.dropout if att.training else None for b, att in self.attention.items()}
        self.att_inputs: dict[int, torch.Tensor] = {}
        # per horizontal convolution, its input row so far (n, pad + W, in), kept from row to row (a
        # position reads only its row's earlier columns, or padding), and everything added to its output
        # by column (its bias, the vertical stream's share or the conditioning; rewritten once per
        # row), (W, n, out); and the views a position reads and writes, made once: per column the
        # window ending there (n, taps * in), the input there, the bias there
        w0 = self.h_weights[0]
        dtype, device = w0.dtype, w0.device
        self.h_buffers = [torch.zeros(self.n, conv.half + self.width, conv.weight.shape[1], dtype=dtype, device=device)
                          for conv in self.h_convs]
        self.col_bias = [torch.zeros(self.width, self.n, conv.weight.shape[0], dtype=dtype, device=device)
                         for conv in self.h_convs]
        self.windows = [[buf[:, j : j + conv.half + 1].flatten(1) for j in range(self.width)]
                        for buf, conv in zip(self.h_buffers, self.h_convs)]
        self.slots = [[buf[:, conv.half + j] for j in range(self.width)] for buf, conv in zip(self.h_buffers, self.h_convs)]
        self.biases = [list(b.unbind(0)) for b in self.col_bias]
        channels = trunk.out_channels
        self._h = torch.zeros(self.n, channels, dtype=dtype, device=device)  # the horizontal stream at a position
        self._pre = torch.zeros(self.n, 2 * channels, dtype=dtype, device=device)  # a gate's input
        self._gated = torch.zeros(self.n, channels, dtype=dtype, device=device)  # its output
        self._pre_tanh, self._pre_sigmoid = self._pre[:, :channels], self._pre[:, channels:]
        #: one image on the CPU in a float dtype, outside autocast, no dropout acting: a position on
        #: NumPy views (``_HostPositions``); ``host=False`` keeps the PyTorch operations
        quiet = all(d is None or not d.training for d in self.dropouts) and \
            all(d is None for d in self.att_dropout.values())
        can_host = quiet and runs_on_numpy(self.n, self._h)
        self._host = _HostPositions(self) if can_host and host is not False else None
        self.on_host = self._host is not None

    def _projections(self, att) -> dict:
        """An attention layer's 1x1 projections for one position as matrices (in, out) over its input
        features; the position code's share (and the bias) as a table (H*W, out), computed once; the
        query's scale 1/sqrt(d_k) folded in. Query, key and value in one product when the query reads
        the position's own features (``include_self``)."""
        scale = 1.0 / math.sqrt(att.key_channels // att.heads)
        n_in = att.key.weight.shape[1] - 4 * att.pos_freq

        def split(conv, factor=1.0):
            w = conv.weight.flatten(1) * factor
            table = conv.bias * factor
            if att.pos_freq:
                pos = sinusoidal_positions(self.height, self.width, att.pos_freq, device=w.device, dtype=w.dtype)
                table = table + (w[:, n_in:] @ pos.flatten(1)).t()
            return w[:, :n_in].t(), table.expand(self.height * self.width, -1) if table.dim() == 1 else table

        (wq, tq), (wk, tk), (wv, tv) = split(att.query, scale), split(att.key), split(att.value)
        out = {"out": (att.out.weight.flatten(1).t().contiguous(), att.out.bias)}
        if att.include_self:
            out["qkv"] = (torch.cat([wq, wk, wv], 1).contiguous(), torch.cat([tq, tk, tv], 1).contiguous())
        else:
            out["kv"] = (torch.cat([wk, wv], 1).contiguous(), torch.cat([tk, tv], 1).contiguous())
            out["q"] = (wq.contiguous(), tq.contiguous())
        return out

    # ------------------------------------------------------------------ per row
    def _conditioning(self, r: int) -> list:
        """Per block, the (vertical, horizontal) halves of row ``r``'s conditioning bias."""
        if r not in self._cond:
            sp = None if self.trunk_map is None else self.trunk_map[..., r : r + 1, :]
            out = []
            for block in self.trunk.blocks:
                cond = block.cond(self.y, sp, (1, self.width))
                out.append(cond.chunk(2, dim=1) if torch.is_tensor(cond) else (0.0, 0.0))
            self._cond = {k: v for k, v in self._cond.items() if k >= r - 1}
            self._cond[r] = out
        return self._cond[r]

    def _vertical_conv(self, k: int, row: torch.Tensor) -> torch.Tensor:
        """Row ``r`` of vertical convolution ``k``'s output from row ``r`` of its input (and its buffer)."""
        conv = self.v_convs[k]
        buf = self.v_buffers[k]
        if buf is None:
            buf = row.new_zeros(row.shape[0], row.shape[1], conv.half, row.shape[3])
        window = torch.cat([buf, row], dim=2)
        self.v_buffers[k] = window[:, :, 1:]
        padded = F.pad(window, (conv.half, conv.half, 0, 0))
        if self.n > 1:
            return F.conv2d(padded, conv.weight, conv.bias)
        if k not in self._v_matrices:  # one image: one product of the row's windows
            self._v_matrices[k] = conv.weight.flatten(1).t().contiguous()
        return row_product(padded, self._v_matrices[k], conv.bias, conv.half)

    def _vertical_row(self, x: torch.Tensor, r: int) -> None:
        """Row ``r`` of every vertical stream (image rows ``<= r`` final)."""
        trunk = self.trunk
        v = self._vertical_conv(0, trunk.input_features(self.model.scale(x[:, :, r : r + 1])))
        self.v_last[0] = v
        for b, (block, (cv, _)) in enumerate(zip(trunk.blocks, self._conditioning(r))):
            t = self._vertical_conv(2 + 2 * b, F.elu(self._vertical_conv(1 + 2 * b, F.elu(v)))) + cv
            v = v + block.dropout(gate(t))
            self.v_last[b + 1] = v

    def _start_row(self, i: int) -> None:
        """The horizontal buffers of row ``i`` and what row ``i`` reads from the vertical streams
        (row ``i - 1`` of each, by ``down_shift``; zeros on row 0)."""
        trunk = self.trunk
        last = self.v_last if i else [None] * len(self.v_last)
        w = trunk.in_v_to_h.weight
        zeros = torch.zeros(self.n, trunk.out_channels, 1, self.width, dtype=w.dtype, device=w.device)
        self.v_in = [trunk.in_v_to_h(zeros if last[0] is None else last[0])]
        for b, block in enumerate(trunk.blocks):
            self.v_in.append(block.v_to_h(F.elu(zeros if last[b + 1] is None else last[b + 1])))
        self.h_cond = [ch for _, ch in self._conditioning(i)]
        # per horizontal convolution, everything added to its output at a position: its bias, plus what
        # the vertical stream gives the row (input layer, first convolution of each block) or the
        # conditioning (second): (W, n, out) per column, or (n, out) / (out,) for the whole row
        self._fill_bias(0, self.v_in[0])
        for b in range(len(trunk.blocks)):
            self._fill_bias(1 + 2 * b, self.v_in[b + 1])
            self._fill_bias(2 + 2 * b, self.h_cond[b])
        self.row = i

    def _fill_bias(self, k: int, extra) -> None:
        """``col_bias[k]`` (W, n, out) = convolution ``k``'s bias + ``extra`` (float 0, (n, out, 1, 1) or
        (n, out, 1, W)), in place."""
        self.col_bias[k].copy_(self.h_convs[k].bias)
        if torch.is_tensor(extra):
            self.col_bias[k].add_(extra[:, :, 0].permute(2, 0, 1))

    def _attend_one(self, b: int, a: torch.Tensor, p: int) -> torch.Tensor:
        """The attention layer after block ``b`` at raster position ``p`` alone, its input there ``a``
        (n, F): the output (n, F) with the output projection's bias; caches the position's key and
        value (and input, for the next query). Keys are cached transposed, (n, heads, d_k, H*W), so
        the scores are one product with a prefix of the cache."""
        att, proj = self.attention[b], self.projections[b]
        n, nh = self.n, att.heads
        self._cache(b, a)
        # the projections go into a buffer whose query, key and value parts are views made once
        buf, q4, k3, v3 = self._step_buffers[b]
        if att.include_self:
            w, table = proj["qkv"]
            torch.addmm(table[p], a, w, out=buf)
            m = p + 1
        else:  # the query from the previous position's input with this position's code
            w, table = proj["kv"]
            torch.addmm(table[p], a, w, out=buf)
            inputs = self.att_inputs[b]
            inputs[:, :, p] = a
            m = p
            if p:
                wq, tq = proj["q"]
                q4 = torch.addmm(tq[p], inputs[:, :, p - 1], wq).view(n, nh, 1, -1)
        keys, values = self.keys[b], self.values[b]
        keys.select(3, p).copy_(k3)
        values.select(2, p).copy_(v3)
        w_out, b_out = proj["out"]
        if m == 0:  # the first position alone attends to nothing
            return b_out.expand(n, -1)
        probs = torch.matmul(q4, keys[..., :m]).softmax(-1)
        if self.att_dropout[b] is not None:
            probs = self.att_dropout[b](probs)
        out = torch.matmul(probs, values[:, :, :m]).view(n, att.value_channels)
        return torch.addmm(b_out, out, w_out)

    def _cache(self, b: int, a: torch.Tensor) -> None:
        """The key/value (and query input) caches of attention layer ``b``, for inputs like ``a`` (n, F, ...):
        keys (n, heads, d_k, H*W), values (n, heads, H*W, d_v)."""
        if b in self.keys:
            return
        att, n, hw = self.attention[b], self.n, self.height * self.width
        self.keys[b] = a.new_zeros(n, att.heads, att.key_channels // att.heads, hw)
        self.values[b] = a.new_zeros(n, att.heads, hw, att.value_channels // att.heads)
        # one position's projections (``_attend_one``): [query,] key, value in one buffer (n, out), and
        # its parts as views shaped for the caches: query (n, heads, 1, d_k), key (n, heads, d_k),
        # value (n, heads, d_v)
        kc, vc, nh = att.key_channels, att.value_channels, att.heads
        q_width = kc if att.include_self else 0
        buf = a.new_zeros(n, q_width + kc + vc)
        self._step_buffers[b] = (buf, buf[:, :q_width].view(n, nh, 1, -1) if q_width else None,
                                 buf[:, q_width : q_width + kc].view(n, nh, -1), buf[:, q_width + kc :].view(n, nh, -1))
        if not att.include_self:
            self.att_inputs[b] = a.new_zeros(n, a.shape[1], hw)

    def _attend(self, b: int, a: torch.Tensor, i: int, j0: int) -> torch.Tensor:
        """The attention layer after block ``b`` at columns ``j0 .. j0 + L - 1`` of row ``i``, given its
        input ``a`` (n, F, 1, L) there; caches those positions' keys and values (and inputs, for the
        next queries)."""
        att = self.attention[b]
        n, nh, length = self.n, att.heads, a.shape[-1]
        p0 = i * self.width + j0
        self._cache(b, a)
        pos = None
        if att.pos_freq:
            if att.pos_freq not in self.positions:
                self.positions[att.pos_freq] = sinusoidal_positions(self.height, self.width, att.pos_freq,
                                                                    device=a.device, dtype=a.dtype)
            pos = self.positions[att.pos_freq][None, :, i : i + 1, j0 : j0 + length].expand(n, -1, -1, -1)

        def with_pos(t):
            return t if pos is None else torch.cat([t, pos], dim=1)

        xp = with_pos(a)
        span = slice(p0, p0 + length)
        self.keys[b][:, :, :, span] = att.key(xp).view(n, nh, -1, length)
        self.values[b][:, :, span, :] = att.value(xp).view(n, nh, -1, length).transpose(2, 3)
        if att.include_self:
            q_in, m = xp, p0 + length
        else:  # queries from the previous positions' inputs, with these positions' codes
            self.att_inputs[b][:, :, span] = a[:, :, 0]
            prev = self.att_inputs[b][:, :, p0 - 1 : p0] if p0 else a.new_zeros(n, a.shape[1], 1)
            q_in, m = with_pos(torch.cat([prev, a[:, :, 0, : length - 1]], dim=-1).unsqueeze(2)), p0 + length - 1
        if m == 0:  # the first position alone attends to nothing
            out = a.new_zeros(n, att.value_channels, 1, length)
        else:
            q = att.query(q_in).view(n, nh, -1, length).transpose(2, 3)  # (n, nh, L, dk)
            scores = (q @ self.keys[b][..., :m]) / math.sqrt(q.shape[-1])
            has_keys = None
            if length > 1:  # a span: each query sees the keys up to itself (or before it)
                keys_at = torch.arange(m, device=a.device)[None, :]
                query_at = torch.arange(p0, p0 + length, device=a.device)[:, None]
                allowed = keys_at <= query_at if att.include_self else keys_at < query_at
                if p0 == 0 and not att.include_self:  # position 0 has no key: as the layer does
                    allowed[0, 0] = True
                    has_keys = (torch.arange(length, device=a.device) > 0).to(scores.dtype)[:, None]
                scores = scores.masked_fill(~allowed, float("-inf"))
            probs = scores.softmax(-1)
            if has_keys is not None:
                probs = probs * has_keys
            probs = att.dropout(probs)
            out = (probs @ self.values[b][:, :, :m]).transpose(2, 3).reshape(n, att.value_channels, 1, length)
        return att.out(out)

    def _whole_row(self, x: torch.Tensor, r: int) -> None:
        """Catch up on row ``r``, every position of it final (given): the horizontal stream over the whole
        row at once, for the attention layers' caches (the only state later rows read from it)."""
        trunk = self.trunk
        self._advance_rows(x, r)
        h = self._row_conv(0, trunk.input_features(self.model.scale(x[:, :, r : r + 1]))) + self.v_in[0]
        for b, block in enumerate(trunk.blocks):
            t = self._row_conv(1 + 2 * b, F.elu(h)) + self.v_in[b + 1]
            t = self._row_conv(2 + 2 * b, F.elu(t)) + self.h_cond[b]
            h = h + block.dropout(gate(t))
            if b in self.attention:
                h = h + self._attend(b, F.elu(h), r, 0)
        self.row = None  # its horizontal buffers were not filled

    def _row_conv(self, k: int, row: torch.Tensor) -> torch.Tensor:
        conv = self.h_convs[k]
        return F.conv2d(F.pad(row, (conv.half, 0, 0, 0)), self.h_weights[k], conv.bias)

    def _position(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The trunk's features (n, F) at (i, j); writes the position's column into every cache.
        Everything here is (n, channels): one position's features. Each horizontal convolution is one
        matrix product over the window of its buffer ending at ``j``, with the row's bias there; a
        convolution's output goes, through its ELU in place, straight into the next one's buffer."""
        p = i * self.width + j
        if self._host is not None:
            self._write_input(x, i, j)
            return self._host.position(p, j)
        windows, slots, biases, mats = self.windows, self.slots, self.biases, self.h_mats
        self._write_input(x, i, j)
        h = torch.addmm(biases[0][j], windows[0][j], mats[0], out=self._h)
        for b, drop in enumerate(self.dropouts):
            k = 1 + 2 * b
            _elu_(slots[k][j].copy_(h))
            _elu_(torch.addmm(biases[k][j], windows[k][j], mats[k], out=slots[k + 1][j]))
            torch.addmm(biases[k + 1][j], windows[k + 1][j], mats[k + 1], out=self._pre)
            # the gate, tanh(first half) * sigmoid(second half): tanh in place, then GLU into its buffer
            self._pre_tanh.tanh_()
            t = _glu(self._pre, 1, out=self._gated)
            h.add_(t if drop is None else drop(t))
            if b in self.attention:
                h.add_(self._attend_one(b, _elu(h), p))
        h = h.clone()  # the stream's buffer is the next position's
        for w1, b1, w2, b2 in self.out_mats:  # the output stack's residual blocks
            h = h + torch.addmm(b2, _elu_(torch.addmm(b1, _elu(h), w1)), w2)
        return h

    def _write_input(self, x: torch.Tensor, i: int, j: int) -> None:
        """The input layers' input at (i, j) of the current row, into the horizontal buffer: the scaled
        image (``scale_levels`` value for value: x * 2 / (K - 1) - 1) or the trunk's input features."""
        if self._scaled_levels and self._host is not None and self._host.write_input(x, i, j):
            return
        slot = self.slots[0][j]
        if self._scaled_levels:
            if x is not self._x and x.is_contiguous():
                self._x, self._x_pixels = x, x.view(x.shape[0], x.shape[1], -1).unbind(2)
            pix = self._x_pixels[i * self.width + j] if x is self._x else x[:, :, i, j]
            torch.mul(pix, self._level_step, out=slot).sub_(1.0)
        else:
            e = self.trunk.input_features(self.model.scale(x[:, :, i : i + 1, j : j + 1]))
            slot.copy_(e.flatten(1))

    def _advance_rows(self, x: torch.Tensor, i: int) -> None:
        """Ready for row ``i`` (rows above final): their vertical rows, row ``i``'s horizontal setup."""
        while self.v_rows_done < i:
            self._vertical_row(x, self.v_rows_done)
            self.v_rows_done += 1
        if self.row != i:
            self._start_row(i)

    def _advance(self, x: torch.Tensor, p: int) -> torch.Tensor:
        i, j = divmod(p, self.width)
        self._advance_rows(x, i)
        return self._position(x, i, j)

    def features(self, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """The trunk's features (n, F, 1, 1) at (i, j) when sub-pixel (c, i, j) is next: every
        sub-pixel before it in ``x`` is final (as for ``params``)."""
        return self._features(x, i, j, c).clone()[:, :, None, None]

    def _features(self, x: torch.Tensor, i: int, j: int, c: int) -> torch.Tensor:
        """``features`` as (n, F)."""
        p = i * self.width + j
        if self.stale_input is not None:  # the last committed pixel is final now: its input column too
            self._refresh_input(x, self.stale_input)
            self.stale_input = None
        start = self.done if self.attention else max(self.done, i * self.width)
        q = start
        while q < p:  # catch up on skipped (given) positions: whole rows at once
            if q % self.width == 0 and q + self.width <= i * self.width:
                self._whole_row(x, q // self.width)
                q += self.width
            else:
                self._advance(x, q)
                q += 1
        feats = self._advance(x, p)
        if c == self.channels - 1:
            # no feature reads a pixel's last channel: computed for it, the column is final, except
            # the input layer's buffer, which holds the pixel itself (refreshed at the next call)
            self.done, self.stale_input = p + 1, p
        else:
            self.done = p
        return feats

    def _refresh_input(self, x: torch.Tensor, p: int) -> None:
        i, j = divmod(p, self.width)
        if self.row == i:
            self._write_input(x, i, j)

    def params(self, x, i, j, c):
        return self.params_from(self._features(x, i, j, c), x, i, j, c)
