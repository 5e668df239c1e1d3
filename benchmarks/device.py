"""Training and sampling speed per preset on whatever device it finds (or ``--device``), as JSON.

For each preset (default: the Fashion-MNIST CPU presets of the Gated PixelCNN, PixelCNN++ and
PixelIQN) it trains a few steps with the library's own trainer (``start_run``'s path: the model
moved to the device, batches through pinned memory on a GPU, the preset's ``precision: auto``
resolved for the device) and reads the per-step images/s the trainer logs, after ``--warmup``
steps. Two side measurements on ``--compare`` presets (default the Gated PixelCNN): fp32 against
bf16 autocast, and ``train.compile`` (``torch.compile`` of the unit's loss; its compile time is the
warm-up step's) against none. Sampling: ``--sample-n`` images with the preset's model (untrained:
the speed does not depend on the weights). A full image is sampled when it fits ``--sample-seconds``;
otherwise as many rows as fit, given the rest as inpainting context, and the time is scaled to the
image: the first rows for an incremental stepper (per-layer caches: each row costs about the
same), rows spread over the image for the full-forward stepper (the cost of a row-causal trunk
grows with the row; spread rows average it). ``rows_sampled`` says which.

    python benchmarks/device.py                  # ~3 minutes on 2 CPU cores; writes benchmarks/results/device_<cpu|cuda>.json
    python benchmarks/device.py --device cuda --steps 20 --warmup 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT.parent), str(ROOT)]  # this checkout's pixelzoo, and bench_common

import torch  # noqa: E402

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

from bench_common import environment, write_result  # noqa: E402
from pixelzoo.data import DataSplits  # noqa: E402
from pixelzoo.devices import cpu_flags, describe_device, native_bf16, resolve_device, resolve_precision  # noqa: E402
from pixelzoo.training import PlanRunner, RunConfig, load_config, load_data  # noqa: E402
from pixelzoo.training.run import build_model, resolve_model_config, new_run_dir, write_run_config  # noqa: E402

PRESETS = ["gated_pixelcnn/fashion-cpu", "pixelcnnpp/fashion-cpu", "pixeliqn/fashion-cpu"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", help="auto (default: CUDA when present, else the CPU), cpu, cuda or cuda:N")
    p.add_argument("--presets", nargs="+", default=PRESETS, help=f"presets to measure (default {PRESETS})")
    p.add_argument("--compare", nargs="*", default=PRESETS[:1],
                   help="presets also measured in fp32 against bf16 and with train.compile (default the first)")
    p.add_argument("--no-compile", action="store_true", help="skip the train.compile measurement")
    p.add_argument("--steps", type=int, default=2, help="timed training steps per measurement (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps first (default 1)")
    p.add_argument("--sample-n", type=int, default=4, help="images sampled as one batch (default 4)")
    p.add_argument("--sample-seconds", type=float, default=12.0,
                   help="time allowed per preset's sampling; beyond it rows are sampled and scaled (default 12)")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder (default: where `pixelzoo datasets` finds it)")
    p.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    p.add_argument("--out", help="JSON path (default benchmarks/results/device_<cpu|cuda>.json)")
    return p.parse_args(argv)


# ------------------------------------------------------------------ training
def timed_training(config: dict, splits, device, steps: int, warmup: int, tmp: Path, **train) -> dict:
    """Train ``warmup + steps`` steps of ``config`` with ``train`` overrides; images/s of the timed steps."""
    cfg = json.loads(json.dumps(config))
    cfg["train"].update(steps=warmup + steps, log_every=1, eval_every=0, checkpoint_every=10**9, num_samples=0,
                        sample_every=0, eval_images=None, time_budget=None, **train)
    run_config = RunConfig.from_dict(cfg)
    run_config = run_config.with_model(resolve_model_config(run_config.model, splits))
    torch.manual_seed(0)
    model = build_model(run_config.model)
    run_dir = new_run_dir(tmp / "run")
    write_run_config(run_dir, run_config.to_dict())
    runner = PlanRunner(model, splits, run_config, run_dir, progress=False, tensorboard=False, device=device)
    t0 = time.perf_counter()
    result = runner.train()
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in rows if "images_per_s" in r]
    timed = speeds[warmup:]
    batch = runner.single.cfg.batch_size
    return {"precision": result["precision"], "compile": bool(cfg["train"].get("compile")), "batch_size": batch,
            "steps_timed": len(timed), "images_per_s": round(statistics.median(timed), 2),
            "seconds_per_step": round(batch / statistics.median(timed), 3),
            "warmup_step_seconds": round(batch / speeds[0], 2) if speeds else None,
            "wall_seconds": round(wall, 1),
            "parameters": sum(p.numel() for p in model.parameters())}


# ------------------------------------------------------------------ sampling
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_rows(model, n, y, rows, device) -> float:
    """Seconds to sample ``rows`` of ``n`` images, the others given (zeros) as context."""
    c, h, w = model.image_shape
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[list(rows)] = False
    known = torch.zeros((1, c, h, w), dtype=torch.long)
    _sync(device)
    t0 = time.perf_counter()
    model.sample(n, y=y, known=known, mask=mask, generator=torch.Generator().manual_seed(0))
    _sync(device)
    return time.perf_counter() - t0


def timed_sampling(config: dict, splits, device, n: int, budget: float) -> dict:
    resolved = resolve_model_config(config["model"], splits)
    torch.manual_seed(0)
    model = build_model(resolved).to(device).eval()
    c, h, w = model.image_shape
    y = torch.arange(n) % model.num_classes if model.num_classes else None
    inputs = {k: v.to(device) for k, v in model.sampling_inputs(n, 1.0, None).items()}
    stepper = type(model.stepper(n, y=None if y is None else y.to(device), inputs=inputs)).__name__
    incremental = stepper != "FullForwardStepper"

    def pick(k):  # the first rows (constant cost per row) or rows spread over the image
        return list(range(k)) if incremental else sorted({round((i + 0.5) * h / k - 0.5) for i in range(k)})

    first = sample_rows(model, n, y, pick(1), device)
    k = max(1, min(h, int(budget / max(first, 1e-6))))
    rows = pick(k)
    if k == h:
        seconds = sample_rows(model, n, y, range(h), device)
    else:
        seconds = sample_rows(model, n, y, rows, device) * h / len(rows)
    return {"n": n, "stepper": stepper, "rows": h, "rows_sampled": rows if len(rows) < h else "all",
            "seconds_per_batch": round(seconds, 2), "images_per_s": round(n / seconds, 4),
            "subpixels_per_s": round(n * c * h * w / seconds, 1)}


# ------------------------------------------------------------------ main
def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.threads:
        set_threads(args.threads)
    device = resolve_device(args.device)
    out = Path(args.out) if args.out else ROOT / "results" / f"device_{device.type}.json"
    report = {
        "benchmark": "device", "device": str(device), "device_name": describe_device(device),
        "native_bf16": native_bf16(device), "precision_auto": resolve_precision("auto", device),
        "environment": environment(torch.get_num_threads()),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "training": [], "sampling": [], "bf16_vs_fp32": {}, "compile": {},
    }
    if device.type == "cpu":
        report["cpu_bf16_flags"] = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    if device.type == "cuda":
        report["environment"]["cuda"] = torch.version.cuda
    data = {}
    with tempfile.TemporaryDirectory(prefix="pixelzoo-bench-device-") as tmp:
        tmp = Path(tmp)
        for preset in args.presets:
            config = load_config(preset)
            if args.data_dir:
                config["data"]["data_dir"] = args.data_dir
            key = json.dumps(config["data"], sort_keys=True)
            if key not in data:
                full = load_data(config["data"])
                data[key] = DataSplits(full.train, full.test.subset(range(min(64, len(full.test)))))
            splits = data[key]
            print(f"{preset}: training ({config['train'].get('precision', 'fp32')})", file=sys.stderr, flush=True)
            row = {"preset": preset, **timed_training(config, splits, device, args.steps, args.warmup, tmp)}
            report["training"].append(row)
            if preset in args.compare:
                other = "bf16" if row["precision"] == "fp32" else "fp32"
                print(f"{preset}: training ({other})", file=sys.stderr, flush=True)
                alt = {"preset": preset, **timed_training(config, splits, device, args.steps, args.warmup, tmp,
                                                          precision=other)}
                report["training"].append(alt)
                fp32, bf16 = (row, alt) if other == "bf16" else (alt, row)
                report["bf16_vs_fp32"][preset] = {
                    "fp32_images_per_s": fp32["images_per_s"], "bf16_images_per_s": bf16["images_per_s"],
                    "bf16_step_time_over_fp32": round(bf16["seconds_per_step"] / fp32["seconds_per_step"], 3)}
                if not args.no_compile:
                    print(f"{preset}: training (compile)", file=sys.stderr, flush=True)
                    try:
                        comp = {"preset": preset, **timed_training(config, splits, device, args.steps, args.warmup, tmp,
                                                                   precision=row["precision"], compile=True)}
                    except Exception as e:  # e.g. no C++ compiler for the CPU backend
                        report["compile"][preset] = {"error": f"{type(e).__name__}: {e}"[:500]}
                    else:
                        report["training"].append(comp)
                        report["compile"][preset] = {
                            "precision": row["precision"], "eager_images_per_s": row["images_per_s"],
                            "compiled_images_per_s": comp["images_per_s"],
                            "speedup": round(comp["images_per_s"] / row["images_per_s"], 3),
                            "compile_seconds": round(comp["warmup_step_seconds"] - row["seconds_per_step"], 1)}
            print(f"{preset}: sampling", file=sys.stderr, flush=True)
            report["sampling"].append({"preset": preset, **timed_sampling(config, splits, device, args.sample_n,
                                                                          args.sample_seconds)})
    report["notes"] = [
        "training images/s: the median of the trainer's per-step figures after the warm-up steps (metrics.jsonl)",
        "sampling: scaled from the rows sampled to the whole image where rows_sampled lists rows; untrained weights",
        "compile_seconds: the compiled run's first step less an eager step",
    ]
    write_result(report, out, start)
    print(json.dumps(report, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
