"""``pixelzoo serve``'s application through Flask's test client (the browser tests are in
test_serve_browser.py): the catalogue of zoo models and runs, sampling that streams its rows and ends
with the sampler's own images, inpainting that keeps the known pixels, colourise / upscale /
reconstruct on trained composites, the surprise map against the model's log p, the work queue
(bounded, one computation per model, stop), every request value checked with a 4xx, the loopback
Host check and the access token, uploads."""

import base64
import io
import json
import math
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from pixelzoo.cli import main
from pixelzoo.imaging import make_grid
from pixelzoo.serve.app import _task, create_app
from pixelzoo.serve.catalogue import Catalogue
from pixelzoo.serve import work
from pixelzoo.serve.jobs import Busy, Job, WorkQueue
from pixelzoo.serve.server import PageServer
from pixelzoo.training import load_run_model, start_run
from pixelzoo.training.run import apply_overrides, load_config
from pixelzoo.zoo import list_zoo

SHORT = ["train.log_every=1", "train.eval_every=0", "train.checkpoint_every=100", "train.num_samples=0",
         "train.polyak=null", "train.batch_size=16"]


def _train(config, out, steps):
    config = apply_overrides(config, SHORT + [f"train.steps={steps}"])
    start_run(config, out, progress=False, tensorboard=False).train()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of runs on the digits: a small Gated PixelCNN, and the three composites the page has
    tabs for (grayscale, pyramid, VQ-VAE-2), each trained a few steps."""
    root = tmp_path_factory.mktemp("serve")
    flat = load_config("gated_pixelcnn/digits")
    flat = apply_overrides(flat, ["model.channels=8", "model.n_layers=2", "model.out_hidden=16"])
    _train(flat, root / "flat", 4)
    gray = apply_overrides(load_config("grayscale_pixelcnn/digits"),
                           ["model.conditional.channels=8", "model.conditional.n_layers=1", "model.embedding.channels=8",
                            "model.embedding.out_channels=8", "model.prior.channels=8", "model.prior.n_layers=1"])
    _train(gray, root / "family" / "gray", 2)
    _train(load_config("pyramid_pixelcnn/digits"), root / "family" / "pyramid", 2)
    vq = {"model": {"name": "vqvae2",
                    "autoencoder": dict(hidden=16, res_channels=8, n_res_blocks=1, embed_dim=8, num_codes=16, levels=[2, 2]),
                    "top_prior": dict(channels=8, n_blocks=1, kernel_size=3, attention_every=1, heads=2, out_res_blocks=1,
                                      code_embedding=6, dropout=0.0),
                    "bottom_prior": dict(channels=8, n_blocks=1, kernel_size=3, code_embedding=6, dropout=0.0,
                                         cond_embedding=4, cond_channels=8, cond_res_channels=8, cond_blocks=1,
                                         spatial_channels=4)},
          "data": {"name": "digits"}, "train": {"steps": 2, "lr": 0.001}}
    _train(vq, root / "vq", 2)
    (root / ".hidden" / "x").mkdir(parents=True)
    (root / ".hidden" / "x" / "config.json").write_text((root / "flat" / "config.json").read_text())
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "config.json").write_text('{"name": "gated_pixelcnn"}')  # a saved model, not a run
    return root


@pytest.fixture(scope="module")
def served(runs):
    catalogue, queue = Catalogue(runs), WorkQueue(capacity=4)
    yield create_app(catalogue, queue).test_client(), catalogue
    queue.close()


def states(client, body):
    """Every state a job streams, in order (the last is final)."""
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 202, r.json
    stream = client.get(f"/api/jobs/{r.json['job']}/events")
    assert stream.mimetype == "text/event-stream"
    out = []
    for block in stream.data.decode().split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0] == "event: state":
            out.append(json.loads(lines[1][len("data: "):]))
    return out


def decode(uri):
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def cell(grid, k, h, w, row=0):
    """The image in column ``k`` (and ``row``) of a scale-1 grid with 1-pixel padding."""
    top, left = 1 + row * (h + 1), 1 + k * (w + 1)
    return grid[top:top + h, left:left + w, 0]


def test_catalogue_lists_zoo_models_and_runs_not_parts_or_hidden(served):
    client, _ = served
    names = client.get("/api/models").json["models"]
    zoo = [f"zoo:{n}" for n in list_zoo()]
    assert {"zoo:digits", "zoo:fashion-gated"} <= set(zoo) and names[:len(zoo)] == zoo
    assert names[len(zoo):] == ["family/gray", "family/pyramid", "flat", "vq"]
    assert client.get("/api/model?name=../flat").status_code == 404
    assert client.get("/api/model?name=/etc").status_code == 404
    assert client.get("/api/model?name=.hidden/x").status_code == 404


def test_cards_say_what_each_model_can_do(served):
    client, _ = served
    caps = {n: client.get(f"/api/model?name={n}").json["capabilities"]
            for n in ("flat", "family/gray", "family/pyramid", "vq", "zoo:digits")}
    assert caps["flat"] == ["sample", "inpaint", "surprise"]
    assert "colorize" in caps["family/gray"] and "inpaint" not in caps["family/gray"]
    assert "upscale" in caps["family/pyramid"]
    assert "reconstruct" in caps["vq"]
    card = client.get("/api/model?name=zoo:fashion-gated").json
    assert card["card"]["test_bpd_full"] == pytest.approx(2.8576) and card["image_shape"] == [1, 28, 28]
    assert card["sample_metrics"]["count"] == 1000


def test_sampling_reports_every_row_then_the_samplers_own_images(served, runs):
    """The computation reports each of a digit's 8 rows with the picture so far; the stream sends the
    latest state as it changes (a slow reader may skip rows, never reorder them); the grid at the end
    is the sampler's own images for the seed, and every picture on the way shows its rows as they end."""
    client, catalogue = served
    model, _ = load_run_model(runs / "flat")
    reported = []

    class Recording(Job):
        def report(self, done, total, **values):
            reported.append((done, total, values.get("image")))
            super().report(done, total, **values)

    work.sample(Recording("flat", "sample", lambda job: {}), model, 5, 7, 0.9, 3)
    assert [(d, t) for d, t, _ in reported] == [(k, 8) for k in range(1, 9)] and all(p for _, _, p in reported)
    seen = states(client, {"model": "flat", "kind": "sample", "count": 5, "class": 7, "temperature": 0.9, "seed": 3})
    rows = [s["done"] for s in seen if s["status"] == "running" and s.get("image")]
    assert rows == sorted(set(rows)) and rows[-1] == 8 and seen[-1]["status"] == "done"
    x = model.sample(5, y=torch.full((5,), 7), temperature=0.9, generator=torch.Generator().manual_seed(3))
    expected = make_grid(x, model.num_levels, ncol=5, scale=1)
    assert np.array_equal(decode(seen[-1]["result"]["image"]), expected)
    for done, _, picture in reported:  # rows 0..done-1 drawn as in the end, the rest not yet
        assert np.array_equal(decode(picture)[:1 + done], expected[:1 + done])
        assert all((cell(decode(picture), k, 8, 8)[done:] == 0).all() for k in range(5))


