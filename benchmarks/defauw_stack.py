"""A De Fauw, Dieleman & Simonyan (2019) stack trained at a CPU budget on Fashion-MNIST, and measured:
sampled reconstructions (the paper's Fig. 6), class-conditional samples, FID / IS / precision /
recall next to the real-vs-real floor (its Table 1) and the joint bound with its parts (section 6,
appendix F).

For each preset of ``--preset`` (comma-separated; default ``defauw/fashion-ff-cpu``, one level of
14x14 codes with the feed-forward auxiliary decoder; ``defauw/fashion-msp-cpu`` is the MSP one), a
normal run directory ``RUN_DIR/<preset name>`` is trained the way ``pixelzoo train PRESET --part
level1`` and then ``pixelzoo train --resume RUN --part prior`` train it (``start_run`` /
``resume_run``, the presets' batch size, optimizer and learning rates), with wall-clock budgets
instead of the presets' step counts (``train_parts.*.time_budget``; the steps taken are in the JSON):

1. level 1 (encoder + VQ, auxiliary decoder, AR decoder, jointly) for ``--level-seconds``;
2. the class-conditional prior on the level's codes for ``--prior-seconds``, after the codes of
   every training and test image are extracted once into the run's level cache (timed apart:
   ``prior_data_seconds``).

So ``pixelzoo sample / evaluate / reconstruct RUN`` read the same run. Then, with the run's
evaluation weights (``load_run_model``: the prior's Polyak average):

* the joint bound -log2 p(x, z | y) / dims on the first ``--test-images`` test images, in bits per
  dimension of x, with each part's share (``dataset_bits_per_dim_parts``: ``level1`` is the AR
  decoder's -log p(x | z), ``prior`` the prior's -log p(z | y)), the prior's share also in bits per
  code next to the codes' marginal entropy, and the codebook's perplexity on those images' codes;
* ``-n`` class-conditional samples (labels ``i % 10``) at each temperature of ``--temperatures``
  (default 1.0 and 0.98: the paper finds 0.97-0.98 more consistently good), every part sampled at
  that temperature with the incremental samplers; FID, IS, precision and recall (k = 3) against the
  whole test set with the Fashion feature network (``get_feature_network``), next to two floors:
  the real-vs-real floor of ``real_vs_real`` (all 10,000 test images against 10,000 training
  images) and the same comparison for ``-n`` random training images (the floor at the samples'
  count: FID is biased upwards for fewer images);
* sampled reconstructions at ``--recon-temperature`` (0.99, the paper's Fig. 6): the codes of a test
  image, then the pixels sampled given them, ``--per-image`` times; on the first
  ``--recon-stats-images`` test images the mean squared error of a reconstruction to its original
  and between two reconstructions of the same image (pixels on [0, 1]).

    python benchmarks/defauw_stack.py --threads 1 --run-dir RUN              # ~28 min per preset on one thread
    python benchmarks/defauw_stack.py --preset defauw/fashion-ff-cpu,defauw/fashion-msp-cpu --run-dir R
    python benchmarks/defauw_stack.py --run-dir R --evaluate-only    # measure the runs in R again, no training
    python benchmarks/defauw_stack.py --smoke                          # a minute: tiny budgets, few images

Writes ``benchmarks/results/defauw_stack.json`` (``--out``; the smoke run ``/tmp/defauw_stack_smoke.json``)
after every preset, and next to it per preset ``defauw_stack_<preset name>_samples.png`` (one row
per class 0-9, ``--grid-per-class`` samples at each temperature, left to right as in
``--temperatures``, each column labelled with its temperature) and
``defauw_stack_<preset name>_reconstructions.png`` (one row per test image, the first test image of
each of the classes 0-7: the original, then ``--per-image`` sampled reconstructions). One thread
by default (``--threads``). The smoke run trains on 512 training images and 128 test images of
Fashion-MNIST, written as an ``.npz`` data set into its run directory.
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

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
sys.path.insert(0, str(ROOT))
from bench_common import environment, write_result  # noqa: E402

METRICS = ("fid", "is", "pr")
TRAINING_RECORD = "benchmark-training.json"  # what the training step measured, in each run directory
RECON_CLASSES = 8  # the reconstruction grid: the first test image of each of the classes 0-7


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="defauw/fashion-ff-cpu", help="preset(s), comma-separated")
    p.add_argument("--level-seconds", type=float, default=720.0, help="training time of level 1")
    p.add_argument("--prior-seconds", type=float, default=300.0, help="training time of the prior")
    p.add_argument("--test-images", type=int, default=1000, help="test images of the joint bound and perplexity")
    p.add_argument("-n", type=int, default=1000, help="samples per temperature for FID / IS / precision / recall")
    p.add_argument("--temperatures", default="1.0,0.98", help="sampling temperatures (comma-separated)")
    p.add_argument("--grid-per-class", type=int, default=6, help="samples per class and temperature in the grid")
    p.add_argument("--per-image", type=int, default=4, help="sampled reconstructions per test image")
    p.add_argument("--recon-temperature", type=float, default=0.99, help="temperature of the reconstructions")
    p.add_argument("--recon-stats-images", type=int, default=100,
                   help="test images of the reconstruction error statistics")
    p.add_argument("--sample-batch", type=int, default=250, help="images per sampling call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-dir", help="where the runs are written (default: a temporary directory)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="no training: measure the runs already in --run-dir (RUN_DIR/<preset name>)")
    p.add_argument("--out", help="the JSON (default benchmarks/results/defauw_stack.json; smoke: "
                                 "/tmp/defauw_stack_smoke.json); the PNGs go next to it")
    p.add_argument("--smoke", action="store_true", help="tiny budgets and few images: checks the script runs")
    args = p.parse_args(argv)
    if args.evaluate_only and not args.run_dir:
        p.error("--evaluate-only needs --run-dir")
    if args.smoke:
        args.level_seconds, args.prior_seconds = 8.0, 5.0
        args.test_images, args.n, args.grid_per_class, args.recon_stats_images = 32, 40, 2, 4
        args.per_image = 2
    if args.out is None:
        args.out = "/tmp/defauw_stack_smoke.json" if args.smoke else str(ROOT / "results" / "defauw_stack.json")
    return args


def _floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def short_name(preset: str) -> str:
    return preset.split("/")[-1]


def smoke_data(root: Path) -> dict:
    """The smoke run's data: the first 512 training and 128 test images of Fashion-MNIST as an
    ``.npz`` data set (the level cache then encodes 640 images, not 70,000)."""
    from pixelzoo.data import load_dataset

    full = load_dataset("fashion-mnist")
    path = root / "smoke-fashion.npz"
    np.savez_compressed(path, x_train=full.train.images[:512].numpy(), y_train=full.train.labels[:512].numpy(),
                        x_test=full.test.images[:128].numpy(), y_test=full.test.labels[:128].numpy())
    return {"name": "npz", "data_dir": str(path)}


def stack_config(args, preset: str, data: dict | None) -> dict:
    """The preset with wall-clock budgets for its two parts; the units' own end-of-training evaluation
    on a few images and no sample grids (this script measures the stack itself)."""
    from pixelzoo.training import load_config

    config = load_config(preset)
    if data is not None:
        config["data"] = data
    config["train"] = dict(config["train"], steps=10**9, eval_every=0, sample_every=0, num_samples=0,
                           final_eval_images=64)
    parts = config.setdefault("train_parts", {})
    for name, seconds in (("level1", args.level_seconds), ("prior", args.prior_seconds)):
        parts[name] = dict(parts.get(name, {}), steps=10**9, time_budget=seconds)
    return config


def train_stack(args, preset: str, root: Path, data: dict | None) -> tuple[Path, dict]:
    """Level 1, then the prior, as ``pixelzoo train --part`` does; returns the run and what it took."""
    from pixelzoo.training import resume_run, start_run

    config = stack_config(args, preset, data)
    t0 = time.perf_counter()
    runner = start_run(config, root / short_name(preset), parts=["level1"], progress=False, tensorboard=False)
    run = runner.run_dir
    level = runner.train()["parts"]["level1"]
    level_total = time.perf_counter() - t0
    print(f"{preset}: level 1 trained, {level['step']} steps in {level['train_seconds']:.0f} s "
          f"(held-out decoder {level['test_bpd']:.3f} bits/dim on 64 images)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    prior = resume_run(run, parts=["prior"], progress=False, tensorboard=False).train()["parts"]["prior"]
    prior_total = time.perf_counter() - t0
    print(f"{preset}: prior trained, {prior['step']} steps in {prior['train_seconds']:.0f} s "
          f"({prior_total - prior['train_seconds']:.0f} s for the codes and the evaluation)", file=sys.stderr,
          flush=True)
    record = {"level1_steps": level["step"], "level1_train_seconds": level["train_seconds"],
              "level1_seconds_with_setup": round(level_total, 1),
              "level1_test_bpd_64_images": level["test_bpd"],
              "prior_steps": prior["step"], "prior_train_seconds": prior["train_seconds"],
              "prior_data_seconds": round(prior_total - prior["train_seconds"], 1),
              "prior_test_bits_per_code_64_images": prior["test_bpd"],
              "seconds_per_level1_step": round(level["train_seconds"] / max(level["step"], 1), 2),
              "seconds_per_prior_step": round(prior["train_seconds"] / max(prior["step"], 1), 2),
              "budgets": {"level1_seconds": args.level_seconds, "prior_seconds": args.prior_seconds}}
    (run / TRAINING_RECORD).write_text(json.dumps(record, indent=1))
    return run, record


def draw(model, n: int, temperature: float, args, y=None, given=None) -> torch.Tensor:
    """``n`` images in batches of ``--sample-batch``, one generator seeded with ``--seed``."""
    g = torch.Generator().manual_seed(args.seed)
    out = []
    for s in range(0, n, args.sample_batch):
        e = min(n, s + args.sample_batch)
        out.append(model.sample(e - s, y=None if y is None else y[s:e], temperature=temperature,
                                generator=g).long().cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstructions(model, x: torch.Tensor, args) -> torch.Tensor:
    """``--per-image`` sampled reconstructions of each image of ``x``, image-major."""
    g = torch.Generator().manual_seed(args.seed)
    return torch.cat([model.sample_reconstructions(x[s:s + 50], args.per_image, temperature=args.recon_temperature,
                                                   generator=g).images.long().cpu() for s in range(0, x.shape[0], 50)])


def reconstruction_errors(x: torch.Tensor, rec: torch.Tensor, per_image: int, num_levels: int) -> dict:
    """Mean squared error (pixels on [0, 1]) of a reconstruction to its image, and between two
    reconstructions of the same image (the variation the AR decoder adds)."""
    scale = float(num_levels - 1)
    xs = x.double() / scale
    r = rec.double().view(x.shape[0], per_image, *x.shape[1:]) / scale
    to_original = ((r - xs[:, None]) ** 2).mean().item()
    between = None
    if per_image > 1:
        pairs = [((r[:, i] - r[:, j]) ** 2).mean().item() for i in range(per_image) for j in range(i + 1, per_image)]
        between = sum(pairs) / len(pairs)
    return {"mse_to_original": to_original, "mse_between_reconstructions": between, "images": int(x.shape[0]),
            "per_image": per_image}


def evaluate_stack(args, preset: str, run: Path, record: dict, net, floor_features, out_dir: Path) -> dict:
    from pixelzoo.training.held_out import dataset_bits_per_dim_parts
    from pixelzoo.evaluation.sample_quality import sample_quality
    from pixelzoo.imaging import save_grid
    from pixelzoo.nn.quantizer import perplexity_of
    from pixelzoo.training import load_data, load_run_model

    model, config = load_run_model(run)
    splits = load_data(config["data"])
    test = splits.test
    real_f = floor_features["test"]
    row = {"preset": preset, "run": str(run), **record}

    # the joint bound and its parts, the codebook
    t0 = time.perf_counter()
    parts = dataset_bits_per_dim_parts(model, test, 50, args.test_images)
    n_test = min(args.test_images, len(test))
    codes = torch.cat([model.encode(test.images[s:s + 250].long())["codes1"] for s in range(0, n_test, 250)])
    num_codes = model.levels["codes1"].num_levels
    per_code = math.prod(model.image_shape) / math.prod(model.levels["codes1"].shape)
    ppl = perplexity_of(codes, num_codes)
    row["bound"] = {"test_images": n_test, "joint_bpd": sum(parts.values()), "parts_bpd": parts,
                    "decoder_bpd_given_codes": parts["level1"],
                    "prior_bits_per_code": parts["prior"] * per_code,
                    "codes": {"shape": list(model.levels["codes1"].shape), "num_codes": num_codes,
                              "perplexity": ppl, "marginal_bits_per_code": math.log2(ppl),
                              "codes_used": int(codes.unique().numel())},
                    "seconds": round(time.perf_counter() - t0, 1)}
    print(f"{preset}: joint bound {row['bound']['joint_bpd']:.4f} bits/dim ({', '.join(f'{k} {v:.4f}' for k, v in parts.items())}); "
          f"perplexity {ppl:.1f} of {num_codes}", file=sys.stderr, flush=True)

    # class-conditional samples at each temperature
    classes = model.num_classes
    y = torch.arange(args.n) % classes
    row["samples"], grid, labels = {}, [], []
    k = args.grid_per_class
    for temp in _floats(args.temperatures):
        t0 = time.perf_counter()
        x = draw(model, args.n, temp, args, y=y)
        seconds = time.perf_counter() - t0
        np.savez_compressed(run / f"benchmark-samples-n{args.n}-t{temp}.npz", images=x.numpy().astype(np.uint8),
                            labels=y.numpy())
        q = sample_quality(x, test.images, net, METRICS, real_features=real_f, seed=args.seed)
        row["samples"][str(temp)] = {"n": args.n, "sampling_seconds": round(seconds, 1), **q}
        print(f"{preset}: T={temp}: {json.dumps(row['samples'][str(temp)])}", file=sys.stderr, flush=True)
        grid.append(torch.stack([x[y == c][:k] for c in range(classes)]))  # (classes, k, C, H, W)
        labels += [f"T={temp}"] * k
    grid = torch.cat(grid, dim=1)
    samples_png = out_dir / f"defauw_stack_{short_name(preset)}_samples.png"
    save_grid(grid.flatten(0, 1), model.num_levels, samples_png, ncol=grid.shape[1], scale=2, column_labels=labels)
    row["samples_png"] = samples_png.name

    # sampled reconstructions: the grid (the first test image of each class 0-7), then the statistics
    t0 = time.perf_counter()
    firsts = [int((test.labels == c).nonzero()[0]) for c in range(min(RECON_CLASSES, classes))]
    xg = test.images[firsts].long()
    rec = reconstructions(model, xg, args)
    tiles = torch.cat([torch.cat([xg[i:i + 1], rec[i * args.per_image:(i + 1) * args.per_image]])
                       for i in range(xg.shape[0])])
    recon_png = out_dir / f"defauw_stack_{short_name(preset)}_reconstructions.png"
    save_grid(tiles, model.num_levels, recon_png, ncol=args.per_image + 1, scale=3)
    xs = test.images[:args.recon_stats_images].long()
    row["reconstructions"] = {"temperature": args.recon_temperature, "grid_test_indices": firsts,
                              **reconstruction_errors(xs, reconstructions(model, xs, args), args.per_image,
                                                      model.num_levels),
                              "seconds": round(time.perf_counter() - t0, 1)}
    row["reconstructions_png"] = recon_png.name
    print(f"{preset}: reconstructions {json.dumps(row['reconstructions'])}", file=sys.stderr, flush=True)
    return row


def floors(args, net, splits, n_real: int) -> tuple[dict, dict]:
    """The real-vs-real floor (``real_vs_real``: ``n_real`` test images against as many training
    images) and the floor at the samples' count (``-n`` random training images against the same test
    images the samples are compared with); and the test images' features."""
    from pixelzoo.evaluation.sample_quality import compute_features, real_vs_real, sample_quality

    test_f = compute_features(net, splits.test.images)
    out = {"real_vs_real": real_vs_real(splits, net, METRICS, n=n_real, seed=args.seed)}
    g = torch.Generator().manual_seed(args.seed + 1)
    train = splits.train.images[torch.randperm(len(splits.train), generator=g)[:args.n]]
    out["train_images_at_n"] = {"n": int(train.shape[0]),
                                **sample_quality(train, splits.test.images, net, METRICS, real_features=test_f,
                                                 seed=args.seed)}
    return out, {"test": test_f}


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    set_threads(args.threads)
    from pixelzoo.data import load_dataset
    from pixelzoo.evaluation.classifier import get_feature_network
    from pixelzoo.evaluation.sample_quality import feature_network_id
    from pixelzoo.training import load_data, read_run_config

    root = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="defauw-stack-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    fashion = load_dataset("fashion-mnist")
    net = get_feature_network("fashion-mnist", splits=fashion, progress=False)
    data = None
    if args.smoke:
        data = smoke_data(root) if not args.evaluate_only else None
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    result = {"what": "De Fauw et al. 2019 stacks on Fashion-MNIST at a CPU budget: the joint bound and its parts, "
                      "class-conditional samples (FID / IS / precision / recall), sampled reconstructions",
              **environment(args.threads), "presets": presets, "seed": args.seed, "smoke": args.smoke,
              "feature_net": feature_network_id(net),
              "settings": {"level_seconds": args.level_seconds, "prior_seconds": args.prior_seconds,
                           "test_images": args.test_images, "n": args.n, "temperatures": _floats(args.temperatures),
                           "per_image": args.per_image, "recon_temperature": args.recon_temperature,
                           "recon_stats_images": args.recon_stats_images},
              "notes": ["bound: -log2 p(x, z | y) / 784 on the first test images, the prior class-conditional "
                        "(an upper bound on -log2 p(x | y)); parts: level1 = the AR decoder's -log p(x | z), prior "
                        "= -log p(z | y), both in bits per dimension of x; prior_bits_per_code = the prior's share "
                        "in bits per code (4 pixels per code)",
                        "samples: labels i % 10, every part sampled at the temperature; FID, IS, precision and "
                        "recall (k = 3) against all test images with the feature network; floors: real_vs_real "
                        "(test images against as many training images) and train_images_at_n (-n training "
                        "images against all test images, the samples' comparison with training images as "
                        "samples)"],
              "stacks": []}
    floor_done = None
    for preset in presets:
        if args.evaluate_only:
            run = root / short_name(preset)
            record = json.loads((run / TRAINING_RECORD).read_text())
        else:
            run, record = train_stack(args, preset, root, data)
        if floor_done is None:
            splits = load_data(read_run_config(run)["data"])
            floor, floor_features = floors(args, net, splits, len(splits.test))
            result["floor"] = floor
            print(f"floor: {json.dumps(floor)}", file=sys.stderr, flush=True)
            floor_done = read_run_config(run)["data"]
        elif read_run_config(run)["data"] != floor_done:
            raise SystemExit(f"{run} was trained on other data than the first preset's run")
        result["stacks"].append(evaluate_stack(args, preset, run, record, net, floor_features, out_dir))
        write_result(result, args.out, start)
    return result


if __name__ == "__main__":
    main()
