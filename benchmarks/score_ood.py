"""Likelihood-based out-of-distribution detection with ``pixelzoo score``: the AUROC of telling
Fashion-MNIST test images from other images by a Fashion-MNIST model's bits/dim.

Two cases, scored with the labels marginalised (a uniform class prior), on the first ``-n`` test images:

* **grey patches**: scikit-image photographs cut into 32x32 grey patches (the ``patches`` data set,
  ``grey=true``), area-resized to 28x28 (``--fit``): an easy case, natural images unlike clothes;
* **horizontal flips** of the same Fashion-MNIST test images: a hard case (the flipped garments are
  nearly as likely: the AUROC is near 0.5).

The model: a run directory (``--run``), or a ``gated_pixelcnn/fashion-cpu`` run trained here for
``--train-seconds`` first. Writes ``benchmarks/results/score_ood.json`` (``--out``).

    python benchmarks/score_ood.py --run runs/fashion      # a trained run
    python benchmarks/score_ood.py --train-seconds 600     # train 10 minutes first
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_common import environment, write_result  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a trained Fashion-MNIST run directory (default: train one here)")
    p.add_argument("--train-seconds", type=float, default=600.0, help="training time when no --run (default 600)")
    p.add_argument("-n", type=int, default=2000, help="test images per set (default 2000)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "results" / "score_ood.json"))
    args = p.parse_args(argv)

    from pixelzoo.cli import main as cli
    from pixelzoo.data import load_dataset

    set_threads(args.threads)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="score_ood-"))
    run = args.run
    if run is None:
        run = str(work / "run")
        code = cli(["train", "gated_pixelcnn/fashion-cpu", "--out", run, "--no-progress", "--threads", str(args.threads),
                    "--set", f"train.time_budget={args.train_seconds}", "--set", "train.eval_every=0",
                    "--set", "train.num_samples=0"])
        if code:
            return code
    test = load_dataset("fashion-mnist").test
    flipped = test.images[: args.n].flip(-1).numpy()
    np.savez(work / "flipped.npz", images=flipped, labels=test.labels[: args.n].numpy())
    cases = {"grey patches resized to 28x28": ["patches:grey=true,size=32", "--fit"],
             "horizontal flips": [str(work / "flipped.npz")]}
    result = {"benchmark": "score_ood", "run": run, "n": args.n, "environment": environment(args.threads), "cases": {}}
    for name, against in cases.items():
        out = work / name.split()[0]
        code = cli(["score", run, "fashion-mnist", "-n", str(args.n), "--against", *against, "--out", str(out),
                    "--no-progress", "--threads", str(args.threads)])
        if code:
            return code
        summary = json.loads(out.with_suffix(".json").read_text())
        result["cases"][name] = {"auroc": round(summary["auroc"], 4),
                                 "bpd": {k: round(v["bpd"]["mean"], 4) for k, v in summary["scores"].items()}}
        print(f"{name}: AUROC {summary['auroc']:.4f}")
    write_result(result, args.out, start)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
