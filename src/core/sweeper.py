"""The sweeper of `python -m src.train -m`: Hydra's basic sweeper (the cartesian product of the
swept values), except for a job whose config cannot be composed (an option that is not a file of
its group, a key that is not a setting). Hydra composes every job before it launches any and ends
the whole sweep, over many lines, at the first that fails; here that job is recorded as failed in
one line, in its folder's metrics.json as a job that fails while training is, and the sweep goes
on. With fail_fast=true the sweep stops before any job runs, with one line and exit status 2.

Hydra takes a sweeper from the hydra_plugins package only: hydra_plugins/mnist_convnets names
this one, and conf/hydra/default_sweeper.yaml selects it (hydra/sweeper: keep_going).
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from src.core.errors import EXIT_USAGE, explain_config_error, message_line
from src.core.records import write_metrics

log = logging.getLogger(__name__)


class KeepGoingSweeper(BasicSweeper):
    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = ComposableJobsLauncher(self.launcher, self)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Hydra's check before a batch is launched: with fail_fast=true only, and in one line;
        otherwise each job is checked as it is launched."""
        if not self.config.fail_fast:
            return
        for overrides in batch:
            if error := self.composition_error(overrides):
                print(
                    f"error: {error}; the sweep stops before it starts (fail_fast=true)",
                    file=sys.stderr,
                )
                sys.exit(EXIT_USAGE)

    def composition_error(self, overrides: Sequence[str]) -> str | None:
        """Why the job's config cannot be composed, in one line; None when it can."""
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except (HydraException, OmegaConfBaseException) as error:
            return explain_config_error(error)
        return None

    def record_failure(self, job_num: int, overrides: Sequence[str], error: str) -> JobReturn:
        """The job's folder as a job that failed leaves it (.hydra/ and metrics.json), so the
        sweep's summary lists it; the job returns None, as a job that failed does."""
        config = copy.deepcopy(self.config)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.job.num = config.hydra.job.id = job_num
            config.hydra.overrides.task = list(overrides)
        folder = Path(self.config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.masked_copy(config, ["hydra"]), folder / ".hydra" / "hydra.yaml")
        OmegaConf.save(config.hydra.overrides.task, folder / ".hydra" / "overrides.yaml")
        write_metrics(folder, {"status": "failed", "error": error}, list(overrides), config.name)
        log.error(f"job {job_num} failed: {error}")
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)


class ComposableJobsLauncher:
    """The launcher as KeepGoingSweeper's batches see it: the jobs whose config can be composed
    go to the configured launcher (a run of them at a time, so joblib still runs them side by
    side), the others are recorded as failed; every job keeps its number in the sweep."""

    def __init__(self, launcher: Launcher, sweeper: KeepGoingSweeper) -> None:
        self.launcher = launcher
        self.sweeper = sweeper

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        returns: list[JobReturn] = []
        start = 0  # the first job of the run of composable jobs not launched yet
        for index, overrides in enumerate(job_overrides):
            if error := self.sweeper.composition_error(overrides):
                returns += self.launch_some(job_overrides[start:index], initial_job_idx + start)
                returns.append(
                    self.sweeper.record_failure(initial_job_idx + index, overrides, error)
                )
                start = index + 1
        return returns + self.launch_some(job_overrides[start:], initial_job_idx + start)

    def launch_some(self, jobs: Sequence[Sequence[str]], first_job_num: int) -> list[JobReturn]:
        return list(self.launcher.launch(jobs, initial_job_idx=first_job_num)) if jobs else []


class SearchWithoutABestTrial:
    """For Optuna's sweeper: a search in which no trial finished (a setting every trial fails on)
    ends as any sweep with failed jobs does, with its summary and exit status 1, instead of
    Optuna's traceback for the best trial it cannot name. A search space Optuna refuses
    (interval(0.1, 0.0001)) or an option that does not exist (choice(convnet99, mlp)) stops the
    search in one line, as a bad setting stops a run."""

    def sweep(self, arguments: list[str]) -> None:
        try:
            super().sweep(arguments)
        except (HydraException, OmegaConfBaseException) as error:  # a trial's config
            stop_the_search(explain_config_error(error))
        except ValueError as error:
            if "No trials are completed yet" not in str(error):
                stop_the_search(f"{message_line(error).rstrip('.')}: mend the swept values")
            log.error("no trial finished, so the search has no best trial")


def stop_the_search(reason: str) -> None:
    print(f"error: {reason}; the search stops", file=sys.stderr)
    sys.exit(EXIT_USAGE)
