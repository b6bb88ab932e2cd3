"""Sweeps run in this process (a subprocess would cost its imports again); joblib and submitit
still start their own worker processes, as they would for a user."""

import csv
import json
import os
import statistics

import optuna
import pytest
from omegaconf import OmegaConf

from src.core.hparams import MAX_RUN_NAME, claim_tensorboard_run
from src.core.sweeps import threads_per_job
from tests.conftest import ROOT, TINY, run_module, train_here

CORES = len(os.sched_getaffinity(0))
FAST = ["trainer.max_epochs=1", "model=convnet_single"]


@pytest.fixture
def multirun(tiny_mnist, tmp_path, monkeypatch):
    """Run `python -m src.train -m <overrides>` on the tiny data in this process; returns the
    sweep folder."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for submitit's job processes

    def run(*overrides: str):
        sweep = tmp_path / "sweep"
        train_here(
            "-m",
            f"hydra.sweep.dir={sweep}",
            f"data.data_dir={tiny_mnist}",
            *TINY,
            *FAST,
            *overrides,
        )
        return sweep

    return run


def read_csv(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def job_records(sweep):
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}


def test_a_failed_job_is_recorded_and_the_seeds_of_the_others_summarised(multirun, tmp_path):
    with pytest.raises(SystemExit, match="error: 2 of 4 jobs failed: their errors are above"):
        multirun("optimizer.lr=0.05,-1", "seed=1,2")  # the others run, then the exit status is 1

    sweep = tmp_path / "sweep"
    records = job_records(sweep)
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(records) == 4 and len(failed) == 2
    assert all("Invalid learning rate: -1" in r["error"] for r in failed)
    rows = read_csv(sweep / "summary.csv")
    assert [row["status"] for row in rows] == ["ok", "ok", "failed", "failed"]
    (config,) = read_csv(sweep / "summary_by_config.csv")
    finished = [float(row["val/acc_best"]) for row in rows[:2]]
    assert config["overrides"] == "optimizer.lr=0.05" and config["runs"] == "2"
    assert float(config["val/acc_best mean"]) == pytest.approx(statistics.mean(finished))
    assert float(config["val/acc_best std"]) == pytest.approx(statistics.stdev(finished))

    # one TensorBoard root for the whole sweep, one run per finished job (a job whose settings
    # fail to build gets none), named by the values the sweep varies
    runs = sorted(p.name for p in (sweep / "tensorboard").iterdir())
    assert runs == ["optimizer.lr=0.05,seed=1", "optimizer.lr=0.05,seed=2"]
    assert all(any((sweep / "tensorboard" / run).glob("events.*")) for run in runs)


def test_an_optuna_search_runs_its_trials_two_at_a_time_and_ranks_them(multirun, tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    sweep = multirun(
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_jobs=2",  # two trials at a time, run side by side by joblib
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.limit_train_batches=2",  # short of perfect, so the trials differ
        "logger=none",
    )

    rows = read_csv(sweep / "summary.csv")
    records = job_records(sweep)
    assert len(rows) == 3 and all(row["status"] == "ok" for row in rows)
    accuracies = [float(row["val/acc_best"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies == [records[row["job"]]["val/acc_best"] for row in rows]
    assert all(record["threads"] == max(1, CORES // 2) for record in records.values())
    assert all("optimizer.lr=" in row["overrides"] for row in rows)

    study = optuna.load_study(study_name="convnets", storage=storage)  # resumable from here
    assert sorted(t.value for t in study.trials) == sorted(accuracies)


def test_an_optuna_search_whose_every_trial_fails_ends_as_a_failed_sweep(multirun, tmp_path):
    settings = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "model.dropout=1.0"]
    settings.append("hydra.sweeper.storage=null")  # the study in memory: nothing to keep
    with pytest.raises(SystemExit, match="error: 2 of 2 jobs failed: their errors are above"):
        multirun(*settings)  # not Optuna's traceback for a best trial it cannot name

    rows = read_csv(tmp_path / "sweep" / "summary.csv")
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert all(row["error"].endswith("dropout must be in [0, 1), got 1.0") for row in rows)


@pytest.mark.parametrize(
    ("swept", "message"),
    [
        (
            "model=choice(convnet99,mlp)",
            "error: model=convnet99 is not an option of the model group",
        ),
        (
            "optimizer.lr=tag(log,interval(0.1,0.0001))",
            "error: optimizer.lr=tag(log,interval(0.1,0.0001)): `low <= high` must hold, but got "
            "(low=0.1, high=0.0001): mend the swept values",
        ),
    ],
)
def test_an_optuna_search_space_that_cannot_be_searched_stops_in_one_line(
    swept, message, tiny_mnist, tmp_path
):
    result = run_module(
        "src.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", swept,
        f"data.data_dir={tiny_mnist}", *TINY, "logger=none", f"hydra.sweep.dir={tmp_path / 's'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_submitit_runs_each_job_as_a_process_of_its_own(multirun):
    sweep = multirun(
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "optimizer=sgd,adam",
        "logger=none",
    )

    records = job_records(sweep)
    optimizers = {o for r in records.values() for o in r["overrides"] if o.startswith("optim")}
    assert optimizers == {"optimizer=sgd", "optimizer=adam"}
    assert all(r["status"] == "ok" and r["threads"] == 1 for r in records.values())
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2
    assert len(read_csv(sweep / "summary.csv")) == 2


def test_fail_fast_stops_the_sweep_at_the_first_failed_job(multirun, tmp_path):
    with pytest.raises(SystemExit, match="fail_fast=true"):
        multirun("optimizer.lr=-1,0.05", "fail_fast=true")
    assert [p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()] == ["0"]


def test_a_job_whose_config_cannot_be_composed_is_recorded_and_the_sweep_goes_on(
    tiny_mnist, tmp_path
):
    sweep = tmp_path / "sweep"
    args = [f"data.data_dir={tiny_mnist}", *TINY, "trainer.max_epochs=1", "logger=none"]
    result = run_module(
        "src.train", "-m", *args, "model=convnet99,convnet_single", f"hydra.sweep.dir={sweep}"
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert result.stderr.splitlines()[-1] == "error: 1 of 2 jobs failed: their errors are above"
    error = "model=convnet99 is not an option of the model group: choose one of convnet16,"
    records = job_records(sweep)
    assert records["0"]["status"] == "failed" and records["0"]["error"].startswith(error)
    assert "model=convnet99" in records["0"]["overrides"]
    assert records["1"]["status"] == "ok"  # the next job keeps its number and runs
    rows = read_csv(sweep / "summary.csv")
    assert [(row["job"], row["status"]) for row in rows] == [("1", "ok"), ("0", "failed")]
    assert rows[1]["error"] == records["0"]["error"]
    assert sum(f"job 0 failed: {error}" in line for line in output.splitlines()) == 1
    assert "Traceback" not in output and "Available options" not in output

    stopped = run_module(
        "src.train",
        "-m",
        *args,
        "model=convnet_single,convnet99",
        "fail_fast=true",
        f"hydra.sweep.dir={tmp_path / 'stopped'}",
    )
    assert stopped.returncode == 2
    assert stopped.stderr.strip() == (
        f"error: {records['0']['error']}; the sweep stops before it starts (fail_fast=true)"
    )
    assert not list((tmp_path / "stopped").glob("*/metrics.json"))  # no job ran


def test_parallel_jobs_share_the_cores():
    assert threads_per_job(OmegaConf.create({})) is None  # one job at a time: torch's default
    assert threads_per_job(OmegaConf.create({"n_jobs": 2})) == max(1, CORES // 2)
    assert threads_per_job(OmegaConf.create({"n_jobs": -1})) == 1  # joblib: a job per core
    assert threads_per_job(OmegaConf.create({"cpus_per_task": 3, "n_jobs": None})) == 3


def test_each_job_gets_a_tensorboard_run_of_its_own(tmp_path):
    assert claim_tensorboard_run(tmp_path, "model=a", 0) == "model=a"
    assert claim_tensorboard_run(tmp_path, "model=a", 3) == "model=a,job=3"
    assert claim_tensorboard_run(tmp_path, "", 4) == "defaults"
    long = claim_tensorboard_run(tmp_path, "optimizer.lr=0.00012345678901234," * 20, 5)
    assert long.endswith(",job=5") and len(long.encode()) < MAX_RUN_NAME + 20
    assert (tmp_path / long).is_dir()


def test_a_long_sweep_holds_its_memory_steady(tiny_mnist, tmp_path):
    """Jobs run one after another in one process: whatever a job leaves behind adds up over a
    long sweep. The probe records what the process holds as each job starts."""
    probe = tmp_path / "memory.jsonl"
    result = run_module(
        "src.train",
        "-m",
        "seed=range(1,16)",
        f"data.data_dir={tiny_mnist}",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+hydra.callbacks.probe._target_=tests.memory_probe.MemoryProbe",
        f"+hydra.callbacks.probe.path={probe}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in probe.read_text().splitlines()]
    assert len(records) == 15
    # No finished job's trainer (with its network and data) is alive when the next job starts.
    assert [record["trainers"] for record in records] == [0] * 15
    settled, last = records[5], records[-1]  # the first jobs fill caches (imports, kernels)
    jobs = last["jobs_done"] - settled["jobs_done"]
    # What stays referenced: before the fixes some 1,300 objects a job (Hydra's copies of each
    # job's config, the types torch.jit.trace makes for each graph); now about 2.
    assert last["objects"] - settled["objects"] < 20 * jobs
    assert last["threads"] == settled["threads"]
    assert last["open_files"] == settled["open_files"]
    assert last["rss_mb"] - settled["rss_mb"] < 40  # MB; a loose bound, resident memory is noisy
