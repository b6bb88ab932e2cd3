"""A web page to try a trained network: draw a digit or drop a photo, and see what it answers.

python -m src.serve ckpt_path=outputs/runs/<date>/<time>         # a run folder: its best checkpoint
python -m src.serve ckpt_path=outputs/multiruns/<date>/<time>    # a sweep: its jobs as an ensemble
python -m src.serve ckpt_path=<...> port=0                       # any free port
python -m src.serve ckpt_path=<...> measure_page=30              # time 30 drawings, then stop
make demo                                                        # the newest run under outputs/

Serves http://127.0.0.1:<port>/ (this machine only) until Ctrl-C. The page posts each drawing or
photo to /predict, which answers as src.predict does (the same preparation of the image, per
member, and the mean of the members' probabilities) and adds what a person wants to see: the
28x28 image the network received, each member's vote and the first convolution's feature maps.
An image it cannot answer for gets one line on the page, and the server goes on.

Built on the standard library's http.server: the page is three static files and one JSON call,
so a framework would add dependencies and start-up time and nothing the page needs.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import statistics
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn

from src.core.config import validate
from src.core.config_errors import exit_on_config_error
from src.core.ensemble import Member, load_members, log_mean_probabilities
from src.core.errors import UsageError, exit_on_usage_error, message_line
from src.data.images import UnusableImage, read_image
from src.predict import UNREADABLE, examples_of, reason

HOST = "127.0.0.1"  # never another interface: the page has no authentication
PAGE = Path(__file__).parent / "serve_page"
PAGE_FILES = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
MAX_UPLOAD_BYTES = 32 * 2**20  # a large camera's JPEG; more is refused before it is read
MAX_FEATURE_MAPS = 64  # convnet64's first convolution has 64; more would not fit the page


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    validate(cfg, "serve")
    # One image at a time needs one thread: on a busy machine, waiting for a second one made the
    # slowest answers 10 times slower (docs/performance.md).
    torch.set_num_threads(1)
    demo = Demo(load_members(cfg.ckpt_path), max_pixels=round(cfg.max_megapixels * 1e6))
    server = DemoServer(demo, cfg.port)
    if cfg.measure_page:
        print_page_times(server, cfg.measure_page)
    else:
        serve_until_interrupted(server)


class Demo:
    """The members that answer the page, one image at a time."""

    def __init__(self, members: list[Member], max_pixels: int) -> None:
        self.members = members
        self.max_pixels = max_pixels
        self.classes = members[0].data.classes  # load_members checked the members share them
        self.first_convolution = first_convolution(members[0].model)
        # One answer at a time: the feature maps come from a hook on the shared network.
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What the page says about the model before the first answer."""
        return {"classes": self.classes, "members": [member_name(m) for m in self.members]}

    def answer(self, upload: bytes) -> dict[str, Any]:
        """The page's answer for an uploaded image file (a drawing is a PNG)."""
        image = open_upload(upload, self.max_pixels)
        examples = examples_of(image, preprocess=True, members=self.members)
        with self.lock, convolution_output(self.first_convolution) as outputs:
            logits = [
                member.logits(image.unsqueeze(0))
                for member, image in zip(self.members, examples, strict=True)
            ]
        probabilities = log_mean_probabilities(logits).exp()[0]
        return {
            "class": self.classes[int(probabilities.argmax())],
            "probabilities": probabilities.tolist(),
            "received": png_data_url(examples[0][0]),  # the first member's; others may differ
            "votes": [self.vote(m, x) for m, x in zip(self.members, logits, strict=True)],
            "feature_maps": feature_maps(self.first_convolution, outputs),
            "feature_maps_of": member_name(self.members[0]),  # an ensemble's: its first member's
        }

    def vote(self, member: Member, logits: Tensor) -> dict[str, Any]:
        probabilities = logits[0].float().softmax(dim=0)
        best = int(probabilities.argmax())
        return {
            "member": member_name(member),
            "class": self.classes[best],
            "probability": float(probabilities[best]),
        }


def member_name(member: Member) -> str:
    """Its run folder (a sweep's job), checkpoint and network, e.g. `0/best.ckpt (ConvNet)`."""
    checkpoint = member.checkpoint
    run = checkpoint.parent.parent.name if checkpoint.parent.name == "checkpoints" else ""
    network = type(member.model.network).__name__
    return f"{run}/{checkpoint.name} ({network})" if run else f"{checkpoint.name} ({network})"


def open_upload(upload: bytes, max_pixels: int) -> Image.Image:
    """The uploaded file as src.predict reads an image file, once its size is known to fit."""
    if not upload:
        raise UnusableImage("the upload is empty: draw a digit or drop an image file")
    with Image.open(io.BytesIO(upload)) as header:  # reads the size, not yet the pixels
        width, height = header.size
    if width * height > max_pixels:
        raise UnusableImage(
            f"{width}x{height} pixels ({width * height / 1e6:.1f} megapixels) is more than the "
            f"page takes ({max_pixels / 1e6:g} megapixels): scale it down (or start the server "
            "with a larger max_megapixels)"
        )
    return read_image(io.BytesIO(upload))


