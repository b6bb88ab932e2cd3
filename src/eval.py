"""Evaluate a trained checkpoint on the official MNIST test set.

python -m src.eval ckpt_path=outputs/runs/<date>/<time>          # a run folder: its best checkpoint
python -m src.eval ckpt_path=path/to/last.ckpt data.data_dir=../shared/data

The checkpoint alone rebuilds the model and the data settings it was trained with. Prints test
accuracy, loss and a per-digit table; writes metrics.json, confusion_matrix.png and
misclassified.png into outputs/evals/<date>/<time>/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from src.config import validate
from src.data import MNISTDataModule
from src.errors import exit_on_config_error, exit_on_usage_error
from src.figures import confusion_figure, digits_figure, mistakes_by_loss
from src.networks import NUM_CLASSES
from src.task import DigitClassifier, find_checkpoint, load_classifier, load_data_settings


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Test the checkpoint, print the report and write its files; returns metrics.json's content."""
    validate(cfg)
    model = load_classifier(cfg.ckpt_path).eval()
    data = MNISTDataModule(**{**load_data_settings(cfg.ckpt_path), **cfg.data})
    data.prepare_data()
    data.setup("test")
    images, labels = data.splits["test"]
    logits = logits_of_test_set(model, data)

    matrix = multiclass_confusion_matrix(logits, labels, NUM_CLASSES)
    report = {
        "checkpoint": str(find_checkpoint(cfg.ckpt_path)),
        "images": len(labels),
        "test/acc": float(matrix.trace() / matrix.sum()),
        "test/loss": float(F.cross_entropy(logits, labels)),
        "per_digit": per_digit(matrix),
        "confusion_matrix": matrix.tolist(),
    }
    mistakes = mistakes_by_loss(logits, labels)
    report["misclassified"] = len(mistakes)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    confusion_figure(matrix).savefig(out_dir / "confusion_matrix.png")
    shown = mistakes[: cfg.misclassified]
    figure = digits_figure(images[shown], logits[shown].argmax(dim=1), labels[shown])
    figure.savefig(out_dir / "misclassified.png")
    print(format_report(report))
    print(f"wrote metrics.json, confusion_matrix.png and misclassified.png in {out_dir}")
    return report


def logits_of_test_set(model: DigitClassifier, data: MNISTDataModule) -> Tensor:
    """The model's logits for every test image, in the test set's order; images are normalised
    by the data module, as in training."""
    with torch.inference_mode():
        batches = (data.on_after_batch_transfer(batch, 0) for batch in data.test_dataloader())
        return torch.cat([model(images) for images, _ in batches])


def per_digit(matrix: Tensor) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each digit, from the confusion matrix (rows: true)."""
    right, predicted, support = matrix.diag(), matrix.sum(dim=0), matrix.sum(dim=1)
    return {
        str(digit): {
            "precision": float(right[digit] / predicted[digit]) if predicted[digit] else 0.0,
            "recall": float(right[digit] / support[digit]) if support[digit] else 0.0,
            "support": int(support[digit]),
        }
        for digit in range(NUM_CLASSES)
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"test acc {report['test/acc']:.2%} | test loss {report['test/loss']:.4f} | "
        f"{report['images']:,} test images, {report['misclassified']:,} misclassified | "
        f"{report['checkpoint']}",
        "",
        "digit  precision   recall  support",
    ]
    for digit, scores in report["per_digit"].items():
        lines.append(
            f"{digit:>5}  {scores['precision']:>9.2%}  {scores['recall']:>7.2%}  "
            f"{scores['support']:>7,}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    exit_on_config_error(main)()
