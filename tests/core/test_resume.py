import json
import shutil

import pytest
import torch
import yaml
from hydra.types import RunMode
from omegaconf import OmegaConf

from src.core.errors import UsageError
from src.core.resume import resumed_run
from tests.conftest import TINY, compose_train, run_here, run_module
from tests.interrupt_at import ctrl_c_at
from tests.test_train import read_events

# 300 training images in batches of 32: 10 steps an epoch, 2 epochs; deterministic on the CPU.
RUN = [*TINY, "trainer.deterministic=true"]


def weights(run_dir, name="last.ckpt"):
    """The checkpoint's weights; with a moving average, the current weights beside it too."""
    checkpoint = torch.load(run_dir / "checkpoints" / name, weights_only=True)
    current = checkpoint.get("current_model_state", {})
    return {**checkpoint["state_dict"], **{f"current/{k}": v for k, v in current.items()}}


def scalars(run_dir):
    (folder,) = (run_dir / "tensorboard").iterdir()
    events = read_events(folder)
    tags = events.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags}


@pytest.fixture(scope="module")
def finished_runs(tiny_mnist, tmp_path_factory):
    """The uninterrupted run of some settings, made once per settings."""
    made = {}

    def finished(settings: str):
        if settings not in made:
            run_dir = tmp_path_factory.mktemp("runs") / "finished"
            args = [f"data.data_dir={tiny_mnist}", *RUN, *settings.split()]
            result = run_module("src.train", *args, f"hydra.run.dir={run_dir}")
            assert result.returncode == 0, result.stderr[-3000:]
            made[settings] = run_dir
        return made[settings]

    return finished


@pytest.fixture(scope="module")
def finished_run(finished_runs):
    return finished_runs("model=convnet32")


@pytest.mark.parametrize(
    "settings",
    # resnet: batch norm's buffers, and with EMA the average's own state, kept beside the weights
    ["model=convnet32", "model=resnet_small callbacks.ema_decay=0.9"],
)
def test_a_run_interrupted_mid_epoch_and_resumed_ends_as_if_never_stopped(
    finished_runs, settings, tiny_mnist, tmp_path
):
    finished_run = finished_runs(settings)
    run_dir = tmp_path / "stopped"
    args = [f"data.data_dir={tiny_mnist}", *RUN, *settings.split(), f"hydra.run.dir={run_dir}"]
    stopped = run_module("src.train", *ctrl_c_at(14), *args)  # Ctrl-C in the second epoch

    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert f"python -m src.train resume={run_dir}" in stopped.stdout + stopped.stderr
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()
    assert not (run_dir / "metrics.json").exists()

    resumed = run_module("src.train", f"resume={run_dir}")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole, again = weights(finished_run), weights(run_dir)
    assert whole.keys() == again.keys()
    assert all(torch.equal(whole[name], again[name]) for name in whole)
    expected = json.loads((finished_run / "metrics.json").read_text())
    record = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc_best", "epochs"):
        assert record[key] == expected[key], key
    # One TensorBoard run, continued: every step's value once, the same as without the stop.
    assert scalars(run_dir) == scalars(finished_run)