def first_convolution(network: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first Conv2d in the network's module order, with its name; None for a network without
    one (the MLP)."""
    return next(
        (
            (name, module)
            for name, module in network.named_modules()
            if isinstance(module, nn.Conv2d)
        ),
        None,
    )


@contextmanager
def convolution_output(convolution: tuple[str, nn.Conv2d] | None) -> Iterator[list[Tensor]]:
    """A list that receives the convolution's output of every forward pass while open."""
    outputs: list[Tensor] = []
    if convolution is None:
        yield outputs
        return
    handle = convolution[1].register_forward_hook(lambda _, __, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


def feature_maps(
    convolution: tuple[str, nn.Conv2d] | None, outputs: list[Tensor]
) -> dict[str, Any] | None:
    """The convolution's maps for the image, each as a grey PNG stretched to its own range
    (black: its lowest value, white: its highest)."""
    if convolution is None:
        return None
    name, layer = convolution
    maps = outputs[0][0, :MAX_FEATURE_MAPS].float()
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    scaled = (maps - low) / (high - low).clamp(min=1e-12)
    height, width = layer.kernel_size
    return {
        "layer": f"{name.removeprefix('network.')}: {layer.out_channels} filters of "
        f"{height}x{width}",
        "maps": [png_data_url(pixels.mul(255).round().to(torch.uint8)) for pixels in scaled],
    }


def png_data_url(pixels: Tensor) -> str:
    """A uint8 (height, width) image as a data: URL the page can show as it is."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.contiguous().numpy(), mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class DemoServer(ThreadingHTTPServer):
    """The page's server on 127.0.0.1; a port in use is the user's to change (UsageError)."""

    daemon_threads = True  # Ctrl-C does not wait for a browser's open connections

    def __init__(self, demo: Demo, port: int) -> None:
        self.demo = demo
        try:
            super().__init__((HOST, port), PageHandler)
        except OSError as error:
            raise UsageError(port_problem(port, error)) from None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"


def port_problem(port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {HOST} is in use (another server, or this demo started before): "
            f"choose another, e.g. port={port + 1}, or port=0 for any free one"
        )
    return f"cannot serve on {HOST}:{port} ({message_line(error)}): choose another port, or port=0"


class PageHandler(BaseHTTPRequestHandler):
    """GET: the page's files and /model; POST /predict: an image file's answer, or its error."""

    server: DemoServer

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        if route == "/model":
            self.send_json(200, self.server.demo.describe())
        elif route in PAGE_FILES:
            self.send_page_file(PAGE / PAGE_FILES[route])
        else:
            self.send_json(404, {"error": f"nothing at {route}: the page is at /"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/predict":
            self.send_json(404, {"error": "images go to POST /predict"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True  # its body is left unread
            self.send_json(413, {"error": too_large(length)})
            return
        try:
            self.send_json(200, self.server.demo.answer(self.rfile.read(length)))
        except UNREADABLE as error:
            self.send_json(400, {"error": reason(error)})

    def send_page_file(self, path: Path) -> None:
        self.send_body(200, path.read_bytes(), f"{CONTENT_TYPES[path.suffix]}; charset=utf-8")

    def send_json(self, status: int, content: dict[str, Any]) -> None:
        self.send_body(status, json.dumps(content).encode(), "application/json")

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # a new run's page, never an old one's
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: a line per request would bury the server's own lines (errors are still logged)."""


def too_large(length: int) -> str:
    return (
        f"the file has {length / 2**20:.0f} MB, more than the page takes "
        f"({MAX_UPLOAD_BYTES // 2**20} MB): scale it down"
    )


def serve_until_interrupted(server: DemoServer) -> None:
    print(f"serving {describe_members(server.demo)} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()


def describe_members(demo: Demo) -> str:
    names = demo.describe()["members"]
    return names[0] if len(names) == 1 else f"an ensemble of {len(names)}"


def print_page_times(server: DemoServer, drawings: int) -> None:
    """Serve in the background while headless Chromium draws on the page; print the page's own
    times from the end of each stroke to its answer on screen."""
    from src.serve_browser import time_drawings  # needs playwright and Chromium: only here

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        milliseconds = time_drawings(server.url, drawings)
    finally:
        server.shutdown()
        server.server_close()
    print(
        f"drawing to answer, {drawings} drawings: median {statistics.median(milliseconds):.0f} "
        f"ms, slowest {max(milliseconds):.0f} ms"
    )


if __name__ == "__main__":
    exit_on_config_error(main)()
