"""The streaming path against the in-memory path, and ``pixelzoo prepare``'s throughput, as JSON.

Training: the ``gated_pixelcnn/fashion-cpu`` network (the preset's model and train options; its
``precision: auto``) trains on Fashion-MNIST in memory, and on a prepared copy streamed from its
shards by the DataLoader with ``train.workers`` 2 and 0, on the same batches (the runs end with the
same weights: checked and recorded). The three are measured side by side in one process, in
``--rounds`` alternating rounds; images/s is the median over the timed steps (after ``--warmup``) of
the trainer's own per-step rows, and each ratio is streamed over in memory.

Prepare: Fashion-MNIST (an in-memory source: 70,000 images) and a folder of ``--pngs`` small PNGs
written in a temporary folder (32x32 RGB, 10 class folders), as they are and centre-cropped and
resized to 16x16; images/s over the whole call (headers, reading, writing, checksums).

    python benchmarks/streaming.py             # about 3 minutes on 2 CPU cores; writes benchmarks/results/streaming.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT.parent), str(ROOT)]  # this checkout's pixelzoo, and bench_common

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

from bench_common import environment, write_result  # noqa: E402
from pixelzoo.data.prepare import Preprocessing, prepare  # noqa: E402
from pixelzoo.io import load_tensors  # noqa: E402
from pixelzoo.registry import load_preset  # noqa: E402
from pixelzoo.training import start_run  # noqa: E402

PRESET = "gated_pixelcnn/fashion-cpu"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed training steps per run (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed training steps first (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of the three runs (default 2)")
    p.add_argument("--pngs", type=int, default=400, help="PNGs in the folder prepared (default 400)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of the training process (default 2)")
    p.add_argument("--out", default=str(ROOT / "results" / "streaming.json"), help="JSON path")
    return p.parse_args(argv)


def busy_processes() -> list[str]:
    """The processes using the most CPU right now (what else ran on the machine)."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,rss,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split())[:120] for line in out[1:7]]


def write_pngs(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        base = (np.sin(xx / (2 + i % 7)) + np.cos(yy / (3 + i % 5)))[..., None] * 60 + 128
        img = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    return root


def time_prepare(source: str, out: Path, pre: Preprocessing = Preprocessing()) -> dict:
    t0 = time.perf_counter()
    r = prepare(source, out, pre, progress=False)
    seconds = time.perf_counter() - t0
    n = sum(r.index["splits"][s]["count"] for s in ("train", "test"))
    return {"images": n, "seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1),
            "image_shape": r.index["image_shape"], "shards": r.written, "preprocessing": pre.to_dict()}


def train_run(data: dict, out: Path, steps: int, warmup: int, workers: int) -> tuple[dict, dict]:
    config = load_preset(PRESET)
    config["data"] = data
    config["train"].update(steps=warmup + steps, log_every=1, eval_every=0, num_samples=0, checkpoint_every=10**6,
                           final_eval_images=32, workers=workers)
    runner = start_run(config, out, progress=False, tensorboard=False)
    runner.train()
    rows = [json.loads(line) for line in (runner.run_dir / "metrics.jsonl").read_text().splitlines()]
    ips = [r["images_per_s"] for r in rows if "images_per_s" in r and r["step"] > warmup]
    return ({"images_per_s": round(statistics.median(ips), 1), "steps_timed": len(ips),
             "precision": rows[-2].get("precision") if len(rows) > 1 else None},
            load_tensors(runner.single.checkpoint_path))


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    set_threads(args.threads)
    result = {"benchmark": "streaming", "preset": PRESET, "environment": environment(args.threads),
              "busy_processes_at_start": busy_processes(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="pixelzoo-streaming-") as tmp:
        tmp = Path(tmp)
        result["prepare"] = {
            "fashion-mnist": time_prepare("fashion-mnist", tmp / "fashion"),
            "png_folder": time_prepare(str(write_pngs(tmp / "pngs", args.pngs)), tmp / "pngs-prepared"),
            "png_folder_center_crop_resize16": time_prepare(str(tmp / "pngs"), tmp / "pngs-16",
                                                            Preprocessing(center_crop=True, resize=16)),
        }
        print(json.dumps(result["prepare"], indent=1), flush=True)
        runs = {"memory": ({"name": "fashion-mnist"}, 0),
                "streamed_2_workers": ({"name": "prepared", "data_dir": str(tmp / "fashion"), "stream": True}, 2),
                "streamed_0_workers": ({"name": "prepared", "data_dir": str(tmp / "fashion"), "stream": True}, 0)}
        measured: dict = {name: [] for name in runs}
        weights: dict = {}
        for k in range(args.rounds):
            for name, (data, workers) in runs.items():
                m, w = train_run(data, tmp / f"run-{name}-{k}", args.steps, args.warmup, workers)
                measured[name].append(m)
                weights.setdefault(name, w)
                print(name, k, m, flush=True)
        ref = weights["memory"]
        same = {name: all(torch.equal(ref[key], w[key]) for key in ref) for name, w in weights.items()}
        training = {name: {"images_per_s": round(statistics.median(m["images_per_s"] for m in ms), 1),
                           "per_round": [m["images_per_s"] for m in ms], "precision": ms[0]["precision"],
                           "same_weights_as_memory": same[name]} for name, ms in measured.items()}
        base = training["memory"]["images_per_s"]
        for name in training:
            training[name]["ratio_to_memory"] = round(training[name]["images_per_s"] / base, 3)
        result["training"] = training
    result["busy_processes_at_end"] = busy_processes()
    result["load_average_at_end"] = list(os.getloadavg())
    write_result(result, args.out, start)
    print(json.dumps(result["training"], indent=1))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
