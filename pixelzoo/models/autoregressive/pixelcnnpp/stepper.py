"""Exact incremental sampling for the PixelCNN++ trunk (in the sense of Ramachandran et al. 2017).

The trunk is unrolled once per sample call into a graph of *nodes*, one per intermediate map of
``PixelCNNPPTrunk.forward`` at its own resolution: the input (image + ones), the two input streams,
each gated ResNet block's ``c1`` and output, the strided down-sampling and transposed up-sampling
convolutions. Every node keeps its whole map (channel-last, one extra all-zero position standing for
the zero padding) and knows, for every one of its positions, which input positions it reads (a
gather index per convolution tap, computed from the layer's kernel, stride, padding and shift).

From those indices follows each position's *ready time*: the number of image pixels (in raster
order) that must be known before it can be computed (image pixel ``q``: ``q + 1``; a position: the
largest ready time of what it reads). Per generated pixel ``p`` every node computes exactly its
positions whose ready time lies in ``(last p, p]``, in the order of the forward pass, so each
position of each map is computed once per sample call: the work of one forward pass, spread over
the pixels, in small gathers + matrix products. A position whose inputs all lie in image rows above
its own (the down-shifted stream ``u``, which sees only the rows above) waits
for the start of its row (``_by_rows``), so that stream costs one pass per row, not one per pixel;
and where a node's positions of one ready time are consecutive, they are read and written as slices. Down-sampled positions are computed as soon as their
high-resolution inputs are complete, up-sampled ones as soon as their low-resolution inputs are. The
conditioning bias of every block (class embedding + 1x1 projection of the spatial map, average-pooled
for the lower resolutions) is computed once, at creation.

Exact: every position reads the same values as in the full forward pass (dropout is the identity:
sampling runs in eval mode); only the order of float summation differs (gathered taps and a matrix
product instead of ``conv2d``). The trunk's features at a pixel ignore that pixel (the trunk does not
mask colour channels), so it runs once per pixel and the output layer + head once per channel, as in
the full-forward stepper. Given pixels (inpainting) are caught up on by the next call, like drawn ones.

One image on the CPU: a pixel's step runs on NumPy views of the same maps (``_HostGraph``: an
operation there costs about 0.4 us against about 1.3 us through PyTorch's dispatcher, and a pixel of
the fashion preset is some 150 of them); catching up on given pixels, any other batch, device or
dtype, and a call under autocast take the PyTorch operations (``host=False`` forces them).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from ..one_image import elu, numpy_of, runs_on_numpy
from ..steppers import Stepper


def _celu(g: torch.Tensor) -> torch.Tensor:
    """concat_elu along the last (channel) dimension: the ELU in place on the concatenation (its own),
    through the operator itself (``F.elu``'s Python wrapper costs as much as the operation at batch 1)."""
    return _elu_(torch.cat([g, torch.neg(g)], dim=-1))


_elu_ = torch._C._nn.elu_


@functools.lru_cache(maxsize=512)  # the geometry's, not the weights': the same for every stepper of a model
def conv_index(h_in, w_in, h_out, w_out, kh, kw, stride, pad_top, pad_left, shift=(0, 0)):
    """Gather index (h_out * w_out, kh * kw) into the flat input (zero slot ``h_in * w_in``) of a
    convolution with top/left zero padding, its output moved by ``shift`` (down, right) rows/columns
    (``down_shift`` / ``right_shift``), and the mask (h_out * w_out,) of the outputs it reaches
    (the rest are the shift's zeros)."""
    sy, sx = shift
    y = torch.arange(h_out) - sy
    x = torch.arange(w_out) - sx
    ky = torch.arange(kh)
    kx = torch.arange(kw)
    iy = stride * y[:, None, None, None] + ky[None, None, :, None] - pad_top      # (h, 1, kh, 1)
    ix = stride * x[None, :, None, None] + kx[None, None, None, :] - pad_left     # (1, w, 1, kw)
    inside = (iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in)
    idx = torch.where(inside, iy * w_in + ix, torch.full_like(iy * ix, h_in * w_in))
    valid = ((y >= 0)[:, None] & (x >= 0)[None, :])
    idx = torch.where(valid[:, :, None, None], idx, torch.full_like(idx, h_in * w_in))
    return idx.reshape(h_out * w_out, kh * kw), valid.reshape(-1)


@functools.lru_cache(maxsize=512)
def transposed_index(h_in, w_in, kh, kw, stride, left):
    """Gather index (s h_in * s w_in, kh * kw) of a transposed convolution with stride ``s`` whose
    output is cropped to columns ``left .. left + s w_in - 1``: output (y, x) reads input (I, J) with
    tap (ky, kx) where ``s I + ky = y`` and ``s J + kx = x + left``."""
    h_out, w_out = stride * h_in, stride * w_in
    y = torch.arange(h_out)[:, None, None, None] - torch.arange(kh)[None, None, :, None]
    x = torch.arange(w_out)[None, :, None, None] + left - torch.arange(kw)[None, None, None, :]
    iy, ix = torch.div(y, stride, rounding_mode="floor"), torch.div(x, stride, rounding_mode="floor")
    inside = (y % stride == 0) & (x % stride == 0) & (iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in)
    idx = torch.where(inside, iy * w_in + ix, torch.full_like(iy * ix, h_in * w_in))
    return idx.reshape(h_out * w_out, kh * kw)


class _Node:
    """One map of the trunk at resolution (h, w): ``value`` (n, h*w + 1, C), the last position zero."""

    def __init__(self, n, h, w, channels, ready, dtype, device):
        self.h, self.w = h, w
        self.value = torch.zeros(n, h * w + 1, channels, dtype=dtype, device=device)
        self.ready = ready  # (h*w,) long
        ready_sorted, order = torch.sort(ready, stable=True)
        self.order = order.to(device)
        hi = torch.searchsorted(ready_sorted, torch.arange(int(ready.max()) + 1), right=True)
        self.counts = hi.tolist()
        per_time = torch.diff(hi, prepend=hi.new_zeros(1))  # positions of each ready time
        #: the ready times with positions, and the most positions of one ready time
        self.times = per_time.nonzero()[:, 0].tolist()
        self.most = int(per_time.max())
        # per ready time q, its positions as a slice when they are consecutive (a pixel's step then
        # reads and writes views, no index operations): ``span``
        # (the stable sort keeps a ready time's positions ascending: consecutive when last - first
        # is their count less one)
        lo = torch.cat([hi.new_zeros(1), hi[:-1]])
        first = order[lo.clamp(max=len(order) - 1)]
        last = order[(hi - 1).clamp(min=0)]
        consecutive = (hi > lo) & (last - first == hi - lo - 1)
        #: per ready time, the first and one past the last of its positions when consecutive, else -1
        self.span_start = torch.where(consecutive, first, -1).tolist()
        self.span_stop = (first + hi - lo).tolist()

    def span(self, q: int) -> slice | None:
        """The positions of ready time ``q`` as a slice when they are consecutive, else None."""
        start = self.span_start[q]
        return slice(start, self.span_stop[q]) if start >= 0 else None

    def ready_padded(self):
        return torch.cat([self.ready, self.ready.new_zeros(1)])

    def positions(self, done: int, p: int) -> torch.Tensor | None:
        """Positions with ready time in (done, p]."""
        top = len(self.counts) - 1
        lo = self.counts[min(done, top)] if done >= 0 else 0
        hi = self.counts[min(p, top)]
        return self.order[lo:hi] if hi > lo else None


class _Term:
    """A (transposed) convolution of node ``src``'s map, optionally of its concat_elu, at a node's positions."""

    def __init__(self, src: _Node, weight, bias, idx, valid=None, celu=False):
        self.src, self.weight, self.bias, self.celu = src, weight, bias, celu
        self.weight_t = weight.t().contiguous()  # (taps * in, out): one matrix product per call
        device = src.value.device
        self.idx = idx.to(device)
        self.taps = idx.shape[1]
        self.idx_flat = self.idx.reshape(-1)  # position-major: a slice of positions is a slice of it
        self.valid = None if valid is None or bool(valid.all()) else valid.to(device)
        r = src.ready_padded()[idx].amax(dim=1)
        self.ready = r if valid is None else torch.where(valid, r, torch.zeros_like(r))

    def __call__(self, P) -> torch.Tensor:
        """The term at positions ``P`` (an index tensor, or a slice of consecutive positions)."""
        if isinstance(P, slice):
            flat = self.idx_flat[P.start * self.taps : P.stop * self.taps]
        else:
            flat = self.idx[P].reshape(-1)
        value = self.src.value
        n, length = value.shape[0], flat.shape[0] // self.taps
        g = value.index_select(1, flat).view(n, length, self.taps, -1)  # (n, |P|, T, C)
        if self.celu:
            g = _celu(g)
        out = torch.addmm(self.bias, g.view(n * length, -1), self.weight_t).view(n, length, -1)
        if self.valid is not None:
            out = out * self.valid[P, None].to(out.dtype)
        return out


def conv_term(src: _Node, conv, h_out=None, w_out=None, celu=False, shift=(0, 0)) -> _Term:
    """A ``DownShiftedConv2d`` / ``DownRightShiftedConv2d`` (``pad`` = left, right, top, bottom)."""
    kh, kw = conv.kernel_size
    s = conv.stride[0]
    left, right, top, bottom = conv.pad
    if h_out is None:
        h_out = (src.h + top + bottom - kh) // s + 1
        w_out = (src.w + left + right - kw) // s + 1
    idx, valid = conv_index(src.h, src.w, h_out, w_out, kh, kw, s, top, left, shift)
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)
    return _Term(src, weight, conv.bias, idx, valid, celu)


