"""Shared fixtures: tiny MNIST-format IDX files made here, and the project's composed configs."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from src.core.build import build
from src.core.config import CONF_DIR, compose_config
from src.data.images import MNIST_SIZE

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Small and fast, but every stage of a real run: 2 epochs of fit, validation and test.
TINY = [
    "data.val_size=100",
    "data.batch_size=32",
    "data.eval_batch_size=50",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "callbacks.progress_bar_refresh=0",
]


def idx_bytes(array: torch.Tensor) -> bytes:
    """IDX encoding of a uint8 tensor: magic 0x00 0x00 0x08 ndim, big-endian sizes, then bytes."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.contiguous().numpy().tobytes()


def make_digits(count: int, seed: int, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable stand-ins for digits: class c lights a 6x6 square at its own spot, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count,), generator=generator)
    images = torch.randint(0, 40, (count, 28, 28), generator=generator)
    for i, label in enumerate(labels.tolist()):
        row, col = 3 + (label // 5) * 12, 2 + (label % 5) * 5
        images[i, row : row + 6, col : col + 6] = 255
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_mnist(
    data_dir: Path,
    train_count: int = 400,
    test_count: int = 100,
    make=make_digits,
    folder: str = "MNIST",
) -> Path:
    """IDX files of `make(count, seed)`'s images and labels, where the data module reads them
    (torchvision's layout: <data_dir>/<folder>/raw)."""
    raw = data_dir / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for names, count, seed in ((TRAIN_FILES, train_count, 1), (TEST_FILES, test_count, 2)):
        images, labels = make(count, seed)
        (raw / names[0]).write_bytes(idx_bytes(images))
        (raw / names[1]).write_bytes(idx_bytes(labels))
    return data_dir


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """Tiny files of MNIST, and of every other data set in conf/data (for recipes that use one),
    each with its own number of classes."""
    data_dir = tmp_path_factory.mktemp("data")
    for option in sorted((CONF_DIR / "data").glob("*.yaml")):
        data = compose_train(f"data={option.stem}").data
        make = functools.partial(make_digits, classes=len(data.classes))
        write_mnist(data_dir, make=make, folder=data.folder)
    return data_dir


def compose_train(*overrides: str, config_name: str = "train") -> DictConfig:
    return compose_config(list(overrides), config_name)


def data_module(*overrides: str, seed: int = 0):
    """The data module of the composed config (the default data set, MNIST, unless overridden)."""
    return build("data", compose_train(*overrides).data, seed=seed)


@pytest.fixture
def tiny_cfg(tiny_mnist):
    """Compose the train config on the tiny data set, with extra overrides."""

    def make(*overrides: str) -> DictConfig:
        return compose_train(f"data.data_dir={tiny_mnist}", *TINY, *overrides)

    return make


def run_module(module: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout=600):
    """Run `python -m <module> <args>` as a user would; returns the completed process."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_here(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in this process, for a command that stops before it has much to
    do (in a process of its own, its imports would be most of the test): its exit status and
    what it printed, as run_module gives them. The tests of the console start processes."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            run_as_main(module, *args)
            status = 0
        except SystemExit as exit:
            status = exit.code or 0
    return subprocess.CompletedProcess(
        [module, *args], status, stdout.getvalue(), stderr.getvalue()
    )


def train_here(*args: str) -> None:
    """`python -m src.train <args>` in this process; a sweep's launcher may still start processes
    of its own, as it would for a user."""
    run_as_main("src.train", *args)


def run_as_main(module: str, *args: str) -> None:
    """What `python -m <module> <args>` runs, with Hydra's state and logging put back after."""
    from hydra.core.global_hydra import GlobalHydra

    from src.core.config_errors import exit_on_config_error

    root = logging.getLogger()
    handlers, level, argv = root.handlers[:], root.level, sys.argv
    sys.argv = [f"{module.rpartition('.')[2]}.py", f"--config-path={CONF_DIR}", *args]
    try:
        exit_on_config_error(importlib.import_module(module).main)()
    finally:  # Hydra configured logging and its global state for this command only
        GlobalHydra.instance().clear()
        root.handlers, root.level, sys.argv = handlers, level, argv


@pytest.fixture(scope="session")
def trained_run(tiny_mnist, tmp_path_factory) -> tuple[Path, dict]:
    """One tiny run with the defaults (TensorBoard and its pictures): its folder and metrics,
    shared by the tests that read a trained run. Trained on 4 batches an epoch, so that it still
    gets some validation and test digits wrong."""
    from src.train import train

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_train(f"data.data_dir={tiny_mnist}", *TINY, "trainer.limit_train_batches=4")
    return run_dir, train(cfg, run_dir)


def evaluate(ckpt_path, data_dir: Path, out_dir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`python -m src.eval` of a checkpoint, run folder, sweep folder or list, as a user runs it;
    the process and the metrics.json it wrote."""
    result = run_module(
        "src.eval",
        f"ckpt_path={ckpt_path}",
        f"data.data_dir={data_dir}",
        f"hydra.run.dir={out_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((out_dir / "metrics.json").read_text())


def font_digits(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits rendered from a font, MNIST-style: white on black, about 20 pixels tall, centred."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(count) % 10
    images = []
    for label in labels.tolist():
        font = ImageFont.load_default(size=int(rng.integers(28, 32)))
        image = Image.new("L", (MNIST_SIZE, MNIST_SIZE), 0)
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
        x = (MNIST_SIZE - (right - left)) / 2 - left + rng.integers(-1, 2)
        y = (MNIST_SIZE - (bottom - top)) / 2 - top + rng.integers(-1, 2)
        draw.text((x, y), str(label), fill=int(rng.integers(200, 256)), font=font)
        images.append(torch.from_numpy(np.array(image)))
    return torch.stack(images), labels.to(torch.uint8)


def photo_of(digit: int) -> Image.Image:
    """Dark ink on light paper, large and off-centre: nothing like MNIST until preprocessed."""
    image = Image.new("RGB", (180, 240), (225, 220, 205))
    ImageDraw.Draw(image).text(
        (25, 20), str(digit), fill=(30, 30, 60), font=ImageFont.load_default(size=150)
    )
    return image


@pytest.fixture(scope="session")
def font_run(tmp_path_factory):
    """A convnet16 trained on font_digits (its folder and data folder), shared by the tests that
    need a run that predicts a photo of a digit right: src.predict's, src.serve's, src.export's."""
    from src.train import train

    data_dir = write_mnist(tmp_path_factory.mktemp("font"), 500, 100, make=font_digits)
    run_dir = tmp_path_factory.mktemp("font_run")
    overrides = ["model=convnet16", "optimizer.lr=0.003", "trainer.max_epochs=3", "logger=none"]
    train(compose_train(f"data.data_dir={data_dir}", *TINY, *overrides), run_dir)
    return run_dir, data_dir
