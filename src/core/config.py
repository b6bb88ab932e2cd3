"""The type and the valid range of every setting, checked before any work starts.

Two kinds of config group:
- the plug-ins (model, data, optimizer, scheduler) name a class in `_target_`; its signature is
  their schema and its constructor checks the ranges (src/core/build.py);
- the fixed groups (trainer, logger, callbacks) and the top-level settings have the dataclasses
  below: types and ranges only. Every value, default or not, is written once, in conf/.

Hydra refuses an unknown key while it composes (a key that is not in the YAML needs `+`);
`validate` then checks the types and ranges and turns any problem into one line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.profilers import AdvancedProfiler, PyTorchProfiler, SimpleProfiler
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from src.core.build import KINDS
from src.core.errors import UsageError, message_line, not_a_setting

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64", "auto")
ACCELERATORS = ("cpu", "gpu", "auto")
STRATEGIES = ("auto", "ddp")
PROFILERS = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def require_batches(name: str, value: float) -> None:
    """Lightning's batch limits: a fraction of the batches (0.0 to 1.0) or a whole count."""
    require(
        value >= 0 and (value <= 1 or float(value).is_integer()),
        f"trainer.{name} must be a fraction from 0.0 to 1.0 or a number of batches (an integer), "
        f"got {value}",
    )


def require_devices(devices: Any, accelerator: str) -> None:
    """Lightning's devices: how many (-1: all), or auto; on a GPU also which (their indices)."""
    on_cpu = accelerator == "cpu"
    how_many = isinstance(devices, int) and (devices >= 1 or (devices == -1 and not on_cpu))
    which = isinstance(devices, list) and all(isinstance(d, int) and d >= 0 for d in devices)
    require(
        devices == "auto" or how_many or (which and bool(devices) and not on_cpu),
        "trainer.devices must be auto or a number of "
        + ("processes (>= 1)" if on_cpu else "devices (>= 1; -1: all) or a list of GPU indices")
        + f", got {devices!r}",
    )


@dataclass
class TrainerConfig:
    accelerator: str
    devices: Any
    num_nodes: int
    strategy: str
    precision: str
    max_epochs: int
    deterministic: bool
    gradient_clip_val: float | None
    log_every_n_steps: int
    check_val_every_n_epoch: int
    limit_train_batches: float
    limit_val_batches: float
    limit_test_batches: float
    fast_dev_run: Any  # a bool or a number of batches; OmegaConf 2.3 has no unions
    overfit_batches: float
    profiler: str | None
    detect_anomaly: bool
    threads: int | None
    channels_last: bool

    def __post_init__(self) -> None:
        require(self.max_epochs >= 1, f"trainer.max_epochs must be >= 1, got {self.max_epochs}")
        require(
            self.accelerator in ACCELERATORS,
            f"trainer.accelerator must be one of {list(ACCELERATORS)}, got '{self.accelerator}'",
        )
        require(
            self.precision in PRECISIONS,
            f"trainer.precision must be one of {list(PRECISIONS)}, got '{self.precision}'",
        )
        gpu = self.accelerator == "gpu"
        ddp = self.strategy == "ddp"
        require(
            not gpu or torch.cuda.is_available(),
            f"trainer={'ddp' if ddp else 'gpu'} asks for a GPU, but none is available on this "
            "machine (torch.cuda.is_available() is False): use "
            + (
                "trainer=ddp_cpu (DDP over CPU processes)" if ddp else "trainer=cpu or trainer=auto"
            ),
        )
        on_gpu = gpu or (self.accelerator == "auto" and torch.cuda.is_available())
        require(
            self.precision != "16-mixed" or on_gpu,
            "trainer.precision=16-mixed needs a GPU: on CPU use trainer.precision=bf16-mixed",
        )
        require(
            self.strategy in STRATEGIES,
            f"trainer.strategy must be one of {list(STRATEGIES)} (ddp: one process per device, "
            f"as trainer=ddp and trainer=ddp_cpu set it), got '{self.strategy}'",
        )
        require(self.num_nodes >= 1, f"trainer.num_nodes must be >= 1, got {self.num_nodes}")
        require_devices(self.devices, self.accelerator)
        require(self.threads is None or self.threads >= 1, "trainer.threads must be >= 1")
        for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            require_batches(name, getattr(self, name))
        require(
            self.limit_train_batches > 0,
            "trainer.limit_train_batches must be > 0: with 0 nothing trains and the run would "
            "test untrained weights",
        )
        require(
            self.limit_test_batches > 0,
            "trainer.limit_test_batches must be > 0: a run ends by testing its best checkpoint",
        )
        for name in ("log_every_n_steps", "check_val_every_n_epoch"):
            require(
                getattr(self, name) >= 1, f"trainer.{name} must be >= 1, got {getattr(self, name)}"
            )
        require_batches("overfit_batches", self.overfit_batches)
        require(
            isinstance(self.fast_dev_run, int) and self.fast_dev_run >= 0,
            "trainer.fast_dev_run must be true, false or a number of batches (>= 0), "
            f"got {self.fast_dev_run!r}",
        )
        require(
            self.profiler is None or self.profiler in PROFILERS,
            f"trainer.profiler must be one of {list(PROFILERS)} or null, got '{self.profiler}'",
        )
        require(
            self.gradient_clip_val is None or self.gradient_clip_val > 0,
            "trainer.gradient_clip_val must be > 0 or null",
        )


