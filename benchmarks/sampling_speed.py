"""Sampling speed of every trunk: the naive sampler against the trunk's incremental stepper and one
batched forward pass of the same batch, side by side in one process.

Cases (untrained weights: speed does not depend on them; 10 classes where the data has them):

* ``gated_pixelcnn`` and ``pixelcnnpp`` at their ``fashion-cpu`` preset sizes (28x28 grey, 256 levels);
* ``pixelsnail`` at 28x28 grey with its defaults (64 channels, 4 blocks, attention every 2; there is
  no PixelSNAIL preset);
* ``pixelcnnpp`` at its ``patches-cpu`` size (16x16 RGB, unconditional).

For each batch size: the incremental stepper on the full image (``cached=None``, the default of
``model.sample``); the naive sampler (``cached=False``: a full forward pass per sub-pixel, or per
pixel where the trunk does not mask colour, rows cropped for row-causal trunks) timed on ``--rows``
rows spread over the image and extrapolated to the full image (the rows' mean index is the
image's; the other rows are given, taken from the incremental sample, so both samplers draw the same
sub-pixels: ``identical`` says whether they drew the same values); and one batched forward pass
(``log_prob`` without gradients) of the batch, the best of 3. Ratios: naive / incremental (speed-up) and
incremental / forward (the Ramachandran et al. target is about 1), also in CPU time of the thread
(``*_cpu``: with one torch thread all of the work, and not stretched when other processes load the
machine; best of 3, the two alternating). The incremental sampler is timed
as the best of 2 calls, like the forward pass (best of 3): the first call of a process also pays
one-time costs (kernel selection, first allocations) that are not a sampling step's.

``--profile`` also records where one batch-1 sample call spends its time, per case: by part (the
stepper's creation, the trunk, the output layer and head parameters, the draw, the sampler's loop;
timers around each), the top tensor operations by self time (``torch.profiler``: the NumPy steps of
one image are not tensor operations, see the functions) and the top Python functions by own time
(``cProfile``; a NumPy operation's time is its caller's own), written to
``benchmarks/results/sampling_profile.json`` (``--profile-out``).

    python benchmarks/sampling_speed.py                         # default: batches 1,16,64; 2 naive rows
    python benchmarks/sampling_speed.py --batches 2 --rows 1    # smoke run
    python benchmarks/sampling_speed.py --profile               # and the batch-1 profiles
    python benchmarks/sampling_speed.py --batches 16,64 --no-naive   # the steppers only (compare commits)

Writes ``benchmarks/results/sampling_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent

CASES = {
    "gated_pixelcnn/fashion-cpu": ("preset", "gated_pixelcnn/fashion-cpu", (1, 28, 28), 10),
    "pixelcnnpp/fashion-cpu": ("preset", "pixelcnnpp/fashion-cpu", (1, 28, 28), 10),
    "pixelsnail/28x28": ("model", {"name": "pixelsnail"}, (1, 28, 28), 10),
    "pixelcnnpp/patches-cpu": ("preset", "pixelcnnpp/patches-cpu", (3, 16, 16), None),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--batches", default="1,16,64", help="batch sizes (default 1,16,64)")
    p.add_argument("--rows", type=int, default=2, help="rows the naive sampler is timed on (default 2)")
    p.add_argument("--no-naive", action="store_true",
                   help="skip the naive sampler (the incremental one against the forward pass only: e.g. to "
                        "compare two commits' steppers at batch 16 and 64 quickly)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=str(ROOT / "results" / "sampling_speed.json"), help="JSON result file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="also profile one batch-1 sample call per case")
    p.add_argument("--profile-out", default=str(ROOT / "results" / "sampling_profile.json"),
                   help="JSON file of the profiles")
    p.add_argument("--top", type=int, default=15, help="operations and functions listed per profile (default 15)")
    return p.parse_args(argv)


def timed_rows(height: int, rows: int) -> list[int]:
    """``rows`` row indices spread evenly over ``height`` (mean index (height - 1) / 2)."""
    if rows <= 0 or rows >= height:
        return list(range(height))
    return sorted({round((k + 0.5) * height / rows - 0.5) for k in range(rows)})


def build(case):
    import pixelzoo
    from pixelzoo.registry import load_preset

    kind, what, shape, classes = CASES[case]
    cfg = dict(load_preset(what)["model"]) if kind == "preset" else dict(what)
    name = cfg.pop("name")
    cfg.pop("class_conditional", None)
    return pixelzoo.create_model(name, shape, 256, classes, **cfg).eval(), dict(cfg, name=name)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def cpu_timed(fn):
    """The seconds of CPU time the calling thread spends in ``fn()`` (with one torch thread, all of the
    work; unlike the wall time, not stretched by other processes on a busy machine)."""
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def measure(model, n, rows, seed, naive=True):
    c, height, width = model.image_shape
    y = torch.arange(n) % model.num_classes if model.num_classes else None
    runs = [timed(lambda: model.sample(n, y=y, generator=torch.Generator().manual_seed(seed))) for _ in range(2)]
    full, inc_s = runs[0][0], min(s for _, s in runs)  # best of 2 (same seed, same images)
    fwd_s = min(timed(lambda: torch.no_grad()(model.log_prob)(full, y))[1] for _ in range(3))  # best of 3
    # the same two in CPU time of this thread, alternating, best of 3 each
    inc_cpu, fwd_cpu = [], []
    for _ in range(3):
        inc_cpu.append(cpu_timed(lambda: model.sample(n, y=y, generator=torch.Generator().manual_seed(seed))))
        fwd_cpu.append(cpu_timed(lambda: torch.no_grad()(model.log_prob)(full, y)))
    result = {"batch": n, "stepper": type(model.stepper(n)).__name__,
              "incremental_seconds": round(inc_s, 3), "forward_seconds": round(fwd_s, 4),
              "incremental_over_forward": round(inc_s / fwd_s, 1),
              "incremental_cpu_seconds": round(min(inc_cpu), 4), "forward_cpu_seconds": round(min(fwd_cpu), 4),
              "incremental_over_forward_cpu": round(min(inc_cpu) / min(fwd_cpu), 1)}
    if not naive:
        return result
    rows = timed_rows(height, rows)
    mask = torch.ones(model.image_shape, dtype=torch.bool)
    mask[:, rows] = False
    g = seed + 1
    naive, naive_s = timed(lambda: model.sample(n, y=y, known=full, mask=mask, cached=False,
                                                generator=torch.Generator().manual_seed(g)))
    inc_rows, inc_rows_s = timed(lambda: model.sample(n, y=y, known=full, mask=mask,
                                                      generator=torch.Generator().manual_seed(g)))
    naive_full = naive_s * height / len(rows)
    result.update({"naive_seconds_on_rows": round(naive_s, 3), "incremental_seconds_on_rows": round(inc_rows_s, 3),
                   "naive_rows": rows, "naive_seconds_estimate": round(naive_full, 2),
                   "naive_extrapolated": len(rows) < height, "speedup_vs_naive": round(naive_full / inc_s, 1),
                   "identical": bool(torch.equal(naive, inc_rows))})
    return result


def profile(model, top: int, seed: int) -> dict:
    """Where one batch-1 sample call (after a warm-up call) spends its time: the top tensor operations
    by self CPU time and the top Python functions by own time, with the call's seconds (profiled:
    the profilers' own overhead included, so shares matter more than seconds)."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    y = torch.zeros(1, dtype=torch.long) if model.num_classes else None

    def sample():
        return model.sample(1, y=y, generator=torch.Generator().manual_seed(seed))

    sample()  # warm-up
    _, plain_s = timed(sample)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        _, ops_s = timed(sample)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events) or 1.0
    ops = [{"op": e.key, "calls": e.count, "calls_per_position": round(e.count / (model.image_shape[1] * model.image_shape[2]), 2),
            "self_ms": round(e.self_cpu_time_total / 1e3, 2), "share": round(e.self_cpu_time_total / total_us, 3)}
           for e in events[:top]]
    prof_py = cProfile.Profile()
    prof_py.enable()
    _, py_s = timed(sample)
    prof_py.disable()
    stats = pstats.Stats(prof_py)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # by own time
    functions = [{"function": f"{Path(file).parent.name}/{Path(file).name}:{line}({name})" if file != "~" else name, "calls": int(nc),
                  "own_ms": round(tt * 1e3, 2), "cumulative_ms": round(ct * 1e3, 2)}
                 for (file, line, name), (cc, nc, tt, ct, _) in rows[:top]]
    return {"seconds": round(plain_s, 4), "seconds_under_torch_profiler": round(ops_s, 4),
            "seconds_under_cprofile": round(py_s, 4), "breakdown_ms": breakdown(model, sample),
            "top_ops": ops, "top_functions": functions}


