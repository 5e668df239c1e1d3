"""Every ``*-paper`` preset trained end to end on CPU, 2 steps of each part, then one sample, as JSON.

For each preset, one at a time and each phase in its own subprocess: a synthetic image folder at the
preset's image size (``--images`` smooth random images in 10 class folders) is prepared once per size
with ``pixelzoo prepare``; the preset trains every part for ``--steps`` steps (composites part by
part, the priors on codes from the level cache) with batches of 2 (``train.batch_size=2`` and the
same for every part that sets its own), evaluating on 2 test images and drawing no sample grid; then
``pixelzoo sample RUN -n 1`` draws one image. Per phase: wall time and the subprocess's peak RSS
(``wait4``'s ``ru_maxrss``); per preset, pixelzoo's own training-memory estimate for that batch
(weights, gradients, Adam, Polyak, a batch's activations traced on the meta device:
``pixelzoo.training.run.training_memory``). A preset estimated above ``--max-gb`` is skipped with
that reason; every phase runs in a memory cgroup of ``--max-gb`` (a child of this process's own; without
one, it is stopped when its RSS passes that), so an estimate that falls short (a part trained on codes
counts its weights only) ends in a recorded kill at the cap, not in a machine out of memory. A
sample that would take longer than ``--sample-timeout`` (a large image's code maps or pixels drawn
position by position on 2 cores) is stopped there and recorded as such, with the sampler's progress
at that moment (positions drawn per second, hence the time a whole sample would take).

    python3 benchmarks/paper_presets.py [--presets agave/cifar-paper,...] [--out benchmarks/results/paper_presets.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT.parent), str(ROOT)]  # this checkout's pixelzoo, and bench_common

import numpy as np  # noqa: E402

from bench_common import environment, make_cgroup, write_result  # noqa: E402

GB = 1 << 30


def paper_presets() -> list[str]:
    from pixelzoo.registry import list_presets

    return sorted(p for p in list_presets() if p.endswith("-paper"))


def image_size(preset: str) -> int:
    """The preset's image size: CIFAR-10's 32, else the size its name gives (celeba128, imagenet256, ffhq1024)."""
    name = preset.split("/")[1]
    if name.startswith("cifar"):
        return 32
    m = re.search(r"(\d+)", name)
    if m is None:
        raise SystemExit(f"{preset}: no image size in its name; add it to image_size()")
    return int(m.group(1))


def write_folder(root: Path, size: int, n: int, seed: int = 0) -> Path:
    """``n`` smooth random RGB PNGs of size x size in 10 class folders (low-resolution noise, upsampled)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(d / f"img{i:03d}.png")
    return root


def prepared(work: Path, size: int, n: int) -> Path:
    out = work / f"prepared{size}"
    if not (out / "index.json").is_file():
        src = write_folder(work / f"images{size}", size, n)
        subprocess.run([sys.executable, "-m", "pixelzoo", "prepare", str(src), str(out), "--test-fraction", "0.1",
                        "--no-progress"], check=True, cwd=ROOT.parent, env=child_env(), stdout=subprocess.DEVNULL)
    return out


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def overrides(preset: str, batch: int) -> list[str]:
    """``--set`` assignments: batches of ``batch`` for the run and for every part that sets its own, 2 test
    images, no evaluation before the end, no sample grid, loader in the training process."""
    from pixelzoo.registry import load_preset

    cfg = load_preset(preset)
    sets = [f"train.batch_size={batch}", "train.eval_images=2", "train.final_eval_images=2", "train.num_samples=0",
            "train.eval_every=0", "train.log_every=1", "train.workers=0"]
    for part, tc in (cfg.get("train_parts") or {}).items():
        if "batch_size" in tc:
            sets.append(f"train_parts.{part}.batch_size={batch}")
    return [a for s in sets for a in ("--set", s)]


