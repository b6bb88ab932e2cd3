"""The summary of a sweep: one row per job, best first by the metric the sweep optimises.

python -m src.summarize outputs/multiruns/<date>/<time>    # one sweep
python -m src.summarize outputs/                           # every sweep below a folder

Each sweep's root gets summary.csv and summary.md, plus summary_by_config.csv when a configuration
ran more than once (seeds): its mean and standard deviation. Hydra writes and prints the summary
when every multirun ends, through SummarizeSweep (conf/train.yaml: hydra.callbacks).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.core.errors import UsageError, exit_on_usage_error
from src.core.sweeps import OPTIMIZED_METRIC, job_folders
from src.tools.tables import markdown_table

JOB_COLUMNS = ("job", "overrides", "status", "error", OPTIMIZED_METRIC, "test/acc", "epochs")
JOB_COLUMNS += ("fit_seconds", "parameters", "multiply_adds", "run_dir")
STATS = ("mean", "std")
NOT_FINISHED = "no metrics.json: the job was killed, or is still running"


class SummarizeSweep(Callback):
    """Writes the summary at the sweep's root and prints it when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        print(summarize(Path(config.hydra.sweep.dir)))


def summarize(sweep: Path) -> str:
    """Write summary.csv, summary.md (and summary_by_config.csv) in the sweep folder; returns
    the Markdown."""
    jobs = sorted((read_job(folder) for folder in job_folders(sweep)), key=rank)
    shared = set.intersection(*(set(job["overrides"]) for job in jobs)) if jobs else set()
    for job in jobs:
        job["overrides"] = [o for o in job["overrides"] if o not in shared]
    configs = by_config(jobs)

    write_csv(sweep / "summary.csv", JOB_COLUMNS, jobs)
    if configs:
        write_csv(sweep / "summary_by_config.csv", list(configs[0]), configs)
    failed = sum(job["status"] != "ok" for job in jobs)
    lines = [
        f"# Sweep {sweep}",
        "",
        f"{len(jobs)} jobs, {failed} failed, best first by {OPTIMIZED_METRIC}. "
        f"Shared overrides: {' '.join(sorted(shared)) or 'none'}. "
        f"TensorBoard: `tensorboard --logdir {sweep / 'tensorboard'}`",
        "",
        markdown_table(
            ["job", "overrides", "status", OPTIMIZED_METRIC, "test/acc", "epochs", "fit s", "run"],
            [job_cells(job) for job in jobs],
        ),
    ]
    if configs:
        lines += ["", "## Per configuration, over its seeds (mean ± std)", ""]
        lines.append(markdown_table(list(configs[0]), [config_cells(config) for config in configs]))
    markdown = "\n".join(lines) + "\n"
    (sweep / "summary.md").write_text(markdown)
    return markdown


def read_job(folder: Path) -> dict[str, Any]:
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        record = json.loads(metrics_file.read_text())
    else:
        record = {"status": "failed", "error": NOT_FINISHED}
    job = {key: record.get(key) for key in JOB_COLUMNS}
    return job | {
        "job": folder.name,
        "overrides": overrides,
        "status": record.get("status", "ok"),
        "error": record.get("error", ""),
        "run_dir": str(folder),
    }


def rank(job: dict[str, Any]) -> tuple:
    """Finished jobs best first (the metric, then the test accuracy), then failed ones in job
    order."""
    if job["status"] == "ok":
        return (0, -job[OPTIMIZED_METRIC], -job["test/acc"])
    return (1, len(job["job"]), job["job"])  # job numbers in numeric order: 2 before 10


def by_config(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation per configuration (the overrides minus the seed) when one ran
    more than once; empty otherwise."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        if job["status"] == "ok":
            config = " ".join(o for o in job["overrides"] if not o.startswith("seed=")) or "all"
            groups.setdefault(config, []).append(job)
    if all(len(runs) < 2 for runs in groups.values()):
        return []
    rows = []
    for config, runs in groups.items():
        row: dict[str, Any] = {"overrides": config, "runs": len(runs)}
        for metric in (OPTIMIZED_METRIC, "test/acc"):
            values = [run[metric] for run in runs]
            row[f"{metric} mean"] = statistics.mean(values)
            row[f"{metric} std"] = statistics.stdev(values) if len(values) > 1 else None
        row["fit s/epoch"] = statistics.mean(run["fit_seconds"] / run["epochs"] for run in runs)
        row["parameters"] = runs[0]["parameters"]
        row["multiply-adds"] = runs[0]["multiply_adds"]
        rows.append(row)
    return sorted(rows, key=lambda row: -row[f"{OPTIMIZED_METRIC} mean"])


def job_cells(job: dict[str, Any]) -> list[str]:
    status = "ok" if job["status"] == "ok" else f"failed: {job['error']}"
    fit = "" if job["fit_seconds"] is None else f"{job['fit_seconds']:.1f}"
    accuracies = [percent(job[OPTIMIZED_METRIC]), percent(job["test/acc"])]
    epochs = "" if job["epochs"] is None else str(job["epochs"])
    return [
        job["job"],
        " ".join(job["overrides"]),
        status,
        *accuracies,
        epochs,
        fit,
        job["run_dir"],
    ]


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
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})


def find_sweeps(path: Path) -> list[Path]:
    """The sweep folders at or below path: those holding the jobs of a Hydra multirun."""
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder: give a sweep folder or outputs/")
    sweeps = set()
    for config in path.glob("**/.hydra/hydra.yaml"):
        if yaml.safe_load(config.read_text())["hydra"]["mode"] == "MULTIRUN":
            sweeps.add(config.parents[2])
    if not sweeps:
        raise UsageError(
            f"no sweep in {path}: a sweep folder (outputs/multiruns/<date>/<time>) holds one "
            "folder per job, made by `python -m src.train -m ...`"
        )
    return sorted(sweeps)


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a sweep folder, or a folder of sweeps (outputs/)")
    for sweep in find_sweeps(parser.parse_args(argv).path):
        print(summarize(sweep))


if __name__ == "__main__":
    main()
