"""Training on a data set five times larger than the memory it may use, as JSON.

A synthetic data set of 64x64 RGB images (``--gb`` GB of training images: blocky random colour
fields with noise, and a small test split) is written in pixelzoo's prepared format (shards of 64 MB
with their sha256 and ``index.json``, exactly what ``pixelzoo prepare`` writes; generated here
directly, since no source of several GB exists on this machine) and dropped from the page cache.
Then, each in a cgroup-v1 memory cgroup (a child of this process's own memory cgroup) whose
``memory.limit_in_bytes`` is the data's size / ``--ratio`` (at most a fifth): (1) one epoch of the
training set read through the streaming loader (the training path's batches: random rows, flips;
``train.workers`` loader workers, memory maps; no model) for ``--read-seconds`` or one epoch; (2) ``pixelzoo train`` on it: opening the data set checks every
shard's checksum (``data.verify``, another full pass inside the cap), then a small Gated PixelCNN
(``gated_pixelcnn/digits``'s preset at 8 channels and 2 layers, a logistic-mixture head) trains from
the streamed shards until ``--seconds`` are spent. Recorded per phase: the cap; the cgroup's
``max_usage_in_bytes`` (the page cache of the mapped shards included, which the kernel reclaims at the
cap) and the peak of its ``total_rss`` (anonymous memory, which it cannot reclaim), sampled every
0.2 s; the process's peak RSS (``wait4``); ``failcnt`` (how often the cap was reached) and OOM kills.
The data set is removed afterwards. Where the memory cgroup cannot be written, the benchmark says so
and stops (nothing is measured without a cap).

    python3 benchmarks/beyond_memory.py [--gb 6] [--ratio 5] [--seconds 300] [--work /work/tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT.parent), str(ROOT)]  # this checkout's pixelzoo, and bench_common

import numpy as np  # noqa: E402

from bench_common import environment, make_cgroup, write_result  # noqa: E402
from pixelzoo.data.shards import FORMAT, INDEX_NAME, VERSION, shard_names  # noqa: E402
from pixelzoo.io import atomic_write_json  # noqa: E402

GB = 1 << 30
SHAPE = (3, 64, 64)
SHARD_IMAGES = (64 << 20) // math.prod(SHAPE)


def write_dataset(out: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    """The prepared format, written shard by shard; each shard synced and dropped from the page cache."""
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        shards = []
        for k in range(math.ceil(n / SHARD_IMAGES)):
            count = min(SHARD_IMAGES, n - k * SHARD_IMAGES)
            coarse = rng.integers(0, 256, (count, 3, 8, 8), dtype=np.uint8)
            x = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)
            x = np.clip(x.astype(np.int16) + rng.integers(-8, 9, x.shape, dtype=np.int16), 0, 255).astype(np.uint8)
            data = x.tobytes()
            name = shard_names(split, k)[0]
            with open(out / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            shards.append({"images": name, "count": count, "sha256": hashlib.sha256(data).hexdigest()})
        splits[split] = {"count": n, "shards": shards}
    index = {"format": FORMAT, "version": VERSION, "name": "synthetic64", "source": "benchmarks/beyond_memory.py",
             "image_shape": list(SHAPE), "num_levels": 256, "num_classes": None, "class_names": None,
             "prepared_with": {"synthetic": True, "seed": seed}, "splits": splits}
    atomic_write_json(index, out / INDEX_NAME)
    return index


def stat(cg: Path) -> dict:
    return dict((k, int(v)) for k, v in (line.split() for line in (cg / "memory.stat").read_text().splitlines()))


class Monitor(threading.Thread):
    """The peak of the cgroup's total_rss, total_cache and total_mapped_file, sampled every 0.2 s."""

    def __init__(self, cg: Path):
        super().__init__(daemon=True)
        self.cg, self.peak, self.done = cg, {"total_rss": 0, "total_cache": 0, "total_mapped_file": 0}, False

    def run(self):
        while not self.done:
            try:
                s = stat(self.cg)
                for k in self.peak:
                    self.peak[k] = max(self.peak[k], s.get(k, 0))
            except OSError:
                pass
            time.sleep(0.2)


def stream_pass(data_dir: str, batch: int, workers: int, seconds: float) -> None:
    """The training set read through the streaming loader (the training path's batches, its workers and
    memory maps), no model, for one epoch or ``seconds``: prints images read and seconds as JSON."""
    from pixelzoo.data.batches import BatchPlan
    from pixelzoo.data.loader import StreamingLoader
    from pixelzoo.data.shards import load_prepared

    train = load_prepared(data_dir, stream=True, verify=False).train
    plan = BatchPlan(len(train), batch, seed=0, flip=True)
    t0, n, total = time.perf_counter(), 0, 0
    for x, _, _ in StreamingLoader(train, plan, labels=False, workers=workers).batches(0, plan.per_epoch):
        n += x.shape[0]
        total += int(x[:, :, 0, 0].sum())   # touch the rows
        if time.perf_counter() - t0 > seconds:
            break
    print(json.dumps({"images": n, "seconds": round(time.perf_counter() - t0, 1), "checksum": total}))


