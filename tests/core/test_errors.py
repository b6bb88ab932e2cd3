"""Every mistake a user can make on the command line or with the data: one line `error: ...` that
names the problem and the fix, exit status 2, no traceback, before any training starts."""

import json
import shutil

import pytest

from tests.conftest import TINY, TRAIN_FILES, run_here, run_module

NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def command(*args, data_dir=None, run_dir):
    data = [f"data.data_dir={data_dir}"] if data_dir else []
    return [*data, *TINY, *args, f"hydra.run.dir={run_dir}"]


def train(*args, data_dir=None, run_dir):
    return run_here("src.train", *command(*args, data_dir=data_dir, run_dir=run_dir))


def train_in_a_process(*args, env, data_dir=None, run_dir):
    return run_module("src.train", *command(*args, data_dir=data_dir, run_dir=run_dir), env=env)


def assert_one_error_line(result, message):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model=convnet99",
            "error: model=convnet99 is not an option of the model group: choose one of "
            "convnet16, convnet32, convnet64, convnet_single, custom, lenet5, mlp, resnet_small, "
            "vgg_small (the files in conf/model/)",
        ),
        (
            "optimizer.lrr=0.1",
            "error: optimizer.lrr is not a setting: the settings of optimizer are _target_, "
            "_partial_, lr, weight_decay (`+optimizer.lrr=...` adds an argument",
        ),
        (
            "+optimizer.lrr=0.1",
            "error: optimizer.lrr is not an argument of torch.optim.adam.Adam: its arguments are "
            "lr, betas, eps, weight_decay, amsgrad",
        ),
        ("sed=1", "error: sed is not a setting: the settings at the top level are data, model"),
        ("data.batch_size=big", "error: data.batch_size='big' is not of type int, as src.data.idx"),
        ("trainer.max_epochs=big", "error: trainer.max_epochs='big' is not of type int | None"),
        ("optimizer.lr=-1", "error: optimizer (torch.optim.adam.Adam): Invalid learning rate: -1"),
        ("data.batch_size=0", "error: data (src.data.idx.IDXDataModule): batch_size must be >= 1"),
        ("trainer.max_epochs=-3", "error: trainer: `max_epochs` must be a non-negative integer"),
        ("++trainer.max_epoch=3", "error: trainer.max_epoch is not an argument of lightning.pyt"),
        ("trainer.limit_test_batches=0", "error: trainer.limit_test_batches must be > 0"),
        # Lightning's own check, passed on as one line
        ("trainer.limit_val_batches=0.001", "error: You requested to check 0.001 of the `val_"),
        (
            "model.dropout=1.0",
            "error: model (src.models.convnet.ConvNet): dropout must be in [0, 1)",
        ),
        ("trainer.precision=17", "error: trainer.precision=17 is not of type 64 | 32 | 16"),
        ("trainer.accelerator=abc", "error: trainer: You selected an invalid accelerator name"),
        ("+callbacks.x._target_=os.system", "error: callbacks.x._target_=os.system is not a li"),
        ("logger=[tensorboard,mlfow]", "error: logger=mlfow is not an option of the logger group"),
        ("optimizer.lr=[", "error: cannot read optimizer.lr=[ (no viable alternative at input"),
        ("model=custom", "error: model._target_ is missing (???): set it on the command line"),
        (
            "model._target_=no_such_package.Net",
            "error: model._target_=no_such_package.Net cannot be imported (ModuleNotFoundError: "
            "No module named 'no_such_package'): name an importable class",
        ),
        (
            "optimizer._target_=os.system",
            "error: optimizer._target_=os.system is not a torch.optim.optimizer.Optimizer class, "
            "so it is not built",
        ),
        (
            "scheduler._target_=torch.optim.lr_scheduler.ExponentialLR",  # scheduler=none
            "error: scheduler._target_ is not a setting: this scheduler option has none; choose "
            "another (scheduler=<option>, listed by --help), or name a class of your own: "
            "+scheduler._target_=<class> +scheduler._partial_=true",
        ),
        (
            "trainer=5",
            "error: Config group override must be a string or a list. Got int: a group takes the "
            "name of one of its options, e.g. model=convnet16 (--help lists them)",
        ),
        (
            "data=mnist,kmnist",
            "error: data=mnist,kmnist gives several values: add -m to run one job each (python -m "
            "src.train -m data=mnist,kmnist), or write a list as [a,b]",
        ),
        (
            "hydra/launcher=joblb",
            "error: hydra/launcher=joblb is not an option of the hydra/launcher group: choose one "
            "of basic, joblib, slurm,",
        ),
        (
            "scheduler=step scheduler.interval=week",
            "error: scheduler.interval must be one of ['step', 'epoch'], got 'week'",
        ),
    ],
)
def test_bad_settings_stop_with_one_line_and_exit_status_2(override, message, tiny_mnist, tmp_path):
    result = train(*override.split(), data_dir=tiny_mnist, run_dir=tmp_path / "run")
    assert_one_error_line(result, message)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "trainer.max_epochs=-3",
            "trainer: `max_epochs` must be a non-negative integer or -1. You passed in -3",
        ),
        ("name=[1,2]", "name: Cannot convert 'ListConfig' to string: '[1, 2]'"),  # not JSON
    ],
)
def test_a_run_refused_after_its_folder_was_made_says_why_in_its_metrics(
    override, message, tiny_mnist, tmp_path
):
    result = train(override, data_dir=tiny_mnist, run_dir=tmp_path / "run")
    assert_one_error_line(result, f"error: {message}")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert record["error"] == message  # src.summarize lists it


