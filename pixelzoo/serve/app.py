"""The page's web application.

Built on **Flask** (Pallets; maintained, small, synchronous): the work is PyTorch on worker threads
and the page needs a handful of JSON routes and one event stream, which a threaded WSGI server
serves with a generator; an asynchronous framework would buy nothing here and add an event loop to
reason about. The page itself is static HTML, CSS and JavaScript shipped in the package
(``serve/static``): no font, script or style from any network.

Routes (every answer JSON but the page and its assets; every error ``{"error": message}`` with a
4xx status, 503 when the queue is full):

* ``GET /`` the page; ``GET /static/...`` its assets
* ``GET /api/models`` the served models; ``GET /api/model?name=N`` one model's card and capabilities
* ``GET /api/curves?name=N`` its training curves; ``GET /api/test-image?name=N&index=K`` a test image
* ``POST /api/jobs`` start a computation (``{"model", "kind", ...}``); ``GET /api/jobs/ID`` its state;
  ``GET /api/jobs/ID/events`` its state as server-sent events while it changes;
  ``POST /api/jobs/ID/stop`` stop it
* ``POST /api/fit-image`` an uploaded image as the model takes it
* ``GET /api/status`` the queue's load

Safety: a server bound to a loopback address answers only requests whose Host is a loopback name
(a page elsewhere cannot reach it through DNS rebinding); a server on another address is reached
only with its access token (``?token=`` or the cookie the page gets with it).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_from_directory, stream_with_context

from ..errors import PixelzooError
from ..sampling.ancestral import check_temperature
from . import work
from .catalogue import Catalogue, UnknownModel, capabilities
from .checks import (MAX_PER_IMAGE, MAX_SAMPLES, MAX_SEED, MAX_TEMPERATURE, MAX_UPLOAD_BYTES, BadRequest, class_of,
                     image_of, integer, mask_of, real)
from .jobs import Busy, WorkQueue

STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
TOKEN_COOKIE = "pixelzoo_token"
KEEPALIVE_SECONDS = 15.0
KINDS = ("sample", "inpaint", "colorize", "upscale", "reconstruct", "surprise")


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(catalogue: Catalogue, queue: WorkQueue, token: str | None = None, loopback: bool = True) -> Flask:
    """The application over ``catalogue``'s models, its work on ``queue``. ``token``: required on every
    request when given (a server on a non-loopback address); ``loopback``: refuse other Host names."""
    app = Flask("pixelzoo.serve", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES * 2  # a base64 upload and the fields beside it

    def error(message: str, status: int):
        return jsonify(error=message), status

    @app.before_request
    def gate():
        if loopback and _host_name(request.host) not in LOOPBACK_NAMES:
            return error(f"host {request.host!r} refused: this server answers on the loopback address only", 403)
        if token is not None:
            given = request.args.get("token") or request.headers.get("X-Pixelzoo-Token") \
                or request.cookies.get(TOKEN_COOKIE) or ""
            if not secrets.compare_digest(given, token):
                return error("a valid access token is required: open the URL the server printed", 403)
        return None

    @app.errorhandler(BadRequest)
    def bad_request(e):
        return error(str(e), e.status)

    @app.errorhandler(UnknownModel)
    def unknown(e):
        return error(str(e), 404)

    @app.errorhandler(Busy)
    def busy(e):
        return error(str(e), 503)

    @app.errorhandler(PixelzooError)
    def refused(e):  # a model that cannot load, a data set that is not there: the request cannot be served
        return error(str(e), 409)

    @app.errorhandler(404)
    def not_found(e):
        return error(f"no such page: {request.path}", 404)

    @app.errorhandler(405)
    def not_allowed(e):
        return error(f"{request.method} is not allowed on {request.path}", 405)

    @app.errorhandler(413)
    def too_large(e):
        return error(f"the request is larger than {app.config['MAX_CONTENT_LENGTH']} bytes", 413)

    @app.get("/")
    def page():
        response = send_from_directory(STATIC, "index.html")
        response.headers["Cache-Control"] = "no-store"
        if token is not None:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    @app.get("/static/<path:file>")
    def static_file(file):
        return send_from_directory(STATIC, file)

    def name_arg() -> str:
        name = request.args.get("name")
        if not name:
            raise BadRequest("name is required (a model of /api/models)")
        catalogue.folder(name)  # UnknownModel (404) for anything not listed
        return name

    @app.get("/api/models")
    def models():
        return jsonify(models=catalogue.names())

    @app.get("/api/model")
    def model_info():
        return jsonify(catalogue.info(name_arg()))

    @app.get("/api/curves")
    def curves():
        return jsonify(catalogue.curves(name_arg()))

    @app.get("/api/test-image")
    def test_image():
        name = name_arg()
        model = catalogue.model(name)
        test = catalogue.test_images(name)
        index = integer(request.args, "index", 0, len(test) - 1)
        x = test.images[index:index + 1]
        label = None if test.labels is None else int(test.labels[index])
        return jsonify(index=index, label=label, count=len(test), image=work.grid_uri(x, model.num_levels, 1, padding=0),
                       shape=list(model.image_shape))

    @app.post("/api/fit-image")
    def fit_image():
        """An uploaded image as the model will take it (converted when ``fit``), to show and draw on."""
        body = _body()
        name, model = _model_of(body)
        if body.get("upload") is None:
            raise BadRequest("upload is required (an image as a data: URI)")
        x, _ = image_of(body, model, lambda: None)
        return jsonify(image=work.grid_uri(x[None], model.num_levels, 1, padding=0), converted=bool(body.get("fit")))

    @app.get("/api/status")
    def status():
        return jsonify(queue.load())

    @app.post("/api/jobs")
    def start_job():
        body = _body()
        kind = body.get("kind")
        name, model = _model_of(body)
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind not in capabilities(model):
            raise BadRequest(f"{name} cannot {kind} (it can: {', '.join(capabilities(model))})")
        task = _task(kind, body, model, lambda: catalogue.test_images(name))
        job = queue.submit(name, kind, lambda job: task(job, catalogue.model(name)))
        return jsonify(job=job.id), 202

    @app.get("/api/jobs/<job_id>")
    def job_state(job_id):
        return jsonify(_job(job_id).snapshot()[1])

    @app.post("/api/jobs/<job_id>/stop")
    def stop_job(job_id):
        _job(job_id).stop()
        return jsonify(stopping=job_id)

    @app.get("/api/jobs/<job_id>/events")
    def job_events(job_id):
        job = _job(job_id)

        def stream():
            seen = -1
            while True:
                version, state = job.wait_change(seen, KEEPALIVE_SECONDS)
                if version == seen:
                    yield ": keep-alive\n\n"
                    continue
                seen = version
                yield f"event: state\ndata: {json.dumps(state)}\n\n"
                if state["status"] in ("done", "failed", "stopped"):
                    return

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return Response(stream_with_context(stream()), mimetype="text/event-stream", headers=headers)

    def _body() -> dict:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    def _model_of(body: dict):
        """(name, loaded model) of the request's ``model`` field; 404 for a name not served."""
        name = body.get("model")
        if not isinstance(name, str):
            raise BadRequest("model is required (a name of /api/models)")
        catalogue.folder(name)
        return name, catalogue.model(name)

    def _job(job_id):
        job = queue.get(job_id)
        if job is None:
            raise BadRequest(f"no job {job_id!r} (finished jobs are forgotten after a while)", status=404)
        return job

    return app


def _task(kind: str, body: dict, model, test):
    """The computation a request asks for, its values checked now (a BadRequest before anything queues)."""
    temperature = real(body, "temperature", 0.0, MAX_TEMPERATURE, default=1.0)
    try:
        check_temperature(temperature)
    except PixelzooError as e:
        raise BadRequest(str(e)) from None
    seed = integer(body, "seed", 0, MAX_SEED, default=0)
    cls = class_of(body, model)
    if kind == "sample":
        count = integer(body, "count", 1, MAX_SAMPLES, default=16)
        return lambda job, m: work.sample(job, m, count, cls, temperature, seed)
    image, label = image_of(body, model, test)
    if kind == "surprise":
        return lambda job, m: work.surprise(job, m, image, label, cls)
    per_image = integer(body, "per_image", 1, MAX_PER_IMAGE, default=4)
    if kind == "inpaint":
        mask = mask_of(body, *model.image_shape[1:])
        return lambda job, m: work.inpaint(job, m, image, label, mask, per_image, cls, temperature, seed)
    compute = {"colorize": work.colorize, "upscale": work.upscale, "reconstruct": work.reconstruct}[kind]
    return lambda job, m: compute(job, m, image, label, per_image, cls, temperature, seed)
