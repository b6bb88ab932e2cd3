"""Checkpoints: found from a run folder, loaded weights-only, and read as the plain values they
hold. A checkpoint's saved config is data: what it names is built only through src/core/build.py,
which refuses anything but a class of the expected kind."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from src.core.classifier import Classifier
from src.core.errors import UsageError, message_line


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = best_checkpoint(path)
    if not path.is_file():
        raise UsageError(
            f"no checkpoint at {path}: pass a .ckpt file, a run folder that holds "
            "checkpoints/best.ckpt (see outputs/runs/...) or a sweep folder whose jobs do "
            "(outputs/multiruns/...)"
        )
    return path


def best_checkpoint(run_folder: Path) -> Path:
    """Where a run keeps the checkpoint of its best validation accuracy."""
    return run_folder / "checkpoints" / "best.ckpt"


def load_classifier(path: str | Path, map_location: str = "cpu") -> Classifier:
    """Rebuild a trained classifier from its checkpoint alone.

    Loading is weights-only: a checkpoint holds tensors and plain values, never code to run.
    """
    checkpoint = find_checkpoint(path)
    require_current_format(checkpoint)
    try:
        return Classifier.load_from_checkpoint(
            checkpoint, map_location=map_location, weights_only=True
        )
    except UsageError as error:  # what the saved config names was refused
        raise UsageError(f"{checkpoint}: {error}") from None
    except Exception as error:
        if weights_do_not_fit(error):
            raise another_network(checkpoint, error) from None
        raise not_a_checkpoint(checkpoint, error) from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's content, loaded weights-only: a file that would run code when loaded (a
    pickle with its own instructions) is refused, not executed."""
    if not zipfile.is_zipfile(path):  # torch.save's format; torch's own reason would be cryptic
        raise not_a_checkpoint(path, ValueError("not a PyTorch file: truncated or corrupt"))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise not_a_checkpoint(path, error) from None
    if not isinstance(content, dict) or "state_dict" not in content:
        raise not_a_checkpoint(path, ValueError("it holds no state_dict"))
    return content


def load_weights_that_fit(model: Classifier, path: Path) -> None:
    """Load a checkpoint's weights into `model`, or say that they belong to another network."""
    weights = read_checkpoint(path)["state_dict"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise another_network(path, error) from None


def weights_do_not_fit(error: Exception) -> bool:
    return isinstance(error, RuntimeError) and "Error(s) in loading state_dict" in str(error)


def not_a_checkpoint(path: Path, error: Exception) -> UsageError:
    reason = message_line(error)
    if "Weights only load failed" in reason:  # torch's message goes on for a page
        reason = "it holds Python objects beyond tensors and plain values, which are not loaded"
    return UsageError(
        f"{path} could not be loaded as a checkpoint of this project ({reason}): pass a "
        "checkpoint written by `python -m src.train` (a run's checkpoints/best.ckpt)"
    )


def another_network(path: Path, error: Exception) -> UsageError:
    """PyTorch lists every mismatched tensor; the first one says enough."""
    details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    return UsageError(
        f"{path} holds the weights of another network than its run's model config "
        f"({details[0] if details else message_line(error)}): pass a checkpoint together "
        "with the config it was trained with (its own run folder)"
    )


def require_current_format(path: Path) -> None:
    """Checkpoints from before networks, data sets and optimizers became plug-ins (`_target_`)
    hold settings this version cannot build from."""
    settings = read_checkpoint(path).get("hyper_parameters", {})
    if "_target_" not in settings.get("model", {}) or "data" not in settings:
        raise UsageError(
            f"{path} was written by an older version of this project (its config names no "
            "network class): train it again with `python -m src.train`"
        )
