from types import SimpleNamespace

import lightning as L
import pytest
import torch

from src.core.checkpoints import load_classifier
from src.core.classifier import Classifier
from src.core.errors import UsageError
from tests.conftest import compose_train


def classifier(*overrides: str) -> Classifier:
    from src.train import build_run

    return build_run(compose_train(*overrides))[1]


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_training_step_returns_the_cross_entropy_of_the_batch(smoothing):
    model = classifier("model=convnet16", f"label_smoothing={smoothing}")
    model.trainer = L.Trainer(logger=False, enable_progress_bar=False, log_every_n_steps=50)
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss = model.training_step((images, labels), 0)
    # With smoothing s the target is 1 - s + s/10 for the right class and s/10 for each other.
    targets = torch.full((4, 10), smoothing / 10) + torch.eye(10)[labels] * (1 - smoothing)
    expected = -(targets * model(images).log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.isclose(loss, expected)


def test_label_smoothing_leaves_the_validation_loss_plain():
    model = classifier("model=convnet16", "label_smoothing=0.2")
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    model.log = lambda *args, **kwargs: None  # no trainer to log to
    model.validation_step((images, labels), 0)
    expected = torch.nn.functional.cross_entropy(model(images), labels)
    assert torch.isclose(model.val_loss.compute(), expected)


@pytest.mark.parametrize(
    ("option", "kind", "settings"),
    [
        ("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0}),
        ("adam", torch.optim.Adam, {"lr": 0.001, "weight_decay": 0.0}),
        ("adamw", torch.optim.AdamW, {"lr": 0.001, "weight_decay": 0.01}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 0.001, "alpha": 0.99}),
    ],
)
def test_each_optimizer_option_builds_its_torch_class_with_its_settings(option, kind, settings):
    model = classifier(f"optimizer={option}")
    optimizer = model.configure_optimizers()
    assert type(optimizer) is kind
    assert {k: optimizer.defaults[k] for k in settings} == settings


def test_any_torch_optimizer_and_its_arguments_by_naming_it():
    model = classifier("optimizer._target_=torch.optim.Adagrad", "+optimizer.lr_decay=0.01")
    optimizer = model.configure_optimizers()
    assert type(optimizer) is torch.optim.Adagrad and optimizer.defaults["lr_decay"] == 0.01


@pytest.mark.parametrize(
    ("option", "kind", "interval"),
    [
        ("onecycle", torch.optim.lr_scheduler.OneCycleLR, "step"),
        ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR, "step"),
        ("step", torch.optim.lr_scheduler.StepLR, "epoch"),
    ],
)
def test_each_schedule_gets_the_runs_length_in_its_interval(option, kind, interval):
    model = classifier(f"scheduler={option}", "trainer.max_epochs=7")
    model.trainer = SimpleNamespace(estimated_stepping_batches=420, max_epochs=7)
    entry = model.configure_optimizers()["lr_scheduler"]
    assert type(entry["scheduler"]) is kind and entry["interval"] == interval
    if option == "onecycle":
        assert entry["scheduler"].total_steps == 420
    if option == "cosine":
        assert entry["scheduler"].T_max == 420


def test_a_schedule_named_on_the_command_line_runs_over_the_whole_run():
    # LinearLR's own default would end its decay after 5 steps
    model = classifier(
        "+scheduler._target_=torch.optim.lr_scheduler.LinearLR",
        "+scheduler._partial_=true",
        "+scheduler.interval=step",
        "+scheduler.end_factor=0.01",
    )
    model.trainer = SimpleNamespace(estimated_stepping_batches=420, max_epochs=7)
    assert model.configure_optimizers()["lr_scheduler"]["scheduler"].total_iters == 420


