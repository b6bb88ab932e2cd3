"""Ensembles in src.eval and src.predict: several checkpoints answer by the mean of their members'
probabilities, each member preparing the images as its own run did."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from src.core.build import build
from src.core.checkpoints import load_classifier
from src.core.ensemble import Member, finished_jobs, log_mean_probabilities, why_unfinished
from src.data.idx import IDXDataModule, load_split, raw_folder
from src.data.images import read_image
from src.eval import score
from src.train import train
from tests.conftest import TINY, compose_train, data_module, evaluate, run_module, write_mnist

# Two members, each sure which class an image is not (a large negative logit) and mildly for
# another: their mean probabilities favour class 1, the mean of their logits class 2.
SURE_NOT_0 = torch.tensor([-20.0, 1.2, 0.0])
SURE_NOT_1 = torch.tensor([1.0, -20.0, 0.0])


class Fixed(nn.Module):
    """A hand-made member's network: the same logits for every image."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.answer = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.answer.expand(len(images), -1)


def test_the_mean_is_of_the_members_probabilities_not_of_their_logits():
    a, b = SURE_NOT_0[None], SURE_NOT_1[None]
    probabilities = log_mean_probabilities([a, b]).exp()
    assert torch.allclose(probabilities, (a.softmax(dim=1) + b.softmax(dim=1)) / 2)
    assert probabilities.argmax().item() == 1
    assert ((a + b) / 2).argmax().item() == 2
    # One member answers exactly as that network alone.
    assert torch.equal(log_mean_probabilities([a]), a.log_softmax(dim=1))


def test_eval_scores_an_ensemble_by_its_mean_probabilities():
    data = data_module()
    members = [
        Member(Path("a.ckpt"), Fixed(SURE_NOT_0), data),
        Member(Path("b.ckpt"), Fixed(SURE_NOT_1), data),
    ]
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([1, 1, 2, 0])
    report, _ = score(members, images, labels, ["0", "1", "2"])

    assert [(m["checkpoint"], m["test/correct"], m["test/acc"]) for m in report["members"]] == [
        ("a.ckpt", 2, 0.5),  # says 1
        ("b.ckpt", 1, 0.25),  # says 0
    ]
    # The ensemble says 1 for every image (the mean of the logits would say 2: 1 of 4 right).
    assert (report["test/correct"], report["test/images"], report["test/acc"]) == (2, 4, 0.5)
    assert report["confusion_matrix"] == [[0, 1, 0], [0, 2, 0], [0, 1, 0]]
    mean = (SURE_NOT_0.softmax(dim=0) + SURE_NOT_1.softmax(dim=0)) / 2
    assert report["test/loss"] == pytest.approx(-mean[labels].log().mean().item(), rel=1e-6)


def photo_of(digit: int) -> Image.Image:
    """Dark ink on light paper, large and off-centre: src.predict makes it MNIST-like."""
    image = Image.new("RGB", (180, 240), (225, 220, 205))
    font = ImageFont.load_default(size=150)
    ImageDraw.Draw(image).text((25, 20), str(digit), fill=(30, 30, 60), font=font)
    return image


def train_tiny(data_dir: Path, run_dir: Path, *overrides: str) -> tuple[Path, dict]:
    cfg = compose_train(f"data.data_dir={data_dir}", *TINY, "logger=none", *overrides)
    return run_dir, train(cfg, run_dir)


@pytest.fixture(scope="module")
def other_run(tiny_mnist, tmp_path_factory):
    """Another network than trained_run's (a convnet, normalize=half), with its own normalisation
    and its own way to make a photo MNIST-like."""
    run_dir = tmp_path_factory.mktemp("mlp_run")
    overrides = ("model=mlp", "data.normalize=dataset", "data.predict_box=16")
    return train_tiny(tiny_mnist, run_dir, "trainer.limit_train_batches=4", *overrides)


def by_hand(runs: list[Path], images_of: Callable[[IDXDataModule], torch.Tensor]) -> torch.Tensor:
    """The mean of the runs' probabilities for the images each run's data module makes
    (`images_of`), normalised as each run's data settings say."""
    probabilities = []
    for run in runs:
        model = load_classifier(run).eval()
        data = build("data", model.hparams.data, seed=0)
        with torch.no_grad():
            probabilities.append(model(data.normalize(images_of(data))).softmax(dim=1))
    return sum(probabilities) / len(probabilities)


def test_an_ensemble_of_two_runs_is_evaluated(trained_run, other_run, tiny_mnist, tmp_path):
    (run_a, metrics_a), (run_b, metrics_b) = trained_run, other_run
    out_dir = tmp_path / "eval"
    result, report = evaluate(f"[{run_a},{run_b}]", tiny_mnist, out_dir)

    # Each member scores as its run's own test did: its own network and normalisation.
    checkpoints = [str(run / "checkpoints" / "best.ckpt") for run in (run_a, run_b)]
    assert [member["checkpoint"] for member in report["members"]] == checkpoints
    for member, metrics in zip(report["members"], (metrics_a, metrics_b), strict=True):
        assert member["test/acc"] == member["test/correct"] / 100
        assert abs(member["test/acc"] - metrics["test/acc"]) < 1e-6
    # The ensemble's answer is the class of the highest mean probability, counted exactly.
    images, labels = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    answers = by_hand([run_a, run_b], lambda data: images).argmax(dim=1)
    right = int((answers == labels).sum())
    assert (report["test/correct"], report["test/images"]) == (right, 100)
    assert report["test/acc"] == right / 100
    assert sum(map(sum, report["confusion_matrix"])) == 100
    assert sum(digit["support"] for digit in report["per_class"].values()) == 100

    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"test acc {right / 100:.2%} | ")
    assert lines[0].endswith("the mean of 2 members:")
    for line, member in zip(lines[1:3], report["members"], strict=True):
        assert line.startswith(f"  member test acc {member['test/acc']:.2%} | ")
        assert line.endswith(member["checkpoint"])
    assert "class  precision   recall  support" in lines
    assert (out_dir / "confusion_matrix.png").is_file()