@dataclass
class LoggerConfig:
    name: str

    def __post_init__(self) -> None:
        choices = ("tensorboard", "csv", "none")
        require(self.name in choices, f"logger.name must be one of {list(choices)}")


@dataclass
class PicturesConfig:
    """Which pictures the TensorBoard logger gets during training (src/visuals/pictures.py)."""

    graph: bool
    layer_table: bool
    samples: bool
    confusion: bool
    misclassified: bool
    feature_maps: bool
    filters: bool
    histograms: bool


@dataclass
class CallbacksConfig:
    early_stopping: bool
    patience: int
    ema_decay: float | None
    progress_bar_refresh: int
    pictures: PicturesConfig

    def __post_init__(self) -> None:
        require(self.patience >= 1, "callbacks.patience must be >= 1")
        require(
            self.ema_decay is None or 0 < self.ema_decay < 1,
            f"callbacks.ema_decay must be between 0 and 1 (e.g. 0.999) or null, "
            f"got {self.ema_decay}",
        )
        require(self.progress_bar_refresh >= 0, "callbacks.progress_bar_refresh must be >= 0")


@dataclass
class TrainConfig:
    data: Any  # the plug-in groups: checked against their classes (src/core/build.py)
    model: Any
    optimizer: Any
    scheduler: Any
    trainer: TrainerConfig
    logger: LoggerConfig
    callbacks: CallbacksConfig
    seed: int
    label_smoothing: float
    name: str | None
    fail_fast: bool
    resume: str | None

    def __post_init__(self) -> None:
        for group in KINDS:
            chosen = getattr(self, group)
            require(
                chosen is None or isinstance(chosen, dict),
                f"{group} is {chosen!r} where the {group} group's settings belong: a recipe "
                f"chooses an option with `defaults: [override /{group}: {chosen}]` "
                "(as conf/experiment/best.yaml does)",
            )
        require(
            0 <= self.seed < 2**32,
            f"seed must be from 0 to 2**32 - 1 (numpy's range), got {self.seed}",
        )
        require(
            0 <= self.label_smoothing < 1,
            f"label_smoothing must be from 0 (none) to below 1 (e.g. 0.1), got "
            f"{self.label_smoothing}",
        )


def require_checkpoint(ckpt_path: Any, command: str) -> None:
    """One checkpoint, run folder or sweep folder, or a list of them (an ensemble)."""
    entries = ckpt_path if isinstance(ckpt_path, list) else [ckpt_path]
    require(
        bool(entries) and all(entry not in ("", None) for entry in entries),
        f"ckpt_path is missing: python -m {command} ckpt_path=outputs/runs/<date>/<time> "
        "(a run folder, for its best checkpoint, or a .ckpt file; a sweep folder or a list "
        "'[runA,runB]' for an ensemble)",
    )
    require(
        all(isinstance(entry, (str, int)) for entry in entries),
        f"ckpt_path={ckpt_path} is not a path or a list of paths, e.g. ckpt_path='[runA,runB]'",
    )


