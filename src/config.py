"""Config schemas: the type and the valid range of every setting.

Each file in `conf/<group>/` names one of these schemas in its defaults list, so Hydra rejects an
unknown key or a value of the wrong type while it composes the config, and `validate` runs the
range checks in `__post_init__` before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from src.errors import UsageError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
NORMALIZATIONS = {"mnist": (0.1307, 0.3081), "half": (0.5, 0.5), "none": (0.0, 1.0)}
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64")
ACCELERATORS = ("cpu", "gpu", "auto")
STRATEGIES = ("auto", "ddp")
MNIST_TRAIN_SIZE = 60_000


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


@dataclass
class DataConfig:
    data_dir: str = "data"
    batch_size: int = 64
    val_size: int = 5000
    split_seed: int = 0
    normalize: str = "half"
    shuffle: bool = True
    eval_batch_size: int = 1000
    augment: bool = False
    rotate_degrees: float = 10.0
    translate: float = 0.1
    scale: float = 0.1
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        require(self.eval_batch_size >= 1, "data.eval_batch_size must be >= 1")
        require(
            0 < self.val_size < MNIST_TRAIN_SIZE,
            f"data.val_size must be between 1 and {MNIST_TRAIN_SIZE - 1} (the validation images "
            f"come out of the {MNIST_TRAIN_SIZE:,} training images), got {self.val_size}",
        )
        require(
            self.normalize in NORMALIZATIONS,
            f"data.normalize must be one of {sorted(NORMALIZATIONS)}, got '{self.normalize}'",
        )
        require(0 <= self.rotate_degrees <= 180, "data.rotate_degrees must be in [0, 180]")
        require(0 <= self.translate < 1, "data.translate must be in [0, 1)")
        require(0 <= self.scale < 1, "data.scale must be in [0, 1)")
        require(
            self.elastic_alpha >= 0, "data.elastic_alpha must be >= 0 (0: no elastic distortion)"
        )
        require(self.elastic_sigma > 0, "data.elastic_sigma must be > 0, e.g. 4 (pixels)")


@dataclass
class ModelConfig:
    name: str = MISSING
    channels: list[int] = field(default_factory=lambda: [32, 64])
    convs_per_block: int = 1
    kernel_size: int = 3
    padding: int = 1
    hidden: int | None = 128
    batch_norm: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require(len(self.channels) >= 1, "model.channels needs at least one block, e.g. [32, 64]")
        require(all(c >= 1 for c in self.channels), "model.channels must all be >= 1")
        require(self.convs_per_block >= 1, "model.convs_per_block must be >= 1")
        require(self.kernel_size >= 1, "model.kernel_size must be >= 1")
        require(self.padding >= 0, "model.padding must be >= 0")
        require(self.hidden is None or self.hidden >= 1, "model.hidden must be >= 1 or null")
        require(0 <= self.dropout < 1, f"model.dropout must be in [0, 1), got {self.dropout}")


def require_positive_lr(lr: float) -> None:
    require(lr > 0, f"optimizer.lr must be > 0, got {lr} (for example optimizer.lr=0.001)")


@dataclass
class SGDConfig:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require_positive_lr(self.lr)
        require(0 <= self.momentum < 1, "optimizer.momentum must be in [0, 1)")
        require(self.weight_decay >= 0, "optimizer.weight_decay must be >= 0")
        require(
            not self.nesterov or self.momentum > 0,
            "optimizer.nesterov=true needs momentum, e.g. optimizer.momentum=0.9",
        )


@dataclass
class AdamConfig:
    name: str = "adam"
    lr: float = 0.001
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False

    def __post_init__(self) -> None:
        require_positive_lr(self.lr)
        require(self.weight_decay >= 0, "optimizer.weight_decay must be >= 0")


@dataclass
class NoSchedulerConfig:
    name: str = "none"


@dataclass
class OneCycleConfig:
    name: str = "onecycle"
    max_lr: float = MISSING
    pct_start: float = 0.25

    def __post_init__(self) -> None:
        require(self.max_lr > 0, "scheduler.max_lr must be > 0")
        require(0 < self.pct_start < 1, "scheduler.pct_start must be in (0, 1)")


@dataclass
class CosineConfig:
    name: str = "cosine"
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        require(self.min_lr >= 0, "scheduler.min_lr must be >= 0")


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32"
    max_epochs: int = 10
    deterministic: bool = False
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 50
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    limit_test_batches: float = 1.0
    check_val_every_n_epoch: int = 1
    threads: int | None = None
    channels_last: bool = True

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
        require(
            not gpu or torch.cuda.is_available(),
            "trainer=gpu asks for a GPU, but none is available on this machine "
            "(torch.cuda.is_available() is False): use trainer=cpu or trainer=auto",
        )
        require(
            gpu or self.precision != "16-mixed" or torch.cuda.is_available(),
            "trainer.precision=16-mixed needs a GPU: on CPU use trainer.precision=bf16-mixed",
        )
        require(
            self.strategy in STRATEGIES,
            f"trainer.strategy must be one of {list(STRATEGIES)} (ddp: one process per device, "
            f"as trainer=ddp and trainer=ddp_cpu set it), got '{self.strategy}'",
        )
        require(self.num_nodes >= 1, f"trainer.num_nodes must be >= 1, got {self.num_nodes}")
        require(self.threads is None or self.threads >= 1, "trainer.threads must be >= 1")
        require(
            self.gradient_clip_val is None or self.gradient_clip_val > 0,
            "trainer.gradient_clip_val must be > 0 or null",
        )


@dataclass
class LoggerConfig:
    name: str = "tensorboard"

    def __post_init__(self) -> None:
        choices = ("tensorboard", "csv", "none")
        require(self.name in choices, f"logger.name must be one of {list(choices)}")


@dataclass
class PicturesConfig:
    """Which pictures the TensorBoard logger gets during training (src/pictures.py)."""

    graph: bool = True
    layer_table: bool = True
    samples: bool = True
    confusion: bool = True
    misclassified: bool = True
    feature_maps: bool = True
    filters: bool = True
    histograms: bool = False


@dataclass
class CallbacksConfig:
    early_stopping: bool = False
    patience: int = 3
    progress_bar_refresh: int = 20
    summary_depth: int = 2
    pictures: PicturesConfig = field(default_factory=PicturesConfig)

    def __post_init__(self) -> None:
        require(self.patience >= 1, "callbacks.patience must be >= 1")
        require(self.progress_bar_refresh >= 0, "callbacks.progress_bar_refresh must be >= 0")


@dataclass
class TrainConfig:
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    callbacks: Any = MISSING
    seed: int = 42
    name: str | None = None
    fail_fast: bool = False
    resume: str | None = None


def require_checkpoint(ckpt_path: str, command: str) -> None:
    require(
        ckpt_path != "",
        f"ckpt_path is missing: python -m {command} ckpt_path=outputs/runs/<date>/<time> "
        "(a run folder, for its best checkpoint, or a .ckpt file)",
    )


@dataclass
class EvalDataConfig:
    data_dir: str = "data"
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        require(self.eval_batch_size >= 1, "data.eval_batch_size must be >= 1")


@dataclass
class EvalConfig:
    ckpt_path: str = ""
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    misclassified: int = 100

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.eval")
        require(self.misclassified >= 0, f"misclassified must be >= 0, got {self.misclassified}")


@dataclass
class PredictConfig:
    ckpt_path: str = ""
    inputs: Any = None
    preprocess: bool = True
    json: bool = False

    def __post_init__(self) -> None:
        require_checkpoint(self.ckpt_path, "src.predict")
        require(
            bool(self.inputs),
            "inputs is missing: python -m src.predict ckpt_path=<run folder> inputs=digits/ "
            "(image files, folders or globs; several: inputs='[a.png,b.png]')",
        )


SCHEMAS = {
    "data": {"data_schema": DataConfig},
    "model": {"model_schema": ModelConfig},
    "optimizer": {"sgd_schema": SGDConfig, "adam_schema": AdamConfig},
    "scheduler": {
        "none_schema": NoSchedulerConfig,
        "onecycle_schema": OneCycleConfig,
        "cosine_schema": CosineConfig,
    },
    "trainer": {"trainer_schema": TrainerConfig},
    "logger": {"logger_schema": LoggerConfig},
    "callbacks": {"callbacks_schema": CallbacksConfig},
}


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="predict_schema", node=PredictConfig)
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=group, name=name, node=schema)


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config a command line with these overrides would get, composed outside a Hydra app."""
    register_schemas()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def validate(cfg: DictConfig) -> None:
    """Run every range check (the schemas' __post_init__) before any work starts."""
    try:
        OmegaConf.to_object(cfg)
    except UsageError:
        raise
    except Exception as error:  # a missing value or a type Hydra could not check at compose time
        raise UsageError(f"invalid config: {error}") from None


register_schemas()
