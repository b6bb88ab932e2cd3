"""`python -m src.train resume=<run folder>`: continue a stopped run in its own folder, with the
config it saved, from its exact state, appending to its TensorBoard run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.core.build import KINDS
from src.core.callbacks import INTERRUPTED
from src.core.classifier import sized_by_the_run
from src.core.config import validate
from src.core.errors import UsageError, message_line
from src.core.hparams import TensorBoardRun, board_of

# What may change when a run is resumed: how long it trains, how it shows progress, its threads.
# Anything else would make it another run, which belongs in a folder of its own.
RESUMABLE = ("trainer.max_epochs", "callbacks.progress_bar_refresh", "threads")


@dataclass
class ResumedRun:
    cfg: DictConfig
    checkpoint: Path
    overrides: list[str]  # the run's own, then the changes resume= made
    board: TensorBoardRun


def resumed_run(cfg: DictConfig, job: DictConfig) -> ResumedRun:
    """The saved config of the run folder `cfg.resume`, with the allowed changes this command
    line makes (`job` is its Hydra config), and the checkpoint to continue from."""
    folder = require_run_folder(cfg.resume)
    saved = folder / ".hydra"
    if job.mode == RunMode.MULTIRUN:
        raise UsageError("resume= continues one run: leave out -m")
    if Path(job.runtime.output_dir).resolve() != folder.resolve():
        raise UsageError(
            f"resume= continues a run in its own folder ({folder}), so hydra.run.dir cannot move "
            "it: leave hydra.run.dir out"
        )
    changes = [o for o in job.overrides.task if not o.startswith("resume=")]
    refused = [o for o in changes if setting_of(o) not in RESUMABLE]
    if refused:
        raise UsageError(
            f"resume= continues a run with the config it saved, so {' '.join(refused)} cannot "
            f"change it; only {', '.join(RESUMABLE)} can. Start a new run for other settings"
        )
    run_cfg = load_saved_config(saved / "config.yaml", cfg)
    saved_epochs = run_cfg.trainer.max_epochs
    for key in map(setting_of, changes):
        OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key))
    validate(run_cfg)  # before saving: a bad value must not stay in the run's config
    require_schedule_fits(run_cfg, saved_epochs)
    if changes:  # a later resume= goes on with them (a raised trainer.max_epochs above all)
        OmegaConf.save(run_cfg, saved / "config.yaml")
    run_job = OmegaConf.load(saved / "hydra.yaml").hydra
    sweep_dir = folder.parent if run_job.mode == RunMode.MULTIRUN.name else None  # a sweep job
    return ResumedRun(
        run_cfg,
        checkpoint_to_resume(folder),
        [*run_job.overrides.task, *changes],
        board_of(run_job, sweep_dir, resumed=True),
    )


def setting_of(override: str) -> str:
    """The key an override sets: trainer.max_epochs of +trainer.max_epochs=20."""
    return override.lstrip("+~").split("=")[0]


def load_saved_config(path: Path, current: DictConfig) -> DictConfig:
    """The config the run saved, with the settings added to the project since, checked before
    anything of this command line changes it: a fault found here is the file's."""
    try:
        run_cfg = with_new_settings(OmegaConf.load(path), current)
        validate(run_cfg)
    except (UsageError, OmegaConfBaseException, yaml.YAMLError) as error:
        raise UsageError(
            f"{path} does not hold a config this project can run ({message_line(error)}): it "
            "was edited or damaged, so the run cannot be resumed; start a new one"
        ) from None
    return run_cfg


def require_schedule_fits(run_cfg: DictConfig, saved_epochs: int) -> None:
    """A schedule sized by the run's length (onecycle, cosine) ends with the epochs it was made
    for: its saved state would run past its end, so the run cannot be made longer or shorter."""
    epochs = run_cfg.trainer.max_epochs
    scheduler = OmegaConf.to_container(run_cfg.scheduler) if run_cfg.scheduler else {}
    if epochs != saved_epochs and scheduler and sized_by_the_run(scheduler):
        raise UsageError(
            f"resume= cannot change trainer.max_epochs from {saved_epochs} to {epochs}: the "
            f"run's schedule ({scheduler['_target_'].rsplit('.', 1)[-1]}) was sized for "
            f"{saved_epochs} epoch(s) and ends there. Start a new run with "
            f"trainer.max_epochs={epochs}"
        )


def with_new_settings(run_cfg: DictConfig, current: DictConfig) -> DictConfig:
    """The saved config, with the settings added to the project since the run was saved at their
    defaults, which keep what it did (label_smoothing 0.0, no moving average): so a run saved by
    an older version resumes. The groups that name classes (plug-ins, callbacks, loggers) stay
    the run's own: their keys are the arguments of the classes they name, and an entry the run
    removed stays removed."""
    fixed = {key: value for key, value in current.items() if key not in KINDS}
    return OmegaConf.merge(fixed, run_cfg)


def require_run_folder(resume: object) -> Path:
    if not isinstance(resume, str) or not resume:
        raise UsageError(
            f"resume={resume} is not a folder: pass the folder of the run to continue, e.g. "
            "resume=outputs/runs/<date>/<time>"
        )
    folder = Path(resume)
    if not all((folder / ".hydra" / name).is_file() for name in ("config.yaml", "hydra.yaml")):
        raise UsageError(
            f"{folder} is not a run folder (no .hydra/config.yaml in it): pass the folder a "
            "training run made, e.g. resume=outputs/runs/<date>/<time>"
        )
    return folder


def run_folder(resume: str | None, new_folder: str) -> str:
    """`hydra.run.dir` (train.yaml): a resumed run writes to its own folder, which must exist,
    checked here before Hydra creates anything."""
    return new_folder if resume is None else str(require_run_folder(resume))


# Hydra also keeps the config a resumed run saved (`hydra.output_subdir`: null, it writes none).
OmegaConf.register_new_resolver("run_folder", run_folder, replace=True)
OmegaConf.register_new_resolver(
    "config_subdir", lambda resume: ".hydra" if resume is None else None, replace=True
)


def checkpoint_to_resume(folder: Path) -> Path:
    """The newer of interrupted.ckpt (a run stopped on a signal) and last.ckpt (the last epoch):
    a run resumed from the first and then finished has a newer last.ckpt."""
    found = [folder / "checkpoints" / name for name in (INTERRUPTED, "last.ckpt")]
    found = [path for path in found if path.is_file()]
    if not found:
        raise UsageError(
            f"{folder}/checkpoints holds neither {INTERRUPTED} nor last.ckpt: the run stopped "
            "before its first checkpoint, so start it again instead"
        )
    return max(found, key=lambda path: path.stat().st_mtime)
