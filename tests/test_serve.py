"""The demo page: `python -m src.serve` as a user starts it, the page in headless Chromium (a
stroke on the canvas, a photo uploaded, bad files), its HTTP answers, and what stops it with one
line. The run is conftest's font_run, which reads a photo of a digit right."""

from __future__ import annotations

import io
import json
import os
import select
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from src.core.build import build
from src.core.classifier import Classifier
from src.core.ensemble import Member, load_members
from src.core.errors import UsageError
from src.serve import Demo, DemoServer
from tests.conftest import ROOT, compose_train, photo_of, run_module
from tests.test_predict import png_header

START_SECONDS = 120  # importing torch and Lightning on a loaded 2-core machine


def browser_or_skip() -> None:
    """Browser tests run wherever Chromium is; CI must have it (.ci/run installs it)."""
    from src.serve_browser import CHROMIUM

    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = "the playwright package (make install: the serve extra)"
    else:
        missing = "" if CHROMIUM.exists() else f"Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI runs the browser tests: {missing} is missing")
    if missing:
        pytest.skip(f"no browser tests here: {missing} is missing")


@pytest.fixture(scope="module")
def server(font_run, tmp_path_factory) -> Iterator[str]:
    """`python -m src.serve` on a free port; its URL. Stopped after the module's tests."""
    stderr = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with stderr.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.serve", f"ckpt_path={font_run[0]}", "port=0"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        started, _, _ = select.select([process.stdout], [], [], START_SECONDS)
        first_line = process.stdout.readline() if started else ""
        # "serving <run> at <url> (Ctrl-C stops)"
        assert " at http://127.0.0.1:" in first_line, stderr.read_text()[-3000:]
        yield first_line.split(" at ")[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server) -> Iterator:
    browser_or_skip()
    from src.serve_browser import open_page

    with open_page(server) as page:
        yield page


def answers_so_far(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.answers || 0)"))


def errors_so_far(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.errors || 0)"))


def test_a_stroke_gets_a_prediction_and_probabilities_that_sum_to_1(page):
    from src.serve_browser import digit_stroke, draw, wait_for_answer

    before = answers_so_far(page)
    draw(page, digit_stroke(1))
    answer = wait_for_answer(page, before)
    assert answer["class"] in [str(digit) for digit in range(10)]
    assert len(answer["probabilities"]) == 10
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert page.get_attribute("#received", "src").startswith("data:image/png;base64,")
    assert page.locator("#maps img").count() == 16  # convnet16's first convolution
    assert page.locator("#votes-box").is_hidden()  # one network: no votes to show
    assert answer["milliseconds"] > 0


def test_a_dropped_or_chosen_photo_of_a_digit_gets_its_class(page, tmp_path):
    from src.serve_browser import drop, upload, wait_for_answer

    for digit, give in ((3, drop), (7, upload)):
        photo_of(digit).save(tmp_path / f"photo{digit}.jpg")
        before = answers_so_far(page)
        give(page, tmp_path / f"photo{digit}.jpg")
        assert wait_for_answer(page, before)["class"] == str(digit)


def test_bad_files_get_a_message_on_the_page_and_the_page_goes_on(page, tmp_path):
    from src.serve_browser import digit_stroke, draw, upload, wait_for_answer, wait_for_error

    (tmp_path / "notes.png").write_text("not an image")
    Image.new("RGB", (280, 280), "white").save(tmp_path / "empty.png")  # an empty drawing
    (tmp_path / "huge.png").write_bytes(png_header(10_000, 5_000))  # 50 megapixels
    expected = {
        "notes.png": "not an image file",
        "empty.png": "no digit found",
        "huge.png": "10000x5000 pixels (50.0 megapixels) is more than the page takes",
    }
    for name, message in expected.items():
        before = errors_so_far(page)
        upload(page, tmp_path / name)
        assert message in wait_for_error(page, before)
    before = answers_so_far(page)
    draw(page, digit_stroke(7))
    assert wait_for_answer(page, before)["class"]
    assert page.locator("#error").is_hidden()


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_server_answers_and_refuses_over_http(server, tmp_path):
    photo_of(4).save(tmp_path / "photo.png")
    status, answer = post(server + "predict", (tmp_path / "photo.png").read_bytes())
    assert (status, answer["class"]) == (200, "4")
    assert post(server + "predict", b"")[1]["error"].startswith("the upload is empty")
    too_big = {"Content-Length": str(64 * 2**20)}  # refused before a byte of it is read
    status, answer = post(server + "predict", b"x", too_big)
    assert status == 413 and "more than the page takes (32 MB)" in answer["error"]
    assert post(server + "elsewhere", b"x")[0] == 404
    with urllib.request.urlopen(server, timeout=60) as response:  # still serving
        assert b'<canvas id="canvas"' in response.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_port_in_use_is_named_with_the_fix(font_run):
    demo = Demo(load_members(str(font_run[0])), max_pixels=10**6)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError) as refused:
            DemoServer(demo, port)
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 is in use (another server, or this demo started before): "
        f"choose another, e.g. port={port + 1}, or port=0 for any free one"
    )


def test_a_folder_without_a_checkpoint_stops_with_one_line(tmp_path):
    result = run_module("src.serve", f"ckpt_path={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no checkpoint at {tmp_path}/checkpoints/best.ckpt")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_ensemble_shows_each_members_vote(font_run):
    demo = Demo(load_members([str(font_run[0]), str(font_run[0])]), max_pixels=10**6)
    answer = demo.answer(png_bytes(photo_of(5)))
    assert answer["class"] == "5"
    assert [vote["class"] for vote in answer["votes"]] == ["5", "5"]
    assert answer["votes"][0]["member"].endswith("/best.ckpt (ConvNet)")


def test_a_network_without_a_convolution_has_no_feature_maps(font_run):
    cfg = compose_train("model=mlp")
    mlp = Classifier(
        cfg.model, cfg.optimizer, cfg.scheduler, cfg.data, (1, 28, 28), list("0123456789")
    )
    member = Member(Path("untrained.ckpt"), mlp.eval(), build("data", cfg.data, seed=0))
    answer = Demo([member], max_pixels=10**6).answer(png_bytes(photo_of(2)))
    assert answer["feature_maps"] is None
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-5)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
