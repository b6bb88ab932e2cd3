"""Evaluate a trained checkpoint on its data set's official test set.

python -m src.eval ckpt_path=outputs/runs/<date>/<time>          # a run folder: its best checkpoint
python -m src.eval ckpt_path=path/to/last.ckpt data.data_dir=../shared/data

The checkpoint alone rebuilds the model and the data settings it was trained with. Prints test
accuracy (from counts: correct / total), loss and a per-class table; writes metrics.json,
confusion_matrix.png and misclassified.png into outputs/evals/<date>/<time>/.
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

from src.core.build import build
from src.core.checkpoints import data_settings, find_checkpoint, load_classifier
from src.core.classifier import Classifier
from src.core.config import validate
from src.core.errors import exit_on_config_error, exit_on_usage_error
from src.data.idx import IDXDataModule
from src.tools.figures import confusion_figure, digits_figure, mistakes_by_loss


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Test the checkpoint, print the report and write its files; returns metrics.json's content."""
    validate(cfg, "eval")
    model = load_classifier(cfg.ckpt_path).eval()
    data = build("data", {**data_settings(cfg.ckpt_path), **cfg.data}, seed=0)
    data.prepare_data()
    data.setup("test")
    images, labels = data.splits["test"]
    logits = logits_of_test_set(model, data)

    matrix = multiclass_confusion_matrix(logits, labels, len(data.classes))
    correct, total = int(matrix.trace()), int(matrix.sum())
    report = {
        "checkpoint": str(find_checkpoint(cfg.ckpt_path)),
        "images": total,
        "correct": correct,
        "test/acc": correct / total,
        "test/loss": float(F.cross_entropy(logits, labels)),
        "per_class": per_class(matrix, data.classes),
        "confusion_matrix": matrix.tolist(),
    }
    mistakes = mistakes_by_loss(logits, labels)
    report["misclassified"] = len(mistakes)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    confusion_figure(matrix, data.classes).savefig(out_dir / "confusion_matrix.png")
    shown = mistakes[: cfg.misclassified]
    figure = digits_figure(images[shown], logits[shown].argmax(dim=1), labels[shown], data.classes)
    figure.savefig(out_dir / "misclassified.png")
    print(format_report(report))
    print(f"wrote metrics.json, confusion_matrix.png and misclassified.png in {out_dir}")
    return report


def logits_of_test_set(model: Classifier, data: IDXDataModule) -> Tensor:
    """The model's logits for every test image, in the test set's order; images are normalised
    by the data module, as in training."""
    with torch.inference_mode():
        batches = (data.on_after_batch_transfer(batch, 0) for batch in data.test_dataloader())
        return torch.cat([model(images) for images, _ in batches])


def per_class(matrix: Tensor, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each class, from the confusion matrix (rows: true)."""
    right, predicted, support = matrix.diag(), matrix.sum(dim=0), matrix.sum(dim=1)
    return {
        name: {
            "precision": int(right[i]) / int(predicted[i]) if predicted[i] else 0.0,
            "recall": int(right[i]) / int(support[i]) if support[i] else 0.0,
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }


def format_report(report: dict[str, Any]) -> str:
    width = max(5, *map(len, report["per_class"]))
    lines = [
        f"test acc {report['test/acc']:.2%} | test loss {report['test/loss']:.4f} | "
        f"{report['correct']:,} of {report['images']:,} test images right | "
        f"{report['checkpoint']}",
        "",
        f"{'class':>{width}}  precision   recall  support",
    ]
    for name, scores in report["per_class"].items():
        lines.append(
            f"{name:>{width}}  {scores['precision']:>9.2%}  {scores['recall']:>7.2%}  "
            f"{scores['support']:>7,}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    exit_on_config_error(main)()
