"""AGAVE (Lucas & Verbeek 2018) at a CPU budget: the paper's Fig. 4 (lambda) and Fig. 5 (the
auxiliary image) on Fashion-MNIST, next to the plain pixel decoder trained alone for the same time.

For every configuration (lambda in ``--lambdas`` with y = x; then y with fewer colour levels and at
half resolution at ``--aux-lambda``), from the preset ``agave/fashion-cpu``:

* the pixel decoder is pretrained ONCE (unconditional: ``pretrain_condition`` "none", so it does not
  depend on lambda or y) for ``--pixel-seconds`` and copied into every run (the paper pretrains it
  apart and in parallel);
* the VAE is pretrained for ``--vae-seconds``, then everything jointly for ``--joint-seconds``;
* evaluated on the test set: the ELBO in bits/dim (the first ``--elbo-images``, default 2,000) with its
  terms (KL, the pixel decoder's reconstruction, the auxiliary term, the VAE's own bound on y) and
  the IWAE bound with k = ``--iwae-k`` (150, the paper's) on the first ``--iwae-images``;
* a grid of f(z) above pixel samples (z ~ N(0, I)) per lambda, next to the JSON: ``agave_lambda{L}.png``.

The baseline is the same pretrained pixel decoder trained on, alone, for ``--vae-seconds +
--joint-seconds`` more (so AGAVE and it get the same total time); its test bits/dim is an exact
NLL, not a bound.

    python benchmarks/agave.py                       # the README's run (about an hour on one core)
    python benchmarks/agave.py --smoke               # a minute: tiny budgets, a few test images
    python benchmarks/agave.py --run-dir R --full-test   # then: the ELBO on the whole test set, same runs

Writes ``benchmarks/results/agave.json`` (``--out``); one thread by default (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="agave/fashion-cpu")
    p.add_argument("--lambdas", default="1,2,4,8,12", help="lambda values with y = x (comma-separated)")
    p.add_argument("--aux-lambda", type=float, default=8.0, help="lambda of the auxiliary-image comparisons")
    p.add_argument("--aux-bins", default="32,16", help="colour levels of y at --aux-lambda (comma-separated)")
    p.add_argument("--aux-factors", default="2", help="downsampling factors of y at --aux-lambda (comma-separated)")
    p.add_argument("--pixel-seconds", type=float, default=240.0, help="pretraining of the shared pixel decoder")
    p.add_argument("--vae-seconds", type=float, default=40.0, help="pretraining of each VAE")
    p.add_argument("--joint-seconds", type=float, default=150.0, help="joint training of each configuration")
    p.add_argument("--elbo-images", type=int, default=2000, help="test images of the ELBO and the baseline's NLL "
                                                                 "(default 2000; 0: all)")
    p.add_argument("--iwae-images", type=int, default=50, help="test images of the IWAE bound")
    p.add_argument("--iwae-k", type=int, default=150, help="importance samples per image (the paper: 150)")
    p.add_argument("--grid-n", type=int, default=8, help="samples in each lambda's grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-dir", help="where the runs are written (default: a temporary directory)")
    p.add_argument("--out", default=str(ROOT / "results" / "agave.json"))
    p.add_argument("--smoke", action="store_true", help="tiny budgets and few images: checks the script runs")
    p.add_argument("--full-test", action="store_true",
                   help="no training: add the ELBO (and the baseline's NLL) on the whole test set to --out, for the "
                        "runs in --run-dir that made it")
    args = p.parse_args(argv)
    args.elbo_images = args.elbo_images or None
    if args.smoke:
        args.pixel_seconds, args.vae_seconds, args.joint_seconds = 4.0, 2.0, 4.0
        args.elbo_images, args.iwae_images, args.iwae_k, args.grid_n = 32, 4, 3, 2
        args.lambdas, args.aux_bins, args.aux_factors = "1,12", "16", "2"
    return args


def _floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def _ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def base_config(args):
    from pixelzoo.training import load_config

    config = load_config(args.preset)
    config.pop("preset", None)
    config["model"]["pretrain_condition"] = "none"
    # the units' own end-of-training evaluation on a few images only: this script evaluates every model itself
    train = dict(config["train"], num_samples=0, eval_every=0, sample_every=0, steps=10**9, final_eval_images=64)
    config["train"] = train
    config["train_parts"] = {"vae": {"time_budget": args.vae_seconds},
                             "pixel_decoder": {"time_budget": args.pixel_seconds},
                             "joint": {"time_budget": args.joint_seconds}}
    return config


def set_budget(run: Path, part: str, seconds: float) -> None:
    """Rewrite the run's time budget of ``part`` (what a user edits in config.json to train on)."""
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["train_parts"][part]["time_budget"] = seconds
    path.write_text(json.dumps(config, indent=1))