def transposed_term(src: _Node, conv) -> _Term:
    """A ``DownShiftedConvTranspose2d`` (cropped from column ``left``) / ``DownRightShiftedConvTranspose2d``."""
    kh, kw = conv.kernel_size
    idx = transposed_index(src.h, src.w, kh, kw, conv.stride[0], getattr(conv, "left", 0))
    weight = conv.weight.permute(1, 2, 3, 0).reshape(conv.out_channels, -1)
    return _Term(src, weight, conv.bias, idx)


class _HostGraph:
    """One pixel's step (``PixelCNNPPStepper.advance`` of one pixel) for one image on the CPU, on NumPy
    views of every node's map: the same gathers, concat_elu (the ELU as ``max(v, expm1(min(v, 0)))``,
    since ``expm1(v) >= v``), products, gates and sums as ``_compute``, equal to it to float rounding
    (the biases that are the same at every position, a block's shortcut's and its constant
    conditioning, are added to the convolution's bias once). Each term keeps buffers for its most
    positions of one ready time; biases are (1, out), so that one position's additions do not broadcast
    (which costs NumPy as much again)."""

    def __init__(self, stepper: "PixelCNNPPStepper"):
        self.stepper = stepper
        for node in stepper.nodes:
            node.host = numpy_of(node.value)[0]  # (h * w + 1, C)
            node.host_order = node.order.cpu().numpy()
            parts = node.parts
            for term in list(parts.get("terms", [])) + ([parts["term"]] if "term" in parts else []):
                self._prepare(term, node.most)
            node.host_short = node.host_cond = None
            if node.kind == "c1" and parts["shortcut"] is not None:
                weight_t, bias, a_nodes = parts["shortcut"]
                width = sum(a.value.shape[-1] for a in a_nodes)
                buffers = [np.zeros((node.most, 2 * width), dtype=node.host.dtype) for _ in range(3)]
                node.host_short = (numpy_of(weight_t), *buffers,
                                   np.empty((node.most, weight_t.shape[1]), dtype=node.host.dtype),
                                   [(a.host, a.host.shape[1]) for a in a_nodes])
                term = parts["term"]
                term.host_bias = term.host_bias + numpy_of(bias)
            if node.kind == "out":
                cond = parts["cond"]
                cond = None if cond is None else numpy_of(cond)[0]  # (1 or h * w, 2F)
                if cond is not None and cond.shape[0] == 1:  # the same everywhere: into the bias
                    parts["term"].host_bias = parts["term"].host_bias + cond
                    cond = None
                node.host_cond = cond
                node.host_x = parts["x"].host

    @staticmethod
    def _prepare(term: _Term, most: int) -> None:
        c, t = term.src.value.shape[-1], term.taps
        weight = numpy_of(term.weight_t)
        width = 2 * c if term.celu else c
        term.host_flat = term.idx.cpu().numpy().reshape(-1)
        term.host_idx = term.host_flat.reshape(-1, t)
        term.host_weight, term.host_bias = weight, numpy_of(term.bias)[None, :]
        term.host_valid = None if term.valid is None else term.valid.to(term.weight_t.dtype).cpu().numpy()[:, None]
        term.host_gathered = np.empty((most * t, width), dtype=weight.dtype)
        # the ELU's buffer, and zeros (a scalar 0 costs an operation as much again)
        term.host_low = np.empty((most * t, width), dtype=weight.dtype) if term.celu else None
        term.host_zeros = np.zeros((most * t, width), dtype=weight.dtype) if term.celu else None
        term.host_out = np.empty((most, weight.shape[1]), dtype=weight.dtype)

    def _term(self, term: _Term, P, length: int, dest: np.ndarray | None = None) -> np.ndarray:
        """The term at positions ``P`` (a slice or an index array) into ``dest`` (length, out), or into
        its own buffer; returned."""
        t = term.taps
        flat = term.host_flat[P.start * t : P.stop * t] if P.__class__ is slice else term.host_idx[P].reshape(-1)
        src = term.src.host
        rows = length * t
        g = term.host_gathered[:rows]
        if term.celu:  # concat_elu: [v, -v] of each tap, then the ELU of both
            c = src.shape[1]
            left = g[:, :c]
            src.take(flat, 0, left, "clip")
            np.negative(left, g[:, c:])
            elu(g, term.host_low[:rows], term.host_zeros[:rows], g)
        else:
            src.take(flat, 0, g, "clip")
        out = term.host_out[:length]
        np.dot(g.reshape(length, -1), term.host_weight, out)
        if term.host_valid is None:
            return np.add(out, term.host_bias, out if dest is None else dest)
        np.add(out, term.host_bias, out)
        return np.multiply(out, term.host_valid[P], out if dest is None else dest)

    def compute(self, node, P, length: int) -> None:
        """``_compute`` of ``node`` at positions ``P`` (a slice or an index array of ``length``): the last
        operation writes straight into the map where ``P`` is a slice."""
        parts = node.parts
        dest = node.host[P] if P.__class__ is slice else None
        kind = node.kind
        if kind == "sum":
            terms = parts["terms"]
            if len(terms) == 1:
                out = self._term(terms[0], P, length, dest)
            else:
                out = self._term(terms[0], P, length)
                for term in terms[1:-1]:
                    np.add(out, self._term(term, P, length), out)
                out = np.add(out, self._term(terms[-1], P, length), out if dest is None else dest)
        elif kind == "c1":
            if node.host_short is None:
                out = self._term(parts["term"], P, length, dest)
            else:  # + the 1x1 shortcut of concat_elu of the other stream(s) (its bias is in the term's)
                out = self._term(parts["term"], P, length)
                weight_t, a, low, zeros, short, sources = node.host_short
                a, short = a[:length], short[:length]
                k = 0
                for src, c in sources:
                    a[:, k : k + c] = src[P]
                    k += c
                np.negative(a[:, :k], a[:, k:])
                elu(a, low[:length], zeros[:length], a)
                np.dot(a, weight_t, short)
                out = np.add(out, short, out if dest is None else dest)
        else:  # "out": c2 = conv2(concat_elu(c1)) + cond, x + value * sigmoid(gate)
            out = self._term(parts["term"], P, length)
            cond = node.host_cond
            if cond is not None:
                np.add(out, cond[P], out)
            f = out.shape[1] // 2
            value, gate = out[:, :f], out[:, f:]
            expit(gate, gate)
            np.multiply(value, gate, value)
            out = np.add(value, node.host_x[P], value if dest is None else dest)
        if dest is None:
            node.host[P] = out

    def advance_one(self, x: torch.Tensor, p: int) -> None:
        """Every position pixel ``p`` completes (pixel ``p - 1`` written into the image node)."""
        stepper = self.stepper
        for node in stepper.work[p]:
            if node is stepper.image:
                stepper._write_pixel(x, p - 1)
                continue
            span = node.span(p)
            if span is not None:
                self.compute(node, span, span.stop - span.start)
            else:
                c = node.counts
                top = len(c) - 1
                lo, hi = c[min(p - 1, top)], c[min(p, top)]
                if hi > lo:
                    self.compute(node, node.host_order[lo:hi], hi - lo)


