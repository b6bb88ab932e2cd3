"""Summary tables of training runs: one row per run, best first by the metric a sweep optimises,
with the overrides that tell the runs apart (those they all share are said once).

python -m src.summarize outputs/multiruns/<date>/<time>    # one sweep: a row per job
python -m src.summarize outputs/                           # every run below a folder
python -m src.summarize outputs/runs                       # the single runs only

The summary lies in the folder given: summary.csv and summary.md, plus summary_by_config.csv when a
configuration ran more than once (seeds): its mean and standard deviation. A folder that is not a
sweep gets the table of every training run below it, single runs and sweep jobs alike, and the
summaries of the sweeps below it are rebuilt too. Hydra writes and prints a sweep's summary when
every multirun ends, through SummarizeSweep (conf/train.yaml: hydra.callbacks).
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.core.console import end_quietly_when_the_reader_stops
from src.core.errors import UsageError, exit_on_usage_error
from src.core.records import FINISHED, read_record
from src.core.sweeps import OPTIMIZED_METRIC, job_folders
from src.visuals.tables import markdown_table

RUN_COLUMNS = ("overrides", "status", "error", OPTIMIZED_METRIC, "test/acc", "epochs")
RUN_COLUMNS += ("fit_seconds", "parameters", "multiply_adds", "run_dir")
JOB_COLUMNS = ("job", *RUN_COLUMNS)
RESULT_HEADER = ["overrides", "status", OPTIMIZED_METRIC, "test/acc", "epochs", "fit s"]
STATS = ("mean", "std")


@dataclass(frozen=True)
class Layout:
    """What a summary shows of each run: the CSV's columns, the Markdown table's header and
    cells, and what the rows are."""

    csv_columns: tuple[str, ...]
    header: tuple[str, ...]
    cells: Callable[[dict[str, Any]], list[str]]
    noun: str


JOBS = Layout(  # a sweep's: the job number first, the folder last
    JOB_COLUMNS,
    ("job", *RESULT_HEADER, "run"),
    lambda job: [job["job"], *result_cells(job), job["run_dir"]],
    "jobs",
)
RUNS = Layout(  # any folder's: the run folder first, as the command line names it
    RUN_COLUMNS, ("run", *RESULT_HEADER), lambda run: [run["run_dir"], *result_cells(run)], "runs"
)


class SummarizeSweep(Callback):
    """Writes the summary at the sweep's root and prints it when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Then a sweep with a failed job ends with exit status 1, as a failed run does, so a
        script that runs it can tell."""
        sweep = Path(config.hydra.sweep.dir)
        jobs = sweep_jobs(sweep)
        print(summarize(sweep, jobs) + written(sweep))
        if failed := count_failed(jobs):
            sys.exit(f"error: {failed} of {len(jobs)} jobs failed: their errors are above")


def sweep_jobs(sweep: Path) -> list[dict[str, Any]]:
    return [read_run(folder) | {"job": folder.name} for folder in job_folders(sweep)]


def count_failed(runs: list[dict[str, Any]]) -> int:
    return sum(run["status"] not in FINISHED for run in runs)


def summarize(sweep: Path, jobs: list[dict[str, Any]] | None = None) -> str:
    """Write the summary of a sweep's jobs (read from its folder unless given) in the sweep
    folder; returns the Markdown."""
    jobs = sweep_jobs(sweep) if jobs is None else jobs
    board = sweep / "tensorboard"  # none with logger=none, or when every job failed to build
    tensorboard = f"TensorBoard: `tensorboard --logdir {board}`" if board.is_dir() else ""
    return write_summary(sweep, jobs, JOBS, f"Sweep {sweep}", tensorboard)


def summarize_runs(folder: Path, runs: list[Path]) -> str:
    """Write the summary of these runs (single runs and sweep jobs) in folder; returns the
    Markdown."""
    tensorboard = f"TensorBoard: `tensorboard --logdir {folder}`"
    return write_summary(
        folder, [read_run(run) for run in runs], RUNS, f"Runs in {folder}", tensorboard
    )


def write_summary(
    folder: Path, runs: list[dict[str, Any]], layout: Layout, title: str, tensorboard: str
) -> str:
    """summary.csv, summary.md (and summary_by_config.csv) of the runs, best first, each with the
    overrides that the runs do not all share; returns the Markdown."""
    runs = sorted(runs, key=rank)
    shared = set.intersection(*(set(run["overrides"]) for run in runs)) if runs else set()
    for run in runs:
        run["overrides"] = [o for o in run["overrides"] if o not in shared]
    configs = by_config(runs)

    write_csv(folder / "summary.csv", layout.csv_columns, runs)
    if configs:
        write_csv(folder / "summary_by_config.csv", list(configs[0]), configs)
    failed = count_failed(runs)
    lines = [
        f"# {title}",
        "",
        f"{len(runs)} {layout.noun}, {failed} failed, best first by {OPTIMIZED_METRIC}. "
        f"Shared overrides: {' '.join(sorted(shared)) or 'none'}. {tensorboard}".rstrip(),
        "",
        markdown_table(list(layout.header), [layout.cells(run) for run in runs]),
    ]
    if configs:
        lines += ["", "## Per configuration, over its seeds (mean ± std)", ""]
        lines.append(markdown_table(list(configs[0]), [config_cells(config) for config in configs]))
    markdown = "\n".join(lines) + "\n"
    (folder / "summary.md").write_text(markdown)
    return markdown


def written(folder: Path) -> str:
    """The line that says where the summary files are."""
    files = ("summary.md", "summary.csv", "summary_by_config.csv")
    return f"\nWritten in {folder}: {', '.join(f for f in files if (folder / f).is_file())}\n"


def read_run(folder: Path) -> dict[str, Any]:
    """A run's (or a job's) overrides and its metrics.json, or why it has none."""
    given = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
    # A key given twice counts once, with the last value, as in Hydra (a sweep's jobs list it so)
    overrides = list({override.partition("=")[0]: override for override in given}.values())
    record = read_record(folder)
    run = {key: record.get(key) for key in RUN_COLUMNS}
    return run | {
        "overrides": overrides,
        "status": record.get("status", "ok"),
        "error": record.get("error", ""),
        "run_dir": str(folder),
    }


def rank(run: dict[str, Any]) -> tuple:
    """Finished runs (pruned ones too) best first (the metric, then the test accuracy), then
    failed ones in the order of their folders."""
    if run["status"] in FINISHED:
        # A run without validation (trainer.limit_val_batches=0) has no metric: after the others.
        metric = run[OPTIMIZED_METRIC]
        return (0, metric is None, -(metric or 0), -run["test/acc"])
    return (1, natural_order(run["run_dir"]))


def natural_order(text: str) -> tuple:
    """Numbers in text compare as numbers: job 2 before job 10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def by_config(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation per configuration (the overrides minus the seed) when one ran
    more than once; empty otherwise. Runs that a search pruned are left out: they stopped
    early."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["status"] == "ok" and run[OPTIMIZED_METRIC] is not None:
            config = " ".join(o for o in run["overrides"] if not o.startswith("seed=")) or "all"
            groups.setdefault(config, []).append(run)
    if all(len(group) < 2 for group in groups.values()):
        return []
    rows = []
    for config, group in groups.items():
        row: dict[str, Any] = {"overrides": config, "runs": len(group)}
        for metric in (OPTIMIZED_METRIC, "test/acc"):
            values = [run[metric] for run in group]
            row[f"{metric} mean"] = statistics.mean(values)
            row[f"{metric} std"] = statistics.stdev(values) if len(values) > 1 else None
        row["fit s/epoch"] = statistics.mean(run["fit_seconds"] / run["epochs"] for run in group)
        row["parameters"] = group[0]["parameters"]
        row["multiply-adds"] = group[0]["multiply_adds"]
        rows.append(row)
    return sorted(rows, key=lambda row: -row[f"{OPTIMIZED_METRIC} mean"])


def result_cells(run: dict[str, Any]) -> list[str]:
    status = run["status"] if run["status"] in FINISHED else f"failed: {run['error']}"
    fit = "" if run["fit_seconds"] is None else f"{run['fit_seconds']:.1f}"
    epochs = "" if run["epochs"] is None else str(run["epochs"])
    accuracies = [percent(run[OPTIMIZED_METRIC]), percent(run["test/acc"])]
    return [" ".join(run["overrides"]), status, *accuracies, epochs, fit]


def config_cells(config: dict[str, Any]) -> list[str]:
    accuracies = [
        percent(config[f"{m} {s}"]) for m in (OPTIMIZED_METRIC, "test/acc") for s in STATS
    ]
    sizes = [
        f"{config[k]:,}" if config[k] is not None else "" for k in ("parameters", "multiply-adds")
    ]
    return [
        config["overrides"],
        str(config["runs"]),
        *accuracies,
        f"{config['fit s/epoch']:.1f}",
        *sizes,
    ]


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def write_csv(path: Path, columns: list[str] | tuple[str, ...], rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})


