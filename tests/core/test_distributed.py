"""DDP under Hydra: 2 CPU processes started by Lightning, as `python -m src.train` runs them."""

import json
import math
import os

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from src.core.build import build
from src.core.checkpoints import load_classifier
from src.core.config import CONF_DIR
from src.core.distributed import job_command, processes_of_this_job, require_one_run_folder
from src.core.errors import UsageError
from tests.conftest import ROOT, TINY, compose_train, run_module, write_mnist

# Odd counts, so that training shards are cut to equal length and test shards are uneven
# (50 and 49 images, in 2 batches and 1).
TRAIN_IMAGES, TEST_IMAGES = 301, 99
DDP = ["trainer=ddp_cpu", "trainer.max_epochs=1", "data.eval_batch_size=49"]


def run_in(folder, *args):
    """`python -m src.train` from `folder`, so every folder the run makes is inside it."""
    result = run_module("src.train", *args, cwd=folder, env={"PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def odd_mnist(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("odd"), TRAIN_IMAGES, TEST_IMAGES)


@pytest.fixture(scope="module")
def ddp_run(odd_mnist, tmp_path_factory):
    """One 2-process run with Hydra's default, time-stamped run folder; returns that folder."""
    cwd = tmp_path_factory.mktemp("cwd")
    run_in(cwd, f"data.data_dir={odd_mnist}", *TINY, *DDP)
    runs = list((cwd / "outputs").glob("*/*/*"))
    assert len(runs) == 1, runs  # exactly one run folder (outputs/runs/<date>/<time>)
    return runs[0]


def test_a_ddp_run_writes_one_folder_and_only_rank_0_writes(ddp_run):
    names = {path.name for path in ddp_run.iterdir()}
    assert names == {".hydra", "checkpoints", "tensorboard", "train.log", "metrics.json"}
    events = list(ddp_run.glob("tensorboard/*/events.out.tfevents.*"))
    assert len({event.name.split(".")[-2] for event in events}) == 1  # one writer process
    checkpoint = torch.load(ddp_run / "checkpoints" / "last.ckpt", weights_only=True)
    train_images = TRAIN_IMAGES - 100  # data.val_size=100 in TINY
    assert checkpoint["global_step"] == math.ceil(train_images // 2 / 32)  # each process: half


def test_ddp_test_accuracy_equals_one_process_testing_the_same_checkpoint(ddp_run, odd_mnist):
    record = json.loads((ddp_run / "metrics.json").read_text())
    cfg = compose_train(f"data.data_dir={odd_mnist}", *TINY, *DDP)
    one_process = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    model = load_classifier(ddp_run)
    (tested,) = one_process.test(model, build("data", cfg.data, seed=cfg.seed))
    assert tuple(model.test_tally) == (record["test/correct"], record["test/images"])
    assert record["test/images"] == TEST_IMAGES  # each image once, though the shards are uneven
    assert tested["test/loss"] == pytest.approx(record["test/loss"], rel=1e-5)


def test_a_ddp_multirun_completes_every_job_in_its_own_folder(odd_mnist, tmp_path):
    args = ["-m", "model=convnet16,convnet_single", f"data.data_dir={odd_mnist}"]
    result = run_in(tmp_path, *args, *TINY, *DDP)
    assert "2 jobs, 0 failed" in result.stdout + result.stderr
    (sweep,) = (tmp_path / "outputs" / "multiruns").glob("*/*")
    assert not (tmp_path / "outputs" / "runs").exists()  # no process made a single-run folder
    assert sorted(job.name for job in sweep.glob("[0-9]*")) == ["0", "1"]
    for job in ("0", "1"):
        names = {path.name for path in (sweep / job).iterdir()}
        assert names == {".hydra", "checkpoints", "train.log", "metrics.json"}
        assert json.loads((sweep / job / "metrics.json").read_text())["test/acc"] > 0


def hydra_node(mode: RunMode, hydra_overrides: list[str]):
    return OmegaConf.create({"mode": mode, "overrides": {"hydra": hydra_overrides}})


def test_processes_started_by_torchrun_or_srun_must_be_given_one_run_folder():
    with pytest.raises(UsageError, match="hydra.run.dir="):
        require_one_run_folder(hydra_node(RunMode.RUN, []), {"WORLD_SIZE": "4"})
    with pytest.raises(UsageError, match="one of 8 processes"):
        require_one_run_folder(hydra_node(RunMode.RUN, []), {"SLURM_NTASKS": "8"})
    given = hydra_node(RunMode.RUN, ["hydra.run.dir=outputs/runs/job42"])
    require_one_run_folder(given, {"WORLD_SIZE": "4"})
    require_one_run_folder(hydra_node(RunMode.RUN, []), {})  # one process: its own folder
    # A launcher's multirun (hydra/launcher=slurm) names each job's folder before starting it.
    require_one_run_folder(hydra_node(RunMode.MULTIRUN, []), {"SLURM_NTASKS": "8"})


@pytest.fixture
def hydra_job(tmp_path):
    """This process as inside job 1 of a multirun `-m model=convnet16,...` writing to tmp_path."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=convnet16"], return_hydra_config=True)
    cfg.hydra.mode, cfg.hydra.runtime.output_dir = RunMode.MULTIRUN, str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    yield tmp_path
    HydraConfig.instance().cfg = None


def test_processes_lightning_starts_run_this_job_alone_in_its_folder(hydra_job):
    command, cwd = job_command("src.train", local_rank=1)
    assert command[1:4] == ["-m", "src.train", "--config-name=train"]
    assert "model=convnet16" in command and "-m" not in command[3:]  # this job, not the sweep
    assert f'hydra.run.dir="{hydra_job}"' in command
    assert cwd == HydraConfig.get().runtime.cwd


def test_after_a_job_no_process_group_or_launcher_settings_are_left_for_the_next(hydra_job):
    threads = torch.get_num_threads()
    with processes_of_this_job("src.train"):
        # What Lightning's launcher leaves behind in the process that started the others.
        os.environ.update(LOCAL_RANK="0", WORLD_SIZE="1", MASTER_PORT="29512")
        store = f"file://{hydra_job / 'store'}"  # no port to collide with other tests
        torch.distributed.init_process_group("gloo", init_method=store, rank=0, world_size=1)
        torch.set_num_threads(1)
    assert not torch.distributed.is_initialized()
    assert not {"LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"} & set(os.environ)
    assert torch.get_num_threads() == threads
