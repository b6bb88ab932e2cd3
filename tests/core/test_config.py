import tempfile
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import open_dict
from omegaconf.errors import ConfigAttributeError

from src.core.classifier import Classifier
from src.core.config import CONF_DIR, validate
from src.core.errors import UsageError
from src.core.hparams import TensorBoardRun
from tests.conftest import compose_train

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")  # ours
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
NEEDS_MORE = {("model", "custom")}  # names no class until the command line does


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_of_every_group_composes_validates_and_builds(group, option, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # trainer=gpu is checked below
    cfg = compose_train(f"{group}={option}")
    if (group, option) in NEEDS_MORE:
        with pytest.raises(UsageError, match="model._target_ is missing"):
            validate(cfg)
        return
    validate(cfg)
    # The classifier builds the network, the optimizer and the schedule: every setting checked.
    Classifier(
        dict(cfg.model), dict(cfg.optimizer), dict(cfg.scheduler), dict(cfg.data), (1, 28, 28),
        [str(i) for i in range(10)],
    )  # fmt: skip


def test_defaults_are_the_seed_pipeline():
    cfg = compose_train()
    assert cfg.model._target_ == "src.models.convnet.ConvNet" and cfg.model.channels == [32, 64]
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 0.001
    assert cfg.data.batch_size == 64 and cfg.data.val_size == 5000 and cfg.data.normalize == "half"
    assert cfg.trainer.max_epochs == 10 and not cfg.scheduler


def test_data_dir_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.setenv("DATA_DIR", "/somewhere/else")
    assert compose_train().data.data_dir == "/somewhere/else"
    monkeypatch.delenv("DATA_DIR")
    assert compose_train().data.data_dir == "data"


def build_everything(*overrides: str) -> None:
    """What src.train does before any work: validate, then build the data, the classifier and
    the Trainer with its loggers and callbacks."""
    from src.train import build_run, trainer_of_run

    cfg = compose_train(*overrides)
    validate(cfg)
    build_run(cfg)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer_of_run(cfg, Path(run_dir), TensorBoardRun())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-0.1", r"optimizer \(torch.optim.adam.Adam\): Invalid learning rate"),
        ("data.batch_size=0", "data .*: batch_size must be >= 1"),
        ("trainer.max_epochs=-3", "trainer: `max_epochs` must be a non-negative integer or -1"),
        ("model.dropout=1.0", r"model .*: dropout must be in \[0, 1\)"),
        ("model.channels=[0,4]", "model .*: channels must be one or more widths, all >= 1"),
        ("trainer.precision=17", "trainer.precision=17 is not of type 64 | 32 | 16 | 'trans"),
        ("trainer.accelerator=abc", "trainer: You selected an invalid accelerator name"),
        ("data.normalize=imagenet", "data .*: normalize must be one of"),
        ("trainer.strategy=abc", "trainer: You selected an invalid strategy name"),
        ("trainer.num_nodes=0", "trainer: `num_nodes` must be a positive integer, but got 0"),
        ("data.elastic_alpha=-1", "data .*: elastic_alpha must be >= 0"),
        ("data.elastic_sigma=0", "data .*: elastic_sigma must be > 0"),
        ("callbacks.ema_decay=1.5", r"callbacks.moving_average \(.*\): Invalid decay value 1.5"),
        ("callbacks.patience=x", "callbacks.patience='x' is not of type int"),
        ("+callbacks.foo=3", r"callbacks.foo=3 is neither an entry \(a class and its arguments"),
        (
            "+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor "
            "+callbacks.lr.logging_interval=weekly",
            "callbacks.lr.logging_interval='weekly' is not of type 'step' | 'epoch' | None",
        ),
        ("logger=csv +logger.csv.every=1", "logger.csv.every is not an argument of lightning.pyt"),
        ("label_smoothing=1.0", "label_smoothing must be from 0 .none. to below 1"),
        ("scheduler=onecycle scheduler.pct_start=2", r"scheduler .*OneCycleLR\): Expected float"),
        ("scheduler=step scheduler.interval=week", "scheduler.interval must be one of"),
        ("optimizer=sgd optimizer.nesterov=true", "Nesterov momentum requires a momentum"),
        ("trainer.max_epochs=big", "trainer.max_epochs='big' is not of type int | None, as light"),
        ("model.channels=big", "model.channels='big' is not of type list"),
        ("data.batch_size=2.5", "data.batch_size=2.5 is not of type int"),
        ("+optimizer.betas=[0.9]", "optimizer.betas=.* is not of type tuple"),
        ("+model.width=3", "model.width is not an argument of src.models.convnet.ConvNet"),
        ("model=custom", "model._target_ is missing"),
        ("trainer.profiler=fancy", "trainer: When passing string value for the `profiler`"),
        ("trainer.fast_dev_run=-1", "trainer: fast_dev_run=-1 is not a valid configuration"),
        ("trainer.fast_dev_run=2.5", "trainer.fast_dev_run=2.5 is not of type int | bool"),
        ("trainer.overfit_batches=1.5", "trainer: You have passed invalid value 1.5 for overfit"),
        ("trainer.limit_val_batches=-1", "trainer: You have passed invalid value -1 for limit_va"),
        ("trainer.detect_anomaly=maybe", "trainer.detect_anomaly='maybe' is not of type bool"),
        ("trainer.limit_test_batches=0", "trainer.limit_test_batches must be > 0: a run ends by"),
        ("++trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be >= 1"),
        ("++trainer.max_epoch=3", "trainer.max_epoch is not an argument of lightning.pytorch.Tra"),
        ("++trainer.threads=2", "trainer.threads is a setting of the run, not a Trainer argument"),
        ("++trainer.logger=false", r"trainer.logger is set by the logger group \(logger=csv"),
        ("seed=-5", r"seed must be from 0 to 2\*\*32 - 1 \(numpy's range\), got -5"),
        ("optimizer.lr=abc", r"optimizer.lr='abc' is not of type float \| torch.Tensor"),
        (
            "~optimizer._partial_",
            r"optimizer._partial_ must be true: the program gives torch.optim.adam.Adam its first "
            r"argument \(params\); add `_partial_: true` to the YAML",
        ),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps must be >= 1, got 0"),
        ("trainer.devices=abc", "trainer: `devices` selected with `CPUAccelerator` should be"),
        ("+trainer.foo=1", "trainer.foo is not an argument of lightning.pytorch.Trainer"),
        ("+newkey=1", "newkey is not a setting: the settings at the top level are data, model, "),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch must be >= 1"),
    ],
)
def test_out_of_range_values_and_wrong_types_are_refused_with_the_fix(override, message):
    with pytest.raises(UsageError, match=message):
        build_everything(*override.split())


