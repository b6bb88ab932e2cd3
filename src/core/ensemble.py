"""Ensembles: several trained checkpoints that answer together by the mean of their probabilities.

`ckpt_path` of src.eval and src.predict names one checkpoint or several: each entry a .ckpt file,
a run folder (its checkpoints/best.ckpt) or a sweep folder (its jobs' best checkpoints). One
checkpoint is an ensemble of one, which answers exactly as that checkpoint alone.

Each member prepares the images as its own run did (its data settings: normalisation, and for
src.predict the way a photo is made like the data set's images), so members may differ in network
and normalisation, but they must have learned the same data set.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.core.build import build
from src.core.checkpoints import best_checkpoint, find_checkpoint, load_classifier
from src.core.errors import UsageError
from src.core.records import read_record
from src.core.sweeps import job_folders
from src.data.idx import IDXDataModule


@dataclass(frozen=True)
class Member:
    """One checkpoint of an ensemble: its network and the data module of its own data settings."""

    checkpoint: Path
    model: nn.Module
    data: IDXDataModule

    def logits(self, images: Tensor) -> Tensor:
        """The network's logits for uint8 images, normalised as in the member's training."""
        with torch.inference_mode():
            batches = images.split(self.data.eval_batch_size)
            return torch.cat([self.model(self.data.normalize(batch)) for batch in batches])


def load_members(
    ckpt_path: str | Sequence[str], data: Mapping[str, Any] | None = None
) -> list[Member]:
    """Every member `ckpt_path` names, loaded; `data` overrides their data settings (where the
    files are, batch sizes). Members of different data sets are refused."""
    members = []
    for checkpoint in member_checkpoints(ckpt_path):
        model = load_classifier(checkpoint).eval()
        # the data settings it was trained with: the data set and its normalisation above all
        settings = {**model.hparams.data, **(data or {})}
        members.append(Member(checkpoint, model, build("data", settings, seed=0)))
    require_one_data_set(members)
    return members


def member_checkpoints(ckpt_path: str | Sequence[str]) -> list[Path]:
    """The checkpoint of every entry: a file as given, a run folder's best, or the best of each
    job of a sweep folder."""
    entries = [ckpt_path] if isinstance(ckpt_path, str) else list(ckpt_path)
    checkpoints = []
    for entry in map(Path, map(str, entries)):
        # A folder without a checkpoint of its own may be a sweep: a folder of jobs.
        jobs = [] if best_checkpoint(entry).exists() else job_folders(entry)
        checkpoints += finished_jobs(entry, jobs) if jobs else [find_checkpoint(entry)]
    return checkpoints


def finished_jobs(sweep: Path, jobs: list[Path]) -> list[Path]:
    """The best checkpoint of each job of the sweep that wrote one; a job without one (failed,
    or not finished) is skipped, with a note on stderr."""
    finished = [best_checkpoint(job) for job in jobs if best_checkpoint(job).is_file()]
    for job in jobs:
        if best_checkpoint(job) not in finished:
            print(
                f"note: skipping job {job.name} of {sweep}: {why_unfinished(job)}", file=sys.stderr
            )
    if not finished:
        raise UsageError(
            f"no job of the sweep {sweep} has a checkpoint: every job failed or is unfinished"
        )
    return finished


def why_unfinished(job: Path) -> str:
    """Why a job has no best checkpoint: the error its record gives, or that it finished without
    one (no validation)."""
    record = read_record(job)
    if record.get("status") == "failed":  # none: a finished run, as src.summarize reads it
        return f"failed: {record['error']}"
    return "it finished without a best checkpoint (no validation ran)"


def require_one_data_set(members: Sequence[Member]) -> None:
    """Averaging probabilities means something only over the same classes of the same images."""
    first = members[0]
    for member in members[1:]:
        if data_set(member) != data_set(first):
            raise UsageError(
                f"{first.checkpoint} and {member.checkpoint} were trained on different data sets "
                f"({describe(first)} and {describe(member)}): an ensemble's members must share "
                "one data set"
            )


def data_set(member: Member) -> tuple[str, list[str]]:
    """What makes two data configs one data set; the rest (normalisation, augmentation) is how a
    member was trained on it."""
    return member.data.folder, member.data.classes


def describe(member: Member) -> str:
    return f"{member.data.folder} with classes {','.join(member.data.classes)}"


def log_mean_probabilities(logits: Sequence[Tensor]) -> Tensor:
    """The log of the mean of the members' probabilities (the softmax of each one's logits), per
    image and class. Averaged in log space, so that a probability too small for a float keeps its
    log (the loss of a confident mistake stays finite); for one member it is its log-softmax."""
    log_probabilities = torch.stack([F.log_softmax(x.float(), dim=1) for x in logits])
    return torch.logsumexp(log_probabilities, dim=0) - math.log(len(logits))