def estimate(preset: str, data_dir: Path, batch: int) -> list[tuple[int, str]]:
    """pixelzoo's training-memory estimate per part for this preset on ``data_dir`` with these batches."""
    from pixelzoo.data.shards import load_prepared
    from pixelzoo.registry import load_preset
    from pixelzoo.training.config import RunConfig
    from pixelzoo.training.run import apply_overrides, resolve_model_config, training_memory

    sets = overrides(preset, batch)
    cfg = apply_overrides(load_preset(preset), sets[1::2])
    splits = load_prepared(data_dir, stream=False)
    rc = RunConfig.from_dict(cfg)
    rc = rc.with_model(resolve_model_config(rc.model, splits))
    return training_memory(rc, splits)


def timed(cmd: list[str], log: Path, timeout: float | None = None, cg: Path | None = None,
          cap: int | None = None) -> dict:
    """Run ``cmd``; its wall time, peak RSS (this process alone, from wait4), exit code and last line. In
    the memory cgroup ``cg`` when given (an OOM kill there is said), else stopped when its RSS passes
    ``cap`` bytes (polled every 0.2 s)."""
    t0 = time.perf_counter()
    oom0 = _oom_kills(cg) if cg is not None else 0
    if cg is not None:
        cmd = ["sh", "-c", f'echo $$ > "{cg}/cgroup.procs" && exec "$@"', "sh", *cmd]
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=ROOT.parent, env=child_env(), stdout=f, stderr=subprocess.STDOUT)
        deadline = None if timeout is None else t0 + timeout
        timed_out = over_cap = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline and not timed_out:
                p.terminate()   # SIGTERM: pixelzoo stops cleanly
                timed_out = True
            if cg is None and cap is not None and not over_cap and _rss(p.pid) > cap:
                p.kill()
                over_cap = True
            time.sleep(0.2)
    code = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    lines = [ln for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    row = {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_gb": round(usage.ru_maxrss / (1 << 20), 3),
           "exit_code": code, "timed_out": timed_out, "last_line": lines[-1][-300:] if lines else ""}
    if over_cap or (cg is not None and _oom_kills(cg) > oom0):
        row["killed_at_memory_cap_gb"] = round(cap / GB, 1) if cap else None
    return row


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _oom_kills(cg: Path) -> int:
    return int(dict(line.split() for line in (cg / "memory.oom_control").read_text().splitlines()).get("oom_kill", 0))


def sample_progress(log: Path) -> str | None:
    """The sampler's last progress bar (tqdm) in a log, e.g. '37%|... 1520/4096 [00:50<01:25, 30.1it/s]'."""
    bars = [b for b in re.split(r"[\r\n]+", log.read_text(errors="replace")) if re.search(r"\d+/\d+ \[", b)]
    return bars[-1].strip()[-200:] if bars else None


def run_preset(preset: str, work: Path, args) -> dict:
    size = image_size(preset)
    data = prepared(work, size, args.images)
    est = estimate(preset, data, args.batch)
    row = {"preset": preset, "image_size": size, "batch_size": args.batch, "steps_per_part": args.steps,
           "estimate_gb": {what: round(need / GB, 3) for need, what in est},
           "estimate_max_gb": round(max((n for n, _ in est), default=0) / GB, 3)}
    if row["estimate_max_gb"] > args.max_gb:
        row["skipped"] = f"estimated training memory {row['estimate_max_gb']} GB > {args.max_gb} GB on this machine"
        return row
    run = work / "runs" / preset.replace("/", "_")
    shutil.rmtree(run, ignore_errors=True)
    py = [sys.executable, "-m", "pixelzoo"]
    caps = {"cg": args.cgroup, "cap": int(args.cap_gb * GB)}
    row["train"] = timed(py + ["train", preset, "--data", "prepared", "--data-dir", str(data), "--out", str(run),
                               "--steps", str(args.steps), "--threads", str(args.threads), "--device", "cpu",
                               "--no-progress", *overrides(preset, args.batch)], work / "train.log",
                         getattr(args, "train_timeout", None), **caps)
    if row["train"]["exit_code"] != 0:
        return row
    from pixelzoo.training.checkpoint import read_checkpoint

    row["steps_done"] = {str(c.parent.relative_to(run)): read_checkpoint(c)[0]
                         for c in sorted(run.rglob("checkpoint.safetensors"))}
    log = work / "sample.log"
    out = work / "sample"
    (work / "sample.npz").unlink(missing_ok=True)
    row["sample"] = timed(py + ["sample", str(run), "-n", "1", "--seed", "0", "--threads", str(args.threads),
                                "--device", "cpu", "--out", str(out)], log, args.sample_timeout, **caps)
    if row["sample"]["timed_out"]:
        row["sample"]["progress_when_stopped"] = sample_progress(log)
    elif row["sample"]["exit_code"] == 0:
        x = np.load(work / "sample.npz")["images"]
        row["sample"]["shape"], row["sample"]["range"] = list(x.shape), [int(x.min()), int(x.max())]
    shutil.rmtree(run, ignore_errors=True)
    return row


def estimate_only(args) -> None:
    """Every preset's estimate per part at ``--batch``, written to ``paper_presets_estimate.json``."""
    start = time.perf_counter()
    out = args.out if args.out != str(ROOT / "results" / "paper_presets.json") else \
        str(ROOT / "results" / "paper_presets_estimate.json")
    presets = args.presets.split(",") if args.presets else paper_presets()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="paper_presets_"))
    rows = []
    try:
        for preset in presets:
            size = image_size(preset)
            est = estimate(preset, prepared(work, size, args.images), args.batch)
            rows.append({"preset": preset, "image_size": size, "batch_size": args.batch,
                         "estimate_gb": {what: round(need / GB, 3) for need, what in est},
                         "estimate_max_gb": round(max((n for n, _ in est), default=0) / GB, 3)})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    write_result({"benchmark": "paper_presets --estimate-only", "environment": environment(args.threads),
                  "presets": rows}, out, start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", help="comma-separated (default: every *-paper preset)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--images", type=int, default=40, help="images of the synthetic folder (a tenth held out)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-gb", type=float, default=16.0,
                    help="skip a preset whose training estimate exceeds this; the memory cap of every phase")
    ap.add_argument("--sample-timeout", type=float, default=600.0, help="seconds before a sample is stopped")
    ap.add_argument("--train-timeout", type=float, default=None, help="seconds before training is stopped")
    ap.add_argument("--work", help="folder for the data and runs (default: a temporary one, removed)")
    ap.add_argument("--out", default=str(ROOT / "results" / "paper_presets.json"))
    ap.add_argument("--merge", action="store_true", help="keep --out's rows of the presets not run now")
    ap.add_argument("--estimate-only", action="store_true",
                    help="only pixelzoo's training-memory estimate per part (meta device: seconds, no training); "
                         "--out defaults to paper_presets_estimate.json")
    args = ap.parse_args()
    if args.estimate_only:
        estimate_only(args)
        return
    start = time.perf_counter()
    presets = args.presets.split(",") if args.presets else paper_presets()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="paper_presets_"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "paper_presets", "environment": environment(args.threads),
              "what_else_ran": "other agents' jobs shared the 2 cores and 24 GB (see load_average)",
              "method": __doc__.split("\n\n")[1].replace("\n", " "), "presets": []}
    args.cap_gb = args.max_gb
    args.cgroup, why = make_cgroup(int(args.cap_gb * GB), "paper_presets")
    result["memory_cap"] = (f"each phase in a memory cgroup of {args.cap_gb} GB" if args.cgroup is not None else
                            f"each phase stopped when its RSS passes {args.cap_gb} GB (no memory cgroup: {why})")
    if args.merge and Path(args.out).is_file():   # keep the rows of the presets not run now
        old = json.loads(Path(args.out).read_text())
        result["presets"] = [r for r in old.get("presets", []) if r["preset"] not in presets]
    try:
        for preset in presets:
            print(f"== {preset}", flush=True)
            row = run_preset(preset, work, args)
            print(json.dumps(row), flush=True)
            result["presets"] = [r for r in result["presets"] if r["preset"] != preset] + [row]
            result["presets"].sort(key=lambda r: r["preset"])
            result["environment"] = environment(args.threads)
            write_result(result, args.out, start)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        if args.cgroup is not None:
            try:
                args.cgroup.rmdir()
            except OSError:
                pass


if __name__ == "__main__":
    main()