def in_cgroup(cmd: list[str], cg: Path, log: Path) -> dict:
    """Run ``cmd`` in the cgroup ``cg`` (its peak usage reset first): exit code, seconds, the process's
    peak RSS, the cgroup's peak usage, the peaks of its rss / cache / mapped file, failcnt, OOM kills."""
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    (cg / "memory.max_usage_in_bytes").write_text("0")
    fail0 = int((cg / "memory.failcnt").read_text())
    oom0 = _oom_kills(cg)
    monitor = Monitor(cg)
    monitor.start()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(["sh", "-c", f'echo $$ > "{cg}/cgroup.procs" && exec "$@"', "sh", *cmd],
                             cwd=ROOT.parent, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    monitor.done = True
    monitor.join()
    text = log.read_text(errors="replace")
    return {"exit_code": os.waitstatus_to_exitcode(status), "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_gb_process": round(usage.ru_maxrss / (1 << 20), 3),
            "cgroup_max_usage_gb": round(int((cg / "memory.max_usage_in_bytes").read_text()) / GB, 3),
            "cgroup_peak_total_rss_gb": round(monitor.peak["total_rss"] / GB, 3),
            "cgroup_peak_total_cache_gb": round(monitor.peak["total_cache"] / GB, 3),
            "cgroup_peak_mapped_file_gb": round(monitor.peak["total_mapped_file"] / GB, 3),
            "cgroup_failcnt": int((cg / "memory.failcnt").read_text()) - fail0,
            "oom_kills": _oom_kills(cg) - oom0,
            "last_lines": [ln for ln in text.splitlines() if ln.strip()][-4:]}


def _oom_kills(cg: Path) -> int:
    return int(dict(line.split() for line in (cg / "memory.oom_control").read_text().splitlines()).get("oom_kill", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=6.0, help="GB of training images (GiB)")
    ap.add_argument("--ratio", type=float, default=5.0, help="data size / memory cap (at least 5)")
    ap.add_argument("--seconds", type=float, default=180.0, help="training time (train.time_budget)")
    ap.add_argument("--batch", type=int, default=16, help="training batch")
    ap.add_argument("--read-seconds", type=float, default=150.0, help="the longest the reading phase runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default="/work/tmp", help="where the data set is written (and removed)")
    ap.add_argument("--out", default=str(ROOT / "results" / "beyond_memory.json"))
    ap.add_argument("--stream-pass", metavar="DATA", help=argparse.SUPPRESS)   # the reading phase, run in the cgroup
    args = ap.parse_args()
    if args.stream_pass:
        return stream_pass(args.stream_pass, 256, args.workers, args.read_seconds)
    start = time.perf_counter()
    n_train = int(args.gb * GB) // math.prod(SHAPE)
    n_test = 64
    data_bytes = (n_train + n_test) * math.prod(SHAPE)
    cap = int(data_bytes / args.ratio)
    result = {"benchmark": "beyond_memory", "environment": environment(2),
              "what_else_ran": "other agents' jobs on the same 2 cores and 24 GB (see load_average)",
              "method": __doc__.split("\n\n")[1].replace("\n", " "),
              "data": {"images": n_train + n_test, "train_images": n_train, "image_shape": list(SHAPE),
                       "bytes": data_bytes, "gb": round(data_bytes / GB, 3)},
              "cap_bytes": cap, "cap_gb": round(cap / GB, 3), "data_over_cap": round(data_bytes / cap, 2)}
    cg, why = make_cgroup(cap, "beyond_memory")
    if cg is None:
        result["skipped"] = f"memory cgroup not writable here ({why}); nothing measured"
        write_result(result, args.out, start)
        print(result["skipped"])
        return
    work = Path(args.work) / f"beyond_memory_{os.getpid()}"
    try:
        t0 = time.perf_counter()
        write_dataset(work / "data", n_train, n_test)
        result["write_seconds"] = round(time.perf_counter() - t0, 1)
        r = in_cgroup([sys.executable, str(Path(__file__).resolve()), "--stream-pass", str(work / "data"),
                       "--workers", str(args.workers), "--read-seconds", str(args.read_seconds)], cg, work / "stream.log")
        try:
            read = json.loads(r["last_lines"][-1])
            r.update(images_read=read["images"], read_seconds=read["seconds"],
                     read_gb=round(read["images"] * math.prod(SHAPE) / GB, 3))
        except (IndexError, KeyError, json.JSONDecodeError):
            pass
        result["stream_pass"] = {"what": "the training set through the streaming loader for one epoch or "
                                         f"{args.read_seconds} s, batches of 256 (random rows, flips), "
                                         f"{args.workers} workers, no model", **r}
        print(json.dumps(result["stream_pass"], indent=1), flush=True)
        write_result(result, args.out, start)
        run = work / "run"
        sets = ["model.num_classes=null", "model.channels=8", "model.n_layers=2", "model.out_hidden=32",
                "model.head=logistic_mixture", "model.head_options={\"n_mix\": 2}", f"train.batch_size={args.batch}",
                f"train.workers={args.workers}", f"train.time_budget={args.seconds}", "train.polyak=null",
                "train.eval_every=0", "train.eval_images=64", "train.final_eval_images=64", "train.num_samples=0",
                "train.log_every=10", "train.checkpoint_every=100000", "data.stream=true", "data.verify=true"]
        cmd = [sys.executable, "-m", "pixelzoo", "train", "gated_pixelcnn/digits", "--data", "prepared", "--data-dir",
               str(work / "data"), "--out", str(run), "--steps", "1000000", "--threads", "2", "--no-progress"]
        cmd += [a for s in sets for a in ("--set", s)]
        r = in_cgroup(cmd, cg, work / "train.log")
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] \
            if (run / "metrics.jsonl").is_file() else []
        steps = max((m.get("step", 0) for m in metrics), default=0)
        result["train"] = {"what": "gated_pixelcnn/digits's preset at 8 channels, 2 layers, a 2-logistic head; "
                                   "data.verify (a checksum pass over every shard) first, then training for the "
                                   f"time budget of {args.seconds} s",
                           "steps": steps, "batch_size": args.batch, "images_read_in_training": steps * args.batch,
                           "checksum_pass_gb": round(data_bytes / GB, 3), **r}
        print(json.dumps(result["train"], indent=1))
        write_result(result, args.out, start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            cg.rmdir()
        except OSError:
            pass


if __name__ == "__main__":
    main()