def test_resume_can_train_longer_and_keeps_that_for_the_next_resume(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    result = run_module("src.train", f"resume={run_dir}", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3
    assert "max_epochs: 3" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert not any(p.name.startswith("2") for p in (run_dir.parent).iterdir())  # no new folder


def test_a_run_saved_before_newer_settings_existed_resumes_with_their_defaults(
    finished_run, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    saved = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    del config["label_smoothing"], config["threads"]
    saved.write_text(yaml.safe_dump(config))
    result = run_module("src.train", f"resume={run_dir}", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3


def test_resume_refuses_to_change_the_run(finished_run):
    result = run_here("src.train", f"resume={finished_run}", "optimizer.lr=0.1")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: resume= continues a run with the config it saved, so optimizer.lr=0.1 cannot "
        "change it; only trainer.max_epochs, callbacks.progress_bar_refresh, threads can. "
        "Start a new run for other settings"
    )


def saved_run(tmp_path, *settings: str):
    """A run folder holding only the config a run of these settings saved."""
    saved = tmp_path / "run" / ".hydra"
    saved.mkdir(parents=True)
    OmegaConf.save(compose_train(*settings), saved / "config.yaml")
    (saved / "hydra.yaml").write_text("hydra: {}\n")
    return saved.parent


def resume(run_dir, *changes: str):
    """resumed_run for the command line `resume=<run_dir> <changes>`."""
    line = [f"resume={run_dir}", *changes]
    job = {"mode": RunMode.RUN, "overrides": {"task": line}, "runtime": {"output_dir": run_dir}}
    return resumed_run(compose_train(*line), OmegaConf.create(job))


def test_resume_refuses_to_stretch_a_schedule_sized_by_the_run(tmp_path):
    run_dir = saved_run(tmp_path, "scheduler=onecycle", "trainer.max_epochs=2")
    saved = (run_dir / ".hydra" / "config.yaml").read_text()
    with pytest.raises(UsageError) as refused:
        resume(run_dir, "trainer.max_epochs=3")
    assert str(refused.value) == (
        "resume= cannot change trainer.max_epochs from 2 to 3: the run's schedule "
        "(OneCycleLR) was sized for 2 epoch(s) and ends there. Start a new run with "
        "trainer.max_epochs=3"
    )
    assert (run_dir / ".hydra" / "config.yaml").read_text() == saved


def test_a_bad_value_given_to_resume_is_not_saved_in_the_run(tmp_path):
    run_dir = saved_run(tmp_path, "trainer.max_epochs=2")
    saved = (run_dir / ".hydra" / "config.yaml").read_text()
    with pytest.raises(UsageError, match="^trainer: `max_epochs` must be a non-negative integ"):
        resume(run_dir, "trainer.max_epochs=-3")
    assert (run_dir / ".hydra" / "config.yaml").read_text() == saved


def copy_run(finished_run, tmp_path, *, without=()):
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    for name in without:
        (run_dir / "checkpoints" / name).unlink()
    return run_dir


class RunsCode:
    """A pickle that would create a marker file when loaded, as a crafted checkpoint could."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_errors_name_the_problem_and_create_nothing(finished_run, tmp_path):
    missing = tmp_path / "nowhere"
    result = run_here("src.train", f"resume={missing}")
    assert result.returncode == 2
    assert result.stderr.strip() == (  # one line: no report of Hydra's before it
        f"error: {missing} is not a run folder (no .hydra/config.yaml in it): pass the folder a "
        "training run made, e.g. resume=outputs/runs/<date>/<time>"
    )
    assert not missing.exists()

    result = run_here("src.train", "resume=")  # an empty value would start a new run instead
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: resume= is not a folder: pass the folder of the run to continue, e.g. "
        "resume=outputs/runs/<date>/<time>"
    )

    moved = copy_run(finished_run, tmp_path / "moved")
    result = run_here("src.train", f"resume={moved}", f"hydra.run.dir={tmp_path / 'elsewhere'}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: resume= continues a run in its own folder ({moved}), so hydra.run.dir cannot "
        "move it: leave hydra.run.dir out"
    )

    garbled = copy_run(finished_run, tmp_path / "garbled")
    (garbled / ".hydra" / "config.yaml").write_text("model: 5\n")
    result = run_here("src.train", f"resume={garbled}")
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {garbled / '.hydra' / 'config.yaml'} does not hold a config this project can run"
    )
    assert result.stderr.strip().endswith(
        "was edited or damaged, so the run cannot be resumed; start a new one"
    )

    no_checkpoint = copy_run(finished_run, tmp_path / "a", without=("last.ckpt", "best.ckpt"))
    result = run_here("src.train", f"resume={no_checkpoint}")
    assert result.returncode == 2
    assert "holds neither interrupted.ckpt nor last.ckpt" in result.stderr

    corrupt = copy_run(finished_run, tmp_path / "b")
    (corrupt / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_here("src.train", f"resume={corrupt}")
    assert result.returncode == 2
    assert (
        "could not be loaded as a checkpoint of this project (not a PyTorch file" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_checkpoint_crafted_to_run_code_is_refused_not_run(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": RunsCode(marker)}, run_dir / "checkpoints" / "last.ckpt")
    result = run_here("src.train", f"resume={run_dir}")
    assert result.returncode == 2
    assert "could not be loaded as a checkpoint of this project (it holds Python objects" in (
        result.stderr
    )
    assert not marker.exists()


def test_a_checkpoint_of_another_network_is_named(finished_run, tiny_mnist, tmp_path):
    other = tmp_path / "other"
    result = run_module(
        "src.train",
        f"data.data_dir={tiny_mnist}",
        *TINY,
        "trainer.max_epochs=1",
        "model=convnet_single",
        f"hydra.run.dir={other}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = copy_run(finished_run, tmp_path)
    shutil.copy(other / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")
    result = run_module("src.train", f"resume={run_dir}")
    assert result.returncode == 2
    assert "holds the weights of another network than its run's model config" in result.stderr
    assert "size mismatch" in result.stderr or "Missing key" in result.stderr


def test_a_sweep_job_resumes_in_its_folder_and_its_tensorboard_run(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    args = [f"data.data_dir={tiny_mnist}", *TINY, "trainer.max_epochs=1", "model=convnet_single"]
    result = run_module("src.train", "-m", *args, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_module("src.train", f"resume={sweep / '0'}", "trainer.max_epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["epochs"] == 2
    runs = sorted((sweep / "tensorboard").iterdir())
    assert [run.name for run in runs] == ["seed=1", "seed=2"]  # the job's run: no third one
    assert len(read_events(runs[0]).Scalars("val/acc")) == 2  # both epochs in the same run
