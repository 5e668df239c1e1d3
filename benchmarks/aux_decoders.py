"""Code predictability against the auxiliary decoder (De Fauw, Dieleman & Simonyan 2019, Fig. 5) at a
CPU budget, on Fashion-MNIST.

The paper trains autoencoders with a feed-forward (FF) or masked self-prediction (MSP) auxiliary
decoder, then a small fixed PixelCNN prior on their codes, and reads the prior's held-out NLL as the
codes' predictability. Its claims, checked here within one run (same seed, budgets, prior):

* deeper auxiliary decoders make the codes less predictable (higher NLL), for FF and MSP;
* MSP codes are more predictable than FF codes (at the same depth);
* larger MSP masks make the codes more predictable.

Configurations: FF and MSP (mask ``--msp-mask``, default 5x5 as in the paper) with ``--depths``
residual blocks in the auxiliary decoder (default 0, 1, 2, 4, 8; 0 = the sub-pixel input
convolution, a ReLU and the output 1x1 convolution), and MSP with ``--msp-depth`` blocks (default 2,
the paper's) and every mask size of ``--mask-sizes`` (default 1, 3, 5, 7; masks per image as in
appendix A); a configuration in both sweeps runs once. Every level is ``defauw/fashion-*-cpu``'s
level 1 (encoder: 4 blocks and a stride-2 convolution to 14x14 codes of one channel; teacher: 4
blocks) with the same codebook for all, ``--bits`` (default 6: 64 codes).

For each configuration:

1. only the encoder E + VQ and the auxiliary decoder A (with the teacher T for MSP) train, on
   ``DeFauwLevel.aux_loss`` (the level's own terms without the AR decoder, which the stop-gradient
   keeps out of the encoder's training; the AR decoder is built but never run), for ``--seconds``
   (or ``--steps``), on the whole training set; batch 32, lr 1e-3 decaying 0.9995 per step,
   gradient norm clipped to 1, no Polyak averaging (the presets' level-1 settings);
2. the codes of the first ``--prior-images`` training images and the first ``--test-images`` test
   images are extracted (``DeFauwLevel.encode``); on the test images, the auxiliary loss's terms
   (nats; MSP masks drawn from a fixed seed) and the codebook's perplexity (``perplexity_of``: the
   effective number of codes used) with its log2, the bits per code of the codes' marginal alone;
3. the fixed prior, a class-unconditional PixelSNAIL-style model over the 14x14 code map that embeds
   each code (``vqvae2.build_code_prior``, ``PRIOR`` below: the presets' prior without dropout; the
   same initial weights for every configuration), trains on the training codes for
   ``--prior-seconds`` (batch 32, lr 1e-3) and reports its test NLL in bits per code: the number of
   Fig. 5.

The encoder trains for a wall-clock budget, so a deeper (slower) decoder gets fewer steps: the steps
are in the JSON, and ``--steps N`` gives every configuration the same N steps instead (``--prior-steps``
likewise for the priors).

    python benchmarks/aux_decoders.py --threads 1        # the full run: 13 configurations, ~1.8 h on one core
    python benchmarks/aux_decoders.py --smoke --out /tmp/aux_smoke.json   # a minute: tiny budgets, few images

Writes ``benchmarks/results/aux_decoders.json`` (``--out``), after every configuration: the budgets,
torch version and threads, a row per configuration (steps, test auxiliary terms, perplexities, the
prior's bits per code) and ``claims``, the three claims read off the rows (Spearman's rank
correlation of the NLL with the depth / mask size, and the pairwise MSP - FF differences). One
thread by default (``--threads``).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
sys.path.insert(0, str(ROOT))
from bench_common import environment, write_result  # noqa: E402

#: the fixed prior over the codes (``vqvae2.build_code_prior``): the fashion presets' prior, no dropout
PRIOR = {"channels": 64, "n_blocks": 4, "kernel_size": 3, "attention_every": 2, "heads": 4, "dropout": 0.0,
         "out_res_blocks": 2, "code_embedding": 32, "out_hidden": 128}
#: the level's training (the presets' level 1) and the prior's
LEVEL_TRAIN = {"batch_size": 32, "lr": 1e-3, "lr_decay": 0.9995, "grad_clip": 1.0, "polyak": None}
PRIOR_TRAIN = {"batch_size": 32, "lr": 1e-3, "lr_decay": 1.0, "grad_clip": 1.0, "polyak": None}
AUX_TERMS = ("commitment", "aux_mse", "aux_nll", "teacher_nll", "distill_kl")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="defauw/fashion-msp-cpu", help="the preset whose level 1 every level copies")
    p.add_argument("--depths", default="0,1,2,4,8", help="residual blocks of the auxiliary decoder (FF and MSP)")
    p.add_argument("--msp-mask", type=int, default=5, help="the MSP mask size of the depth sweep")
    p.add_argument("--mask-sizes", default="1,3,5,7", help="MSP mask sizes of the mask sweep")
    p.add_argument("--msp-depth", type=int, default=2, help="the MSP decoder's blocks in the mask sweep")
    p.add_argument("--bits", type=int, default=6, help="codebook size 2^bits, the same for every configuration")
    p.add_argument("--seconds", type=float, default=240.0, help="training time of each encoder + auxiliary decoder")
    p.add_argument("--steps", type=int, help="train each encoder + auxiliary decoder for this many steps instead")
    p.add_argument("--prior-seconds", type=float, default=120.0, help="training time of each prior")
    p.add_argument("--prior-steps", type=int, help="train each prior for this many steps instead")
    p.add_argument("--prior-images", type=int, default=8000, help="training images whose codes the prior trains on")
    p.add_argument("--test-images", type=int, default=2000, help="test images of every evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-dir", help="where the checkpoints go (default: a temporary directory)")
    p.add_argument("--out", default=str(ROOT / "results" / "aux_decoders.json"))
    p.add_argument("--smoke", action="store_true", help="tiny budgets and few images: checks the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.seconds, args.prior_seconds, args.steps, args.prior_steps = 3.0, 3.0, None, None
        args.prior_images, args.test_images = 96, 64
        args.depths, args.mask_sizes = "0,2", "1,5"
    return args


def _ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def configurations(args) -> list[dict]:
    """The FF and MSP depth sweeps, then the MSP mask sweep, each configuration once."""
    plan = [{"aux": "ff", "depth": d, "mask_size": None} for d in _ints(args.depths)]
    plan += [{"aux": "msp", "depth": d, "mask_size": args.msp_mask} for d in _ints(args.depths)]
    plan += [{"aux": "msp", "depth": args.msp_depth, "mask_size": m} for m in _ints(args.mask_sizes)]
    unique = []
    for spec in plan:
        if spec not in unique:
            unique.append(spec)
    for spec in unique:
        mask = f"-mask{spec['mask_size']}" if spec["mask_size"] else ""
        spec["name"] = f"{spec['aux']}{mask}-depth{spec['depth']}"
    return unique


def level_options(base: dict, spec: dict, bits: int) -> dict:
    """The preset's level 1 with this configuration's auxiliary decoder and the common codebook."""
    cfg = copy.deepcopy(base)
    cfg.update(aux=spec["aux"], bits=bits, num_codes=None)
    cfg["aux_decoder"] = {**cfg.get("aux_decoder", {}), "n_blocks": spec["depth"]}
    if spec["aux"] == "ff":
        for key in ("teacher", "mask_size", "masks_per_image"):
            cfg.pop(key, None)
    else:
        cfg["mask_size"] = spec["mask_size"]
        cfg.pop("masks_per_image", None)  # appendix A's count for the size
    return cfg


class CodeNetworks(torch.nn.Module):
    """What trains in step 1: the level's encoder (with its codebooks) and auxiliary decoder (with
    the teacher), without the AR decoder; the loss is the level's ``aux_loss``."""

    has_likelihood = False
    num_classes = None

    def __init__(self, level):
        super().__init__()
        self.encoder, self.aux = level.encoder, level.aux


