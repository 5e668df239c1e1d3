"""The GPU check, ready to run whenever a GPU is at hand (``scripts/gpu_check.sh`` runs the CUDA
tests first, then this): each family's paper preset trained for ``--steps`` steps per part on
synthetic data of its size (random images: speed and memory do not depend on the pixels), recording
images/s per part, peak GPU memory and the precision used; then sampling timed at batch 1, 16 and 64
(the composites' parts at batch 1 and 16; a size whose estimate exceeds ``--sample-seconds`` is
skipped and said so). One JSON per preset, ``benchmarks/results/gpu_<family>.json``.

    bash scripts/gpu_check.sh                                  # on the GPU machine, all of it
    python benchmarks/gpu_check.py --device cpu --presets gated_pixelcnn/digits --steps 2 \\
        --images 16 --sample-batches 1 --out-dir /tmp/gpu-dry    # a dry run of the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_common import environment, write_result  # noqa: E402

#: each family's paper preset and the images it is for: (C, H, W), levels, classes
PAPER = {
    "gated_pixelcnn/cifar-paper": ((3, 32, 32), 256, 10),
    "pixelcnnpp/cifar-paper": ((3, 32, 32), 256, None),
    "pixeliqn/cifar-paper": ((3, 32, 32), 256, 10),
    "grayscale_pixelcnn/cifar-paper": ((3, 32, 32), 256, None),
    "pyramid_pixelcnn/celeba128-paper": ((3, 128, 128), 256, None),
    "vqvae2/imagenet256-paper": ((3, 256, 256), 256, 1000),
    "agave/cifar-paper": ((3, 32, 32), 256, None),
    "defauw/imagenet128-ff-paper": ((3, 128, 128), 256, 1000),
}
#: data sets whose shape the library knows (for --presets outside PAPER)
KNOWN = {"digits": ((1, 8, 8), 17, 10), "fashion-mnist": ((1, 28, 28), 256, 10), "cifar10": ((3, 32, 32), 256, 10)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--presets", default=",".join(PAPER), help="comma-separated presets (default: one per family)")
    p.add_argument("--steps", type=int, default=20, help="training steps per part (default 20)")
    p.add_argument("--images", type=int, default=128, help="synthetic training images (default 128)")
    p.add_argument("--batch-size", type=int, help="override the presets' batch sizes")
    p.add_argument("--sample-batches", default="1,16,64", help="sampling batch sizes (default 1,16,64)")
    p.add_argument("--sample-seconds", type=float, default=60.0,
                   help="skip a sampling size whose estimate from the smaller one exceeds this (default 60)")
    p.add_argument("--out-dir", default=str(ROOT / "results"), help="where gpu_<family>.json go")
    return p.parse_args(argv)


def synthetic_npz(folder: Path, shape, levels: int, classes, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, levels, (n, *shape), dtype=np.uint8),
              "x_test": rng.integers(0, levels, (max(n // 8, 4), *shape), dtype=np.uint8)}
    if classes:
        arrays["y_train"] = rng.integers(0, classes, n)
        arrays["y_test"] = rng.integers(0, classes, len(arrays["x_test"]))
    path = folder / "data.npz"
    np.savez(path, **arrays)
    return path


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def check_preset(preset: str, args, work: Path) -> dict:
    from pixelzoo.registry import load_preset
    from pixelzoo.training import load_run_model, start_run
    from pixelzoo.training.config import set_steps
    from pixelzoo.training.logger import parse_rows

    config = load_preset(preset)
    if preset in PAPER:
        shape, levels, classes = PAPER[preset]
    elif config["data"]["name"] in KNOWN:
        shape, levels, classes = KNOWN[config["data"]["name"]]
    else:
        raise SystemExit(f"{preset}: no image shape known for its data; add it to PAPER")
    if not config["model"].get("class_conditional", True):
        classes = None
    folder = work / preset.replace("/", "-")
    folder.mkdir(parents=True)
    npz = synthetic_npz(folder, shape, levels, classes, args.images)
    config["data"] = {"name": "npz", "data_dir": str(npz), "num_levels": levels}
    config = set_steps(config, args.steps)
    train = dict(config["train"], eval_every=0, num_samples=0, sample_every=0, final_eval_images=8,
                 checkpoint_every=10 ** 9, log_every=max(1, args.steps // 2))
    if args.batch_size:
        train["batch_size"] = args.batch_size
    config["train"] = train
    for part in config.get("train_parts", {}).values():
        if args.batch_size:
            part["batch_size"] = args.batch_size
        part.update(eval_every=0, num_samples=0, sample_every=0, checkpoint_every=10 ** 9)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(args.device)
    t = time.perf_counter()
    runner = start_run(config, folder / "run", progress=False, tensorboard=False, device=args.device)
    runner.train()
    sync(args.device)
    out = {"preset": preset, "image_shape": list(shape), "steps_per_part": args.steps,
           "train_seconds": round(time.perf_counter() - t, 1), "parts": {}}
    if cuda:
        out["peak_gpu_memory_gb_training"] = round(torch.cuda.max_memory_allocated(args.device) / 2 ** 30, 3)
    for metrics in sorted(runner.run_dir.rglob("metrics.jsonl")):
        rows, _ = parse_rows(metrics)
        train_rows = [r for r in rows if "images_per_s" in r]
        if train_rows:
            part = metrics.parent.name if metrics.parent != runner.run_dir else "model"
            last = train_rows[-1]
            out["parts"][part] = {"images_per_s": last["images_per_s"], "precision": last.get("precision"),
                                  "device": last.get("device")}
    model, _ = load_run_model(runner.run_dir, args.device)
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["sampling"] = {}
    estimate_per_image = None
    for b in [int(v) for v in args.sample_batches.split(",")]:
        if estimate_per_image is not None and estimate_per_image * b > args.sample_seconds:
            out["sampling"][str(b)] = {"skipped": f"estimated {estimate_per_image * b:.0f} s > --sample-seconds"}
            continue
        y = torch.arange(b) % model.num_classes if model.num_classes else None
        if cuda:
            torch.cuda.reset_peak_memory_stats(args.device)
        sync(args.device)
        t = time.perf_counter()
        model.sample(b, y=y, generator=torch.Generator(device=args.device).manual_seed(0))
        sync(args.device)
        seconds = time.perf_counter() - t
        estimate_per_image = seconds / b if estimate_per_image is None else min(estimate_per_image, seconds / b)
        entry = {"seconds": round(seconds, 3), "seconds_per_pixel": seconds / (b * math.prod(shape[1:]))}
        if cuda:
            entry["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(args.device) / 2 ** 30, 3)
        out["sampling"][str(b)] = entry
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from pixelzoo.devices import describe_device, resolve_device

    device = resolve_device(args.device)
    args.device = str(device)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    out_dir = Path(args.out_dir)
    failures = 0
    for preset in args.presets.split(","):
        start = time.perf_counter()
        result = {"benchmark": "gpu_check", "device": describe_device(device), "environment": environment(
            torch.get_num_threads())}
        try:
            result.update(check_preset(preset, args, work))
        except Exception as e:  # one preset's failure is recorded, the others still run
            failures += 1
            result.update(preset=preset, error=f"{type(e).__name__}: {e}")
        path = out_dir / f"gpu_{preset.split('/')[0]}.json"
        write_result(result, path, start)
        print(json.dumps({k: result[k] for k in ("preset", "train_seconds", "parts", "sampling", "error")
                          if k in result}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