def test_a_recipe_that_sets_a_group_to_an_option_is_told_how_to_choose_it():
    cfg = compose_train()
    with open_dict(cfg):
        cfg.model = "twoconv"  # what `model: twoconv` in an experiment YAML makes
    with pytest.raises(UsageError) as refused:
        validate(cfg)
    assert str(refused.value) == (
        "model is 'twoconv' where the model group's settings belong: a recipe chooses an option "
        "with `defaults: [override /model: twoconv]` (as conf/experiment/best.yaml does)"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("os.system", "model._target_=os.system is not a torch.nn.modules.module.Module class"),
        ("subprocess.run", "is not a torch.nn.modules.module.Module class"),
        ("nowhere.Net", "cannot be imported .*ModuleNotFoundError: No module named 'nowhere'"),
        ("src.models.convnet.Nothing", "model._target_=src.models.convnet.Nothing cannot be"),
    ],
)
def test_a_target_of_the_wrong_kind_or_that_does_not_import_is_named(target, message):
    with pytest.raises(UsageError, match=message):
        build_everything(f"model._target_={target}")


@pytest.mark.parametrize(
    ("group", "target"),
    [("optimizer", "torch.nn.Linear"), ("scheduler", "torch.optim.Adam"), ("data", "os.system")],
)
def test_each_plug_in_group_builds_only_its_own_kind(group, target):
    extra = ["scheduler=cosine"] if group == "scheduler" else []
    with pytest.raises(UsageError, match=f"{group}._target_={target} is not a"):
        build_everything(*extra, f"{group}._target_={target}")


def test_a_class_named_inside_an_argument_is_refused():
    with pytest.raises(UsageError, match="model.hidden names a class of its own"):
        build_everything("model=mlp", "~model.hidden", "+model.hidden={_target_:os.system}")


def test_asking_for_a_gpu_where_there_is_none_is_refused_with_what_to_ask_instead(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UsageError, match="^trainer: .*: there is no GPU here .*trainer=cpu or"):
        build_everything("trainer=gpu")
    with pytest.raises(UsageError, match="^trainer: .*: there is no GPU here .*trainer=ddp_cpu"):
        build_everything("trainer=ddp")


def test_an_unknown_key_fails_while_composing():
    with pytest.raises(ConfigCompositionException) as unknown:
        compose_train("optimizer.lrr=0.1")
    assert isinstance(unknown.value.__cause__, ConfigAttributeError)


def test_unknown_option_lists_the_options():
    with pytest.raises(Exception, match="convnet16") as error:
        compose_train("model=convnet99")
    assert "Available options" in str(error.value)