def test_an_ensemble_of_two_runs_predicts(trained_run, other_run, tiny_mnist, tmp_path):
    runs = [trained_run[0], other_run[0]]
    images, _ = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    for i in range(4):
        Image.fromarray(images[i, 0].numpy()).save(tmp_path / f"{i}.png")
    photo_of(7).save(tmp_path / "photo.png")
    paths = [tmp_path / f"{i}.png" for i in range(4)] + [tmp_path / "photo.png"]

    def made_mnist_like(data: IDXDataModule) -> torch.Tensor:
        return torch.stack([data.like_examples(read_image(path)) for path in paths])

    result = run_module("src.predict", f"ckpt_path=[{runs[0]},{runs[1]}]", f"inputs={tmp_path}",
                        "json=true")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["path"] for p in predictions] == [str(path) for path in paths]
    for prediction, chances in zip(predictions, by_hand(runs, made_mnist_like), strict=True):
        (best, runner_up), (first, second) = chances.topk(2)
        assert prediction["members"] == 2
        assert (prediction["class"], prediction["runner_up"]) == (str(int(first)), str(int(second)))
        assert prediction["probability"] == pytest.approx(float(best), abs=1e-4)
        assert prediction["runner_up_probability"] == pytest.approx(float(runner_up), abs=1e-4)


@pytest.fixture(scope="module")
def sweep(tiny_mnist, tmp_path_factory):
    """A real sweep over two seeds, and a third job that fails (a seed that is not a number)."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_module(
        "src.train", "-m", "seed=1,2,oops", f"data.data_dir={tiny_mnist}", *TINY,
        "trainer.max_epochs=1", "model=mlp", "logger=none", f"hydra.sweep.dir={folder}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]  # one job failed
    return folder


def test_a_sweep_folder_is_an_ensemble_of_its_finished_jobs(sweep, tiny_mnist, tmp_path):
    result, report = evaluate(sweep, tiny_mnist, tmp_path / "eval")
    assert [member["checkpoint"] for member in report["members"]] == [
        str(sweep / job / "checkpoints" / "best.ckpt") for job in ("0", "1")
    ]
    assert report["test/acc"] == report["test/correct"] / report["test/images"]
    assert f"note: skipping job 2 of {sweep}: failed: seed" in result.stderr


def test_a_job_without_a_checkpoint_is_skipped_with_the_reason_its_record_gives(tmp_path, capsys):
    records = {  # job 0 finished; 1 failed, 2's record is garbled, 3 was killed before writing one
        "1": '{"status": "failed", "error": "optimizer.lr must be > 0"}',
        "2": '{"status": "ok", "test/a',
    }
    for job in "0123":
        (tmp_path / job).mkdir()
        if job in records:
            (tmp_path / job / "metrics.json").write_text(records[job])
    (tmp_path / "0" / "checkpoints").mkdir()
    (tmp_path / "0" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    jobs = [tmp_path / job for job in "0123"]
    assert finished_jobs(tmp_path, jobs) == [tmp_path / "0" / "checkpoints" / "best.ckpt"]
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        f"note: skipping job 1 of {tmp_path}: failed: optimizer.lr must be > 0",
        f"note: skipping job 2 of {tmp_path}: failed: {tmp_path / '2' / 'metrics.json'} is not a "
        "run's record: cut short or garbled",
        f"note: skipping job 3 of {tmp_path}: failed: no metrics.json: stopped before its end "
        "(killed, interrupted), or still running",
    ]


def test_a_record_without_a_status_is_a_finished_runs(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    assert why_unfinished(tmp_path) == "it finished without a best checkpoint (no validation ran)"


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    data_dir = write_mnist(tmp_path_factory.mktemp("fashion"), folder="FashionMNIST")
    run_dir = tmp_path_factory.mktemp("fashion_run")
    return train_tiny(data_dir, run_dir, "data=fashion_mnist", "trainer.max_epochs=1")[0]


def test_members_of_different_data_sets_are_refused(trained_run, fashion_run, tmp_path):
    mnist = trained_run[0] / "checkpoints" / "best.ckpt"
    result = run_module(
        "src.eval", f"ckpt_path=[{mnist},{fashion_run}]", f"hydra.run.dir={tmp_path / 'eval'}"
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {mnist} and {fashion_run / 'checkpoints' / 'best.ckpt'} were trained on "
        "different data sets (MNIST with classes 0,1,2,3,4,5,6,7,8,9 and FashionMNIST with "
        "classes T-shirt/top,"
    )
    assert result.stderr.count("\n") == 1


def test_a_missing_member_names_itself(trained_run, tmp_path):
    missing = tmp_path / "gone"
    result = run_module(
        "src.predict", f"ckpt_path=[{trained_run[0]},{missing}]", f"inputs={tmp_path}"
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no checkpoint at {missing}: ")
    assert result.stderr.count("\n") == 1
