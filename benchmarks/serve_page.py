"""``pixelzoo serve`` measured from outside: the server runs as its own process (``pixelzoo serve
--port 0 --threads T``), and this script is its clients.

* **Latency**: for 16 samples of ``zoo:fashion-gated`` (class 0), the time from the request to the
  first row's picture and to the full grid, over the server-sent events stream (median of ``--repeats``).
* **Concurrency**: ``--clients`` clients at once against a queue of ``--queue``, each a bounded loop of
  ``--requests`` sampling requests (4 samples): every request is answered (its grid) or told "busy"
  (503), none errs; the
  server's resident memory (``/proc/PID/status``) before, during and after, to see it flat.
* **Malformed requests**: 50 of them (bad JSON, values out of range, unknown models and jobs,
  oversized bodies, bad uploads): every answer 4xx, and the server still samples afterwards.
* **Screenshots** (where Chromium, chromium-driver and Selenium are present): the sampling, inpainting,
  surprise-map and curves views, and a report file, as PNGs next to the JSON.

    python benchmarks/serve_page.py            # writes benchmarks/results/serve.json and serve_*.png
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_common import environment, write_result

ROOT = Path(__file__).resolve().parent
MODEL = "zoo:fashion-gated"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(url: str, body, raw: bytes | None = None, content_type="application/json"):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def sample(base: str, count: int, seed: int) -> dict:
    """One sampling request through the event stream: its status, time to the first row and to the end."""
    start = time.perf_counter()
    status, answer = post(base + "api/jobs", {"model": MODEL, "kind": "sample", "count": count, "class": 0,
                                              "seed": seed})
    if status != 202:
        return {"status": status, "error": answer.get("error")}
    first = None
    with urllib.request.urlopen(f"{base}api/jobs/{answer['job']}/events", timeout=300) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            state = json.loads(line[6:])
            if first is None and state.get("image"):
                first = time.perf_counter() - start
            if state["status"] in ("done", "failed", "stopped"):
                return {"status": 200, "job": state["status"], "first_row_s": first,
                        "total_s": time.perf_counter() - start}
    return {"status": 200, "job": "stream ended early"}


def malformed(base: str) -> list[int]:
    bad_png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 40).decode()
    bodies = [{"model": MODEL, "kind": "sample", "count": c} for c in (0, -1, 65, 1e9, 2.5, "x", True, None, [], {})]
    bodies += [{"model": MODEL, "kind": "sample", "temperature": t} for t in (-1, "nan", "inf", 11, "hot", [])]
    bodies += [{"model": MODEL, "kind": "sample", "class": c} for c in (-1, 10, 3.5, "shirt")]
    bodies += [{"model": MODEL, "kind": "sample", "seed": s} for s in (-1, 2**40, "x")]
    bodies += [{"model": m, "kind": "sample"} for m in ("zoo:none", "../..", "/etc/passwd", 5, None)]
    bodies += [{"model": MODEL, "kind": k} for k in ("colorize", "upscale", "reconstruct", "dance", None)]
    bodies += [{"model": MODEL, "kind": "inpaint", "test_index": 0, "mask": m} for m in ("01", "2" * 784, 7)]
    bodies += [{"model": MODEL, "kind": "surprise", "upload": u} for u in (bad_png, "data:image/png;base64,@@",
                                                                           "file:///etc/passwd", 12)]
    bodies += [{"model": MODEL, "kind": "surprise", "test_index": i} for i in (-1, 10**6)]
    answers = [post(base + "api/jobs", b)[0] for b in bodies]
    answers.append(post(base + "api/jobs", None, raw=b"{not json")[0])
    answers.append(post(base + "api/jobs", None, raw=b"[1, 2]")[0])
    answers.append(post(base + "api/jobs", None, raw=b"x" * (5 * 1024 * 1024))[0])
    answers.append(get(base + "api/jobs/nope")[0])
    answers.append(post(base + "api/jobs/nope/stop", {})[0])
    answers.append(get(base + "api/test-image?name=" + MODEL + "&index=abc")[0])
    answers.append(get(base + "api/model?name=zoo:none")[0])
    answers.append(get(base + "no/such/page")[0])
    return answers[:50]


def screenshots(base: str, out_dir: Path) -> list[str]:
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return []
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        return []
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    d = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    written = []

    def until(condition, timeout=120):
        WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda _: condition())

    def shot(name):
        path = out_dir / f"serve_{name}.png"
        d.save_screenshot(str(path))
        written.append(path.name)

    def done():
        return d.find_element(By.ID, "status-text").text.startswith("done")

    try:
        d.get(base)
        until(lambda: d.find_elements(By.CSS_SELECTOR, f'#model-list button[data-model="{MODEL}"]'))
        d.find_element(By.CSS_SELECTOR, f'#model-list button[data-model="{MODEL}"]').click()
        until(lambda: d.find_element(By.ID, "model-name").text == MODEL)
        count = d.find_element(By.NAME, "count")
        count.clear()
        count.send_keys("64")
        d.find_element(By.CSS_SELECTOR, "#sample-form .run").click()
        until(lambda: "row 1" in d.find_element(By.ID, "status-text").text or done())
        shot("sampling_rows")
        until(done)
        shot("sample")
        d.find_element(By.CSS_SELECTOR, '#tabs button[data-kind="inpaint"]').click()
        until(lambda: d.find_element(By.ID, "picked").text.startswith("test image"))
        time.sleep(0.3)
        d.find_element(By.ID, "mask-top").click()
        d.find_element(By.CSS_SELECTOR, "#image-form .run").click()
        until(done)
        shot("inpaint")
        d.find_element(By.CSS_SELECTOR, '#tabs button[data-kind="surprise"]').click()
        d.find_element(By.CSS_SELECTOR, "#image-form .run").click()
        until(done)
        shot("surprise")
        d.find_element(By.CSS_SELECTOR, '#tabs button[data-kind="curves"]').click()
        until(lambda: d.find_elements(By.CSS_SELECTOR, "svg.curve"))
        shot("curves")
    finally:
        d.quit()
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="the server's threads (default 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=6, help="sampling requests per client")
    p.add_argument("--queue", type=int, default=4, help="the server's queue (fewer than the clients: some are told busy)")
    p.add_argument("--out", default=str(ROOT / "results" / "serve.json"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "pixelzoo", "serve", "--port", "0", "--threads", str(args.threads),
                               "--queue", str(args.queue)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        base = re.search(r"(http://\S+/)", line).group(1)
        result = {"environment": environment(args.threads), "model": MODEL, "server": line.strip()}
        rss = {"started_mb": rss_mb(server.pid)}
        runs = [sample(base, 16, seed) for seed in range(args.repeats + 1)][1:]  # the first loads the model
        result["latency_16_samples"] = {
            "first_row_s": [round(r["first_row_s"], 4) for r in runs], "full_grid_s": [round(r["total_s"], 4) for r in runs],
            "median_first_row_s": round(statistics.median(r["first_row_s"] for r in runs), 4),
            "median_full_grid_s": round(statistics.median(r["total_s"] for r in runs), 4)}
        rss["after_latency_mb"] = rss_mb(server.pid)

        outcomes, during = [], []
        lock = threading.Lock()

        def client(k):
            for r in range(args.requests):
                answer = sample(base, 4, 1000 * k + r)
                with lock:
                    outcomes.append(answer)
                time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            during.append(rss_mb(server.pid))
            time.sleep(0.2)
        rss["during_concurrency_max_mb"] = max(during) if during else None
        rss["after_concurrency_mb"] = rss_mb(server.pid)
        result["concurrency"] = {
            "clients": args.clients, "queue": args.queue, "requests_each": args.requests,
            "answered": sum(o.get("job") == "done" for o in outcomes),
            "busy_503": sum(o["status"] == 503 for o in outcomes),
            "other": [o for o in outcomes if o.get("job") != "done" and o["status"] != 503]}
        answers = malformed(base)
        result["malformed"] = {"requests": len(answers), "all_4xx": all(400 <= a < 500 for a in answers),
                               "statuses": sorted(set(answers))}
        after = sample(base, 4, 7)
        result["malformed"]["still_serving"] = after.get("job") == "done"
        rss["end_mb"] = rss_mb(server.pid)
        result["server_rss_mb"] = {k: round(v, 1) for k, v in rss.items()}
        result["screenshots"] = screenshots(base, Path(args.out).parent)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write_result(result, args.out, start)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
