"""The demo page (src/serve.py) in headless Chromium: drawing on it, uploading to it, reading its
answer. Used by the browser tests and by `python -m src.serve ... measure_page=N`.

Chromium is Debian's (`apt-get install chromium`), driven by the `playwright` package of the
`serve` extra; `playwright install` is never needed (it would download a browser of its own).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from src.core.errors import UsageError

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root in a container, and with nothing that reaches out to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WINDOW = {"width": 1100, "height": 900}
ANSWER_SECONDS = 60  # a loaded 2-core machine can be slow; an answer never takes this long


@contextmanager
def open_page(url: str) -> Iterator[Any]:
    """A playwright Page on the demo, once the page has loaded the model's description."""
    if not CHROMIUM.exists():
        raise UsageError(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # the serve extra: only where it is used

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=WINDOW)
            page.goto(url)
            page.wait_for_selector("body[data-ready]")
            yield page
        finally:
            browser.close()


def draw(page: Any, points: list[tuple[float, float]]) -> None:
    """One stroke through the points, given as fractions (0..1) of the canvas's width and height,
    drawn with the mouse as a person would."""
    box = page.locator("#canvas").bounding_box()
    on_canvas = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*on_canvas[0])
    page.mouse.down()
    for point in on_canvas[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def digit_stroke(digit: int) -> list[tuple[float, float]]:
    """A stroke like a hand-drawn 1 (a line from top to bottom), 0 (an oval) or 7."""
    if digit == 0:
        return [
            (0.5 + 0.22 * math.sin(t / 12 * math.tau), 0.5 - 0.33 * math.cos(t / 12 * math.tau))
            for t in range(13)
        ]
    if digit == 7:
        return [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]
    return [(0.52, 0.15), (0.5, 0.85)]


def upload(page: Any, path: str | Path) -> None:
    """The file as a person chooses it with the page's *Choose a photo…* button."""
    page.set_input_files("#file", str(path))


def drop(page: Any, path: str | Path) -> None:
    """The file as a person drops it on the page: a drop event whose DataTransfer holds it."""
    content = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([name, content]) => {
            const bytes = Uint8Array.from(atob(content), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name));
            return transfer;
        }""",
        [Path(path).name, content],
    )
    page.dispatch_event("#canvas", "drop", {"dataTransfer": transfer})


def wait_for_answer(page: Any, answers_before: int) -> dict[str, Any]:
    """The answer that follows `answers_before` others, as the page shows it: the class, every
    bar's probability, and the time from the stroke (or the file) to the answer on screen."""
    page.wait_for_function(
        f"Number(document.body.dataset.answers || 0) > {answers_before}",
        timeout=ANSWER_SECONDS * 1000,
    )
    return {
        "class": page.inner_text("#prediction"),
        "probabilities": [
            float(value)
            for value in page.eval_on_selector_all(
                "#bars .bar", "bars => bars.map(bar => bar.dataset.probability)"
            )
        ],
        "milliseconds": float(page.get_attribute("#timing", "data-milliseconds")),
    }


def wait_for_error(page: Any, errors_before: int) -> str:
    """The message the page shows for the next image it could not answer for."""
    page.wait_for_function(
        f"Number(document.body.dataset.errors || 0) > {errors_before}",
        timeout=ANSWER_SECONDS * 1000,
    )
    return page.inner_text("#error")


def time_drawings(url: str, count: int) -> list[float]:
    """The page's time from the end of a stroke to its answer on screen, for `count` strokes
    (a 1, a 7 and a 0 in turn, each on a cleared canvas), in milliseconds."""
    times = []
    with open_page(url) as page:
        for index in range(count):
            page.click("#clear")
            draw(page, digit_stroke((1, 7, 0)[index % 3]))
            times.append(wait_for_answer(page, index)["milliseconds"])
    return times
