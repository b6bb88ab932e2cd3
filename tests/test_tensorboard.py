"""What a person browsing a sweep's TensorBoard sees, read from the event files: run names that
hold what sets each job apart, HPARAMS columns in the order TensorBoard will show them, and one
learning-rate tag whatever the optimizer."""

import pytest
from omegaconf import OmegaConf
from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit

from src.core.sweeps import SWEEP_CONFIG, sweep_job_name, varying_keys
from tests.conftest import TINY, run_module
from tests.test_train import hparams_plugin_data, read_events

LEARNING_RATES = {"sgd": 0.01, "adam": 0.001}  # conf/optimizer


@pytest.fixture(scope="module")
def sweep(tiny_mnist, tmp_path_factory):
    """Two optimizers x two seeds of one small network; the model is given on the command line
    but shared by every job. TensorBoard is one logger of two: MLflow's, in the sweep folder."""
    folder = tmp_path_factory.mktemp("sweep")
    args = [f"data.data_dir={tiny_mnist}", *TINY, "trainer.max_epochs=1", "model=convnet_single"]
    args += ["logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={mlflow_store(folder)}"]
    result = run_module(
        "src.train", "-m", *args, "optimizer=sgd,adam", "seed=1,2", f"hydra.sweep.dir={folder}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def mlflow_store(sweep):
    return f"sqlite:///{sweep}/mlflow.db"


def runs(sweep):
    return {run.name: read_events(run) for run in (sweep / "tensorboard").iterdir()}


def test_run_names_hold_only_what_differs_between_the_jobs(sweep):
    assert sorted(runs(sweep)) == [
        "optimizer=adam,seed=1",
        "optimizer=adam,seed=2",
        "optimizer=sgd,seed=1",
        "optimizer=sgd,seed=2",
    ]


def test_hparams_show_what_differs_then_the_main_settings_without_display_switches(sweep):
    for name, events in runs(sweep).items():
        experiment = hparams_plugin_data(events, "experiment")
        _sort_and_reduce_to_hparams_limit(experiment)  # TensorBoard's order of the columns
        columns = [h.display_name for h in experiment.hparam_infos]
        assert columns[:8] == [
            "optimizer",
            "seed",
            "model",
            "optimizer.lr",
            "data.batch_size",
            "trainer.max_epochs",
            "scheduler",
            "data",
        ]
        assert [h.display_name for h in experiment.hparam_infos if h.differs] == columns[:2]
        assert not [c for c in columns if c.startswith(("callbacks.pictures", "data.data_dir"))]
        left_out = {"callbacks.progress_bar_refresh", "trainer.log_every_n_steps"}
        left_out |= {"trainer.profiler", "trainer.detect_anomaly"}  # debug, not what is learnt
        assert not left_out & set(columns)

        values = hparams_plugin_data(events, "session_start_info").hparams
        shown = {h.display_name: values[h.name] for h in experiment.hparam_infos}
        assert (
            name
            == f"optimizer={shown['optimizer'].string_value},seed={shown['seed'].number_value:.0f}"
        )
        assert shown["model"].string_value == "convnet_single"  # the option's name


def test_one_learning_rate_tag_whatever_the_optimizer(sweep):
    for name, events in runs(sweep).items():
        assert [tag for tag in events.Tags()["scalars"] if "lr" in tag] == ["train/lr"]
        optimizer = name.split(",")[0].removeprefix("optimizer=")
        rates = {round(e.value, 6) for e in events.Scalars("train/lr")}
        assert rates == {LEARNING_RATES[optimizer]}


def test_the_varying_keys_are_read_from_the_sweep_config_as_the_sweepers_read_them(tmp_path):
    assert varying_keys(tmp_path) == ()  # no sweep config saved
    searched = {"model": "choice(convnet16, convnet32)", "optimizer.lr": "interval(0.0001, 0.1)"}
    command_line = [
        "model=convnet16",
        "seed=range(1,4)",
        "+optimizer.amsgrad=true,false",
        "trainer.max_epochs=1",
    ]
    sweep = {"hydra": {"sweeper": {"params": searched}, "overrides": {"task": command_line}}}
    OmegaConf.save(OmegaConf.create(sweep), tmp_path / SWEEP_CONFIG)
    # model is fixed on the command line, which wins over the sweeper's search space
    assert varying_keys(tmp_path) == ("optimizer.lr", "seed", "optimizer.amsgrad")

    job = OmegaConf.create(
        {
            "overrides": {"task": ["trainer.max_epochs=1", "seed=3", "+optimizer.amsgrad=true"]},
            "job": {"override_dirname": "+optimizer.amsgrad=true,seed=3,trainer.max_epochs=1"},
        }
    )
    assert sweep_job_name(job, ("seed", "optimizer.amsgrad")) == "+optimizer.amsgrad=true,seed=3"
    assert sweep_job_name(job, ()) == "+optimizer.amsgrad=true,seed=3,trainer.max_epochs=1"


def test_mlflow_holds_each_job_under_its_tensorboard_name_with_its_hparams(sweep):
    import mlflow

    mlflow.set_tracking_uri(mlflow_store(sweep))
    found = mlflow.search_runs(experiment_names=["mnist-convnets"], output_format="list")
    by_name = {run.info.run_name: run for run in found}
    assert sorted(by_name) == sorted(runs(sweep))
    for name, events in runs(sweep).items():
        run = by_name[name]
        assert run.info.status == "FINISHED"
        session = hparams_plugin_data(events, "session_start_info").hparams
        shown = {key.split(" ", 1)[-1]: value for key, value in session.items()}  # "01 model"
        assert run.data.params["optimizer"] == shown["optimizer"].string_value
        assert float(run.data.params["seed"]) == shown["seed"].number_value
        assert set(run.data.params) == set(shown)
        assert 0 <= run.data.metrics["test/acc"] <= 1
