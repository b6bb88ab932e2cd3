"""A sweep whose launcher or Optuna search cannot run its jobs stops in one line, before its
folder is made."""

import pytest
from omegaconf import OmegaConf

from src.core.errors import UsageError
from src.core.launch import require_a_launcher_that_can_start
from src.core.search import open_storage
from tests.conftest import train_here


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["hydra/launcher=slurm"], "hydra/launcher=slurm submits the jobs to a SLURM cluster"),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 runs no"),
        (["hparams_search=optuna", "hydra.sweeper.n_trials=0"], "n_trials must be >= 1, got 0"),
        (["hparams_search=optuna", "hydra.sweeper.n_jobs=-1"], "n_jobs must be >= 1, got -1"),
        (
            ["hparams_search=optuna", "hydra.sweeper.storage=sqlite:////no/such/folder/study.db"],
            "hydra.sweeper.storage=sqlite:////no/such/folder/study.db cannot be opened "
            "((sqlite3.OperationalError) unable to open database file): name a database whose "
            "folder exists",
        ),
        (
            ["hparams_search=optuna", "hydra.sweeper.storage=sqlit:///study.db"],
            "cannot be opened (Can't load plugin: sqlalchemy.dialects:sqlit)",
        ),
    ],
)
def test_a_sweep_that_cannot_start_stops_in_one_line(
    tmp_path, monkeypatch, capsys, settings, message
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun: not a SLURM cluster
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as stop:
        train_here("-m", *settings, f"hydra.sweep.dir={sweep}")
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not sweep.exists()


def test_slurm_starts_where_srun_is(tmp_path, monkeypatch):
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    slurm = OmegaConf.create(
        {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
    )
    require_a_launcher_that_can_start(slurm)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(UsageError, match="no srun here"):
        require_a_launcher_that_can_start(slurm)


def test_a_database_in_a_folder_that_exists_opens(tmp_path):
    open_storage(f"sqlite:///{tmp_path}/study.db")
    assert (tmp_path / "study.db").is_file()
