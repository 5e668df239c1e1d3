"""VQ-VAE-2 end to end on one preset, measured in one process (Razavi et al. 2019, Table 1, sec. 1 and
Fig. 7), written as JSON:

* stage 1: reconstruction MSE on training and test images (images scaled to [-1, 1], the scale the
  loss uses; also on the [0, 1] scale, MSE / 4);
* stage 2: each prior's NLL on the codes of the training and test images, in bits (and nats) per
  code: one dimension of a prior is one code of its map, so this is the Trainer's bits/dim;
* sampling speed: seconds to draw a batch of codes from the priors and decode it, against a
  pixel-space Gated PixelCNN (the trunk of preset ``gated_pixelcnn/fashion-cpu``) drawing the same
  number of images at the same resolution with the same sampler (weights do not change the time);
* sample quality: FID, IS and precision/recall (feature network: the data set's LeNet classifier)
  of samples without rejection (acceptance rate 1) and with classifier-based rejection at each
  acceptance rate, the classifier also being the scorer (see the notes in the output).

    python benchmarks/vqvae2.py --preset vqvae2/fashion-cpu --out benchmarks/results/vqvae2.json
    # tiny budgets, to check that it runs:
    python benchmarks/vqvae2.py --ae-steps 40 --prior-steps 30 --eval-images 500 --sample-batch 8 \\
        --fid-samples 50 --rates 1,0.5 --classifier-steps 60 --out benchmarks/results/vqvae2-smoke.json

Budgets: ``--ae-steps`` / ``--prior-steps`` override the preset's step counts, or
``--minutes-per-part`` gives each part a wall-clock budget instead; ``--run-dir`` evaluates an
existing run without training. ``--speed-only`` measures the sampling speed alone (no training, no
metrics), with ``--run-dir``'s weights or else untrained weights (the time of a step does not depend
on them), and writes ``benchmarks/results/vqvae2_speed.json`` unless ``--out`` says otherwise:

    python benchmarks/vqvae2.py --speed-only --speed-repeats 3 --threads 1 ``--classifier-steps`` trains a throw-away feature network kept in
the run directory (the shared cache of feature networks is then left alone).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's pixelzoo

import torch  # noqa: E402

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

import pixelzoo  # noqa: E402
from pixelzoo.evaluation import dataset_bits_per_dim, get_feature_network  # noqa: E402
from pixelzoo.evaluation.classifier import canonical_data_name  # noqa: E402
from pixelzoo.io import atomic_write_json  # noqa: E402
from pixelzoo.models.composites.vqvae2.autoencoder import level_names  # noqa: E402
from pixelzoo.commands.rejection_sweep import parse_rates, rejection_sweep  # noqa: E402
from pixelzoo.training import load_config, load_data, load_run_model, start_run  # noqa: E402
from pixelzoo.training.run import build_model, resolve_model_config  # noqa: E402


def train(args) -> tuple[Path, dict, float]:
    config = load_config(args.preset)
    if args.data_dir:
        config["data"]["data_dir"] = args.data_dir
    parts = config.setdefault("train_parts", {})
    levels = config["model"].get("autoencoder", {}).get("levels", [4, 2])
    names = ["autoencoder"] + [f"{n}_prior" for n in level_names(len(levels))]
    for name in names:
        p = parts.setdefault(name, {})
        if args.minutes_per_part is not None:
            p.update(steps=10**9, time_budget=args.minutes_per_part * 60)
        steps = args.ae_steps if name == "autoencoder" else args.prior_steps
        if steps is not None:
            p["steps"] = steps
    config["train"].update(eval_every=0, checkpoint_every=10**9, num_samples=args.train_samples)
    t0 = time.perf_counter()
    trainer = start_run(config, Path(args.runs) / args.preset.replace("/", "-"), progress=not args.no_progress,
                        tensorboard=False)
    result = trainer.train()
    return trainer.run_dir, result, time.perf_counter() - t0


@torch.no_grad()
def reconstruction_mse(model, images: torch.Tensor, batch_size: int = 256) -> dict:
    ae = model.autoencoder.eval()
    total, count = 0.0, 0
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size].long()
        xs = ae.scale(x)
        recon = ae.decode_codes(ae.encode(x))
        total += float((recon - xs).pow(2).sum())
        count += xs.numel()
    mse = total / count
    return {"mse_pm1": mse, "mse_01": mse / 4.0, "images": int(images.shape[0])}


def prior_nll(model, splits, run_dir: Path, max_images: int | None) -> dict:
    out = {}
    for name in model.prior_names:
        data = model.part_data(name, splits, run_dir / "cache")
        prior = model.parts[name].eval()
        row = {"code_shape": list(data.image_shape), "num_codes": data.num_levels, "codes_from": model.last_codes_source}
        for split, d in (("train", data.train), ("test", data.test)):
            bits = dataset_bits_per_dim(prior, d, 256, max_images)
            row[f"{split}_bits_per_code"] = bits
            row[f"{split}_nats_per_code"] = bits * math.log(2.0)
            row[f"{split}_images"] = len(d) if max_images is None else min(max_images, len(d))
        out[name] = row
    return out


@torch.no_grad()
def sampling_speed(model, batch: int, seed: int, repeats: int) -> dict:
    """Seconds to sample ``batch`` images from VQ-VAE-2 (codes + decoding) and from a pixel-space
    Gated PixelCNN of preset gated_pixelcnn/fashion-cpu's trunk at the same resolution."""
    y = torch.arange(batch) % model.num_classes if model.num_classes else None
    g = torch.Generator().manual_seed(seed)
    pixel_cfg = {k: v for k, v in pixelzoo.load_preset("gated_pixelcnn/fashion-cpu")["model"].items() if k != "name"}
    torch.manual_seed(seed)
    pixel = pixelzoo.create_model("gated_pixelcnn", model.image_shape, model.num_levels, model.num_classes,
                                  **pixel_cfg).eval()
    model.eval()
    runs = []
    for _ in range(repeats):
        row = {}
        t_all = time.perf_counter()
        maps = []
        for level, name in enumerate(model.prior_names):
            kw = {"cond": model.condition(maps, level)} if level else {}
            t = time.perf_counter()
            maps.append(model.parts[name].sample(batch, y=y, generator=g, **kw)[:, 0])
            row[f"{name}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        x = model.decode(maps)
        row["decode_s"] = time.perf_counter() - t
        row["vqvae2_total_s"] = time.perf_counter() - t_all
        t = time.perf_counter()
        xp = pixel.sample(batch, y=y, generator=g)
        row["pixel_gated_pixelcnn_s"] = time.perf_counter() - t
        assert x.shape == xp.shape
        runs.append(row)
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    return {
        "batch": batch, "repeats": repeats, "image_shape": list(model.image_shape),
        "code_shapes": [list(s) for s in model.code_shapes],
        "sequential_steps": {"vqvae2": sum(h * w for h, w in model.code_shapes),
                             "pixel": math.prod(model.image_shape)},
        "pixel_model": {"name": "gated_pixelcnn", **pixel_cfg,
                        "parameters": sum(p.numel() for p in pixel.parameters()),
                        "stepper": type(pixel.stepper(batch)).__name__},
        "vqvae2_parameters": {n: sum(p.numel() for p in model.parts[n].parameters()) for n in model.part_names},
        "seconds_best_of_repeats": {k: round(v, 4) for k, v in best.items()},
        "speedup_pixel_over_vqvae2": round(best["pixel_gated_pixelcnn_s"] / best["vqvae2_total_s"], 2),
        "runs": [{k: round(v, 4) for k, v in r.items()} for r in runs],
    }


def untrained_model(args):
    """The preset's model with freshly initialised weights, built for its data's shapes."""
    config = load_config(args.preset)
    if args.data_dir:
        config["data"]["data_dir"] = args.data_dir
    splits = load_data(config["data"])
    torch.manual_seed(args.seed)
    return build_model(resolve_model_config(config["model"], splits)).eval()


def speed_only(args, report: dict) -> None:
    """``--speed-only``: the sampling-speed comparison alone, written to ``args.out``."""
    if args.run_dir:
        model, _ = load_run_model(Path(args.run_dir))
        report.update(run_dir=args.run_dir, trained=True)
    else:
        model = untrained_model(args)
        report.update(trained=False, note="untrained weights (initialised with --seed): the time of a sampling "
                                          "step does not depend on the weights; no training, no quality metrics")
    report["sampling_speed"] = sampling_speed(model, args.sample_batch, args.seed, args.speed_repeats)
    atomic_write_json(report, args.out)
    print(json.dumps(report["sampling_speed"]["seconds_best_of_repeats"], indent=2),
          "speed-up", report["sampling_speed"]["speedup_pixel_over_vqvae2"])
    print(f"written to {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vqvae2/fashion-cpu")
    p.add_argument("--run-dir", help="evaluate this trained run instead of training one")
    p.add_argument("--ae-steps", type=int, help="stage-1 steps (default: the preset's)")
    p.add_argument("--prior-steps", type=int, help="steps of every prior (default: the preset's)")
    p.add_argument("--minutes-per-part", type=float, help="wall-clock budget of each part instead of step counts")
    p.add_argument("--train-samples", type=int, default=10, help="samples each part writes at the end of training")
    p.add_argument("--eval-images", type=int, help="images (and code maps) for MSE and NLL per split (default all)")
    p.add_argument("--sample-batch", type=int, default=16, help="batch of the sampling-speed comparison")
    p.add_argument("--speed-repeats", type=int, default=1, help="timing repeats (the best is reported)")
    p.add_argument("--fid-samples", type=int, default=1000, help="accepted samples per acceptance rate")
    p.add_argument("--rates", default="1,0.5,0.25,0.1", help="acceptance rates of the rejection sweep")
    p.add_argument("--sample-batch-size", type=int, default=100, help="batch size when drawing the FID samples")
    p.add_argument("--classifier-steps", type=int, help="train a throw-away feature network for this many steps, kept "
                                                        "in the run directory (default: the shared cached one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    p.add_argument("--data-dir", help="data folder (default: the data set's own)")
    p.add_argument("--runs", default="runs/bench-vqvae2", help="where the run directory goes")
    p.add_argument("--speed-only", action="store_true",
                   help="only the sampling-speed comparison (weights of --run-dir, else untrained)")
    p.add_argument("--out", help="JSON output path (default benchmarks/results/vqvae2.json; with --speed-only "
                                 "benchmarks/results/vqvae2_speed.json)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    if args.out is None:
        args.out = "benchmarks/results/vqvae2_speed.json" if args.speed_only else "benchmarks/results/vqvae2.json"
    set_threads(args.threads)
    rates = parse_rates(args.rates)

    report: dict = {"benchmark": "vqvae2", "preset": args.preset, "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
                    "args": vars(args)}
    if args.speed_only:
        speed_only(args, report)
        return
    if args.run_dir:
        run_dir, train_result, train_s = Path(args.run_dir), None, None
    else:
        run_dir, train_result, train_s = train(args)
    report["run_dir"] = str(run_dir)
    if train_result is not None:
        report["training"] = {"wall_s": round(train_s, 1),
                              "parts": {n: {k: v for k, v in r.items() if k in ("step", "train_seconds", "test_bpd",
                                                                                 "stopped_by_time_budget")}
                                        for n, r in train_result["parts"].items()}}
    model, config = load_run_model(run_dir)
    splits = load_data(config["data"])
    n_eval = args.eval_images

    t = time.perf_counter()
    report["reconstruction"] = {
        "train": reconstruction_mse(model, splits.train.images[:n_eval]),
        "test": reconstruction_mse(model, splits.test.images[:n_eval]),
        "note": "mean squared error per pixel value of decode(encode(x)) against x; mse_pm1 with images scaled to "
                "[-1, 1] (the training loss's scale), mse_01 on [0, 1]; the paper's Table 1 does not state its scale",
    }
    report["prior_nll"] = prior_nll(model, splits, run_dir, n_eval)
    report["prior_nll_note"] = ("NLL of each prior on the codes the trained encoder gives the training and test images, "
                                "bits (and nats) per code, i.e. the Trainer's bits/dim of the prior; comparable only "
                                "between priors over the same autoencoder's codes (paper, sec. 5.2.1)")
    report["eval_seconds"] = round(time.perf_counter() - t, 1)

    report["sampling_speed"] = sampling_speed(model, args.sample_batch, args.seed, args.speed_repeats)

    data_name = canonical_data_name(config["data"]["name"])
    cache_dir = run_dir / "feature-net" if args.classifier_steps is not None else None
    net = get_feature_network(data_name, splits=splits, cache_dir=cache_dir, steps=args.classifier_steps,
                              progress=not args.no_progress)
    t = time.perf_counter()
    plot = Path(args.out).with_suffix(".png")
    sweep = rejection_sweep(model, net, splits.test.images, rates, args.fid_samples, feature_net=net,
                            batch_size=args.sample_batch_size, seed=args.seed, progress=not args.no_progress,
                            plot=plot, reference=f"the {len(splits.test)} images of the {data_name} test set")
    sweep["seconds"] = round(time.perf_counter() - t, 1)
    sweep["feature_net_test_accuracy"] = (getattr(net, "config", {}) or {}).get("test_accuracy")
    sweep["feature_net_cache"] = str(cache_dir) if cache_dir else "the shared feature-network cache"
    report["sample_quality"] = sweep
    atomic_write_json(report, args.out)
    print(json.dumps({k: report[k] for k in ("reconstruction", "prior_nll")}, indent=2))
    print(json.dumps(report["sampling_speed"]["seconds_best_of_repeats"], indent=2),
          "speed-up", report["sampling_speed"]["speedup_pixel_over_vqvae2"])
    for row in sweep["results"]:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