@torch.no_grad()
def evaluate_level(level, images: torch.Tensor, seed: int, batch: int = 100) -> tuple[dict, torch.Tensor]:
    """The auxiliary loss's terms on ``images`` (means over images, nats) and their codes."""
    level.eval()
    sums, codes = {}, []
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same MSP masks for every configuration
        for s in range(0, images.shape[0], batch):
            x = images[s:s + batch].long()
            out = level.aux_loss(x)
            for k in AUX_TERMS:
                if k in out:
                    sums[k] = sums.get(k, 0.0) + float(out[k]) * x.shape[0]
            codes.append(level.encode(x)[0])
    return {k: v / images.shape[0] for k, v in sums.items()}, torch.cat(codes)


@torch.no_grad()
def encode(level, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    level.eval()
    return torch.cat([level.encode(images[s:s + batch].long())[0] for s in range(0, images.shape[0], batch)])


def code_splits(train_codes: torch.Tensor, test_codes: torch.Tensor, num_codes: int):
    from pixelzoo.data.dataset import DataSplits, ImageDataset, image_dtype_for

    dtype = image_dtype_for(num_codes)
    return DataSplits(*(ImageDataset(f"fashion-mnist/codes1/{which}", c.to(dtype), None, num_codes, None,
                                     "codes of a benchmark level") for which, c in (("train", train_codes),
                                                                                    ("test", test_codes))))


def spearman(xs, ys) -> float | None:
    """Spearman's rank correlation (no ties expected), None for fewer than 3 points."""
    if len(xs) < 3:
        return None
    rank = lambda v: torch.tensor(v, dtype=torch.float64).argsort().argsort().double()  # noqa: E731
    a, b = rank(xs), rank(ys)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def claims(rows: list[dict], args) -> dict:
    """Fig. 5's claims, read off this run's test NLLs (bits per code)."""
    nll = {r["name"]: r["prior_test_bits_per_code"] for r in rows}
    sweep = lambda aux, mask: sorted((r["depth"], r["prior_test_bits_per_code"]) for r in rows  # noqa: E731
                                     if r["aux"] == aux and r["mask_size"] == mask)
    out = {}
    for kind, mask in (("ff", None), ("msp", args.msp_mask)):
        pts = sweep(kind, mask)
        if len(pts) >= 2:
            out[f"{kind}_depth"] = {"nll_by_depth": dict(pts), "spearman": spearman(*zip(*pts)),
                                    "deepest_less_predictable_than_shallowest": pts[-1][1] > pts[0][1]}
    pairs = [(d, nll[f"ff-depth{d}"], nll[f"msp-mask{args.msp_mask}-depth{d}"]) for d in _ints(args.depths)
             if f"ff-depth{d}" in nll and f"msp-mask{args.msp_mask}-depth{d}" in nll]
    if pairs:
        out["msp_vs_ff"] = {"depths": [p[0] for p in pairs], "msp_minus_ff": [p[2] - p[1] for p in pairs],
                            "msp_more_predictable_at": sum(p[2] < p[1] for p in pairs), "of": len(pairs)}
    masks = sorted((r["mask_size"], r["prior_test_bits_per_code"]) for r in rows
                   if r["aux"] == "msp" and r["depth"] == args.msp_depth)
    if len(masks) >= 2:
        out["msp_mask"] = {"nll_by_mask_size": dict(masks), "spearman": spearman(*zip(*masks)),
                           "largest_more_predictable_than_smallest": masks[-1][1] < masks[0][1]}
    return out


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    set_threads(args.threads)
    from pixelzoo.data import load_dataset
    from pixelzoo.models.composites.defauw.model import build_level
    from pixelzoo.models.composites.code_prior import build_code_prior
    from pixelzoo.nn.quantizer import perplexity_of
    from pixelzoo.training import load_config
    from pixelzoo.training.config import TrainConfig
    from pixelzoo.training.trainer import Trainer

    preset = load_config(args.preset)
    base = preset["model"]["levels"][0]
    data = load_dataset(preset["data"]["name"])
    shape, num_levels = data.image_shape, data.num_levels
    train_images = data.train.images[:args.prior_images]
    test_images = data.test.images[:args.test_images]
    if args.smoke:  # the encoder trains on a few images too
        data = type(data)(data.train.subset(range(256)), data.test.subset(range(args.test_images)))
    root = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="aux-decoders-bench-"))
    quiet = {"eval_every": 0, "num_samples": 0, "log_every": 2 if args.smoke else 10, "checkpoint_every": 10**9,
             "final_eval_images": 32, "seed": args.seed}
    level_train = TrainConfig(steps=args.steps or 10**9, time_budget=None if args.steps else args.seconds,
                              **LEVEL_TRAIN, **quiet)
    prior_train = TrainConfig(steps=args.prior_steps or 10**9,
                              time_budget=None if args.prior_steps else args.prior_seconds, **PRIOR_TRAIN,
                              **{**quiet, "final_eval_images": None})
    result = {"what": "De Fauw et al. 2019 Fig. 5: test NLL (bits per code) of a fixed prior on the codes of "
                      "encoders trained with FF / MSP auxiliary decoders",
              **environment(args.threads), "preset": args.preset, "bits": args.bits, "seed": args.seed,
              "budgets": {"level_seconds": None if args.steps else args.seconds, "level_steps": args.steps,
                          "prior_seconds": None if args.prior_steps else args.prior_seconds,
                          "prior_steps": args.prior_steps},
              "images": {"prior_train": train_images.shape[0], "test": test_images.shape[0],
                         "level_train": len(data.train)},
              "level_train": LEVEL_TRAIN, "prior": PRIOR, "prior_train": PRIOR_TRAIN, "smoke": args.smoke,
              "configs": []}

    for spec in configurations(args):
        cfg = level_options(base, spec, args.bits)
        torch.manual_seed(args.seed)
        level = build_level(1, cfg, shape, num_levels)
        nets = CodeNetworks(level)
        for part in ("level", "prior"):  # the trainer's metrics.jsonl goes there
            (root / spec["name"] / part).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        trained = Trainer(nets, data, level_train, root / spec["name"] / "level", progress=False, tensorboard=False,
                          loss=level.aux_loss).train()
        level_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        aux, test_codes = evaluate_level(level, test_images, args.seed)
        train_codes = encode(level, train_images)
        encode_seconds = time.perf_counter() - t0
        num_codes = level.encoder.num_codes
        ppl_train, ppl_test = perplexity_of(train_codes, num_codes), perplexity_of(test_codes, num_codes)

        torch.manual_seed(args.seed)  # the same initial prior for every configuration
        prior = build_code_prior(level.code_shape[1:], num_codes, None, **PRIOR)
        t0 = time.perf_counter()
        fitted = Trainer(prior, code_splits(train_codes, test_codes, num_codes), prior_train,
                         root / spec["name"] / "prior", progress=False, tensorboard=False).train()
        prior_seconds = time.perf_counter() - t0
        row = {**spec, "masks_per_image": getattr(level.aux, "masks_per_image", None),
               "level_steps": trained["step"], "level_train_seconds": round(level_seconds, 1),
               "test_aux": aux, "encode_seconds": round(encode_seconds, 1),
               "code_perplexity_train": ppl_train, "code_perplexity_test": ppl_test,
               "codes_used_test": int(test_codes.unique().numel()),
               "marginal_bits_per_code_test": math.log2(ppl_test),
               "prior_steps": fitted["step"], "prior_seconds": round(prior_seconds, 1),
               "prior_test_bits_per_code": fitted["test_bpd"]}
        result["configs"].append(row)
        result["claims"] = claims(result["configs"], args)
        print(f"{spec['name']}: {row['prior_test_bits_per_code']:.3f} bits/code (marginal "
              f"{row['marginal_bits_per_code_test']:.2f}, perplexity {ppl_test:.1f}), level {trained['step']} steps, "
              f"prior {fitted['step']} steps, aux {', '.join(f'{k} {v:.4f}' for k, v in aux.items())}",
              file=sys.stderr, flush=True)
        write_result(result, args.out, start)
    return result


if __name__ == "__main__":
    main()
