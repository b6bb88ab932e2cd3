"""The Optuna search of `python -m src.train -m hparams_search=optuna`: a Hydra sweeper that asks
Optuna for trials, launches each as a job of the sweep, and tells Optuna how it ended.

- The search space is Hydra's sweep grammar, in hydra.sweeper.params and on the command line:
  choice(...), range(...), interval(...), tag(log, interval(...)).
- The study lives in hydra.sweeper.storage (conf/hydra/sweeper/search.yaml: a SQLite file under
  outputs/): the same command again continues it, and several searches started on the same
  storage (processes, machines sharing a database) share it; Optuna numbers its trials.
- Each job reports val/acc to its trial after every validation (ReportToTrial, a Lightning
  callback: callbacks.prune in conf/hparams_search/optuna.yaml); a trial the pruner stops ends
  its fit cleanly, is tested and recorded as "pruned" (metrics.json, the summary, Optuna).
- A job whose config cannot be composed is recorded as failed, as in any sweep
  (src/core/composing.py); a job that fails is a failed trial and the search goes on.

The job learns its trial from hydra.sweeper.trial, a Hydra override of its own: the job's task
overrides, which name its run and fill the summary, stay the searched values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Override, Transformer, ValueType
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from src.core.composing import ComposableJobsLauncher, RecordsJobsThatCannotBeComposed
from src.core.errors import UsageError, exit_on_usage_error, message_line
from src.core.records import mark_pruned
from src.core.sweeps import parse

log = logging.getLogger(__name__)

PRUNED_AT = "pruned after epoch"  # a trial's user attribute, set by the job the pruner stopped
RUN_FOLDER = "run folder"  # a trial's user attribute: where its job's folder is
BEST_TRIAL_FILE = "optimization_results.yaml"  # at the sweep's root, as Hydra's sweepers name it
# The studies without a storage (hydra.sweeper.storage=null), by name: in this process's memory,
# where only the jobs that run in this process (Hydra's basic launcher) reach them.
IN_THIS_PROCESS: dict[str, optuna.storages.BaseStorage] = {}
SCHEMA_RACES = 5  # how often a search opens a new database that others are making at that moment


@dataclass
class SearchSpace:
    """The searched values (an Optuna distribution each) and the overrides every trial shares."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's task overrides: the shared ones, then its values."""
        return self.fixed + [f"{key}={value}" for key, value in params.items()]


def search_space(params: DictConfig | None, arguments: Sequence[str]) -> SearchSpace:
    """hydra.sweeper.params, then the command line (whose value wins for a key given in both)."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    by_key = {override.get_key_element(): override for override in parse(lines)}
    space = SearchSpace()
    for key, override in by_key.items():
        if override.is_sweep_override():
            space.distributions[key] = distribution_of(override)
        else:
            space.fixed.append(override.input_line)
    return space


def distribution_of(override: Override) -> BaseDistribution:
    """Hydra's sweep grammar as an Optuna distribution: choice (and a shuffled range) as
    categories, range as integers or floats of its step (its stop excluded, as in Hydra),
    interval as a uniform range, on a log scale when tagged log; glob (options by name) is not
    one."""
    line = override.input_line
    try:
        shuffled = override.is_range_sweep() and override.value().shuffle
        glob = override.value_type == ValueType.GLOB_CHOICE_SWEEP
        if (override.is_choice_sweep() and not glob) or shuffled:
            return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
        if override.is_range_sweep():
            values = list(override.sweep_iterator())
            step = override.value().step
            kind = (
                FloatDistribution if any(isinstance(v, float) for v in values) else IntDistribution
            )
            return kind(values[0], values[-1], step=step)
        if override.is_interval_sweep():
            interval = override.value()
            log_scale = "log" in interval.tags
            whole = isinstance(interval.start, int) and isinstance(interval.end, int)
            kind = IntDistribution if whole else FloatDistribution
            return kind(interval.start, interval.end, log=log_scale)
    except (ValueError, IndexError) as error:  # Optuna's word for an empty or reversed range
        reason = message_line(error).rstrip(".")
        raise UsageError(f"{line}: {reason}: mend the swept values") from None
    raise UsageError(
        f"{line} cannot be searched: write choice(a,b), range(1,5), interval(0.1,1) or "
        "tag(log,interval(0.0001,0.1))"
    )


def build_optuna_object(setting: str, config: DictConfig | None, kind: type) -> Any:
    """The sampler or pruner a config names by `_target_`, with its arguments; the class must be
    one of Optuna's kind (BaseSampler, BasePruner) before it is called; None for none."""
    if config is None:
        return None
    arguments = OmegaConf.to_container(config, resolve=True)
    target = arguments.pop("_target_", None)
    fix = (
        f"name a subclass of {kind.__module__}.{kind.__name__} in hydra.sweeper.{setting}._target_"
    )
    try:
        cls = get_class(target) if isinstance(target, str) else None
    except (ImportError, ValueError, HydraException):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, kind)):
        raise UsageError(f"hydra.sweeper.{setting}._target_={target} is not one: {fix}")
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise UsageError(
            f"hydra.sweeper.{setting}: {target} refuses its arguments ({message_line(error)}): "
            "give it only arguments it takes"
        ) from None


