"""A run's place in TensorBoard: its run name and log root, and its entry in the HPARAMS tab, which
puts the settings that matter first and leaves out the switches that only change what is shown.

TensorBoard orders the HPARAMS columns itself, whatever order a run logs them in: the hparams
marked `differs` first, then by name, and it shows the first five. So the entry marks the keys
the run's sweep varies as `differs`, gives the main settings names that sort first ("01 model",
"03 optimizer.lr") and shows every hparam under its plain name (display_name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams

from src.core.build import HYDRA_KEYS
from src.core.sweeps import sweep_job_name, varying_keys

MAX_RUN_NAME = 200  # bytes; a folder name can hold 255
DEFAULTS_RUN = "defaults"  # the TensorBoard run of a command line that changes no setting
FOLDER_SLASH = "\u2044"  # ⁄, a slash in a run's name (a path in a value)


class TensorBoard(TensorBoardLogger):
    """Lightning's TensorBoard logger at the run's place in TensorBoard (`run`, which the run
    fills in: <root>/<name>, by default the run folder's tensorboard/), without the `epoch` scalar
    Lightning adds to every write: the step axis already counts, and TensorBoard's first screen
    would open on that chart. `options`: TensorBoardLogger's other arguments."""

    def __init__(self, run: TensorBoardRun, run_dir: Path, **options: Any) -> None:
        root = run.root or run_dir / "tensorboard"
        super().__init__(root, name="", version=run.name, default_hp_metric=False, **options)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)


# After what the sweep varies, in this order; then every other setting by name.
FIRST = (
    "model",
    "optimizer",
    "optimizer.lr",
    "data.batch_size",
    "trainer.max_epochs",
    "seed",
    "scheduler",
    "data",
    "experiment",
)
GROUPS = ("model", "optimizer", "scheduler", "data", "experiment")  # shown by option name
# What changes how a run is shown, stored or how fast it runs, not what it learns.
LEFT_OUT = (
    "name",
    "resume",
    "fail_fast",
    "logger",
    "callbacks.progress_bar_refresh",
    "trainer.log_every_n_steps",
    "trainer.enable_model_summary",
    "threads",
    "channels_last",
    "trainer.profiler",
    "trainer.detect_anomaly",
    "data.data_dir",
    "data.classes",
    "data.predict_box",
    "data.predict_centre",
)
METRICS = ("test/acc", "val/acc_best", "test/loss")


@dataclass(frozen=True)
class TensorBoardRun:
    """Where a run logs in TensorBoard (<root>/<name>) and what its HPARAMS entry needs from
    Hydra beside the config."""

    name: str = DEFAULTS_RUN
    root: Path | None = None  # the log root; None: the run folder's tensorboard/
    choices: dict[str, str | None] = field(default_factory=dict)  # each group's option (Hydra)
    varying: tuple[str, ...] = ()  # the keys the run's sweep varies
    job_num: int | None = None  # a new sweep job's, which claims a run of its own under root

    @classmethod
    def of(
        cls, job: DictConfig, name: str, root: Path | None = None, varying=(), job_num=None
    ) -> TensorBoardRun:
        """The run of a Hydra job (`job`: its hydra config, live or saved in .hydra/hydra.yaml)."""
        return cls(name or DEFAULTS_RUN, root, dict(job.runtime.choices), tuple(varying), job_num)

    def claimed(self) -> TensorBoardRun:
        """The run under the name it claims when it is a new sweep job's (two jobs of a sweep
        may have the same name: src/core/sweeps.py); as it is otherwise."""
        if self.job_num is None:
            return self
        return replace(self, name=claim_tensorboard_run(self.root, self.name, self.job_num))


def board_of(
    job: DictConfig, sweep_dir: Path | None = None, resumed: bool = False
) -> TensorBoardRun:
    """A Hydra job's TensorBoard run: a single run's overrides under its folder's tensorboard/; a
    sweep job's own values of what the sweep varies under the sweep's tensorboard/, a name a new
    job claims and a resumed one finds again (`job`: live, or saved in .hydra/hydra.yaml)."""
    if sweep_dir is None:
        return TensorBoardRun.of(job, fit_folder_name(job.job.override_dirname))
    varying, root = varying_keys(sweep_dir), sweep_dir / "tensorboard"
    name = sweep_job_name(job, varying)
    if resumed:
        return TensorBoardRun.of(
            job, claimed_tensorboard_run(root, name, job.job.num), root, varying
        )
    return TensorBoardRun.of(job, name, root, varying, job.job.num)