def test_inpainting_keeps_the_pixels_drawn_over(served):
    client, catalogue = served
    mask = "1" * 20 + "0" * 44
    seen = states(client, {"model": "flat", "kind": "inpaint", "test_index": 5, "mask": mask, "per_image": 3, "seed": 1})
    assert seen[-1]["status"] == "done", seen[-1]
    grid = decode(seen[-1]["result"]["image"])
    image = cell(grid, 0, 8, 8)
    keep = np.array([c == "1" for c in mask]).reshape(8, 8)
    for k in range(2, 5):
        assert np.array_equal(cell(grid, k, 8, 8)[keep], image[keep])
    test = catalogue.test_images("flat")
    assert np.array_equal(image, make_grid(test.images[5:6].long(), 17, scale=1)[1:9, 1:9, 0])


def test_surprise_map_is_the_models_log_prob(served, runs):
    client, catalogue = served
    seen = states(client, {"model": "flat", "kind": "surprise", "test_index": 2})
    result = seen[-1]["result"]
    model, _ = load_run_model(runs / "flat")
    test = catalogue.test_images("flat")
    x, y = test.images[2:3].long(), test.labels[2:3]
    with torch.no_grad():
        bits = -float(model.log_prob(x, y).sum()) / math.log(2) / 64
    assert result["bits_per_dim"] == pytest.approx(bits, rel=1e-5)
    assert decode(result["image"]).shape == (10, 19, 3)  # the image and its heat map side by side