class PixelCNNPPStepper(Stepper):
    """The PixelCNN++ trunk's incremental stepper (see the module docstring)."""

    def __init__(self, model, n, y=None, spatial=None, inputs=None, host: bool | None = None):
        super().__init__(model, n, y, spatial, inputs)
        trunk = self.trunk = model.trunk
        self.H, self.W = (int(s) for s in model.image_shape[-2:])
        self.C = int(model.image_shape[0])
        w0 = trunk.u_in.weight
        self.dtype, self.device = w0.dtype, w0.device
        self.nodes: list = []
        self._done = -1
        self._pixel: tuple[int, int] | None = None
        self._feats: torch.Tensor | None = None
        with torch.no_grad():
            self._build(model.trunk_spatial(spatial, **self.inputs))
        # one pixel at a time (sampling), the image node's position is written from the sampler's
        # images through views made once: its channels as ``scale`` gives them (integer levels in
        # float32: x * 2 / (K - 1) - 1, value for value), its channel of ones set here for every
        # position (a position is read only once its pixel is written, so the early ones are never seen)
        self._pixel_slots: tuple[torch.Tensor, ...] | None = None
        if not model.continuous and self.dtype == torch.float32:
            value = self.image.value
            value[:, : self.H * self.W, self.C] = 1.0
            self._pixel_slots = value[:, : self.H * self.W, : self.C].unbind(1)
            self._level_step = 2.0 / (model.num_levels - 1)
        self._x: torch.Tensor | None = None
        self._x_pixels: tuple[torch.Tensor, ...] = ()
        #: one image on the CPU, outside autocast, levels written from views: a pixel's step on NumPy
        #: views (``_HostGraph``); ``host=False`` keeps the PyTorch operations
        can_host = self._pixel_slots is not None and runs_on_numpy(self.n, w0)
        self._host = _HostGraph(self) if can_host and host is not False else None
        self.on_host = self._host is not None

    # ------------------------------------------------------------------ the graph
    def _add(self, kind, h, w, channels, ready, **parts):
        if kind != "image":
            ready = self._by_rows(ready, h, w)
        node = _Node(self.n, h, w, channels, ready, self.dtype, self.device)
        node.kind, node.parts = kind, parts
        self.nodes.append(node)
        return node

    def _by_rows(self, ready: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Positions whose inputs all lie in image rows above their own (the down-shifted stream:
        ready by the start of their row) wait for the start of their row, so one pass computes a
        whole row of them, instead of one pass per pixel. Their readers' ready times follow (they
        are the maxima of what they read), and the trunk's features at a pixel still need only the
        pixels before it (checked in ``_build``)."""
        s = self.H // h
        row_start = (torch.arange(h * w) // w) * s * self.W  # the first image pixel of each position's row
        return torch.where(ready <= row_start, row_start, ready)

    def _sum(self, terms, h, w):
        ready = torch.stack([t.ready for t in terms]).amax(0)
        return self._add("sum", h, w, terms[0].weight.shape[0], ready, terms=terms)

    def _cond(self, block, spatial, h, w):
        cond = block.cond(self.y, spatial, (h, w))
        if not torch.is_tensor(cond):
            return None
        cond = cond.to(self.dtype).expand(self.n, -1, -1, -1)
        return cond.flatten(2).transpose(1, 2).contiguous()  # (n, 1 or h*w, 2F)

    def _block(self, block, x, a_nodes, spatial):
        h, w = x.h, x.w
        t1 = conv_term(x, block.conv1, h, w, celu=True)
        ready = t1.ready
        shortcut = None
        if block.shortcut is not None:
            ready = torch.stack([ready] + [a.ready for a in a_nodes]).amax(0)
            shortcut = (block.shortcut.weight[:, :, 0, 0].t().contiguous(), block.shortcut.bias, a_nodes)
        c1 = self._add("c1", h, w, t1.weight.shape[0], ready, term=t1, shortcut=shortcut)
        t2 = conv_term(c1, block.conv2, h, w, celu=True)
        return self._add("out", h, w, x.value.shape[-1], torch.maximum(t2.ready, x.ready), term=t2, x=x,
                         cond=self._cond(block, spatial, h, w))

    def _build(self, spatial):
        trunk, H, W = self.trunk, self.H, self.W
        R = trunk.n_resolutions
        spatials = [spatial]
        for _ in range(R - 1):
            spatials.append(None if spatial is None else F.avg_pool2d(spatials[-1], 2))
        img = self.image = self._add("image", H, W, self.C + 1, torch.arange(H * W) + 1)
        u = self._sum([conv_term(img, trunk.u_in, H, W, shift=(1, 0))], H, W)
        ul = self._sum([conv_term(img, trunk.ul_in_up, H, W, shift=(1, 0)),
                        conv_term(img, trunk.ul_in_left, H, W, shift=(0, 1))], H, W)
        us, uls = [u], [ul]
        for r in range(R):
            if r > 0:
                u = self._sum([conv_term(u, trunk.down_u_conv[r - 1])], u.h // 2, u.w // 2)
                ul = self._sum([conv_term(ul, trunk.down_ul_conv[r - 1])], ul.h // 2, ul.w // 2)
                us.append(u)
                uls.append(ul)
            for bu, bul in zip(trunk.up_u[r], trunk.up_ul[r]):
                u = self._block(bu, u, [], spatials[r])
                ul = self._block(bul, ul, [u], spatials[r])
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()
        for k, r in enumerate(range(R - 1, -1, -1)):
            if k > 0:
                u = self._sum([transposed_term(u, trunk.up_u_deconv[r])], 2 * u.h, 2 * u.w)
                ul = self._sum([transposed_term(ul, trunk.up_ul_deconv[r])], 2 * ul.h, 2 * ul.w)
            for bu, bul in zip(trunk.dn_u[k], trunk.dn_ul[k]):
                u = self._block(bu, u, [us.pop()], spatials[r])
                ul = self._block(bul, ul, [u, uls.pop()], spatials[r])
        assert not us and not uls
        self.final = ul
        # per ready time q, the nodes with positions of that ready time (from each node's counts, no
        # tensor work): a pixel's step visits only the nodes it completes
        self.work: list[list] = [[] for _ in range(H * W + 1)]
        for node in self.nodes:
            for q in node.times:
                self.work[q].append(node)
        late = ul.ready > torch.arange(H * W)
        if bool(late.any()):  # the trunk would see the pixel itself or later ones
            raise AssertionError(f"PixelCNN++ features at {int(late.nonzero()[0])} read later pixels")

    # ------------------------------------------------------------------ evaluation
    def _compute(self, node, P, x):
        """Node ``node``'s values at positions ``P``: an index tensor, or a slice of consecutive ones
        (the same indexing either way)."""
        parts = node.parts
        if node.kind == "image":
            i, j = torch.div(P, self.W, rounding_mode="floor"), P % self.W
            pix = self.model.scale(x[:, :, i, j]).to(self.dtype)  # (n, C, |P|)
            node.value[:, P, : self.C] = pix.transpose(1, 2)
            node.value[:, P, self.C] = 1.0
        elif node.kind == "sum":
            out = parts["terms"][0](P)
            for t in parts["terms"][1:]:
                out = out + t(P)
            node.value[:, P] = out
        elif node.kind == "c1":
            out = parts["term"](P)
            if parts["shortcut"] is not None:
                weight_t, bias, a_nodes = parts["shortcut"]
                a = _celu(torch.cat([a.value[:, P] for a in a_nodes], dim=-1))
                n, length = a.shape[0], a.shape[1]
                short = torch.addmm(bias, a.reshape(n * length, -1), weight_t).view(n, length, -1)
                self._write(node, P, torch.add, out, short)
            else:
                node.value[:, P] = out
        else:  # "out": c2 = conv2(concat_elu(c1)) + cond, x + value * sigmoid(gate)
            c2 = parts["term"](P)
            cond = parts["cond"]
            if cond is not None:
                c2 = c2 + (cond if cond.shape[1] == 1 else cond[:, P])
            value, gate = c2.chunk(2, dim=-1)  # c2 is this call's own: gated in place
            self._write(node, P, torch.add, parts["x"].value[:, P], value.mul_(gate.sigmoid_()))

    @staticmethod
    def _write(node, P, op, a, b) -> None:
        """``node.value[:, P] = op(a, b)``, straight into the map where ``P`` is a slice."""
        if isinstance(P, slice):
            op(a, b, out=node.value[:, P])
        else:
            node.value[:, P] = op(a, b)

    def advance(self, x: torch.Tensor, p: int) -> None:
        """Compute every position whose inputs are the image's pixels before ``p`` (raster index)."""
        if p < self._done:
            raise RuntimeError(f"the PixelCNN++ stepper goes in raster order: pixel {p} after {self._done}")
        if p == self._done:
            return
        if p == self._done + 1 and self._host is not None:
            self._host.advance_one(x, p)
            self._done = p
            return
        with torch.no_grad():
            one = p == self._done + 1  # one pixel on (sampling): only the nodes it completes
            for node in self.work[p] if one else self.nodes:
                if one and node is self.image and self._pixel_slots is not None:
                    self._write_pixel(x, p - 1)  # image pixel q is ready at time q + 1
                    continue
                # consecutive positions of one ready time: a slice (views instead of index operations)
                span = node.span(p) if one and node.kind != "image" else None
                P = span if span is not None else node.positions(self._done, p)
                if P is not None:
                    self._compute(node, P, x)
        self._done = p

    def _write_pixel(self, x: torch.Tensor, q: int) -> None:
        """The image node at pixel ``q`` (raster index) from ``x``: ``_compute`` of that one position."""
        if x is not self._x:
            if not x.is_contiguous():  # no views to keep: index
                pix = x[:, :, q // self.W, q % self.W]
                torch.mul(pix, self._level_step, out=self._pixel_slots[q]).sub_(1.0)
                return
            self._x, self._x_pixels = x, x.view(x.shape[0], x.shape[1], -1).unbind(2)
        torch.mul(self._x_pixels[q], self._level_step, out=self._pixel_slots[q]).sub_(1.0)

    def features(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The trunk's features (n, F, 1, 1) at pixel (i, j): the full forward pass's ``[..., i, j]``."""
        p = i * self.W + j
        self.advance(x, p)
        return self.final.value[:, p, :, None, None]

    def params(self, x, i, j, c):
        if self._pixel != (i, j):
            self._feats, self._pixel = self.features(x, i, j), (i, j)
        return self.params_from(self._feats, x, i, j, c)
