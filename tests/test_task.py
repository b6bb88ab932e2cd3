import lightning as L
import torch

from src.task import DigitClassifier, build_optimizer
from tests.conftest import compose_train


def classifier(*overrides: str) -> DigitClassifier:
    cfg = compose_train(*overrides)
    return DigitClassifier(dict(cfg.model), dict(cfg.optimizer), dict(cfg.scheduler))


def test_training_step_returns_the_cross_entropy_of_the_batch():
    model = classifier("model=convnet16")
    model.trainer = L.Trainer(logger=False, enable_progress_bar=False, log_every_n_steps=50)
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss = model.training_step((images, labels), 0)
    expected = torch.nn.functional.cross_entropy(model(images), labels)
    assert torch.isclose(loss, expected)


def test_predict_step_gives_probabilities():
    probabilities = classifier().predict_step(torch.randn(2, 1, 28, 28), 0)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2))


def test_optimizer_settings_reach_torch():
    params = [torch.nn.Parameter(torch.zeros(1))]
    sgd = build_optimizer(
        "sgd", params, 0.05, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}
    )
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"]
    adamw = build_optimizer(
        "adam", params, 0.002, {"weight_decay": 0.01, "decoupled_weight_decay": True}
    )
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["lr"] == 0.002


def test_checkpoint_hyperparameters_rebuild_the_same_network():
    model = classifier("model=convnet_single", "optimizer=sgd")
    rebuilt = DigitClassifier(**model.hparams)
    rebuilt.load_state_dict(model.state_dict())
    images = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(images), rebuilt(images))


def test_a_run_folder_or_its_checkpoint_rebuilds_the_trained_model(tiny_cfg, tmp_path):
    from src.task import load_classifier
    from src.train import train

    train(tiny_cfg("logger=none", "trainer.max_epochs=1", "model=convnet16"), tmp_path)
    for path in (tmp_path, tmp_path / "checkpoints" / "last.ckpt"):
        model = load_classifier(path)
        assert model.hparams.model["name"] == "convnet16"
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_missing_or_foreign_checkpoints_are_named(tmp_path):
    import pytest

    from src.errors import UsageError
    from src.task import load_classifier

    with pytest.raises(UsageError, match="no checkpoint at"):
        load_classifier(tmp_path / "nothing.ckpt")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="could not be loaded as a checkpoint"):
        load_classifier(tmp_path / "notes.ckpt")


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tiny_cfg, tmp_path, monkeypatch
):
    import pytest

    import src.train
    from src.errors import UsageError

    class ExplodeInSecondEpoch(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                for group in trainer.optimizers[0].param_groups:
                    group["lr"] = 1e30

    build = src.train.build_callbacks
    monkeypatch.setattr(
        src.train, "build_callbacks", lambda *a, **k: [*build(*a, **k), ExplodeInSecondEpoch()]
    )
    with pytest.raises(UsageError, match="NaN or infinite at global step 1[0-9], so training"):
        src.train.train(tiny_cfg("logger=none"), tmp_path)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 10  # the first epoch's
    assert all(weight.isfinite().all() for weight in last["state_dict"].values())


def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    import pytest

    from src.errors import UsageError
    from src.task import load_classifier
    from tests.test_resume import RunsCode

    marker = tmp_path / "code-ran"
    torch.save({"state_dict": RunsCode(marker)}, tmp_path / "crafted.ckpt")
    with pytest.raises(UsageError, match="holds Python objects beyond tensors and plain values"):
        load_classifier(tmp_path / "crafted.ckpt")
    assert not marker.exists()


def test_weights_of_another_network_are_named(tmp_path):
    import pytest
    from omegaconf import OmegaConf

    from src.errors import UsageError
    from src.task import load_classifier

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