def breakdown(model, sample) -> dict:
    """Milliseconds of thread time of one batch-1 sample call by part, from timers around each part
    (their own cost, about a microsecond a call, lands in the parts): the stepper's creation, the
    trunk (``params`` less the output layer and head), the output layer and the head's parameters of
    the sub-pixel (``StepOutput``), the head's draw, and the rest (the sampler's loop, setup)."""
    from pixelzoo.models.autoregressive import step_output

    parts = dict.fromkeys(["stepper_creation", "trunk", "output_layer_and_head_params", "draw"], 0.0)

    def timed_into(key, fn):
        def wrapper(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[key] += time.thread_time() - t
        return wrapper

    make_stepper, draw, out_call = model.stepper, model.head.draw, step_output.StepOutput.__call__

    def stepper(*args, **kwargs):
        made = timed_into("stepper_creation", make_stepper)(*args, **kwargs)
        made.params = timed_into("trunk", made.params)
        return made

    model.stepper, model.head.draw = stepper, timed_into("draw", draw)
    step_output.StepOutput.__call__ = timed_into("output_layer_and_head_params", out_call)
    try:
        t = time.thread_time()
        sample()
        total = time.thread_time() - t
    finally:
        del model.stepper, model.head.draw
        step_output.StepOutput.__call__ = out_call
    parts["trunk"] -= parts["output_layer_and_head_params"]  # params = trunk + output layer and head
    parts["sampler_loop_and_setup"] = total - sum(parts.values())
    parts["total"] = total
    return {k: round(v * 1e3, 2) for k, v in parts.items()}


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT.parent))
    sys.path.insert(0, str(ROOT))
    from bench_common import environment, write_result
    from pixelzoo.threads import set_threads

    # through pixelzoo: a bare torch.set_num_threads before pixelzoo's import is not seen as the user's
    # choice, and the first sample call would apply the library's policy (the idle cores) instead
    set_threads(args.threads)

    start = time.perf_counter()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    result = {"benchmark": "sampling_speed", "trained": False, "threads": args.threads, "cases": {}}
    profiles = {"benchmark": "sampling_profile", "batch": 1, "threads": args.threads, "cases": {}}
    ok = True
    for case in [c for c in args.cases.split(",") if c.strip()]:
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
        torch.manual_seed(args.seed)
        model, cfg = build(case)
        rows = []
        for n in batches:
            r = measure(model, n, args.rows, args.seed, naive=not args.no_naive)
            rows.append(r)
            ok = ok and r.get("identical", True)
            naive = "" if args.no_naive else (f", naive ~{r['naive_seconds_estimate']:.1f} s ({r['speedup_vs_naive']}x)")
            same = "" if args.no_naive else f"; identical {r['identical']}"
            print(f"{case} batch {n}: {r['stepper']} {r['incremental_seconds']:.2f} s{naive}, "
                  f"{r['incremental_over_forward']} forward passes ({r['incremental_over_forward_cpu']} in CPU time){same}",
                  flush=True)
        result["cases"][case] = {"model": cfg, "image_shape": list(model.image_shape), "num_classes": model.num_classes,
                                 "params": sum(p.numel() for p in model.parameters()), "results": rows}
        if args.profile:
            profiles["cases"][case] = profile(model, args.top, args.seed)
            top = profiles["cases"][case]["top_ops"][:3]
            print(f"{case} profile: " + ", ".join(f"{o['op']} {o['share']:.0%}" for o in top), flush=True)
    result["environment"] = environment(args.threads)
    result["environment"]["threads_in_use"] = torch.get_num_threads()  # after every sample call
    write_result(result, args.out, start)
    print(f"written to {args.out}")
    if args.profile:
        profiles["environment"] = environment(args.threads)
        write_result(profiles, args.profile_out, start)
        print(f"profiles written to {args.profile_out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
