"""Vector quantiser of VQ-VAE (van den Oord et al. 2017) as used by VQ-VAE-2 (Razavi et al. 2019).

Each D-dimensional vector of an encoder output is replaced by its nearest codebook entry (squared
Euclidean distance); the decoder's gradient passes to the encoder unchanged (straight-through), and
a commitment loss ``beta * ||z - sg(e)||^2`` keeps the encoder close to the codebook.

The codebook is not a parameter: it is learned by exponential moving averages (decay ``gamma``) of
the number ``N_i`` and the sum ``m_i`` of the encoder vectors assigned to entry ``i``::

    N_i <- gamma N_i + (1 - gamma) n_i          m_i <- gamma m_i + (1 - gamma) sum_{z -> i} z
    e_i  = m_i / N~_i,   N~_i = (N_i + eps) / (n + K eps) * n,   n = sum_i N_i

``N~`` is Laplace-smoothed so that no entry is ever divided by ~0. The statistics start consistent
with the initial codebook (``N_i = 1``, ``m_i = e_i``), so an entry that is never chosen keeps its
value (the ratio m/N is unchanged by the decay) instead of blowing up or collapsing to zero at the
first step, which is what happens when ``m`` starts at the codebook and ``N`` at zero.

Updates happen only in training mode (or when ``update=True`` is passed): the codebook of a model in
eval mode never changes.

Two known faults of public VQ-VAE code are avoided:

* **dead codes**: entries that no encoder output picks stay dead forever. Here an entry that was
  neither chosen nor (re)initialised during the last ``restart_after`` training steps is reset to a
  randomly chosen encoder output of the current batch plus tiny noise, with ``N_i = 1`` and
  ``m_i = e_i`` so the EMA statistics agree with the new value;
* **DDP**: when ``torch.distributed`` is initialised, per-batch counts and sums are all-reduced
  (summed) over the processes before the EMA update, so every process applies the same update to
  the same codebook, the one a single process would compute on the concatenated batches. The
  data-dependent initialisation and dead-code restarts pick their vectors on rank 0 and broadcast
  them, so the codebooks stay identical.

Buffers (saved in the state dict): ``codebook`` (K, D), ``ema_count`` (K,), ``ema_sum`` (K, D),
``initialised`` (bool), ``step`` (training steps done), ``last_used`` (step at which each entry was
last chosen, -1 if never) and ``last_reset`` (step at which it was last (re)initialised).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import ConfigError
from ..views import has_values


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with an EMA codebook, straight-through gradients,
    commitment loss, dead-code restarts and DDP-consistent statistics.

    Args:
        num_codes: codebook size K.
        dim: vector dimension D (channels of the encoder output).
        beta: commitment-loss weight.
        decay: EMA decay gamma.
        eps: Laplace-smoothing constant of the counts.
        restart_after: an entry unused for this many training steps is restarted.
        dead_code_restart: turn restarts on or off.
        data_init: initialise the codebook from the first training batch (random encoder outputs
            plus tiny noise) rather than keeping the random-normal initial codebook.
        usage_window: ``info["usage"]`` is the share of entries chosen during the last
            ``usage_window`` training steps (default ``restart_after``).
        restart_noise: standard deviation of the noise added to restarted (and data-initialised)
            entries, relative to the standard deviation of the batch's encoder outputs.
        init_scale: standard deviation of the random-normal initial codebook.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        beta: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_after: int = 100,
        dead_code_restart: bool = True,
        data_init: bool = True,
        usage_window: int | None = None,
        restart_noise: float = 1e-3,
        init_scale: float = 1.0,
    ):
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ConfigError(f"num_codes and dim must be >= 1, got {num_codes}, {dim}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"decay must lie in [0, 1), got {decay}")
        if eps <= 0:
            raise ConfigError(f"eps must be > 0, got {eps}")
        if restart_after < 1:
            raise ConfigError(f"restart_after must be >= 1, got {restart_after}")
        self.num_codes = int(num_codes)
        self.dim = int(dim)
        self.beta = float(beta)
        self.decay = float(decay)
        self.eps = float(eps)
        self.restart_after = int(restart_after)
        self.dead_code_restart = bool(dead_code_restart)
        self.usage_window = int(usage_window or restart_after)
        self.restart_noise = float(restart_noise)
        codebook = torch.randn(num_codes, dim) * init_scale
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("initialised", torch.tensor(not data_init))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_used", torch.full((num_codes,), -1, dtype=torch.long))
        self.register_buffer("last_reset", torch.zeros(num_codes, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, decay={self.decay}, "
                f"restart_after={self.restart_after if self.dead_code_restart else None}")

    # ------------------------------------------------------------------ lookups
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest entry of each row of ``flat`` (N, D): argmin ||z||^2 - 2 z.e + ||e||^2."""
        e = self.codebook
        dist2 = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ e.t()) + e.pow(2).sum(1)[None, :]
        return dist2.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of integer ``codes`` (B, H, W) as a (B, D, H, W) map."""
        if codes.is_floating_point():
            raise ConfigError(f"codes must be integers, got dtype {codes.dtype}")
        if has_values(codes) and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ConfigError(f"codes must lie in [0, {self.num_codes}), got [{int(codes.min())}, {int(codes.max())}]")
        return self.codebook[codes].permute(0, 3, 1, 2).contiguous()

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor, update: bool | None = None):
        """Quantise ``z`` (B, D, H, W).

        Returns ``(z_q, codes, info)``: ``z_q`` (B, D, H, W) holds exactly codebook vectors and passes
        gradients to ``z`` unchanged; ``codes`` (B, H, W) long; ``info`` has ``commitment`` (the loss
        term beta * mean ||sg(e) - z||^2, differentiable in ``z``), and detached statistics
        ``perplexity`` (exp of the entropy of this batch's code histogram, over all processes when
        updating under DDP), ``usage`` (share of entries chosen during the last ``usage_window`` training steps) and
        ``batch_usage`` (share chosen by this batch).

        The codebook is updated (EMA, restarts) after quantising, when ``update`` is True, or when it
        is None and the module is in training mode.
        """
        if z.dim() != 4 or z.shape[1] != self.dim:
            raise ConfigError(f"expected encoder output (B, {self.dim}, H, W), got {tuple(z.shape)}")
        if update is None:
            update = self.training
        update = update and not z.is_meta   # traced on the meta device (a memory estimate): no codebook learning
        b, d, h, w = z.shape
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, d).to(self.codebook.dtype)
        if update and not bool(self.initialised):
            self._data_init(flat)
        with torch.no_grad():
            codes_flat = self.nearest(flat)
        codes = codes_flat.view(b, h, w)
        z_q = self.codebook[codes_flat].view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        commitment = self.beta * (z - z_q.detach()).pow(2).mean()
        # straight-through: exactly z_q in the forward pass (z - z.detach() is exactly 0), identity
        # Jacobian d z_q / d z in the backward pass
        z_q_st = z_q.detach() + (z - z.detach())

        with torch.no_grad():
            counts = (torch.zeros(self.num_codes, dtype=flat.dtype, device="meta") if z.is_meta else
                      torch.bincount(codes_flat, minlength=self.num_codes).to(flat.dtype))
            sums = None
            if update:
                sums = torch.zeros_like(self.codebook).index_add_(0, codes_flat, flat)
            if update and _distributed():
                # only when updating: every process then calls forward in lockstep (training)
                dist.all_reduce(counts)
                if sums is not None:
                    dist.all_reduce(sums)
            total = counts.sum().clamp_min(1.0)
            p = counts / total
            perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
            batch_usage = (counts > 0).float().mean()
            if update:
                self._ema_update(counts, sums)
                self._track_and_restart(counts, flat)
            usage = ((self.last_used >= 1) & (self.last_used > self.step - self.usage_window)).float().mean()

        info = {"commitment": commitment, "perplexity": perplexity, "usage": usage, "batch_usage": batch_usage}
        return z_q_st, codes, info

    # ------------------------------------------------------------------ codebook learning
    @torch.no_grad()
    def _random_rows(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        """``k`` rows of ``flat`` drawn at random (without replacement when there are enough) plus
        noise of ``restart_noise`` times the data's standard deviation; drawn on rank 0 and
        broadcast under DDP."""
        n = flat.shape[0]
        if n >= k:
            idx = torch.randperm(n, device=flat.device)[:k]
        else:
            idx = torch.randint(0, n, (k,), device=flat.device)
        scale = flat.std() if n > 1 else flat.new_tensor(1.0)
        rows = flat[idx] + torch.randn(k, flat.shape[1], device=flat.device, dtype=flat.dtype) * (
            self.restart_noise * (scale + 1e-8)
        )
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _data_init(self, flat: torch.Tensor) -> None:
        rows = self._random_rows(flat, self.num_codes)
        self.codebook.copy_(rows)
        self.ema_sum.copy_(rows)
        self.ema_count.fill_(1.0)
        self.last_reset.fill_(int(self.step))
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, counts: torch.Tensor, sums: torch.Tensor) -> None:
        g = self.decay
        self.ema_count.mul_(g).add_(counts, alpha=1.0 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1.0 - g)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _track_and_restart(self, counts: torch.Tensor, flat: torch.Tensor) -> None:
        self.step += 1
        t = int(self.step)
        self.last_used[counts > 0] = t
        if not self.dead_code_restart:
            return
        # ``counts`` are global under DDP, so every process finds the same dead entries
        dead = (t - torch.maximum(self.last_used, self.last_reset)) >= self.restart_after
        k = int(dead.sum())
        if k == 0:
            return
        rows = self._random_rows(flat, k)
        self.codebook[dead] = rows
        self.ema_sum[dead] = rows
        self.ema_count[dead] = 1.0
        self.last_reset[dead] = t

    def reset_statistics(self) -> None:
        """Forget usage history (``step``, ``last_used``, ``last_reset``), keeping the codebook."""
        self.step.zero_()
        self.last_used.fill_(-1)
        self.last_reset.zero_()


def perplexity_of(codes: torch.Tensor, num_codes: int) -> float:
    """exp(entropy) of the histogram of ``codes`` (any shape): the effective number of codes used."""
    p = torch.bincount(codes.flatten(), minlength=num_codes).double()
    p = p / p.sum().clamp_min(1.0)
    return math.exp(float(-(p * torch.log(p.clamp_min(1e-300))).sum()))