def test_a_chains_samples_come_with_their_levels(served):
    """A pyramid's samples: per sample its 2x2 and 4x4 levels (enlarged) and then the 8x8 image, four
    samples to a line of the grid."""
    client, _ = served
    seen = states(client, {"model": "family/pyramid", "kind": "sample", "count": 4, "class": 2})
    result = seen[-1]["result"]
    assert "2x2, 4x4 (top first), then the image" in result["caption"]
    grid = decode(result["image"])
    assert grid.shape == (9 + 1, 12 * 9 + 1, 3)  # 4 samples of 3 pictures each, on one line
    low = cell(grid, 0, 8, 8)
    assert (low[::4, ::4].repeat(4, 0).repeat(4, 1) == low).all()  # the 2x2 level, enlarged to 8x8


@pytest.mark.parametrize("name,kind,levels", [("family/gray", "colorize", {"image"}),
                                              ("family/pyramid", "upscale", {"image", "4x4"}),
                                              ("vq", "reconstruct", set())])
def test_composites_colourise_upscale_and_reconstruct(served, name, kind, levels):
    client, catalogue = served
    body = {"model": name, "kind": kind, "test_index": 0, "per_image": 2, "seed": 0}
    seen = states(client, body)
    assert seen[-1]["status"] == "done", seen[-1]
    assert decode(seen[-1]["result"]["image"]).shape[0] >= 10
    reported = []  # the computation reports the rows of every level it samples

    class Recording(Job):
        def report(self, done, total, **values):
            reported.append(values.get("level"))
            super().report(done, total, **values)

    model = catalogue.model(name)
    _task(kind, body, model, lambda: catalogue.test_images(name))(Recording(name, kind, lambda job: {}), model)
    assert levels <= set(reported)


@pytest.mark.parametrize("body,status,words", [
    ({"model": "zoo:nope", "kind": "sample"}, 404, "no such zoo model"),
    ({"model": "flat", "kind": "dance"}, 400, "kind must be one of"),
    ({"model": "flat", "kind": "sample", "count": 0}, 400, "count must be an integer from 1 to 64"),
    ({"model": "flat", "kind": "sample", "count": 65}, 400, "count"),
    ({"model": "flat", "kind": "sample", "count": 2.5}, 400, "count"),
    ({"model": "flat", "kind": "sample", "count": True}, 400, "count"),
    ({"model": "flat", "kind": "sample", "temperature": -1}, 400, "temperature"),
    ({"model": "flat", "kind": "sample", "temperature": "nan"}, 400, "temperature"),
    ({"model": "flat", "kind": "sample", "class": 10}, 400, "class must be an integer from 0 to 9"),
    ({"model": "flat", "kind": "sample", "seed": -5}, 400, "seed"),
    ({"model": "flat", "kind": "colorize", "test_index": 0}, 400, "cannot colorize"),
    ({"model": "flat", "kind": "inpaint", "test_index": 0, "mask": "01"}, 400, "mask must be a string of 64"),
    ({"model": "flat", "kind": "inpaint", "test_index": 0}, 400, "mask"),
    ({"model": "flat", "kind": "surprise", "test_index": 10 ** 9}, 400, "test_index"),
    ({"model": "flat", "kind": "surprise", "upload": "data:image/png;base64,AAAA"}, 415, "not an image"),
    ({"model": "flat", "kind": "surprise", "upload": "data:image/png;base64,@@"}, 400, "base64"),
    ({"model": "flat", "kind": "surprise", "upload": "http://example.com/x.png"}, 400, "data:image"),
    ({"model": 5, "kind": "sample"}, 400, "model is required"),
])
def test_every_bad_value_gets_a_4xx_naming_it(served, body, status, words):
    client, _ = served
    r = client.post("/api/jobs", json=body)
    assert r.status_code == status and words in r.json["error"], (r.status_code, r.json)


