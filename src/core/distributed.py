"""DDP under Hydra: all processes of a run share the run's one folder, also inside a multirun.

Lightning's DDP strategy starts the other processes of a node by running the command line again.
Under Hydra it repeats the whole command line, `-m` and sweep included, so inside a multirun each
extra process would start the whole sweep again, with folders of its own
(Lightning-AI/pytorch-lightning#11300). Here the extra processes run exactly this job instead:
its overrides, as a single run, in its folder, leaving the config and the log file to rank 0.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies.launchers import subprocess_script
from omegaconf import DictConfig

from src.core.errors import UsageError

# What Lightning's launcher sets in this process's environment for the processes it starts
# (and OMP_NUM_THREADS: each process's share of the cores).
LAUNCHER_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "OMP_NUM_THREADS",
)


def job_command(module: str, local_rank: int) -> tuple[list[str], str]:
    """The command and working directory for process `local_rank` of this Hydra job (the same
    for every process: each learns its rank from the environment Lightning gives it)."""
    job = HydraConfig.get()
    command = [
        sys.executable,
        "-m",
        module,
        f"--config-name={job.job.config_name}",
        *job.overrides.task,
        f'hydra.run.dir="{job.runtime.output_dir}"',
        "hydra.output_subdir=null",  # rank 0 saves the config
        "hydra/job_logging=stdout",  # and writes the log file
    ]
    return command, job.runtime.cwd


@contextmanager
def processes_of_this_job(module: str) -> Iterator[None]:
    """Around one Hydra job of `python -m <module>`: its processes share one folder, and the ones
    Lightning starts run this job (`job_command`).

    Lightning's launcher leaves its environment variables, thread count and process group behind;
    they are put back as they were, so the next job of a multirun in this process starts its own
    processes.
    """
    require_one_run_folder(HydraConfig.get(), os.environ)
    subprocess_script._hydra_subprocess_cmd = partial(job_command, module)
    before = {name: os.environ.get(name) for name in LAUNCHER_VARIABLES}
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        torch.set_num_threads(threads)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def processes_started_together(environ: Mapping[str, str]) -> int:
    """How many processes of one run torchrun or srun started (1 for a plain command)."""
    return int(environ.get("WORLD_SIZE") or environ.get("SLURM_NTASKS") or 1)


def require_one_run_folder(job: DictConfig, environ: Mapping[str, str]) -> None:
    """torchrun and srun start every process of a run themselves, and each one would make its own
    time-stamped run folder unless the command line names the folder they share."""
    processes = processes_started_together(environ)
    named = any(override.startswith("hydra.run.dir=") for override in job.overrides.hydra)
    if job.mode == RunMode.RUN and processes > 1 and not named:
        raise UsageError(
            f"this is one of {processes} processes started together (torchrun or srun), and each "
            "would write to a run folder of its own: name the one they share, e.g. hydra.run.dir="
            "outputs/runs/my-run (with srun: hydra.run.dir=outputs/runs/$SLURM_JOB_ID)"
        )


def leave_the_log_file_to_rank_zero(trainer: L.Trainer) -> None:
    """torchrun and srun run Hydra in every process, each with the run's log file open; the
    others keep their console."""
    if not trainer.is_global_zero:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()


def wait_for_launched_processes(trainer: L.Trainer) -> None:
    """The run is over when the processes this one started have finished too."""
    launched: list[subprocess.Popen] = getattr(trainer.strategy.launcher, "procs", [])
    for process in launched:
        process.wait()
