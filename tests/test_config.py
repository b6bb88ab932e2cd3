import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ValidationError

from src.config import CONF_DIR, validate
from src.errors import UsageError
from src.networks import build_convnet
from src.task import build_optimizer, build_scheduler
from tests.conftest import compose_train

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_of_every_group_composes_validates_and_builds(group, option, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # trainer=gpu is checked below
    cfg = compose_train(f"{group}={option}")
    validate(cfg)
    network = build_convnet(**{k: v for k, v in cfg.model.items() if k != "name"})
    settings = dict(cfg.optimizer)
    optimizer = build_optimizer(
        settings.pop("name"), network.parameters(), settings.pop("lr"), settings
    )
    if cfg.scheduler.name != "none":
        build_scheduler(dict(cfg.scheduler), optimizer, total_steps=100)


def test_defaults_are_the_seed_pipeline():
    cfg = compose_train()
    assert cfg.model.name == "convnet32" and cfg.optimizer.name == "adam"
    assert cfg.optimizer.lr == 0.001 and cfg.data.batch_size == 64
    assert cfg.trainer.max_epochs == 10 and cfg.data.val_size == 5000


def test_data_dir_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.setenv("DATA_DIR", "/somewhere/else")
    assert compose_train().data.data_dir == "/somewhere/else"
    monkeypatch.delenv("DATA_DIR")
    assert compose_train().data.data_dir == "data"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=0", "optimizer.lr must be > 0"),
        ("optimizer.lr=-0.1", "optimizer.lr must be > 0"),
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("data.val_size=60000", "data.val_size must be between 1 and 59999"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be >= 1"),
        ("model.dropout=1.0", r"model.dropout must be in \[0, 1\)"),
        ("trainer.precision=17", "trainer.precision must be one of"),
        ("trainer.accelerator=tpu", "trainer.accelerator must be one of"),
        ("data.normalize=imagenet", "data.normalize must be one of"),
        ("trainer.strategy=fsdp", "trainer.strategy must be one of"),
        ("trainer.num_nodes=0", "trainer.num_nodes must be >= 1"),
        ("data.elastic_alpha=-1", "data.elastic_alpha must be >= 0"),
        ("data.elastic_sigma=0", "data.elastic_sigma must be > 0"),
    ],
)
def test_out_of_range_values_are_refused_with_the_fix(override, message):
    with pytest.raises(UsageError, match=message):
        validate(compose_train(override))


def test_asking_for_a_gpu_where_there_is_none_is_refused(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UsageError, match="none is available on this machine"):
        validate(compose_train("trainer=gpu"))


def test_unknown_key_and_wrong_type_fail_while_composing():
    with pytest.raises(ConfigCompositionException) as unknown:
        compose_train("optimizer.lrr=0.1")
    assert isinstance(unknown.value.__cause__, ConfigAttributeError)
    assert "Key 'lrr' not in 'AdamConfig'" in str(unknown.value.__cause__)
    with pytest.raises(ConfigCompositionException) as wrong_type:
        compose_train("data.batch_size=big")
    assert isinstance(wrong_type.value.__cause__, ValidationError)


def test_unknown_option_lists_the_options():
    with pytest.raises(Exception, match="convnet16") as error:
        compose_train("model=convnet99")
    assert "Available options" in str(error.value)