def test_malformed_requests_are_4xx_and_the_server_still_serves(served):
    client, _ = served
    answers = [client.post("/api/jobs", data="{not json", content_type="application/json").status_code,
               client.post("/api/jobs", json=[1, 2]).status_code,
               client.get("/api/jobs/nonexistent").status_code,
               client.post("/api/jobs/nonexistent/stop").status_code,
               client.get("/api/test-image?name=flat&index=abc").status_code,
               client.get("/api/test-image?name=flat").status_code,
               client.get("/api/model").status_code,
               client.delete("/api/jobs").status_code,
               client.get("/no/such/page").status_code,
               client.post("/api/jobs", data=b"x" * (5 * 1024 * 1024), content_type="application/json").status_code]
    assert all(400 <= a < 500 for a in answers), answers
    assert states(client, {"model": "flat", "kind": "sample", "count": 1})[-1]["status"] == "done"


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_uploads_are_checked_and_converted_only_when_asked(served):
    client, _ = served
    big = png(np.tile(np.arange(16, dtype=np.uint8)[None] * 16, (16, 1)))
    r = client.post("/api/jobs", json={"model": "flat", "kind": "surprise", "upload": big})
    assert r.status_code == 400 and "1x8x8" in r.json["error"] and "convert" in r.json["error"]
    r = client.post("/api/fit-image", json={"model": "flat", "upload": big, "fit": True})
    assert r.status_code == 200 and decode(r.json["image"]).shape == (8, 8, 3)  # the image itself, no border
    colour = png(np.zeros((8, 8, 3), np.uint8) + np.array([255, 0, 0], np.uint8))
    seen = states(client, {"model": "flat", "kind": "surprise", "upload": colour, "fit": True})
    assert seen[-1]["status"] == "done"  # 3 channels to 1 by luma, 256 levels to 17
    seen = states(client, {"model": "flat", "kind": "inpaint", "upload": colour, "fit": True, "mask": "1" * 64})
    assert seen[-1]["status"] == "failed" and "choose a class" in seen[-1]["message"]


def test_curves_come_from_the_runs_metrics(served):
    client, _ = served
    series = client.get("/api/curves?name=flat").json["series"]
    assert [p[0] for p in series["run"]["train_loss"]] == [1, 2, 3, 4]
    parts = client.get("/api/curves?name=family/pyramid").json["series"]
    assert {"prior", "scale_1", "scale_2"} <= set(parts)