def trained_steps(run: Path, part: str) -> int:
    from pixelzoo.io import read_metadata

    return int(read_metadata(run / "parts" / part / "checkpoint.safetensors")["step"])


def evaluate(model, test, args) -> dict:
    from pixelzoo.evaluation.latent_bounds import dataset_latent_bounds
    from pixelzoo.training.held_out import dataset_bits_per_dim_parts

    t0 = time.perf_counter()
    parts = dataset_bits_per_dim_parts(model, test, 64, args.elbo_images)
    out = {"elbo_bpd": sum(parts.values()), "elbo_kl_bpd": parts["prior"], "elbo_recon_bpd": parts["pixel_decoder"],
           "elbo_images": args.elbo_images or len(test)}
    bounds = dataset_latent_bounds(model, test, args.iwae_k, 50, args.iwae_images, seed=0)
    out.update({f"subset_{k}": v for k, v in bounds.items()})
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def full_test(args) -> dict:
    """The ELBO and its two terms on the whole test set for every configuration of ``--out`` (its runs in
    ``--run-dir``), and the baseline's exact NLL there."""
    from pixelzoo.data import load_dataset
    from pixelzoo.training.held_out import dataset_bits_per_dim, dataset_bits_per_dim_parts
    from pixelzoo.models.composites.agave.model import PixelDecoderAlone
    from pixelzoo.training import load_run_model
    from pixelzoo.training.run import build_model, read_run_config
    from pixelzoo.training.runner import load_plan_weights

    root, out = Path(args.run_dir), Path(args.out)
    results = json.loads(out.read_text())
    test = None
    for row in results["configs"]:
        model, config = load_run_model(root / row["name"])
        test = test or load_dataset(config["data"]["name"]).test
        parts = dataset_bits_per_dim_parts(model, test, 64)
        row.update({"full_test_elbo_bpd": sum(parts.values()), "full_test_kl_bpd": parts["prior"],
                    "full_test_recon_bpd": parts["pixel_decoder"], "full_test_images": len(test)})
        print(row["name"], row["full_test_elbo_bpd"], file=sys.stderr)
        out.write_text(json.dumps(results, indent=1))
    shared = root / "pixel_decoder"
    agave = build_model(read_run_config(shared)["model"])
    load_plan_weights(agave.training_plan(), shared, ["pixel_decoder"])
    alone = PixelDecoderAlone(agave.pixel_decoder, agave.vae, "none").eval()
    results["baseline"]["full_test_bpd"] = dataset_bits_per_dim(alone, test, 64)
    out.write_text(json.dumps(results, indent=1))
    return results


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    if args.full_test:
        return full_test(args)
    from pixelzoo.data import load_dataset
    from pixelzoo.training.held_out import dataset_bits_per_dim
    from pixelzoo.imaging import save_levels_grid
    from pixelzoo.models.composites.agave.model import PixelDecoderAlone
    from pixelzoo.training import load_run_model, resume_run, start_run
    from pixelzoo.training.run import build_model, read_run_config
    from pixelzoo.training.runner import load_plan_weights

    root = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="agave-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    config = base_config(args)
    test = load_dataset(config["data"]["name"]).test
    results: dict = {"preset": args.preset, "threads": args.threads, "torch": torch.__version__,
                     "budget_seconds": {"pixel_decoder_pretraining": args.pixel_seconds, "vae": args.vae_seconds,
                                        "joint": args.joint_seconds},
                     "iwae_k": args.iwae_k, "configs": []}

    # the shared pixel decoder, pretrained unconditionally once
    shared = root / "pixel_decoder"
    start_run(config, shared, parts=["pixel_decoder"], progress=False, tensorboard=False).train()
    results["pixel_decoder_pretraining_steps"] = trained_steps(shared, "pixel_decoder")
    print(f"pixel decoder pretrained: {results['pixel_decoder_pretraining_steps']} steps", file=sys.stderr)

    plan = [{"kl_weight": lam, "aux_bins": None, "aux_factor": 1} for lam in _floats(args.lambdas)]
    plan += [{"kl_weight": args.aux_lambda, "aux_bins": b, "aux_factor": 1} for b in _ints(args.aux_bins)]
    plan += [{"kl_weight": args.aux_lambda, "aux_bins": None, "aux_factor": f} for f in _ints(args.aux_factors)]
    if args.aux_lambda not in _floats(args.lambdas):
        plan.append({"kl_weight": args.aux_lambda, "aux_bins": None, "aux_factor": 1})
    for spec in plan:
        name = f"lambda{spec['kl_weight']:g}-bins{spec['aux_bins'] or 256}-factor{spec['aux_factor']}"
        cfg = json.loads(json.dumps(config))
        cfg["model"].update({k: v for k, v in spec.items() if v is not None})
        run = root / name
        t0 = time.perf_counter()
        start_run(cfg, run, parts=["vae"], progress=False, tensorboard=False).train()
        shutil.copytree(shared / "parts" / "pixel_decoder", run / "parts" / "pixel_decoder")
        resume_run(run, parts=["joint"], progress=False, tensorboard=False).train()
        seconds = time.perf_counter() - t0
        model = load_run_model(run)[0]
        row = {"name": name, **spec, "vae_steps": trained_steps(run, "vae"), "joint_steps": trained_steps(run, "joint"),
               "train_seconds": round(seconds, 1), **evaluate(model, test, args)}
        if spec["aux_bins"] is None and spec["aux_factor"] == 1:
            grid = model.level_grid(args.grid_n, generator=torch.Generator().manual_seed(0))
            path = Path(args.out).parent / f"agave_lambda{spec['kl_weight']:g}.png"
            save_levels_grid(grid, path, scale=2)
            row["grid"] = path.name  # next to the JSON
        results["configs"].append(row)
        print(json.dumps(row), file=sys.stderr)
        args_out = Path(args.out)
        args_out.parent.mkdir(parents=True, exist_ok=True)
        args_out.write_text(json.dumps(results, indent=1))

    # the baseline: the same pixel decoder trained alone for the VAE's and the joint phase's time too
    set_budget(shared, "pixel_decoder", args.vae_seconds + args.joint_seconds)
    resume_run(shared, parts=["pixel_decoder"], progress=False, tensorboard=False).train()
    agave = build_model(read_run_config(shared)["model"])
    load_plan_weights(agave.training_plan(), shared, ["pixel_decoder"])  # its evaluation (Polyak) weights
    alone = PixelDecoderAlone(agave.pixel_decoder, agave.vae, "none").eval()
    results["baseline"] = {"what": "the pixel decoder alone (unconditional), trained for the pixel decoder's "
                                   "pretraining + the VAE's + the joint phase's time",
                           "steps": trained_steps(shared, "pixel_decoder"),
                           "test_bpd": dataset_bits_per_dim(alone, test, 64, args.elbo_images),
                           "images": args.elbo_images or len(test)}
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results["baseline"]), file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
