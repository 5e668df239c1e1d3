"""``pixelzoo report``: one self-contained HTML file of a run or a zoo model: every image embedded
(decodable PNGs), no reference to anything outside the file, the configuration, curves, evaluation
and pictures present; bad input is a one-line error that writes nothing."""

import base64
import html
import io
import re
from html.parser import HTMLParser

from PIL import Image

from pixelzoo.cli import main

TINY = ["--set", "model.channels=8", "--set", "model.n_layers=2", "--set", "model.out_hidden=8",
        "--set", "train.num_samples=4", "--set", "train.eval_every=0", "--no-progress"]


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.headings, self._h = [], [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])
        self._h = tag in ("h1", "h2", "h3")

    def handle_data(self, data):
        if self._h:
            self.headings.append(data)
            self._h = False


def parse(path):
    page = Page()
    text = path.read_text()
    page.feed(text)
    return page, text


def test_a_runs_report_embeds_everything(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gated_pixelcnn/digits", "--steps", "4", "--out", str(run), *TINY]) == 0
    assert main(["evaluate", str(run), "-n", "16", "--no-progress"]) == 0
    assert main(["report", str(run)]) == 0
    page, text = parse(run / "report.html")
    assert {"Configuration", "Training curves", "Evaluation", "Pictures"} <= set(page.headings)
    assert len(page.images) >= 2 and not page.links  # curves and the training's sample grid, nothing linked
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert not re.search(r"https?://", text)  # no network: no script, font or style from anywhere
    assert "test_bpd" in text and '"name": "gated_pixelcnn"' in html.unescape(text)


def test_a_zoo_models_report_shows_its_card(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "zoo:digits", "--out", str(tmp_path / "r.v1")]) == 0
    page, text = parse(tmp_path / "r.v1.html")
    assert "Model card" in page.headings and "real vs real" in text and len(page.images) >= 2


def test_bad_runs_are_one_line_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1
    assert main(["report", "zoo:nope"]) == 2
    assert not list(tmp_path.rglob("*.html"))
