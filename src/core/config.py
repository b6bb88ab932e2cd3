"""The type and the valid range of every setting, checked before any work starts.

Three kinds of config group:
- the plug-ins (model, data, optimizer, scheduler) name a class in `_target_`; its signature is
  their schema and its constructor checks the ranges (src/core/build.py);
- the entries (callbacks, logger): named plug-ins of Lightning's kinds, built the same way;
- the trainer: Lightning Trainer's arguments, checked by name and type against its signature,
  their values by Lightning (src/core/trainer.py).
The top-level settings have the dataclass below: types and ranges. Every value, default or not, is
written once, in conf/.

Hydra refuses an unknown key while it composes (a key that is not in the YAML needs `+`);
`validate` then checks the types and ranges and turns any problem into one line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from src.core.build import KINDS, conforms, type_name
from src.core.errors import UsageError, message_line, not_a_setting
from src.core.trainer import require_trainer_arguments

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# An entry of the callbacks group that its shortcut switches off has no class:
# `_target_: ${on_if:${..early_stopping},lightning.pytorch.callbacks.EarlyStopping}`.
OmegaConf.register_new_resolver("on_if", lambda switch, value: value if switch else None)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


@dataclass
class CallbackShortcuts:
    """The callbacks group's shortcuts, spelt as before it had entries; its entries read them
    (conf/callbacks/default.yaml). Any other key of the group is an entry: a callback, or off."""

    progress_bar_refresh: int
    early_stopping: bool
    patience: int
    ema_decay: float | None


def require_entries(group: str, entries: Any, shortcuts: type | None = None) -> None:
    """A group of named entries (callbacks, logger): each a class and its arguments (checked when
    it is built), or off (null, false); nothing else but the group's shortcuts, of their types."""
    require(
        isinstance(entries, dict),
        f"{group} is {entries!r} where its entries belong: {group}.<name>._target_=<class>",
    )
    hints = get_type_hints(shortcuts) if shortcuts else {}
    for name, value in entries.items():
        if isinstance(value, dict) or (value is None or value is False) and name not in hints:
            continue
        require(
            name in hints,
            f"{group}.{name}={value!r} is neither an entry (a class and its arguments: "
            f"+{group}.{name}._target_=<class>) nor off (null, false)"
            + (f", nor a shortcut ({', '.join(hints)})" if hints else ""),
        )
        require(
            conforms(value, hints[name]),
            f"{group}.{name}={value!r} is not of type {type_name(hints[name])}",
        )


@dataclass
class TrainConfig:
    data: Any  # the plug-in groups: checked against their classes (src/core/build.py)
    model: Any
    optimizer: Any
    scheduler: Any
    trainer: Any  # Lightning Trainer's arguments, checked by src/core/trainer.py
    logger: Any  # the named entries of these two groups (require_entries)
    callbacks: Any
    seed: int
    label_smoothing: float
    name: str | None
    fail_fast: bool
    resume: str | None
    threads: int | None
    channels_last: bool

    def __post_init__(self) -> None:
        for group in KINDS:
            chosen = getattr(self, group)
            require(
                chosen is None or isinstance(chosen, dict),
                f"{group} is {chosen!r} where the {group} group's settings belong: a recipe "
                f"chooses an option with `defaults: [override /{group}: {chosen}]` "
                "(as conf/experiment/best.yaml does)",
            )
        require_trainer_arguments(self.trainer, run_settings=settings_below(TrainConfig, ""))
        require_entries("logger", self.logger or {})
        require_entries("callbacks", self.callbacks or {}, CallbackShortcuts)
        require(
            self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"
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


@dataclass
class CheckpointCommandConfig:
    """What src.eval, src.predict, src.serve and src.export share: the network they read, one
    checkpoint, run folder or sweep folder, or a list of them (an ensemble)."""

    command: ClassVar[str]  # the command line a missing ckpt_path is shown with
    ckpt_path: Any

    def __post_init__(self) -> None:
        entries = self.ckpt_path if isinstance(self.ckpt_path, list) else [self.ckpt_path]
        require(
            bool(entries) and all(entry not in ("", None) for entry in entries),
            f"ckpt_path is missing: python -m {self.command} ckpt_path=outputs/runs/<date>/<time> "
            "(a run folder, for its best checkpoint, or a .ckpt file; a sweep folder or a list "
            "'[runA,runB]' for an ensemble)",
        )
        require(
            all(isinstance(entry, (str, int)) for entry in entries),
            f"ckpt_path={self.ckpt_path} is not a path or a list of paths, e.g. "
            "ckpt_path='[runA,runB]'",
        )


@dataclass
class EvalDataConfig:
    data_dir: str
    eval_batch_size: int

    def __post_init__(self) -> None:
        require(self.eval_batch_size >= 1, "data.eval_batch_size must be >= 1")


@dataclass
class EvalConfig(CheckpointCommandConfig):
    command = "src.eval"
    data: EvalDataConfig
    misclassified: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.misclassified >= 0, f"misclassified must be >= 0, got {self.misclassified}")


@dataclass
class PredictConfig(CheckpointCommandConfig):
    command = "src.predict"
    inputs: Any
    preprocess: bool
    json: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            bool(self.inputs),
            "inputs is missing: python -m src.predict ckpt_path=<run folder> inputs=digits/ "
            "(image files, folders or globs; several: inputs='[a.png,b.png]')",
        )


@dataclass
class ServeConfig(CheckpointCommandConfig):
    command = "src.serve"
    port: int
    max_megapixels: float
    measure_page: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            0 <= self.port <= 65535,
            f"port must be in [0, 65535] (0: any free port), got {self.port}",
        )
        require(self.max_megapixels > 0, f"max_megapixels must be > 0, got {self.max_megapixels}")
        require(self.measure_page >= 0, f"measure_page must be >= 0, got {self.measure_page}")


@dataclass
class ExportConfig(CheckpointCommandConfig):
    command = "src.export"
    data: EvalDataConfig
    check_images: int
    bench: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.check_images >= 1, f"check_images must be >= 1, got {self.check_images}")


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config a command line with these overrides would get, composed outside a Hydra app."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


SCHEMAS = {
    "train": TrainConfig,
    "eval": EvalConfig,
    "predict": PredictConfig,
    "serve": ServeConfig,
    "export": ExportConfig,
}


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
    """Check every type and range of a command's config (one of SCHEMAS), so a mistake
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
