"""VectorQuantizer: exact codebook outputs, straight-through gradient, EMA update by hand, cold start,
dead-code restart, eval mode, state dict, and DDP consistency with a real 2-process gloo group."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pixelzoo.io import load_tensors, save_tensors
from pixelzoo.nn.quantizer import VectorQuantizer
from pixelzoo.training import distributed
from helpers import leave_spawned_worker



def as_map(vectors):
    """(N, D) rows -> (1, D, 1, N) map, so raster order = row order."""
    return torch.as_tensor(vectors, dtype=torch.float32).t()[None, :, None, :].contiguous()


def test_output_is_exactly_a_codebook_vector():
    vq = VectorQuantizer(16, 3, data_init=False)
    z = torch.randn(4, 3, 5, 6) * 2
    z_q, codes, _ = vq.eval()(z)
    assert codes.shape == (4, 5, 6) and codes.dtype == torch.long
    assert z_q.shape == z.shape
    assert torch.equal(z_q, vq.lookup(codes))
    rows = z_q.permute(0, 2, 3, 1).reshape(-1, 3)
    assert all(any(torch.equal(r, e) for e in vq.codebook) for r in rows)
    # nearest by brute force
    d = ((z.permute(0, 2, 3, 1)[..., None, :] - vq.codebook) ** 2).sum(-1)
    assert torch.equal(codes, d.argmin(-1))


def test_training_output_uses_codebook_before_update():
    vq = VectorQuantizer(8, 2, data_init=False).train()
    old = vq.codebook.clone()
    z_q, codes, _ = vq(torch.randn(2, 2, 3, 3))
    assert torch.equal(z_q, old[codes].permute(0, 3, 1, 2))
    assert not torch.equal(old, vq.codebook)


def test_straight_through_gradient_is_identity():
    vq = VectorQuantizer(8, 4, data_init=False)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q, _, info = vq(z)
    z_q.retain_grad()
    w = torch.randn_like(z)
    (z_q * w).sum().backward()
    assert torch.equal(z.grad, z_q.grad)
    assert torch.equal(z.grad, w)
    # the commitment loss pulls z towards sg(e): gradient 2 beta (z - e) / numel
    z.grad = None
    z_q, _, info = vq.eval()(z)
    info["commitment"].backward()
    torch.testing.assert_close(z.grad, 2 * vq.beta * (z - z_q).detach() / z.numel())


def test_ema_update_by_hand():
    vq = VectorQuantizer(3, 2, decay=0.9, eps=1e-5, data_init=False, dead_code_restart=False)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    vq.ema_sum.copy_(vq.codebook)
    vq.ema_count.fill_(1.0)
    z = as_map([[1, 0], [0, 1], [9, 1], [11, -1], [2, 2]])
    _, codes, info = vq.train()(z)
    assert codes.flatten().tolist() == [0, 0, 1, 1, 0]
    # n = [3, 2, 0], batch sums = [(3, 3), (20, 0), (0, 0)]
    # N = 0.9 * 1 + 0.1 * n
    expected_n = torch.tensor([1.2, 1.1, 0.9])
    # m = 0.9 * e + 0.1 * sums
    expected_m = torch.tensor([[0.3, 0.3], [11.0, 0.0], [0.0, 9.0]])
    torch.testing.assert_close(vq.ema_count, expected_n)
    torch.testing.assert_close(vq.ema_sum, expected_m)
    total, eps = 3.2, 1e-5
    smoothed = (expected_n + eps) / (total + 3 * eps) * total
    torch.testing.assert_close(vq.codebook, expected_m / smoothed[:, None])
    torch.testing.assert_close(vq.codebook, torch.tensor([[0.25, 0.25], [10.0, 0.0], [0.0, 10.0]]), atol=1e-4, rtol=0)
    # batch statistics: p = [3/5, 2/5, 0]
    p = torch.tensor([0.6, 0.4])
    torch.testing.assert_close(info["perplexity"], torch.exp(-(p * p.log()).sum()))
    assert info["batch_usage"].item() == pytest.approx(2 / 3)
    assert info["usage"].item() == pytest.approx(2 / 3)


def test_cold_start_with_unused_entries_stays_finite():
    torch.manual_seed(1)
    # data far from most of the random codebook: almost every entry is unused, for many steps,
    # with a fast decay so the counts of unused entries fall far below eps
    vq = VectorQuantizer(64, 4, decay=0.5, data_init=False, dead_code_restart=False).train()
    for _ in range(60):
        z = torch.randn(2, 4, 3, 3) * 0.1 + 3.0
        z_q, codes, info = vq(z)
        assert torch.isfinite(z_q).all() and torch.isfinite(vq.codebook).all()
        assert torch.isfinite(info["perplexity"]) and torch.isfinite(info["commitment"])
    assert int((vq.ema_count < 1e-10).sum()) > 32  # most entries did die out ...
    assert vq.codebook.abs().max() < 10  # ... and none exploded


def test_cold_start_default_data_init():
    vq = VectorQuantizer(32, 4).train()
    assert not bool(vq.initialised)
    for _ in range(5):
        z_q, _, info = vq(torch.randn(2, 4, 2, 2))  # 8 vectors for 32 entries
        assert torch.isfinite(z_q).all() and torch.isfinite(vq.codebook).all()
    assert bool(vq.initialised)


def test_dead_code_restart_revives_entries():
    vq = VectorQuantizer(8, 2, restart_after=3, data_init=False, restart_noise=1e-3).train()
    far = torch.tensor([[1000.0, 1000.0]]).repeat(4, 1) + torch.arange(4.0)[:, None]
    vq.codebook[4:] = far
    vq.ema_sum[4:] = far
    z = torch.randn(1, 2, 4, 8)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for step in range(1, 3):
        vq(z)
        assert (vq.codebook[4:] > 900).all(), f"restarted too early (step {step})"
    vq(z)  # step 3: entries 4..7 unused for restart_after steps -> restarted to batch vectors
    moved = vq.codebook[4:]
    dist_to_batch = torch.cdist(moved, flat).min(1).values
    assert (dist_to_batch < 0.05).all(), dist_to_batch
    torch.testing.assert_close(vq.ema_sum[4:], moved)
    assert torch.equal(vq.ema_count[4:], torch.ones(4))
    _, codes, info = vq(z)
    assert set(range(4, 8)) <= set(codes.flatten().tolist()), "restarted entries are not used"
    assert (vq.last_used[4:] == vq.step).all()


def test_restart_can_be_turned_off():
    vq = VectorQuantizer(8, 2, restart_after=1, data_init=False, dead_code_restart=False).train()
    vq.codebook[4:] = 1000.0
    vq.ema_sum[4:] = 1000.0
    for _ in range(5):
        vq(torch.randn(1, 2, 4, 4))
    assert (vq.codebook[4:] > 900).all()


def test_eval_mode_does_not_change_codebook():
    vq = VectorQuantizer(8, 3)
    vq.train()(torch.randn(2, 3, 4, 4))
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    for _ in range(3):
        vq(torch.randn(2, 3, 4, 4) * 5)
    vq.train()
    vq(torch.randn(2, 3, 4, 4), update=False)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_state_dict_round_trip(tmp_path):
    vq = VectorQuantizer(8, 3, restart_after=2).train()
    for _ in range(4):
        vq(torch.randn(2, 3, 4, 4))
    save_tensors(vq.state_dict(), tmp_path / "vq.safetensors")
    tensors = load_tensors(tmp_path / "vq.safetensors")
    assert {"codebook", "ema_count", "ema_sum", "initialised", "step", "last_used", "last_reset"} <= set(tensors)
    vq2 = VectorQuantizer(8, 3, restart_after=2)
    assert not bool(vq2.initialised)
    vq2.load_state_dict(tensors, strict=True)
    assert bool(vq2.initialised) and int(vq2.step) == 4
    z = torch.randn(2, 3, 4, 4)
    vq.eval(), vq2.eval()
    a, b = vq(z), vq2(z)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_lookup_shape_and_bad_codes():
    vq = VectorQuantizer(5, 3)
    codes = torch.randint(0, 5, (2, 4, 6))
    e = vq.lookup(codes)
    assert e.shape == (2, 3, 4, 6)
    assert torch.equal(e[1, :, 2, 3], vq.codebook[codes[1, 2, 3]])
    with pytest.raises(ValueError):
        vq.lookup(torch.full((1, 2, 2), 5))


# ---------------------------------------------------------------------- DDP, 2 processes on gloo
K, D, STEPS = 6, 3, 4


def _batches(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(2, D, 3, 3, generator=g) + rank for _ in range(STEPS)]


def _ddp_worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        vq = VectorQuantizer(K, D, decay=0.8, data_init=False, dead_code_restart=False).train()
        for z in _batches(rank):
            vq(z)
        # restarts and data-dependent init: each process draws different random numbers and data, yet
        # every process must end with rank 0's choice
        torch.manual_seed(1000 + rank)
        vq2 = VectorQuantizer(K, D, restart_after=1, data_init=True).train()
        for z in _batches(rank):
            vq2(z * 0.01 + 50 * rank)  # ranks' data far apart
        save_tensors({**{f"a.{k}": v for k, v in vq.state_dict().items()},
                      **{f"b.{k}": v for k, v in vq2.state_dict().items()}},
                     os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        distributed.finish()  # a barrier first: no process leaves while another still works
    leave_spawned_worker()


def test_ddp_two_processes_match_single_process_on_concatenated_data(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = load_tensors(tmp_path / "rank0.safetensors")
    r1 = load_tensors(tmp_path / "rank1.safetensors")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between processes"
    # single process on the concatenation of both processes' batches
    torch.manual_seed(0)
    single = VectorQuantizer(K, D, decay=0.8, data_init=False, dead_code_restart=False).train()
    for z0, z1 in zip(_batches(0), _batches(1)):
        single(torch.cat([z0, z1]))
    for k, v in single.state_dict().items():
        torch.testing.assert_close(r0[f"a.{k}"], v, msg=k)
    # the restart run did restart entries (rank 1's data lies far from rank 0's choices)
    assert int(r0["b.last_reset"].max()) >= 1


def test_perplexity_of_histogram():
    from pixelzoo.nn.quantizer import perplexity_of

    assert perplexity_of(torch.tensor([0, 1, 2, 3]), 8) == pytest.approx(4.0)
    assert perplexity_of(torch.zeros(10, dtype=torch.long), 8) == pytest.approx(1.0)
