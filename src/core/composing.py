"""What every sweep of the project does with a job whose config cannot be composed (an option
that is not a file of its group, a key that is not a setting): it is recorded as failed in one
line, in its folder's metrics.json as a job that fails while training is, and the sweep goes on;
with fail_fast=true the sweep stops before any job runs, with one line and exit status 2. Shared
by Hydra's basic sweeper (src/core/sweeper.py) and the Optuna search (src/core/search.py).

Apart from src/core/sweeper.py because that one derives from Hydra's BasicSweeper, which Hydra's
plugin scan defines anew: a module imported before the scan (src.core.search, by a test or a
script) must not derive from it.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from src.core.config_errors import explain_config_error
from src.core.errors import EXIT_USAGE
from src.core.records import write_metrics

log = logging.getLogger(__name__)


class RecordsJobsThatCannotBeComposed:
    """For a sweeper (self.config, self.hydra_context, self.launcher as Hydra's Sweeper has
    them): a job whose config cannot be composed is recorded as failed and the sweep goes on."""

    config: DictConfig
    hydra_context: HydraContext
    launcher: Launcher

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

    def job_config(self, job_num: int, overrides: Sequence[str]) -> DictConfig:
        """The sweep's config as the job with this number and these overrides sees its Hydra
        part (its folder, its overrides)."""
        config = copy.deepcopy(self.config)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.job.num = config.hydra.job.id = job_num
            config.hydra.overrides.task = list(overrides)
        return config

    def job_folder(self, job_config: DictConfig) -> Path:
        # The sweep's own folder as the sweep resolved it (its name holds the time).
        return Path(self.config.hydra.sweep.dir) / str(job_config.hydra.sweep.subdir)

    def record_failure(self, job_num: int, overrides: Sequence[str], error: str) -> JobReturn:
        """The job's folder as a job that failed leaves it (.hydra/ and metrics.json), so the
        sweep's summary lists it; the job returns None, as a job that failed does."""
        config = self.job_config(job_num, overrides)
        folder = self.job_folder(config)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.masked_copy(config, ["hydra"]), folder / ".hydra" / "hydra.yaml")
        OmegaConf.save(config.hydra.overrides.task, folder / ".hydra" / "overrides.yaml")
        write_metrics(folder, {"status": "failed", "error": error}, list(overrides), config.name)
        log.error(f"job {job_num} failed: {error}")
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)


class ComposableJobsLauncher:
    """The launcher as a sweeper's batches see it: the jobs whose config can be composed
    go to the configured launcher (a run of them at a time, so joblib still runs them side by
    side), the others are recorded as failed; every job keeps its number in the sweep."""

    def __init__(self, launcher: Launcher, sweeper: RecordsJobsThatCannotBeComposed) -> None:
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
