"""What one job of a sweep (a multirun) needs beyond a single run: its share of the cores, what
sets it apart from the other jobs (its TensorBoard run is named after it: src/core/hparams.py),
its failure written down (src/core/records.py) instead of ending the sweep, and nothing left
behind in the sweep's process once the job ends."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

OPTIMIZED_METRIC = "val/acc_best"  # what a job returns to the sweeper (Optuna maximises it)
SWEEP_CONFIG = "multirun.yaml"  # at the sweep's root: its command line and sweeper settings


class SaveSweepConfig(Callback):
    """Saves the sweep's config at its root before the first job starts, as Hydra's basic sweeper
    does (the Optuna sweeper does not): a job learns from it which keys the sweep varies, which
    its own config cannot tell (it holds only the job's values)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / SWEEP_CONFIG)


class ReleaseFinishedJob(Callback):
    """Frees what a job leaves behind in the sweep's process when it ends, so that a long sweep
    (a 1,000-trial Optuna search) holds its memory steady:
    - a job's trainer, network and data hold each other in reference cycles (Lightning's trainer
      and its callbacks, the module and its trainer), which Python frees only at a full
      collection, several jobs later: tens of MB a job piled up until then;
    - Hydra keeps every job's return until the sweep ends, and with it the job's config and a copy
      of Hydra's (some 1,200 objects a job); the sweepers read only its value and overrides.
    (The third, torch.jit.trace's types for each network's graph: src/visuals/pictures.py.)"""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        job_return.cfg = job_return.hydra_cfg = None
        gc.collect()


def varying_keys(sweep_dir: Path) -> tuple[str, ...]:
    """The keys the sweep gives several values (a comma list, range(), choice(), interval(),
    glob(): every searched parameter of an Optuna sweep), read as the sweepers read them:
    hydra.sweeper.params, then the command line. Empty when the sweep's config was not saved."""
    saved = sweep_dir / SWEEP_CONFIG
    if not saved.is_file():
        return ()
    sweep = OmegaConf.to_container(OmegaConf.load(saved).hydra, resolve=False)
    params = sweep["sweeper"].get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + sweep["overrides"]["task"]
    # A key given twice takes its last value (the command line's), as in the sweepers.
    swept = {override.key_or_group: override.is_sweep_override() for override in parse(lines)}
    return tuple(key for key, several in swept.items() if several)


def sweep_job_name(job: DictConfig, varying: tuple[str, ...]) -> str:
    """What tells a job's TensorBoard run apart from the others of its sweep: its values of the
    keys the sweep varies (model=convnet16,seed=1), the ones the jobs share being left to the
    summary and HPARAMS; all its overrides when the sweep varies none (a one-job sweep)."""
    own = sorted(o.input_line for o in parse(list(job.overrides.task)) if o.key_or_group in varying)
    return ",".join(own) or job.job.override_dirname


def parse(lines: list[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(lines)


def threads_per_job(launcher: DictConfig) -> int | None:
    """Torch threads for one job, so that jobs running side by side share the cores instead of
    each taking all of them: the job's `cpus_per_task` under submitit (SLURM), the cores divided
    by `n_jobs` under joblib, and None (torch's default: one per physical core) one job at a
    time."""
    if launcher.get("cpus_per_task"):
        return launcher.cpus_per_task
    parallel_jobs = launcher.get("n_jobs")
    if not parallel_jobs:
        return None
    cores = len(os.sched_getaffinity(0))
    if parallel_jobs < 0:  # joblib counts back from the cores: -1 = one job per core
        parallel_jobs = max(1, cores + 1 + parallel_jobs)
    return max(1, cores // parallel_jobs)


def job_folders(sweep: Path) -> list[Path]:
    """The folders of a sweep's jobs (each holds Hydra's .hydra/), in job order: 2 before 10."""
    folders = [config.parents[1] for config in sweep.glob("*/.hydra/hydra.yaml")]
    return sorted(folders, key=lambda folder: (len(folder.name), folder.name))
