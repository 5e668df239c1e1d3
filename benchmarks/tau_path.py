"""What PixelIQN's tau path costs in training, and what the cheaper variants save (Ostrovski et al.
2018 feed tau to every layer of the Gated PixelCNN, as class-location conditioning).

One process, one batch of Fashion-MNIST-shaped data, the network of ``pixeliqn/fashion-cpu`` (64
channels, 8 layers); timed training steps (forward, backward, Adam) of:

* ``softmax``: ``gated_pixelcnn/fashion-cpu``, the same trunk with the 256-way softmax: the baseline;
* ``pixeliqn``: the preset, one tau projection per layer (the paper's path);
* ``pixeliqn shared``: ``shared_conditioning``, one tau projection (and class embedding) for the
  whole trunk, the same bias added in every layer;
* ``pixeliqn fp32 output``: ``fp32_output``, the output layer in float32 under bf16 autocast.

Every configuration is timed in each of ``--rounds`` rounds, in turn, so that a change of the
machine's load touches all of them alike; per configuration the fastest round (the median of its
steps; other work on the machine only ever adds time) and its ratio to the softmax baseline's, in
fp32 and under bf16 autocast (on a CPU without native bf16, autocast is several times slower than
fp32 for every configuration alike). Whether the variants keep quality is
the search's question (``benchmarks/iqn_vs_softmax_curves.py``), not this one's.

    python benchmarks/tau_path.py --threads 1
    python benchmarks/tau_path.py --smoke --out /tmp/t.json

Writes ``benchmarks/results/tau_path.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
sys.path.insert(0, str(ROOT))
from bench_common import environment, write_result  # noqa: E402

CONFIGS = {
    "softmax": ("gated_pixelcnn/fashion-cpu", {}),
    "pixeliqn": ("pixeliqn/fashion-cpu", {}),
    "pixeliqn shared": ("pixeliqn/fashion-cpu", {"shared_conditioning": True}),
    "pixeliqn fp32 output": ("pixeliqn/fashion-cpu", {"fp32_output": True}),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5, help="rounds; each times every configuration")
    p.add_argument("--steps", type=int, default=4, help="timed steps per configuration and round")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "results" / "tau_path.json"))
    p.add_argument("--smoke", action="store_true", help="a tiny network and two rounds: checks the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps, args.batch = 2, 1, 4
    return args


def build(preset: str, overrides: dict, smoke: bool):
    from pixelzoo.registry import create_model
    from pixelzoo.training import load_config

    cfg = {**load_config(preset)["model"], **overrides}
    if smoke:
        cfg.update(channels=8, n_layers=2, out_hidden=8)
    cfg.pop("class_conditional", None)
    name = cfg.pop("name")
    return create_model(name, image_shape=(1, 28, 28), num_levels=256, num_classes=10, **cfg)


def step_seconds(model, opt, x, y, precision: str, steps: int) -> float:
    """The median of ``steps`` training steps (after one untimed warm-up step)."""
    times = []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model.loss(x, y)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    set_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randint(0, 256, (args.batch, 1, 28, 28))
    y = torch.arange(args.batch) % 10
    models = {}
    for name, (preset, overrides) in CONFIGS.items():
        model = build(preset, overrides, args.smoke)
        models[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-4),
                        sum(p.numel() for p in model.parameters()))
    precisions = [p.strip() for p in args.precisions.split(",")]
    times = {(name, prec): [] for name in CONFIGS for prec in precisions}
    for _ in range(args.rounds):
        for prec in precisions:
            for name, (model, opt, _) in models.items():
                times[(name, prec)].append(step_seconds(model, opt, x, y, prec, args.steps))
    rows = []
    for prec in precisions:
        base = min(times[("softmax", prec)])
        for name, (preset, overrides) in CONFIGS.items():
            t = min(times[(name, prec)])
            rows.append({"config": name, "preset": preset, "overrides": overrides, "precision": prec,
                         "parameters": models[name][2], "step_seconds": round(t, 4),
                         "images_per_second": round(args.batch / t, 1), "time_vs_softmax": round(t / base, 3),
                         "rounds": [round(v, 4) for v in times[(name, prec)]]})
            print(f"{prec} {name}: {t:.3f} s per step, {t / base:.3f}x the softmax's", flush=True)
    result = {"benchmark": "tau_path", "batch": args.batch, "rounds": args.rounds, "steps": args.steps,
              "smoke": args.smoke, "rows": rows}
    write_result({**environment(args.threads), **result}, args.out, start)
    return result


if __name__ == "__main__":
    main()
