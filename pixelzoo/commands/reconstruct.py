"""``pixelzoo reconstruct``: sampled reconstructions of given images by a model that has them
(``SamplesReconstructions``): AGAVE (z ~ q(z | x), then x sampled given f(z)) and De Fauw et al.'s
hierarchies (the top codes of x, then every level below sampled given them); a PNG grid with, per
given image, a row for each auxiliary level shown as an image (AGAVE's f(z)) and a row of the samples
below, each row starting with the image itself, and an .npz. A model with a deterministic
reconstruction (``Reconstructs``: VQ-VAE-2, its codes decoded) gives one per image, next to it."""

from __future__ import annotations


import numpy as np
import torch

from ..errors import ConfigError
from ..imaging import save_grid
from ..io import atomic_write_npz
from ..devices import module_device
from ..models.base import Reconstructs, SamplesReconstructions
from ..training import load_run_model
from ..views import stretch_levels, upsample_nearest
from .colorize_upscale import _labels_for, check_count, given_images, output_files


def reconstruct_command(run_dir, images: str, count: int | None = None, per_image: int | None = None, cls=None,
                        temperature: float = 1.0, seed: int = 0, out=None, progress: bool = True,
                        device=None) -> dict:
    """See the module docstring; sampled on ``device`` (None: ``$PIXELZOO_DEVICE`` or auto);
    ``per_image`` None: 4 sampled reconstructions, or the one deterministic reconstruction."""
    model, config = load_run_model(run_dir, device)
    deterministic = isinstance(model, Reconstructs) and not isinstance(model, SamplesReconstructions)
    if not (deterministic or isinstance(model, SamplesReconstructions)):
        raise ConfigError(f"{run_dir} is a {config['model']['name']} run; reconstruct needs a model with sampled "
                          "reconstructions (agave, defauw) or a deterministic one (vqvae2)")
    if per_image is None:
        per_image = 1 if deterministic else 4
    if deterministic and per_image != 1:
        raise ConfigError(f"a {config['model']['name']} reconstruction is deterministic: one per image "
                          f"(--per-image 1), got {per_image}")
    check_count(model, count, per_image)
    png, npz = output_files(run_dir, out, "reconstruct")
    x, y = given_images(images, config, count, seed)
    model.check_level("image", x)
    if deterministic:
        with torch.no_grad():
            r = model.reconstruct(x.to(module_device(model))).cpu()
        save_grid(torch.stack([v for pair in zip(x, r) for v in pair]), model.num_levels, png, ncol=2)
        atomic_write_npz(npz, images=r.numpy().astype(np.uint8), labels=np.zeros(0, np.int64),
                         given=x.numpy().astype(np.uint8))
        return {"png": str(png), "npz": str(npz), "images": int(x.shape[0]), "per_image": 1, "shown_levels": [],
                "deterministic": True}
    y = _labels_for(model, y, cls, x.shape[0])
    lv = model.sample_reconstructions(x, per_image, y=y, temperature=temperature,
                                      generator=torch.Generator().manual_seed(seed), progress=progress)
    samples = lv.images.cpu()
    shown = []  # the auxiliary levels shown as images, at the image's size and on its levels
    for name in reversed(model.level_order[1:]):
        if model.levels[name].shown and name in lv:
            v, k = model.shown(name, lv[name].cpu())
            v = stretch_levels(v, k, model.num_levels)
            factor = model.image_shape[-1] // v.shape[-1]
            shown.append(upsample_nearest(v, factor) if factor > 1 else v)
    rows = []
    for i in range(x.shape[0]):
        block = slice(i * per_image, (i + 1) * per_image)
        for v in shown:
            rows += [x[i], *v[block]]
        rows += [x[i], *samples[block]]
    save_grid(torch.stack(rows), model.num_levels, png, ncol=per_image + 1)
    atomic_write_npz(npz, images=samples.numpy().astype(np.uint8),
                     labels=np.zeros(0, np.int64) if y is None else y.repeat_interleave(per_image).numpy(),
                     given=x.numpy().astype(np.uint8))
    return {"png": str(png), "npz": str(npz), "images": int(x.shape[0]), "per_image": per_image,
            "shown_levels": [name for name in reversed(model.level_order[1:]) if model.levels[name].shown]}


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    """``pixelzoo reconstruct``'s parser."""
    from .options import COUNT, NON_NEGATIVE, SEED, TEMPERATURE, add_device_option, add_progress_option

    rc = subparsers.add_parser("reconstruct", help="sampled reconstructions: agave (z ~ q(z | x), then x given f(z); f(z) "
                                                   "above the samples) or defauw (the top codes, then the levels below); "
                                                   "PNG grid + .npz")
    rc.add_argument("run_dir")
    rc.add_argument("images", help="`test` (random test images of the run's data) or an .npz with 'images' "
                                   "(and 'labels'), as `pixelzoo sample` writes")
    rc.add_argument("-n", type=COUNT, default=None,
                   help="number of given images (default 8, or all the input holds when fewer)")
    rc.add_argument("--per-image", type=COUNT, default=None,
                    help="reconstructions per given image (default 4; 1 for a deterministic one)")
    rc.add_argument("--class", dest="cls", type=NON_NEGATIVE, help="class of every image (class-conditional decoders)")
    rc.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature of the decoders")
    rc.add_argument("--seed", type=SEED, default=0, help="random seed (which test images, and the draws)")
    rc.add_argument("--out", help="output PNG path (default RUN_DIR/samples/reconstruct-TIME.png; the .npz next to it)")
    add_progress_option(rc)
    add_device_option(rc)
    return rc


def run(args) -> int:
    """``pixelzoo reconstruct``: ``reconstruct_command`` and what it wrote."""
    r = reconstruct_command(args.run_dir, args.images, args.n, args.per_image, cls=args.cls,
                            temperature=args.temperature, seed=args.seed, out=args.out,
                            progress=not args.no_progress, device=args.device)
    if r.get("deterministic"):
        print(f"reconstructions (each image, then its reconstruction): {r['png']}; reconstructions: {r['npz']}")
        return 0
    above = "".join(f"a row of {name}, " for name in r["shown_levels"])
    print(f"reconstructions (per image: {above}a row of samples; each row starts with the image): {r['png']}; "
          f"samples: {r['npz']}")
    return 0