def claim_tensorboard_run(log_root: Path, overrides_name: str, job_num: int) -> str:
    """The TensorBoard run name of one job under the sweep's log root: its overrides, plus its
    job number if another job of the sweep already has the same overrides (an Optuna trial may
    repeat one; mkdir is atomic, so parallel jobs cannot both claim a folder) or if the overrides
    are too long for a folder name (Optuna's floats are long)."""
    name = tensorboard_run_name(overrides_name, job_num)
    log_root.mkdir(parents=True, exist_ok=True)
    try:
        (log_root / name).mkdir()
    except FileExistsError:
        return f"{name},job={job_num}"
    return name


def fit_folder_name(name: str, suffix: str = "...") -> str:
    """The name as one folder's, cut to fit with `suffix` after it if need be. A slash of a path
    in a value (+callbacks.x.path=/tmp/y, a tracking_uri's sqlite:///) would make folders in
    folders, and `://` a protocol to TensorBoard: it becomes the fraction slash, which reads the
    same."""
    name = name.replace("/", FOLDER_SLASH)
    if len(name.encode()) <= MAX_RUN_NAME:
        return name
    return name.encode()[:MAX_RUN_NAME].decode(errors="ignore") + suffix


def claimed_tensorboard_run(log_root: Path, overrides_name: str, job_num: int) -> str:
    """The name `claim_tensorboard_run` gave this job, for a job that is resumed."""
    name = tensorboard_run_name(overrides_name, job_num)
    with_number = f"{name},job={job_num}"
    return with_number if (log_root / with_number).is_dir() else name


def tensorboard_run_name(overrides_name: str, job_num: int) -> str:
    return fit_folder_name(overrides_name or DEFAULTS_RUN, f"...,job={job_num}")


def hparams_entry(cfg: DictConfig, run: TensorBoardRun) -> dict[str, Any]:
    """The settings a run's HPARAMS entry shows, by key: what the sweep varies, each group's
    option, and the settings that change what the run learns."""
    settings = flatten(OmegaConf.to_container(cfg, resolve=True))
    for group, option in run.choices.items():  # a sweep may vary another group: debug=fast,...
        if option is not None and (group in GROUPS or group in run.varying):
            settings[group] = option
    return {
        key: shown(value)
        for key, value in settings.items()
        if key in run.varying or not left_out(key)
    }


def left_out(key: str) -> bool:
    hidden = any(key == name or key.startswith(f"{name}.") for name in LEFT_OUT)
    # The callbacks' entries show and save the run; their shortcuts (early_stopping, ema_decay)
    # say what changes what it learns.
    an_entry = key.startswith("callbacks.") and key.count(".") > 1
    return hidden or an_entry or key.rsplit(".", 1)[-1] in HYDRA_KEYS  # the option names the class


def shown(value: Any) -> int | float | str:
    """A value TensorBoard shows as it reads in a config: torch's hparams() would log a bool as a
    number, and takes no None or list."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return json.dumps(value)  # true, null, [16, 32]


def sort_name(key: str) -> str:
    return f"{FIRST.index(key) + 1:02d} {key}" if key in FIRST else key


def log_hparams(
    logger: TensorBoardLogger, cfg: DictConfig, run: TensorBoardRun, metrics: dict[str, float]
) -> None:
    """One HPARAMS entry per run: its settings beside its final metrics, whose values TensorBoard
    reads from the scalars of the same names."""
    entry = hparams_entry(cfg, run)
    keys = {sort_name(key): key for key in entry}
    experiment, session_start, session_end = hparams(
        {name: entry[key] for name, key in keys.items()}, {m: metrics[m] for m in METRICS}
    )
    label_columns(experiment, keys, run.varying)
    # Lightning closed the writer when the test ended; this opens another, which must be closed
    # too: each left open keeps a thread and a file, which add up over a sweep's jobs.
    writer = logger.experiment._get_file_writer()
    for summary in (experiment, session_start, session_end):
        writer.add_summary(summary)
    logger.experiment.close()


def label_columns(experiment: Summary, keys: dict[str, str], varying: tuple[str, ...]) -> None:
    """Show each hparam under its key, and mark what the sweep varies as differing."""
    plugin = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(plugin.content)
    for info in data.experiment.hparam_infos:
        info.display_name = keys[info.name]
        info.differs = keys[info.name] in varying
    plugin.content = data.SerializeToString()


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