@dataclass
class EvalDataConfig:
    data_dir: str
    eval_batch_size: int

    def __post_init__(self) -> None:
        require(self.eval_batch_size >= 1, "data.eval_batch_size must be >= 1")


@dataclass
class EvalConfig:
    ckpt_path: Any  # one path, or a list of them (require_checkpoint)
    data: EvalDataConfig
    misclassified: int

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.eval")
        require(self.misclassified >= 0, f"misclassified must be >= 0, got {self.misclassified}")


@dataclass
class PredictConfig:
    ckpt_path: Any  # one path, or a list of them (require_checkpoint)
    inputs: Any
    preprocess: bool
    json: bool

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.predict")
        require(
            bool(self.inputs),
            "inputs is missing: python -m src.predict ckpt_path=<run folder> inputs=digits/ "
            "(image files, folders or globs; several: inputs='[a.png,b.png]')",
        )


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config a command line with these overrides would get, composed outside a Hydra app."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


SCHEMAS = {"train": TrainConfig, "eval": EvalConfig, "predict": PredictConfig}


def type_at(schema: type, key: str) -> Any:
    """The type the schema gives a dotted key ("" for the schema itself); None if it has none."""
    for name in filter(None, key.split(".")):
        if not is_dataclass(schema) or name not in (hints := get_type_hints(schema)):
            return None
        schema = hints[name]
    return schema


def settings_below(schema: type, parent: str) -> list[str]:
    """The settings of the schema's group at `parent` (a dotted key; "" for the top level)."""
    return [field.name for field in fields(type_at(schema, parent))]


def validate(cfg: DictConfig, command: str = "train") -> None:
    """Check every type and range of a command's config (train, eval or predict), so a mistake
    stops with one line before any work starts. The plug-in groups' classes are checked when they
    are built, which the commands do before any work too."""
    try:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SCHEMAS[command]), cfg))
    except UsageError:
        raise
    except MissingMandatoryValue as error:
        raise UsageError(
            f"{error.full_key} is missing (???): set it on the command line, {error.full_key}=..."
        ) from None
    except ConfigKeyError as error:
        parent = error.full_key.rpartition(".")[0]
        settings = settings_below(SCHEMAS[command], parent)
        raise UsageError(not_a_setting(error.full_key, settings)) from None
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        if key and is_dataclass(type_at(SCHEMAS[command], key)):
            settings = settings_below(SCHEMAS[command], key)
            raise UsageError(
                f"{key} is a group of settings ({', '.join(settings)}), not one value: set them "
                f"one by one, e.g. {key}.{settings[0]}=false"
            ) from None
        where = f"{key}: " if key else ""
        raise UsageError(f"{where}{message_line(error)}") from None


@dataclass
class ServeConfig:
    ckpt_path: Any  # one path, or a list of them (require_checkpoint)
    port: int
    max_megapixels: float
    measure_page: int

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.serve")
        require(
            0 <= self.port <= 65535,
            f"port must be in [0, 65535] (0: any free port), got {self.port}",
        )
        require(self.max_megapixels > 0, f"max_megapixels must be > 0, got {self.max_megapixels}")
        require(self.measure_page >= 0, f"measure_page must be >= 0, got {self.measure_page}")


@dataclass
class ExportConfig:
    ckpt_path: Any  # one path, or a list of them (require_checkpoint)
    data: EvalDataConfig
    check_images: int
    bench: bool

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.export")
        require(self.check_images >= 1, f"check_images must be >= 1, got {self.check_images}")


# src.serve's and src.export's settings (validate(cfg, "serve"), validate(cfg, "export")).
SCHEMAS.update(serve=ServeConfig, export=ExportConfig)
