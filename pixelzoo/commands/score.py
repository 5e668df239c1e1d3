"""``pixelzoo score``: bits per dimension of new images under a trained model (each part's share
for a chain, the ELBO and IWAE bound for AGAVE), as CSV and JSON with a histogram PNG; ``--against``
scores a second set and reports the AUROC of telling the two apart by likelihood; ``--heatmap``
maps each pixel's -log2 p next to the image (``pixelzoo.evaluation.scoring``)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..data import load_dataset
from ..data.image_folder import read_image_folder
from ..data.npz import check_npz_archive, read_npz, to_nchw
from ..errors import ConfigError, DataError
from ..evaluation.metrics import auroc
from ..evaluation.scoring import fit_images, score_images, surprise_maps
from ..imaging import save_grid
from ..io import atomic_write_bytes, atomic_write_json, check_writable, output_paths
from ..zoo import local_dir
from ..training import load_run_model
from .options import COUNT, POSITIVE, SEED, add_device_option, add_progress_option, check_memory, number

LEVELS = number(int, 2, what="an integer >= 2")


class Images:
    """Images read for scoring: uint8/int (N, C, H, W), their levels, labels or None, and a name."""

    def __init__(self, images: torch.Tensor, levels: int, labels: torch.Tensor | None, name: str):
        self.images, self.levels, self.labels, self.name = images, levels, labels, name


def _option_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_images(spec: str, model_levels: int, split: str = "test", data_dir=None, levels: int | None = None,
                count: int | None = None) -> Images:
    """The images of ``spec``: a folder of images (class subfolders give labels; 256 levels), an .npz
    (``images`` [+ ``labels``] as ``pixelzoo sample`` writes, in the model's levels unless ``levels``
    says; or ``x_train``/``x_test`` [+ ``y_*``], the ``split``), or a data set name with options
    (``patches:grey=true,size=28``; its ``split``, its levels). The first ``count`` when given."""
    path = Path(spec)
    if path.is_dir():
        folder = read_image_folder(path)
        x = torch.from_numpy(folder.images)
        y = None if folder.labels is None else torch.from_numpy(folder.labels)
        found = Images(x, levels or 256, y, str(path))
    elif path.suffix.lower() == ".npz" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{spec}: no such file")
        check_npz_archive(path, ConfigError)
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
                arrays = {k: data[k] for k in ("images", "labels") if k in keys}
        except Exception as e:  # not a zip, truncated, ...
            raise ConfigError(f"{path}: cannot read it as .npz ({type(e).__name__}: {e})") from e
        if "images" in arrays:
            a = arrays["images"]
            if a.dtype.kind not in "ui" or a.ndim not in (3, 4):
                raise ConfigError(f"{path}: 'images' must be integer images (N, C, H, W) or (N, H, W), "
                                  f"got {a.dtype} {a.shape}")
            x = torch.from_numpy(to_nchw(a, str(path)).astype(np.int64))
            lab = arrays.get("labels")
            y = torch.from_numpy(lab.astype(np.int64)) if lab is not None and len(lab) == len(x) else None
            found = Images(x, levels or model_levels, y, str(path))
        else:
            x_train, y_train, x_test, y_test = read_npz(path, levels or 256)
            x, lab = (x_test, y_test) if split == "test" else (x_train, y_train)
            found = Images(torch.from_numpy(x), levels or 256, None if lab is None else torch.from_numpy(lab),
                           f"{path} ({split} split)")
    else:
        name, _, opts = spec.partition(":")
        options = {}
        for item in filter(None, opts.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f"{spec}: data set options are key=value, got {item!r}")
            options[key.strip()] = _option_value(value.strip())
        splits = load_dataset(name, data_dir, **options)
        data = splits.test if split == "test" else splits.train
        found = Images(data.images, data.num_levels, data.labels, data.name)
    if len(found.images) == 0:
        raise ConfigError(f"{spec} holds no images")
    if found.images.numel() and (int(found.images.min()) < 0 or int(found.images.max()) >= found.levels):
        raise ConfigError(f"{spec}: values lie in [{int(found.images.min())}, {int(found.images.max())}], not in "
                          f"[0, {found.levels}): give their number of levels with --levels")
    if count is not None:
        if count > len(found.images):
            raise ConfigError(f"-n {count} asks for more images than the {len(found.images)} of {found.name}")
        found.images = found.images[:count]
        found.labels = None if found.labels is None else found.labels[:count]
    found.name += f" ({len(found.images)} images)"
    return found


def _summary(values: torch.Tensor) -> dict:
    v = values.double()
    return {"mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0, "median": float(v.median()),
            "min": float(v.min()), "max": float(v.max())}


def _csv(scores: dict, labels) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    columns = sorted(scores, key=lambda k: (k != "bpd", k))
    w.writerow(["index", "label", *columns])
    for i in range(len(scores["bpd"])):
        w.writerow([i, "" if labels is None else int(labels[i]), *(f"{float(scores[k][i]):.6f}" for k in columns)])
    return out.getvalue().encode()


def _histogram(sets: list[tuple[str, torch.Tensor]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    values = torch.cat([v for _, v in sets]).numpy()
    bins = np.linspace(values.min(), values.max() + 1e-9, 41)
    for name, v in sets:
        ax.hist(v.numpy(), bins=bins, alpha=0.6, label=f"{name} (mean {float(v.mean()):.3f})")
    ax.set_xlabel("bits per dimension")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(buf.getvalue(), path)


def _heatmap_grid(x: torch.Tensor, levels: int, maps: torch.Tensor, path: Path) -> None:
    """Pairs [image, its map] (the maps on one shared colour scale, magma, 0 to the 99th percentile)."""
    from matplotlib import colormaps

    top = float(torch.quantile(maps.flatten().float(), 0.99)) or 1.0
    rgb = colormaps["magma"]((maps / top).clamp(0, 1).numpy())[..., :3]            # (N, H, W, 3)
    heat = torch.from_numpy((rgb * 255).round().astype(np.int64)).permute(0, 3, 1, 2)
    shown = (x.long() * 255 // max(levels - 1, 1)).clamp(0, 255)
    shown = shown.expand(-1, 3, -1, -1) if shown.shape[1] == 1 else shown
    pairs = torch.stack([shown, heat], 1).flatten(0, 1)
    save_grid(pairs, 256, path, ncol=2 * min(4, len(x)))


def score_command(run_dir, images: str, against: str | None = None, split: str = "test", data_dir=None,
                  count: int | None = None, levels: int | None = None, fit: bool = False, use_labels: bool = False,
                  samples: int = 16, heatmap: int = 0, batch_size: int = 64, seed: int = 0, out=None,
                  progress: bool = True, device=None) -> dict:
    """Score ``images`` (and ``against``) with the run's model; write OUT.csv (per image), OUT.json
    (summary, AUROC), OUT.png (histogram) and with ``heatmap`` N OUT-heatmap.png / .npz (the first N
    images' per-pixel -log2 p). Returns the summary and the paths."""
    model, _ = load_run_model(run_dir, device)
    stem = Path(out) if out else local_dir(run_dir) / "scores" / f"score-{time.strftime('%Y%m%d-%H%M%S')}"
    csv_path, json_path, png_path = output_paths(stem, ".csv", ".json", ".png")
    check_writable(csv_path.parent, "where the scores go")
    sets = [read_images(images, model.num_levels, split, data_dir, levels, count)]
    if against is not None:
        sets.append(read_images(against, model.num_levels, split, data_dir, levels, count))
    for s in sets:
        s.images = fit_images(s.images, s.levels, model.image_shape, model.num_levels, fit)
        check_memory(s.images.numel() * 8 * 2, f"{len(s.images)} images", "lower -n")
    results, columns = [], {}
    for s in sets:
        scores = score_images(model, s.images, s.labels, use_labels, batch_size, samples, seed, progress)
        if not all(torch.isfinite(v).all() for v in scores.values()):
            raise DataError(f"{s.name}: a score is not finite (an image the model gives probability 0)")
        results.append(scores)
        columns[s.name] = {k: _summary(v) for k, v in scores.items()}
    summary = {"model": str(run_dir), "scores": columns, "use_labels": use_labels, "fit": fit,
               "images": sets[0].name, "count": len(sets[0].images)}
    if "elbo_bpd" in results[0]:
        summary["importance_samples"] = samples
    if against is not None:
        summary["against"] = sets[1].name
        summary["auroc"] = auroc(results[0]["bpd"], results[1]["bpd"])  # OTHER scores higher: out of distribution
    paths = {"csv": str(csv_path), "json": str(json_path), "histogram": str(png_path)}
    if heatmap:
        if heatmap > len(sets[0].images):
            raise ConfigError(f"--heatmap {heatmap} asks for more images than the {len(sets[0].images)} scored")
        x = sets[0].images[:heatmap]
        lab = None if sets[0].labels is None else sets[0].labels[:heatmap]
        maps = surprise_maps(model, x, lab, use_labels, batch_size)
        heat_png, heat_npz = output_paths(stem.with_name(stem.name + "-heatmap"), ".png", ".npz")
        _heatmap_grid(x, model.num_levels, maps, heat_png)
        buf = io.BytesIO()
        np.savez(buf, bits=maps.float().numpy(), images=x.numpy().astype(np.int64))
        atomic_write_bytes(buf.getvalue(), heat_npz)
        paths.update(heatmap=str(heat_png), heatmap_npz=str(heat_npz))
    atomic_write_bytes(_csv(results[0], sets[0].labels), csv_path)
    title = f"{Path(run_dir).name}: " + (f"AUROC {summary['auroc']:.3f}" if against else sets[0].name)
    _histogram([(s.name, r["bpd"]) for s, r in zip(sets, results)], png_path, title)
    summary["files"] = paths
    atomic_write_json(summary, json_path)
    return summary


# ---------------------------------------------------------------------- the command line
def add_parser(subparsers):
    sc = subparsers.add_parser("score", help="bits/dim of new images under a trained model (CSV, JSON, histogram); "
                                             "--against: the AUROC of telling two sets apart; --heatmap: per-pixel "
                                             "surprise")
    sc.add_argument("run_dir")
    sc.add_argument("images", help="a folder of images, an .npz (`images` as `pixelzoo sample` writes, or x_test), "
                                   "or a data set name with options (e.g. fashion-mnist, patches:grey=true,size=28)")
    sc.add_argument("--against", metavar="OTHER", help="a second set of images, scored alike; reports the AUROC of "
                                                       "telling OTHER (out of distribution) from IMAGES by bits/dim")
    sc.add_argument("--split", choices=("test", "train"), default="test", help="the split of a data set (default test)")
    sc.add_argument("--data-dir", help="where a file-based data set reads from")
    sc.add_argument("-n", type=COUNT, help="score the first N images of each set (default all)")
    sc.add_argument("--levels", type=LEVELS, help="the input's levels when not its data set's "
                                                             "(a folder: 256; an .npz of images: the model's)")
    sc.add_argument("--fit", action="store_true", help="convert images that differ from the model's (resize, "
                                                       "1 <-> 3 channels, requantise levels) instead of refusing them")
    sc.add_argument("--use-labels", action="store_true", help="class-conditional models: condition on the images' "
                                                             "labels (default: labels marginalised, a uniform prior)")
    sc.add_argument("--samples", type=POSITIVE, default=16, help="importance samples per image for a latent-variable "
                                                                 "model (AGAVE: ELBO and IWAE; default 16)")
    sc.add_argument("--heatmap", type=COUNT, metavar="N", default=0,
                    help="also map -log2 p per pixel of the first N images (OUT-heatmap.png and .npz)")
    sc.add_argument("--batch-size", type=POSITIVE, default=64, help="images per forward pass (default 64)")
    sc.add_argument("--seed", type=SEED, default=0, help="random seed (the importance samples)")
    sc.add_argument("--out", help="output path without suffix (OUT.csv, OUT.json, OUT.png; default "
                                  "RUN_DIR/scores/score-TIME)")
    add_progress_option(sc)
    add_device_option(sc)
    return sc


def run(args) -> int:
    r = score_command(args.run_dir, args.images, args.against, args.split, args.data_dir, args.n, args.levels,
                      args.fit, args.use_labels, args.samples, args.heatmap, args.batch_size, args.seed, args.out,
                      progress=not args.no_progress, device=args.device)
    for name, cols in r["scores"].items():
        line = ", ".join(f"{k} {v['mean']:.4f}" for k, v in sorted(cols.items(), key=lambda kv: (kv[0] != "bpd", kv[0])))
        print(f"{name}: mean {line} (median bpd {cols['bpd']['median']:.4f})")
    if "auroc" in r:
        print(f"AUROC (telling {r['against']} from {r['images']} by bits/dim): {r['auroc']:.4f}")
    print("wrote " + ", ".join(r["files"].values()))
    return 0