def test_a_onecycle_shorter_than_the_run_is_refused_before_it_runs_out():
    model = classifier("scheduler=onecycle", "+scheduler.total_steps=400")
    model.trainer = SimpleNamespace(estimated_stepping_batches=420, max_epochs=7)
    with pytest.raises(UsageError, match="total_steps=400 is shorter than the run .420 steps."):
        model.configure_optimizers()
    model.trainer.estimated_stepping_batches = 400
    assert model.configure_optimizers()["lr_scheduler"]["scheduler"].total_steps == 400


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("scheduler=step scheduler.step_size=0", r"StepLR\) fails at its step 1 \(ZeroDivision"),
        ("scheduler=cosine +scheduler.T_max=0", r"CosineAnnealingLR\) fails at its step 1"),
        ("scheduler=onecycle scheduler.max_lr=-1", r"learning rate -0.04 at its step 0"),
        ("scheduler=step scheduler.gamma=-1", r"learning rate -0.001 at its step 3"),
    ],
)
def test_a_schedule_that_fails_or_turns_the_rate_negative_is_named_before_the_run(
    settings, message
):
    with pytest.raises(UsageError, match=message):
        classifier(*settings.split())


def test_a_schedule_with_a_length_of_its_own_is_stepped_only_that_far():
    classifier("scheduler=onecycle", "+scheduler.total_steps=2")  # the stand-in run is longer
    classifier("scheduler=cosine", "+scheduler.T_max=1")


def test_no_schedule_leaves_the_optimizer_alone():
    assert isinstance(classifier("scheduler=none").configure_optimizers(), torch.optim.Adam)


def test_checkpoint_hyperparameters_rebuild_the_same_network():
    model = classifier("model=convnet_single", "optimizer=sgd")
    rebuilt = Classifier(**model.hparams)
    rebuilt.load_state_dict(model.state_dict())
    images = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(images), rebuilt(images))


def test_a_run_folder_or_its_checkpoint_rebuilds_the_trained_model(tiny_cfg, tmp_path):
    from src.train import train

    train(tiny_cfg("logger=none", "trainer.max_epochs=1", "model=convnet16"), tmp_path)
    for path in (tmp_path, tmp_path / "checkpoints" / "last.ckpt"):
        model = load_classifier(path)
        assert model.hparams.model["channels"] == [16, 32]
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    # A checkpoint from before label smoothing existed loads as trained without it.
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["hyper_parameters"]["label_smoothing"]
    torch.save(checkpoint, path)
    assert load_classifier(path).hparams.label_smoothing == 0.0


def test_missing_or_foreign_checkpoints_are_named(tmp_path):

    with pytest.raises(UsageError, match="no checkpoint at"):
        load_classifier(tmp_path / "nothing.ckpt")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="could not be loaded as a checkpoint"):
        load_classifier(tmp_path / "notes.ckpt")


class ExplodeInSecondEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 1e30


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tiny_cfg, tmp_path
):
    import src.train

    explode = f"+callbacks.explode._target_={__name__}.ExplodeInSecondEpoch"
    with pytest.raises(UsageError, match="NaN or infinite at global step 1[0-9], so training"):
        src.train.train(tiny_cfg("logger=none", explode), tmp_path)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 10  # the first epoch's
    assert all(weight.isfinite().all() for weight in last["state_dict"].values())


def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    from tests.core.test_resume import RunsCode

    marker = tmp_path / "code-ran"
    torch.save({"state_dict": RunsCode(marker)}, tmp_path / "crafted.ckpt")
    with pytest.raises(UsageError, match="holds Python objects beyond tensors and plain values"):
        load_classifier(tmp_path / "crafted.ckpt")
    assert not marker.exists()


def test_weights_of_another_network_are_named(tmp_path):
    import pytest
    from omegaconf import OmegaConf

    def to_container(hparams):
        return OmegaConf.to_container(OmegaConf.create(dict(hparams)))

    small, large = classifier("model=convnet_single"), classifier("model=convnet32")
    torch.save(
        {
            "state_dict": small.state_dict(),
            "hyper_parameters": to_container(large.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        tmp_path / "mixed.ckpt",
    )
    with pytest.raises(UsageError, match="holds the weights of another network"):
        load_classifier(tmp_path / "mixed.ckpt")