def trials_so_far(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    if study_name not in optuna.study.get_all_study_names(storage):
        return 0
    return len(optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False))


def sampler_of(sweeper: DictConfig, trials_so_far: int) -> optuna.samplers.BaseSampler | None:
    """The search's sampler. Its seed counts on from the study's trials so far: a search that
    continues a study goes on where it stopped, instead of suggesting its first trials again.
    (Two searches that start together on one study need seeds of their own: docs/sweeps.md.)"""
    config = sweeper.sampler
    if config is not None and config.get("seed") is not None:
        config = OmegaConf.merge(config, {"seed": config.seed + trials_so_far})
    return build_optuna_object("sampler", config, optuna.samplers.BaseSampler)


def pruner_of(sweeper: DictConfig) -> optuna.pruners.BasePruner:
    """The search's pruner; none (hydra.sweeper.pruner=null) prunes nothing, where Optuna's
    default would be its median pruner."""
    pruner = build_optuna_object("pruner", sweeper.pruner, optuna.pruners.BasePruner)
    return pruner or optuna.pruners.NopPruner()


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The study's storage: a database URL (sqlite:///outputs/optuna.db, postgresql://...,
    mysql://...); None for none (a study in this process's memory)."""
    if url is None:
        return None
    try:
        return database_storage(url)
    except (SQLAlchemyError, RuntimeError, ValueError) as error:
        # RuntimeError: a database made by an older Optuna; its message names the upgrade.
        raise UsageError(
            f"hydra.sweeper.storage={url} cannot be opened ({message_line(error)}): name a "
            "database whose folder exists, e.g. sqlite:///outputs/optuna.db"
        ) from None


def database_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage in the database at url, its tables made where they are not yet. SQLite
    waits up to a minute for another process's write instead of failing at once: the trials of
    several searches, or of the joblib launcher, write to one file. Searches that open a new
    database at the same moment all make its tables: each that comes too late finds a table, or
    Optuna's version row, already made, and opening it again finds them and makes the rest."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for _ in range(SCHEMA_RACES - 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (IntegrityError, OperationalError) as error:
            if not (isinstance(error, IntegrityError) or "already exists" in str(error)):
                raise
    return optuna.storages.RDBStorage(url, engine_kwargs=engine)


def open_study(sweeper: DictConfig) -> optuna.Study:
    """The study the search adds its trials to, made or continued; a study of that name made
    for the other direction is refused, not changed."""
    storage = open_storage(sweeper.storage) or optuna.storages.InMemoryStorage()
    IN_THIS_PROCESS[sweeper.study_name] = storage
    study = optuna.create_study(
        storage=storage,
        study_name=sweeper.study_name,
        direction=sweeper.direction,
        sampler=sampler_of(sweeper, trials_so_far(storage, sweeper.study_name)),
        pruner=pruner_of(sweeper),
        load_if_exists=True,
    )
    made_for = study.direction.name.lower()
    if made_for != sweeper.direction:
        raise UsageError(
            f"the study {sweeper.study_name} in {sweeper.storage} {made_for}s its objective, and "
            f"hydra.sweeper.direction={sweeper.direction}: give the study another name "
            "(hydra.sweeper.study_name=...), or the direction it was made for"
        )
    return study


def require_a_search_that_can_start(sweeper: DictConfig, arguments: Sequence[str]) -> None:
    """Every setting of the search that can be checked before a trial starts: its space, its
    sampler and pruner, its storage and the study's direction (src/core/launch.py)."""
    if sweeper.direction not in ("maximize", "minimize"):
        raise UsageError(
            f"hydra.sweeper.direction={sweeper.direction}: write maximize (val/acc_best, the "
            "value a job returns) or minimize"
        )
    search_space(sweeper.params, arguments)
    open_study(sweeper)