def test_a_gpu_asked_for_on_a_machine_without_one(tmp_path):
    result = train_in_a_process("trainer=gpu", env={"CUDA_VISIBLE_DEVICES": ""}, run_dir=tmp_path)
    assert_one_error_line(result, "there is no GPU here (torch.cuda.is_available() is False)")


def test_a_traceback_when_asked_for(tmp_path):
    result = train_in_a_process("optimizer.lr=-1", env={"HYDRA_FULL_ERROR": "1"}, run_dir=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "Invalid learning rate" in result.stderr


@pytest.mark.parametrize(
    ("data_set", "folder"),
    [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")],
)
def test_a_missing_data_set_without_a_network_says_where_and_how(data_set, folder, tmp_path):
    empty = tmp_path / "empty"  # a process of its own: urllib keeps the proxy it first saw
    result = train_in_a_process(
        f"data={data_set}", data_dir=empty, env=NO_NETWORK, run_dir=tmp_path / "run"
    )
    assert_one_error_line(result, f"error: {folder} is not in {empty / folder / 'raw'}")
    assert "download failed" in result.stderr and "DATA_DIR" in result.stderr


def corrupted_copy(tiny_mnist, tmp_path, damage):
    data = tmp_path / "data"
    shutil.copytree(tiny_mnist, data)
    images = data / "MNIST" / "raw" / TRAIN_FILES[0]
    images.write_bytes(damage(images.read_bytes()))
    return data, images


def test_a_truncated_idx_file_is_named(tiny_mnist, tmp_path):
    data, images = corrupted_copy(tiny_mnist, tmp_path, lambda content: content[:-1000])
    result = train(data_dir=data, run_dir=tmp_path / "run")
    assert_one_error_line(result, f"error: {images} is truncated or corrupt")


def test_an_idx_file_with_a_wrong_magic_number_is_named(tiny_mnist, tmp_path):
    data, images = corrupted_copy(tiny_mnist, tmp_path, lambda content: b"\x1f\x8b" + content[2:])
    result = train(data_dir=data, run_dir=tmp_path / "run")
    assert_one_error_line(result, f"error: {images} is not an IDX file (wrong magic number)")


def test_a_validation_set_as_large_as_the_training_file(tiny_mnist, tmp_path):
    result = train("data.val_size=400", data_dir=tiny_mnist, run_dir=tmp_path)  # 400 images
    assert_one_error_line(result, "error: data.val_size=400 leaves no training images")


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(tiny_mnist, tmp_path):
    result = train("optimizer.lr=1e30", data_dir=tiny_mnist, run_dir=tmp_path)
    assert_one_error_line(
        result, "error: the training loss became NaN or infinite at global step 1, so training"
    )
    assert "Lower optimizer.lr" in result.stderr