@pytest.mark.parametrize("family", ["agave", "defauw"])
def test_sampled_reconstructions_show_the_encoders_levels(family):
    """AGAVE and De Fauw et al.'s stacks (VQ-VAE-2 above, through a trained run): the top row the image
    and its levels as the encoder gives them, the row below the sampled reconstructions."""
    if family == "agave":
        from test_agave import tiny
        model, levels = tiny(), 16
    else:
        from test_defauw import tiny
        model, levels = tiny(), 5
    model.eval()
    job = Job("m", "reconstruct", lambda job: {})
    image = torch.randint(0, levels, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    result = work.reconstruct(job, model, image, 1, 3, None, 1.0, 0)
    grid = decode(result["image"])
    assert grid.shape[0] == 2 * 9 + 1 and grid.shape[1] >= 4 * 9 + 1  # two rows; the image and 3 samples
    assert np.array_equal(cell(grid, 0, 8, 8), make_grid(image[None], levels, scale=1)[1:9, 1:9, 0])
    assert "sampled reconstructions" in result["caption"] and job.state["done"] >= 1


# ---------------------------------------------------------------------- the work queue
def test_a_full_queue_says_busy_and_queues_nothing():
    queue, release = WorkQueue(capacity=2), threading.Event()
    try:
        first = queue.submit("a", "sample", lambda job: release.wait(10) and {})
        first.wait_change(0, 10)  # running
        queue.submit("b", "sample", lambda job: {})
        with pytest.raises(Busy, match="busy"):
            queue.submit("c", "sample", lambda job: {})
        assert queue.load() == {"waiting": 1, "running": 1, "capacity": 2}
        release.set()
        for _ in range(100):
            if first.final:
                break
            time.sleep(0.02)
        assert first.snapshot()[1]["status"] == "done"
    finally:
        release.set()
        queue.close()


def test_one_computation_at_a_time_per_model_even_with_two_workers():
    queue, lock, running, most = WorkQueue(capacity=8, workers=2), threading.Lock(), {"a": 0, "b": 0}, {"a": 0, "b": 0}

    def work(model):
        def run(job):
            with lock:
                running[model] += 1
                most[model] = max(most[model], running[model])
            time.sleep(0.05)
            with lock:
                running[model] -= 1
            return {}
        return run

    jobs = [queue.submit(m, "sample", work(m)) for m in "aabba"]
    deadline = time.time() + 10
    while not all(j.final for j in jobs) and time.time() < deadline:
        time.sleep(0.02)
    queue.close()
    assert all(j.state["status"] == "done" for j in jobs)
    assert most == {"a": 1, "b": 1}


def test_stop_ends_the_sampling_on_the_server():
    """A 28x28 zoo model sampling 64 images, stopped after its first row: the job ends 'stopped'
    well before the last row, and the queue takes the next job."""
    queue = WorkQueue(capacity=4)
    client = create_app(Catalogue(None), queue).test_client()
    try:
        job_id = client.post("/api/jobs", json={"model": "zoo:fashion-gated", "kind": "sample", "count": 64,
                                                "class": 0}).json["job"]
        job = queue.get(job_id)
        version, state = job.wait_change(-1, 30)
        while state["done"] < 1 and not job.final:
            version, state = job.wait_change(version, 30)
        assert client.post(f"/api/jobs/{job_id}/stop").status_code == 200
        while not job.final:
            version, state = job.wait_change(version, 30)
        assert state["status"] == "stopped" and state["done"] < 28
        assert client.get(f"/api/jobs/{job_id}").json["status"] == "stopped"
    finally:
        queue.close()


# ---------------------------------------------------------------------- safety, the server, the command line
def test_loopback_server_refuses_other_host_names_and_a_token_guards_other_addresses(served):
    client, catalogue = served
    assert client.get("/", headers={"Host": "attacker.example:8000"}).status_code == 403
    assert client.get("/api/models", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    queue = WorkQueue()
    guarded = create_app(catalogue, queue, token="s3cret", loopback=False).test_client()
    try:
        assert guarded.get("/api/models").status_code == 403
        assert guarded.get("/api/models?token=wrong").status_code == 403
        assert guarded.get("/api/models?token=s3cret").status_code == 200
        page = guarded.get("/?token=s3cret")
        assert page.status_code == 200 and "pixelzoo_token=s3cret" in page.headers["Set-Cookie"]
        assert guarded.get("/static/app.js").status_code == 200  # the cookie the page got
    finally:
        queue.close()


def test_page_server_serves_its_assets_on_a_free_port_and_nothing_from_a_network():
    with PageServer(None, port=0).start() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.token is None
        page = urllib.request.urlopen(server.url, timeout=10).read().decode()
        assert "<title>pixelzoo</title>" in page
        for asset in ("static/app.js", "static/style.css"):
            text = urllib.request.urlopen(server.url + asset, timeout=10).read().decode()
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


def test_a_server_off_the_loopback_needs_its_token():
    with PageServer(None, host="0.0.0.0", port=0).start() as server:
        assert server.token and server.url.endswith(f"/?token={server.token}")
        local = f"http://127.0.0.1:{server.port}/api/models"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(local, timeout=10)
        assert refused.value.code == 403
        assert json.loads(urllib.request.urlopen(f"{local}?token={server.token}", timeout=10).read())["models"]


def test_serve_command_line_refuses_bad_options_and_a_port_in_use(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--port", "70000"])
    assert "must be at most 65535" in capsys.readouterr().err
    with PageServer(None, port=0).start() as server:
        assert main(["serve", "--port", str(server.port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", "/no/such/folder"]) == 2