class SearchSweeper(RecordsJobsThatCannotBeComposed, Sweeper):
    """Optuna's ask and tell, n_jobs trials at a time, until n_trials trials have run."""

    def __init__(self, n_trials: int, n_jobs: int, params: DictConfig | None, **study: Any) -> None:
        """study: direction, study_name, storage, sampler and pruner, which open_study reads
        from the sweep's config as the jobs do; and trial, a job's own (ReportToTrial)."""
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = params
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.launcher = ComposableJobsLauncher(launcher, self)

    @exit_on_usage_error
    def sweep(self, arguments: list[str]) -> None:
        space = search_space(self.params, arguments)
        self.require_composable_values(space)
        study = open_study(self.config.hydra.sweeper)
        log.info(
            f"study {study.study_name} in {self.config.hydra.sweeper.storage or 'memory'}: "
            f"{len(study.trials)} trials so far, {self.n_trials} more"
        )
        for start in range(0, self.n_trials, self.n_jobs):
            self.run_trials(study, space, min(self.n_jobs, self.n_trials - start))
        self.save_best_trial(study)

    def require_composable_values(self, space: SearchSpace) -> None:
        """Every category (an option of a group: model=choice(convnet16,convnet99)), and one
        value of every range, composes with the shared overrides: the search stops before its
        first trial, rather than failing a trial now and then."""
        for key, distribution in space.distributions.items():
            values = getattr(distribution, "choices", None) or [distribution.low]
            for value in values:
                if error := self.composition_error(space.overrides({key: value})):
                    raise UsageError(f"{error}; the search stops")

    def run_trials(self, study: optuna.Study, space: SearchSpace, count: int) -> None:
        """count trials asked for at once and launched together (joblib runs them side by
        side). A search stopped meanwhile (fail_fast, Ctrl-C) leaves them failed, not running
        for ever in the study."""
        trials = [study.ask(space.distributions) for _ in range(count)]
        batch = [space.overrides(trial.params) for trial in trials]
        self.validate_batch_is_legal(batch)
        job_nums = range(self.job_idx, self.job_idx + count)
        for trial, job_num in zip(trials, job_nums, strict=True):
            trial.set_user_attr(RUN_FOLDER, str(self.folder_of_job(job_num)))
        jobs = [
            [*overrides, f"hydra.sweeper.trial={trial.number}"]
            for overrides, trial in zip(batch, trials, strict=True)
        ]
        try:
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        for trial, job, job_num in zip(trials, returns, job_nums, strict=True):
            self.tell(study, trial, job, job_num)
        self.job_idx += count

    def folder_of_job(self, job_num: int) -> Path:
        return self.job_folder(self.job_config(job_num, []))

    def tell(self, study: optuna.Study, trial: optuna.Trial, job: JobReturn, job_num: int) -> None:
        """A job that returned its value is a complete trial, or a pruned one; a job that failed
        (it returns None) is a failed trial."""
        value = job.return_value if job.status == JobStatus.COMPLETED else None
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
            return
        pruned_at = study_trial(study, trial.number).user_attrs.get(PRUNED_AT)
        if pruned_at is None:
            study.tell(trial, value)
            return
        study.tell(trial, state=TrialState.PRUNED)
        mark_pruned(self.folder_of_job(job_num), pruned_at)

    def save_best_trial(self, study: optuna.Study) -> None:
        """The study's best trial so far (this search's or an earlier one's), at the sweep's
        root; a study in which no trial finished has none, and its sweep ends as one of failed
        jobs (src/summarize.py)."""
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not finished:
            log.error("no trial finished, so the search has no best trial")
            return
        best = study.best_trial
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        results["best_trial"] = best.number
        OmegaConf.save(
            OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/{BEST_TRIAL_FILE}"
        )
        log.info(f"best trial {best.number}: {best.value} with {best.params}")


def study_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """A trial as the storage has it now (its job, in another process perhaps, wrote to it)."""
    states = (TrialState.RUNNING,)
    return next(t for t in study.get_trials(deepcopy=False, states=states) if t.number == number)


class ReportToTrial(Callback):
    """Reports the monitored metric to the job's Optuna trial after every validation, and when
    the study's pruner says the trial is not worth finishing, stops the fit as early stopping
    does: the run keeps its folder, logs and checkpoints, is tested, and its record says pruned.
    Outside a search's job (no hydra.sweeper.trial) it does nothing.

    Not optuna_integration's PyTorchLightningPruningCallback: that one raises TrialPruned from
    inside the fit, which then skips the test, the record and the last checkpoint, and it needs
    the trial object, which lives in the search's process, not in a joblib worker's."""

    def __init__(self, monitor: str = "val/acc") -> None:
        self.monitor = monitor
        self.trial = trial_of_this_job()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1  # epochs done, as the epoch lines count them
        prune = False
        if trainer.is_global_zero:
            self.trial.report(float(trainer.callback_metrics[self.monitor]), step=epoch)
            # After its last epoch a trial has nothing left to save: it is complete.
            prune = epoch < trainer.max_epochs and self.trial.should_prune()
            if prune:
                self.trial.set_user_attr(PRUNED_AT, epoch)
                log.info(f"trial {self.trial.number} pruned after epoch {epoch}: its fit stops")
        trainer.should_stop = trainer.should_stop or trainer.strategy.broadcast(prune)


def trial_of_this_job() -> optuna.Trial | None:
    """The trial that the search (SearchSweeper) launched this job for: its study reached
    through the storage, with the search's pruner; None outside a search."""
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if sweeper.get("trial") is None:
        return None
    storage = open_storage(sweeper.storage) or IN_THIS_PROCESS.get(sweeper.study_name)
    if storage is None:
        log.warning(
            "no pruning: the study lives in the search's memory (hydra.sweeper.storage=null), "
            "which this job's process cannot reach"
        )
        return None
    study = optuna.load_study(
        study_name=sweeper.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # the job samples nothing: the cheapest
        pruner=pruner_of(sweeper),
    )
    study_id = storage.get_study_id_from_name(sweeper.study_name)
    return optuna.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, sweeper.trial)
    )
