"""Evaluate a trained checkpoint, or an ensemble of them, on its data set's official test set.

python -m src.eval ckpt_path=outputs/runs/<date>/<time>          # a run folder: its best checkpoint
python -m src.eval ckpt_path=path/to/last.ckpt data.data_dir=../shared/data
python -m src.eval ckpt_path=outputs/multiruns/<date>/<time>     # a sweep: its jobs as an ensemble
python -m src.eval ckpt_path='[runA,runB,path/to/x.ckpt]'        # an ensemble of these

The checkpoint alone rebuilds the model and the data settings it was trained with. An ensemble
answers by the mean of its members' probabilities (src/core/ensemble.py). Prints test accuracy
(from counts: correct / total), loss and a per-class table, and each member's test accuracy;
writes metrics.json, confusion_matrix.png and misclassified.png into outputs/evals/<date>/<time>/.
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

from src.core.classifier import Tally
from src.core.config import validate
from src.core.config_errors import exit_on_config_error
from src.core.ensemble import Member, load_members, log_mean_probabilities
from src.core.errors import exit_on_usage_error
from src.visuals.figures import confusion_figure, digits_figure, mistakes_by_loss


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Test the checkpoint or the ensemble, print the report and write its files; returns
    metrics.json's content."""
    validate(cfg, "eval")
    members = load_members(cfg.ckpt_path, cfg.data)
    data = members[0].data  # the test set of every member: load_members checked they share it
    data.prepare_data()
    data.setup("test")
    images, labels = data.splits["test"]
    report, log_probabilities = score(members, images, labels, data.classes)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    matrix = torch.tensor(report["confusion_matrix"])
    confusion_figure(matrix, data.classes).savefig(out_dir / "confusion_matrix.png")
    shown = mistakes_by_loss(log_probabilities, labels)[: cfg.misclassified]
    predicted = log_probabilities[shown].argmax(dim=1)
    digits_figure(images[shown], predicted, labels[shown], data.classes).savefig(
        out_dir / "misclassified.png"
    )
    print(format_report(report))
    print(f"wrote metrics.json, confusion_matrix.png and misclassified.png in {out_dir}")
    return report


def score(
    members: list[Member], images: Tensor, labels: Tensor, classes: list[str]
) -> tuple[dict[str, Any], Tensor]:
    """metrics.json's content for the test set (accuracies from counts: correct / total), and the
    log of the ensemble's probabilities for each test image."""
    logits = [member.logits(images) for member in members]
    log_probabilities = log_mean_probabilities(logits)
    matrix = multiclass_confusion_matrix(log_probabilities.argmax(dim=1), labels, len(classes))
    tally = Tally(int(matrix.trace()), int(matrix.sum()))
    report = {
        **member_scores(members, logits, labels),
        **tally.metrics("test"),
        "test/loss": float(F.nll_loss(log_probabilities, labels)),
        "per_class": per_class(matrix, classes),
        "confusion_matrix": matrix.tolist(),
        "misclassified": tally.images - tally.correct,
    }
    return report, log_probabilities


def member_scores(members: list[Member], logits: list[Tensor], labels: Tensor) -> dict[str, Any]:
    """The checkpoint, or each member of an ensemble with its own test accuracy (from counts)."""
    if len(members) == 1:
        return {"checkpoint": str(members[0].checkpoint)}
    scores = []
    for member, answers in zip(members, logits, strict=True):
        tally = Tally(int((answers.argmax(dim=1) == labels).sum()), len(labels))
        scores.append({"checkpoint": str(member.checkpoint), **tally.metrics("test")})
    return {"members": scores}


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
        *summary_lines(report),
        "",
        f"{'class':>{width}}  precision   recall  support",
    ]
    for name, scores in report["per_class"].items():
        lines.append(
            f"{name:>{width}}  {scores['precision']:>9.2%}  {scores['recall']:>7.2%}  "
            f"{scores['support']:>7,}"
        )
    return "\n".join(lines) + "\n"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The test accuracy and who gave it: the checkpoint, or the ensemble and each member."""
    scores = (
        f"test acc {report['test/acc']:.2%} | test loss {report['test/loss']:.4f} | "
        f"{report['test/correct']:,} of {report['test/images']:,} test images right"
    )
    if "checkpoint" in report:
        return [f"{scores} | {report['checkpoint']}"]
    members = report["members"]
    return [f"{scores} | the mean of {len(members)} members:"] + [
        f"  member test acc {member['test/acc']:.2%} | {member['test/correct']:,} right | "
        f"{member['checkpoint']}"
        for member in members
    ]


if __name__ == "__main__":
    exit_on_config_error(main)()
