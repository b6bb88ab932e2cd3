"""The Optuna search (src/core/search.py): its search space, sampler, pruner and storage checked
before any trial, pruning that ends a trial cleanly (in this process and in joblib's), a study
that the same command continues, and two searches sharing one study."""

import json
import re
import subprocess
import sys

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sqlalchemy import event
from sqlalchemy.engine import Engine

from src.core.errors import UsageError
from src.core.search import (
    PRUNED_AT,
    RUN_FOLDER,
    build_optuna_object,
    open_storage,
    open_study,
    search_space,
)
from tests.conftest import ROOT, TINY, run_module, train_here

SEARCH = ["hparams_search=optuna", "model=convnet_single", "logger=none"]
ALWAYS_PRUNE = [  # every trial falls below the threshold, so the pruner stops each after epoch 1
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
    "~hydra.sweeper.pruner.min_resource",
    "~hydra.sweeper.pruner.reduction_factor",
    "+hydra.sweeper.pruner.lower=1.1",
]


def sweeper(**settings):
    defaults = {"direction": "maximize", "study_name": "s", "storage": None, "params": None}
    defaults |= {"sampler": None, "pruner": None}
    return OmegaConf.create(defaults | settings)


def search_args(tiny_mnist, tmp_path, name="sweep"):
    return [
        "-m", *SEARCH, f"data.data_dir={tiny_mnist}", *TINY,
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db",
        f"hydra.sweep.dir={tmp_path / name}",
    ]  # fmt: skip


def trials(tmp_path):
    return optuna.load_study(study_name="convnets", storage=f"sqlite:///{tmp_path}/study.db").trials


def test_the_sweep_grammar_becomes_optuna_distributions():
    params = OmegaConf.create(
        {"model": "choice(a,b)", "optimizer.lr": "tag(log,interval(1e-4,0.1))"}
    )
    space = search_space(
        params,
        ["seed=range(1,4)", "x=interval(0.0,1.0)", "model=choice(c,d)", "trainer.max_epochs=2"],
    )
    assert space.distributions == {
        "model": CategoricalDistribution(["c", "d"]),  # the command line wins
        "optimizer.lr": FloatDistribution(1e-4, 0.1, log=True),
        "seed": IntDistribution(1, 3),  # range's stop is not among its values, as in Hydra
        "x": FloatDistribution(0.0, 1.0),
    }
    assert space.fixed == ["trainer.max_epochs=2"]
    assert space.overrides({"seed": 2}) == ["trainer.max_epochs=2", "seed=2"]


@pytest.mark.parametrize(
    ("swept", "message"),
    [
        ("seed=range(5,1)", "seed=range(5,1): "),
        ("model=glob(*)", "model=glob(*) cannot be searched: write choice(a,b)"),
    ],
)
def test_a_space_optuna_cannot_search_is_refused(swept, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        search_space(None, [swept])


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("optuna.samplers.NoSuchSampler", "is not one: name a subclass of optuna.samplers"),
        ("subprocess.call", "is not one"),  # a callable, never called
        ("optuna.pruners.MedianPruner", "is not one"),  # a pruner is no sampler
    ],
)
def test_only_an_optuna_sampler_is_built(target, message, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("called"))
    with pytest.raises(UsageError, match=message):
        build_optuna_object(
            "sampler", OmegaConf.create({"_target_": target}), optuna.samplers.BaseSampler
        )


def test_a_sampler_gets_its_arguments():
    config = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 3})
    assert isinstance(
        build_optuna_object("sampler", config, optuna.samplers.BaseSampler),
        optuna.samplers.RandomSampler,
    )
    config.seeds = 3
    with pytest.raises(UsageError, match="RandomSampler refuses its arguments"):
        build_optuna_object("sampler", config, optuna.samplers.BaseSampler)


