"""metrics.json: the record that every training run and sweep job leaves in its folder, finished
or failed, and that the summaries (src/summarize.py) and ensembles (src/core/ensemble.py) read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.core.errors import USER_ERRORS, message_line

RECORD = "metrics.json"
# A pruned run is a trial of an Optuna search that the pruner stopped early: it ended cleanly, was
# tested, and has every metric of a finished run.
FINISHED = ("ok", "pruned")
NOT_FINISHED = f"no {RECORD}: stopped before its end (killed, interrupted), or still running"


def write_metrics(run_dir: Path, metrics: dict, overrides: list[str], name: str | None) -> None:
    """The run's status ("ok" unless metrics says "failed"), its metrics or error, its label and
    overrides."""
    record = {
        "status": "ok",
        **metrics,
        "name": name,
        "overrides": overrides,
        "run_dir": str(run_dir),
    }
    save_record(run_dir, record)


def save_record(run_dir: Path, record: dict[str, Any]) -> None:
    # default=str: a label of the wrong type (name=[1,2]) is what the run failed on; it is kept.
    (run_dir / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")


def mark_pruned(run_dir: Path, epoch: int) -> None:
    """A finished run's record, as a trial that the search's pruner stopped after that epoch."""
    save_record(run_dir, read_record(run_dir) | {"status": "pruned", "pruned_after_epoch": epoch})


def write_failure(run_dir: Path, error: Exception, overrides: list[str], name: str | None) -> str:
    """The record of a run that failed, so that summaries list it with its reason; returns the
    reason."""
    reason = failure_reason(error)
    write_metrics(run_dir, {"status": "failed", "error": reason}, overrides, name)
    return reason


def failure_reason(error: BaseException) -> str:
    """The error as one line for a summary table: a usage error's message, or the exception's
    type and the first line of its message."""
    message = message_line(error)  # the type's name when the message is empty
    if isinstance(error, USER_ERRORS) or not str(error).strip():
        return message
    return f"{type(error).__name__}: {message}"


def read_record(run_dir: Path) -> dict[str, Any]:
    """The run's record, or the record of a failed run that says why there is none to read."""
    path = run_dir / RECORD
    if not path.is_file():
        return {"status": "failed", "error": NOT_FINISHED}
    try:
        record = json.loads(path.read_text())
    except ValueError:  # not JSON, or not text
        record = None
    if not isinstance(record, dict):
        return {"status": "failed", "error": f"{path} is not a run's record: cut short or garbled"}
    return record
