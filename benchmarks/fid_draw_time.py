"""The time to draw the samples of a FID measurement: ``n`` samples (default 1000, the README's
PixelIQN-against-softmax comparison) drawn as ``pixelzoo evaluate`` draws them
(``pixelzoo.commands.evaluate.draw_samples``: batches of 256, labels balanced over the classes), with
the library's default sampler (each trunk's incremental stepper), for the models of that comparison
at their ``fashion-cpu`` sizes. Untrained weights: the time does not depend on them.

    python benchmarks/fid_draw_time.py                  # 1000 samples each
    python benchmarks/fid_draw_time.py -n 64            # smoke run

Writes ``benchmarks/results/fid_draw_time.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
PRESETS = ("gated_pixelcnn/fashion-cpu", "pixeliqn/fashion-cpu")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=1000, help="samples per model (default 1000)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "results" / "fid_draw_time.json"))
    args = p.parse_args(argv)
    set_threads(args.threads)
    import pixelzoo
    from pixelzoo.commands.evaluate import draw_samples

    result = {"n": args.n, "batch_size": 256, "threads": args.threads, "torch": torch.__version__, "models": {}}
    for preset in PRESETS:
        model_cfg = dict(pixelzoo.load_preset(preset)["model"])
        name = model_cfg.pop("name")
        model_cfg.pop("class_conditional", None)
        torch.manual_seed(0)
        model = pixelzoo.create_model(name, (1, 28, 28), 256, 10, **model_cfg).eval()
        t0 = time.perf_counter()
        x, _ = draw_samples(model, args.n, 256, seed=0)
        seconds = time.perf_counter() - t0
        stepper = type(model.trunk.incremental_stepper(model, 1, inputs=model.sampling_inputs(1, 1.0, None))).__name__
        result["models"][preset] = {"seconds": round(seconds, 2), "stepper": stepper, "images": int(x.shape[0])}
        print(preset, result["models"][preset], file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