def test_a_study_made_for_the_other_direction_is_refused_and_kept(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    study = open_study(sweeper(storage=storage, direction="minimize"))
    study.enqueue_trial({})
    study.tell(study.ask(), 0.5)
    with pytest.raises(
        UsageError,
        match="the study s in .* minimizes its objective, and hydra.sweeper.direction=maximize",
    ):
        open_study(sweeper(storage=storage))
    assert [t.value for t in optuna.load_study(study_name="s", storage=storage).trials] == [0.5]


def test_bad_search_settings_stop_before_any_trial(tiny_mnist, tmp_path):
    result = run_module(
        "src.train", *search_args(tiny_mnist, tmp_path), "hydra.sweeper.pruner._target_=os.system"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip() == (
        "error: hydra.sweeper.pruner._target_=os.system is not one: name a subclass of "
        "optuna.pruners._base.BasePruner in hydra.sweeper.pruner._target_"
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]]
)
def test_a_pruned_trial_ends_cleanly_and_is_recorded_as_pruned(
    launcher, tiny_mnist, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for joblib's worker processes
    train_here(
        *search_args(tiny_mnist, tmp_path), "hydra.sweeper.n_trials=2", *ALWAYS_PRUNE, *launcher
    )

    sweep = tmp_path / "sweep"
    for trial in trials(tmp_path):
        assert trial.state == TrialState.PRUNED and trial.user_attrs[PRUNED_AT] == 1
        folder = sweep / str(trial.number)
        assert trial.user_attrs[RUN_FOLDER] == str(folder)
        record = json.loads((folder / "metrics.json").read_text())
        assert record["status"] == "pruned" and record["pruned_after_epoch"] == 1
        assert record["epochs"] == 1 and record["test/acc"] is not None  # tested after the stop
        assert (folder / "checkpoints" / "best.ckpt").is_file() and (folder / "train.log").is_file()
    summary = (sweep / "summary.md").read_text()
    assert "2 jobs, 0 failed" in summary and summary.count("| pruned ") == 2


def test_the_same_command_again_continues_the_study(tiny_mnist, tmp_path):
    args = [*search_args(tiny_mnist, tmp_path), "hydra.sweeper.n_trials=1", "trainer.max_epochs=1"]
    train_here(*args)
    train_here(*args[:-1], f"hydra.sweep.dir={tmp_path / 'again'}")

    assert [(t.number, t.state) for t in trials(tmp_path)] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.COMPLETE),
    ]
    first, second = (t.params for t in trials(tmp_path))
    assert first != second  # the sampler's seed counted on from the study's trials


def test_two_searches_on_one_storage_share_the_study(tiny_mnist, tmp_path):
    def start(seed: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "src.train"]
        command += search_args(tiny_mnist, tmp_path, name=f"sweep{seed}")
        command += ["hydra.sweeper.n_trials=2", "trainer.max_epochs=1"]
        command += ["trainer.limit_train_batches=2", f"hydra.sweeper.sampler.seed={seed}"]
        log = (tmp_path / f"search{seed}.log").open("w")
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    searches = {seed: start(seed) for seed in (1, 2)}  # side by side, on one SQLite file
    for seed, search in searches.items():
        log = (tmp_path / f"search{seed}.log").read_text
        assert search.wait(timeout=600) == 0, log()[-3000:]

    study = trials(tmp_path)
    assert sorted(t.number for t in study) == [0, 1, 2, 3]  # none repeated, none lost
    assert all(t.state == TrialState.COMPLETE for t in study)
    jobs = {str(p.parent) for p in tmp_path.glob("sweep*/*/metrics.json")}
    assert sorted(t.user_attrs[RUN_FOLDER] for t in study) == sorted(jobs)  # each job, once


def test_a_new_database_another_search_is_making_at_that_moment_opens(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    the_other = []

    def the_other_search_makes_the_tables_first(connection, cursor, statement, *rest):
        if statement.lstrip().startswith("CREATE TABLE") and not the_other:
            the_other.append("making")  # its own CREATE TABLEs come here too
            optuna.storages.RDBStorage(url)  # between this search's look and its first CREATE

    event.listen(Engine, "before_cursor_execute", the_other_search_makes_the_tables_first)
    try:
        storage = open_storage(url)
    finally:
        event.remove(Engine, "before_cursor_execute", the_other_search_makes_the_tables_first)

    assert the_other == ["making"]
    optuna.create_study(storage=storage, study_name="shared").optimize(lambda t: 1.0, n_trials=1)
    assert len(optuna.load_study(study_name="shared", storage=url).trials) == 1


def test_fail_fast_stops_the_search_at_its_first_failed_trial(tiny_mnist, tmp_path):
    with pytest.raises(SystemExit, match="fail_fast=true"):
        train_here(*search_args(tiny_mnist, tmp_path), "fail_fast=true", "model.dropout=1.0")

    assert [(t.number, t.state) for t in trials(tmp_path)] == [(0, TrialState.FAIL)]
    assert [p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()] == ["0"]
