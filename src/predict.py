"""Predict the digit in each of the user's own images with a trained checkpoint or an ensemble.

python -m src.predict ckpt_path=outputs/runs/<date>/<time> inputs=my_digits/
python -m src.predict ckpt_path=<...> inputs='[seven.jpg,scans/*.png]' json=true
python -m src.predict ckpt_path=<...> inputs=mnist_like/ preprocess=false
python -m src.predict ckpt_path=outputs/multiruns/<date>/<time> inputs=my_digits/  # an ensemble

Prints per image its path, the predicted digit with its probability and the runner-up with its
probability (an ensemble's: the mean of its members' probabilities; json=true also says how many
members). A file that cannot be read as a digit gets `error: <file>: <why>` on stderr, the
others are still predicted, and the exit status is 2.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, ListConfig
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from src.core.config import validate
from src.core.config_errors import exit_on_config_error
from src.core.console import end_quietly_when_the_reader_stops
from src.core.ensemble import Member, load_members, log_mean_probabilities
from src.core.errors import EXIT_USAGE, exit_on_usage_error, message_line
from src.data.images import UnusableImage, as_is, read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}
# What reading a user's image may raise; `reason` turns each into one line (src.serve's too).
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    if not predict(cfg):
        sys.exit(EXIT_USAGE)


def predict(cfg: DictConfig) -> bool:
    """Print a prediction for every readable input; returns whether all of them were."""
    validate(cfg, "predict")
    members = load_members(cfg.ckpt_path)
    paths = image_paths(cfg.inputs)
    examples: dict[str, list[Tensor]] = {}  # per image: as each member's data set makes images
    for path in paths:
        try:
            examples[path] = read_examples(path, cfg.preprocess, members)
        except UNREADABLE as error:
            print(f"error: {path}: {reason(error)}", file=sys.stderr)
    if examples:
        per_member = [torch.stack(images) for images in zip(*examples.values(), strict=True)]
        logits = [member.logits(images) for member, images in zip(members, per_member, strict=True)]
        probabilities = log_mean_probabilities(logits).exp()
        classes = members[0].data.classes
        for path, chances in zip(examples, probabilities, strict=True):
            print(format_prediction(path, chances, classes, cfg.json, len(members)))
    return len(examples) == len(paths)


def image_paths(inputs: str | ListConfig) -> list[str]:
    """Every input as files: a file as given, a folder's images, a glob's matches. An input that
    names nothing is kept as it is, so that reading it reports it."""
    paths = []
    for entry in [inputs] if isinstance(inputs, str) else inputs:
        entry = str(entry)
        if Path(entry).is_dir():
            images = [
                p for p in sorted(Path(entry).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
            ]
            paths += [str(p) for p in images] or [entry]
        else:
            paths += sorted(glob.glob(entry)) or [entry]
    return paths


def read_examples(path: str, preprocess: bool, members: list[Member]) -> list[Tensor]:
    """The image at `path` as a uint8 (1, 28, 28) image like the data set's own, made as each
    member's run made them (members may have been trained with other preprocessing settings)."""
    if Path(path).is_dir():
        raise UnusableImage(f"a folder without images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if not Path(path).exists():
        raise UnusableImage("no such file, folder or glob match")
    return examples_of(read_image(path), preprocess, members)


def examples_of(image: Image.Image, preprocess: bool, members: list[Member]) -> list[Tensor]:
    """A grayscale image as each member's run made its images: uint8 (1, 28, 28)."""
    return [member.data.like_examples(image) if preprocess else as_is(image) for member in members]


def reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image file (or one in a format Pillow cannot read)"
    if isinstance(error, Image.DecompressionBombError):
        return f"{message_line(error).rstrip('.')}: scale it down"
    return message_line(error)


def format_prediction(
    path: str, probabilities: Tensor, classes: list[str], as_json: bool, members: int = 1
) -> str:
    (chance, runner_up_chance), (best, runner_up) = probabilities.topk(2)
    prediction: dict[str, Any] = {
        "path": path,
        "class": classes[best],
        "probability": round(float(chance), 4),
        "runner_up": classes[runner_up],
        "runner_up_probability": round(float(runner_up_chance), 4),
    }
    if members > 1:  # the mean of an ensemble's probabilities
        prediction["members"] = members
    if as_json:
        return json.dumps(prediction)
    return (
        f"{path}: {prediction['class']} ({prediction['probability']:.1%}), "
        f"runner-up {prediction['runner_up']} ({prediction['runner_up_probability']:.1%})"
    )


if __name__ == "__main__":
    end_quietly_when_the_reader_stops()
    exit_on_config_error(main)()