def training_runs(path: Path) -> dict[Path, str]:
    """The folders of the training runs at or below path (src.train's, not src.eval's), each
    with Hydra's mode: RUN for a single run, MULTIRUN for a job of a sweep."""
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder: give a run or sweep folder, or outputs/")
    runs = {}
    for config in path.glob("**/.hydra/hydra.yaml"):
        hydra = yaml.safe_load(config.read_text())["hydra"]
        if hydra.get("job", {}).get("config_name") == "train":
            runs[config.parents[1]] = hydra["mode"]
    if not runs:
        raise UsageError(
            f"no run in {path}: a run folder (outputs/runs/<date>/<time>, or a job of a sweep "
            "in outputs/multiruns/<date>/<time>) holds .hydra/ and metrics.json, made by "
            "`python -m src.train`"
        )
    return runs


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a sweep folder, or any folder of runs (outputs/)")
    path = parser.parse_args(argv).path
    runs = training_runs(path)
    sweeps = {run.parent for run, mode in runs.items() if mode == "MULTIRUN"}
    if sweeps == {path}:
        print(summarize(path) + written(path))
        return
    inside = sorted(sweep for sweep in sweeps if sweep.is_relative_to(path))
    for sweep in inside:
        summarize(sweep)
    print(summarize_runs(path, sorted(runs)) + written(path))
    if inside:
        print(f"Rebuilt the summary of each sweep in its folder: {', '.join(map(str, inside))}")


if __name__ == "__main__":
    end_quietly_when_the_reader_stops()
    main()
