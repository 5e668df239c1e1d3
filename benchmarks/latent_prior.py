"""Sampling priors over a trained VAE's latents (Ostrovski et al. 2018: "use the VAE to reduce the
dimensionality of the problem and the AIQN to sample from the true latent distribution").

For one trained AGAVE run (``--run``, e.g. one of ``benchmarks/agave.py``'s runs): the VAE was
trained with the prior N(0, I), but its aggregate posterior (the latents of the data) need not be
N(0, I). Priors (``--priors``) are trained on the means of q(z | x) of the training images (the
chain's level cache), each for ``--prior-seconds``: an AIQN (``aiqn``: a Gated PixelCNN over the
latent map with the continuous implicit quantile head) and, as the likelihood baseline, the same
trunk with the Gaussian mixture head (``gaussian_mixture``); ``made_aiqn`` and
``made_gaussian_mixture`` put the same heads on a MADE over z as one flat vector. Then for N(0, I)
(unless ``--no-standard-normal``) and each prior, ``-n`` latents are drawn and
decoded: f(z) shown as an image (the VAE alone) and AGAVE's pixel samples given f(z); reported are
FID, precision and recall against the test set (the Fashion feature network, next to the
real-vs-real floor), and the energy distance of the drawn latents to the test images' latents.

    python benchmarks/agave.py --run-dir runs/agave-bench          # makes the runs
    python benchmarks/latent_prior.py --run runs/agave-bench/lambda8-bins256-factor1
    python benchmarks/latent_prior.py --run ... --priors made_aiqn,made_gaussian_mixture --no-standard-normal \
        --out benchmarks/results/latent_prior_made.json
    python benchmarks/latent_prior.py --run ... --priors aiqn --no-standard-normal --latent-source sample \
        --out benchmarks/results/latent_prior_sample.json

Writes ``benchmarks/results/latent_prior.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelzoo.threads import set_threads  # noqa: E402  (the user's choice: the library's policy leaves it)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # this checkout's pixelzoo, whichever is installed
PRIOR = {"name": "gated_pixelcnn", "channels": 64, "n_layers": 4, "kernel_size": 3, "first_kernel_size": 3,
         "out_hidden": 64}
#: a MADE over z as one flat vector (hidden must be at least z's dimensions: 392 for the fashion preset)
MADE = {"name": "made", "hidden": 1024, "n_layers": 2, "features": 16, "out_hidden": 64}
HEADS = {"aiqn": {"head": "quantile", "head_options": {"continuous": True, "kappa": 0.05}},
         "gaussian_mixture": {"head": "gaussian_mixture", "head_options": {"n_mix": 10}}}
#: the learned priors: name -> (network, head)
PRIORS = {"aiqn": (PRIOR, HEADS["aiqn"]), "gaussian_mixture": (PRIOR, HEADS["gaussian_mixture"]),
          "made_aiqn": (MADE, HEADS["aiqn"]), "made_gaussian_mixture": (MADE, HEADS["gaussian_mixture"])}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a trained agave run directory")
    p.add_argument("--prior-seconds", type=float, default=240.0, help="training time of each prior")
    p.add_argument("-n", type=int, default=1000, help="samples per prior (default 1000)")
    p.add_argument("--batch-size", type=int, default=128, help="prior training batch size")
    p.add_argument("--priors", default="aiqn,gaussian_mixture", help=f"learned priors, of {', '.join(PRIORS)}")
    p.add_argument("--no-standard-normal", action="store_true", help="skip N(0, I) (measured in an earlier run)")
    p.add_argument("--latent-source", choices=("mean", "sample"), default="mean",
                   help="what the priors train on: the means of q(z | x) (default) or draws from it, fresh "
                        "at every step (AGAVE's latent_source; held out, both are scored on the test means)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "results" / "latent_prior.json"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    from pixelzoo.evaluation.classifier import get_feature_network
    from pixelzoo.evaluation.metrics import energy_distance
    from pixelzoo.evaluation.sample_quality import compute_features, real_vs_real, sample_quality
    from pixelzoo.nn.levels import unscale_levels
    from pixelzoo.training import load_data, load_run_model
    from pixelzoo.training.config import TrainConfig
    from pixelzoo.training.run import build_model
    from pixelzoo.training.trainer import Trainer

    model, config = load_run_model(args.run)
    splits = load_data(config["data"])
    net = get_feature_network(config["data"]["name"], splits=splits, progress=False)
    real_f = compute_features(net, splits.test.images)
    latents = model.part_data("prior", splits)  # the means of q(z | x), through the level cache
    metrics = ("fid", "pr")
    names = [n.strip() for n in args.priors.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PRIORS))
    if unknown:
        raise SystemExit(f"latent_prior.py: unknown priors {unknown}; valid: {', '.join(PRIORS)}")
    result = {"run": str(args.run), "n": args.n, "prior_seconds": args.prior_seconds, "latent_source": args.latent_source,
              "networks": {name: PRIORS[name][0] for name in names},
              "floor": real_vs_real(splits, net, metrics, n=len(splits.test)), "priors": {}}
    priors = {} if args.no_standard_normal else {"standard_normal": model}
    work = Path(tempfile.mkdtemp(prefix="latent-prior-"))
    for name in names:
        network, head = PRIORS[name]
        cfg = json.loads(json.dumps(config["model"]))
        cfg["latent_prior"] = {**network, **head}
        cfg["latent_source"] = args.latent_source
        m = build_model(cfg)
        m.parts["vae"].load_state_dict(model.vae.state_dict())
        m.parts["pixel_decoder"].load_state_dict(model.pixel_decoder.state_dict())
        train = TrainConfig(steps=10**9, batch_size=args.batch_size, lr=1e-3, polyak=None, eval_every=0,
                            num_samples=0, time_budget=args.prior_seconds, final_eval_images=1000)
        data, loss = (latents, None) if args.latent_source == "mean" else (m.posterior_data(splits), m.prior_loss_on_draws)
        out = Trainer(m.parts["prior"], data, train, work / name, progress=False, tensorboard=False, loss=loss).train()
        priors[name] = m.eval()
        result["priors"][name] = {"steps": out["step"], **{k: v for k, v in out.items() if k.startswith("test_")}}
    for name, m in priors.items():
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(0)
        chunks = [m.sample_levels(min(250, args.n - s), generator=g) for s in range(0, args.n, 250)]
        lv = {k: torch.cat([c[k].cpu() for c in chunks]) for k in ("z", "means", "image")}
        seconds = time.perf_counter() - t0
        row = result["priors"].setdefault(name, {})
        row["latent_energy_distance"] = energy_distance(lv["z"][:2000], latents.test.images[:2000])
        means = unscale_levels(lv["means"], m.num_levels)
        if tuple(means.shape[1:]) == tuple(m.image_shape):
            row["vae_means"] = sample_quality(means, splits.test.images, net, metrics, real_features=real_f)
        row["agave_samples"] = sample_quality(lv["image"], splits.test.images, net, metrics, real_features=real_f)
        row["sampling_seconds"] = round(seconds, 1)
        print(name, json.dumps(row), file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()
