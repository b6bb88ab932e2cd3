import csv
import json
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.core.records import NOT_FINISHED
from src.summarize import main, summarize
from tests.conftest import ROOT, TINY, train_here


def make_job(sweep, job, overrides, metrics=None, mode="MULTIRUN", command="train"):
    """A job folder as Hydra and src.train leave it: .hydra/ and, once finished, metrics.json."""
    folder = sweep / str(job)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"mode": mode, "job": {"config_name": command}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def finished(val_acc, test_acc=0.9):
    return {
        "status": "ok",
        "val/acc_best": val_acc,
        "test/acc": test_acc,
        "epochs": 1,
        "fit_seconds": 2.5,
    }


def read_csv(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def test_jobs_are_ranked_by_the_metric_and_failures_come_last_with_their_error(tmp_path):
    shared = "trainer.max_epochs=1"
    make_job(tmp_path, 0, [shared, "optimizer.lr=0.1"], finished(0.91))
    make_job(tmp_path, 1, [shared, "optimizer.lr=-1"], {"status": "failed", "error": "lr < 0"})
    make_job(tmp_path, 2, [shared, "optimizer.lr=0.01"], finished(0.97))
    make_job(tmp_path, 3, [shared, "optimizer.lr=0.001"])  # killed: no metrics.json
    make_job(tmp_path, 4, [shared, "optimizer.lr=0.03"], finished(0.95))

    markdown = summarize(tmp_path)

    rows = read_csv(tmp_path / "summary.csv")
    assert [row["job"] for row in rows] == ["2", "4", "0", "1", "3"]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "failed", "failed"]
    assert [row["error"] for row in rows[3:]] == ["lr < 0", NOT_FINISHED]
    assert rows[0]["overrides"] == "optimizer.lr=0.01"  # the shared override is said once
    assert float(rows[0]["val/acc_best"]) == 0.97 and rows[0]["run_dir"] == str(tmp_path / "2")
    assert markdown == (tmp_path / "summary.md").read_text()
    assert "Shared overrides: trainer.max_epochs=1.\n" in markdown  # no TensorBoard folder here
    assert "| failed: lr < 0" in markdown and "97.00%" in markdown
    assert not (tmp_path / "summary_by_config.csv").exists()  # no configuration repeats


@pytest.mark.parametrize("garbled", [b"{not json", b"[1, 2]", b"\xff\xfe\x00"])
def test_a_garbled_metrics_file_is_listed_as_a_failure(tmp_path, garbled):
    make_job(tmp_path, 0, ["seed=1"], finished(0.9))
    (make_job(tmp_path, 1, ["seed=2"]) / "metrics.json").write_bytes(garbled)

    summarize(tmp_path)

    rows = read_csv(tmp_path / "summary.csv")
    assert [(row["job"], row["status"]) for row in rows] == [("0", "ok"), ("1", "failed")]
    assert (
        rows[1]["error"]
        == f"{tmp_path / '1' / 'metrics.json'} is not a run's record: cut short or garbled"
    )


def test_a_run_without_validation_comes_after_the_runs_with_a_metric(tmp_path):
    make_job(tmp_path, 0, ["trainer.limit_val_batches=0"], finished(None, test_acc=0.99))
    make_job(tmp_path, 1, ["seed=1"], finished(0.9))
    make_job(tmp_path, 2, ["seed=2"], finished(0.8))

    summarize(tmp_path)

    rows = read_csv(tmp_path / "summary.csv")
    assert [(row["job"], row["val/acc_best"]) for row in rows] == [
        ("1", "0.9"),
        ("2", "0.8"),
        ("0", ""),
    ]
    configs = read_csv(tmp_path / "summary_by_config.csv")
    assert [(c["overrides"], c["runs"]) for c in configs] == [("all", "2")]


def test_repeated_seeds_get_the_mean_and_std_of_each_configuration(tmp_path):
    accuracies = {"model=a": [0.90, 0.94, 0.95], "model=b": [0.97, 0.98, 0.99]}
    job = 0
    for model, values in accuracies.items():
        for seed, value in enumerate(values):
            make_job(tmp_path, job, [model, f"seed={seed}"], finished(value, value - 0.01))
            job += 1

    markdown = summarize(tmp_path)

    configs = read_csv(tmp_path / "summary_by_config.csv")
    assert [c["overrides"] for c in configs] == ["model=b", "model=a"]  # best mean first
    for config in configs:
        values = accuracies[config["overrides"]]
        assert config["runs"] == "3"
        assert float(config["val/acc_best mean"]) == pytest.approx(statistics.mean(values))
        assert float(config["val/acc_best std"]) == pytest.approx(statistics.stdev(values))
        assert float(config["test/acc mean"]) == pytest.approx(statistics.mean(values) - 0.01)
    assert "mean ± std" in markdown


def test_the_command_summarizes_every_sweep_below_a_folder(tmp_path, capsys):
    outputs = tmp_path / "outputs"
    first, second = outputs / "multiruns" / "d" / "t1", outputs / "multiruns" / "d" / "t2"
    make_job(first, 0, ["model=a"], finished(0.9))
    make_job(second, 0, ["model=b"], finished(0.8))
    make_job(outputs / "runs" / "d", "t", [], finished(0.7), mode="RUN")
    make_job(outputs / "evals" / "d", "t", [], {"test/acc": 0.99}, mode="RUN", command="eval")

    main([str(outputs)])

    assert (first / "summary.md").is_file() and (second / "summary.md").is_file()
    rows = read_csv(outputs / "summary.csv")  # the training runs, not the evaluation
    assert [row["run_dir"] for row in rows] == [
        str(first / "0"),
        str(second / "0"),
        str(outputs / "runs" / "d" / "t"),
    ]
    printed = capsys.readouterr().out
    assert f"# Runs in {outputs}" in printed and "3 runs, 0 failed" in printed
    assert f"Written in {outputs}: summary.md, summary.csv" in printed
    assert f"Rebuilt the summary of each sweep in its folder: {first}, {second}" in printed

    main([str(first)])  # a sweep folder: its own summary

    printed = capsys.readouterr().out
    assert f"# Sweep {first}" in printed and f"Written in {first}: summary.md" in printed


def test_the_command_names_the_problem_when_there_is_no_run(tmp_path, capsys):
    make_job(tmp_path / "evals", "t", [], {"test/acc": 0.99}, mode="RUN", command="eval")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no run in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def outputs(tiny_mnist, tmp_path_factory):
    """An outputs/ folder as a user leaves it: two single runs, one after the other, then a
    sweep over two seeds of the first one's configuration."""
    outputs = tmp_path_factory.mktemp("project") / "outputs"
    common = [f"data.data_dir={tiny_mnist}", *TINY, "trainer.max_epochs=1", "logger=none"]
    common += ["model=convnet_single", "trainer.limit_train_batches=3"]  # short of perfect
    train_here(*common, f"hydra.run.dir={outputs / 'runs' / 'd' / 't1'}")
    train_here(*common, "optimizer=sgd", f"hydra.run.dir={outputs / 'runs' / 'd' / 't2'}")
    train_here("-m", *common, "seed=1,2", f"hydra.sweep.dir={outputs / 'multiruns' / 'd' / 't'}")
    return outputs


def test_a_folder_of_single_runs_and_a_sweep_gets_one_table_of_every_run(outputs, capsys):
    main([str(outputs)])

    records = {
        str(path.parent): json.loads(path.read_text()) for path in outputs.glob("**/metrics.json")
    }
    rows = read_csv(outputs / "summary.csv")
    assert sorted(row["run_dir"] for row in rows) == sorted(records)  # one row each, all four
    accuracies = [float(row["val/acc_best"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)  # best first
    assert accuracies == [records[row["run_dir"]]["val/acc_best"] for row in rows]
    overrides = {Path(row["run_dir"]).name: row["overrides"] for row in rows}
    assert overrides == {"t1": "", "t2": "optimizer=sgd", "0": "seed=1", "1": "seed=2"}

    # The first run's configuration ran with three seeds: 42 (its default), then 1 and 2.
    configs = {
        config["overrides"]: config for config in read_csv(outputs / "summary_by_config.csv")
    }
    assert {name: c["runs"] for name, c in configs.items()} == {"all": "3", "optimizer=sgd": "1"}
    seeds = [r["val/acc_best"] for r in records.values() if "optimizer=sgd" not in r["overrides"]]
    assert float(configs["all"]["val/acc_best mean"]) == pytest.approx(statistics.mean(seeds))
    assert float(configs["all"]["val/acc_best std"]) == pytest.approx(statistics.stdev(seeds))

    printed = capsys.readouterr().out
    assert "4 runs, 0 failed" in printed and "mean ± std" in printed
    assert f"Written in {outputs}: summary.md, summary.csv, summary_by_config.csv" in printed
    assert (outputs / "summary.md").read_text() in printed


def test_the_single_runs_alone(outputs, capsys):
    runs = outputs / "runs"
    main([str(runs)])

    rows = read_csv(runs / "summary.csv")
    assert [Path(row["run_dir"]).name for row in rows if row["overrides"] == "optimizer=sgd"] == [
        "t2"
    ]
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)
    assert f"Written in {runs}: summary.md, summary.csv" in capsys.readouterr().out


def test_a_reader_that_stops_early_ends_the_table_quietly(tmp_path):
    """`python -m src.summarize outputs/ | head -1`: more than a pipe holds, read one line."""
    for job in range(800):
        make_job(tmp_path / "sweep", job, [f"optimizer.lr={job}"], finished(job / 1000))
    command = [sys.executable, "-m", "src.summarize", str(tmp_path / "sweep")]
    reading = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reading.stdout.readline().startswith(b"# Sweep ")
    reading.stdout.close()
    assert reading.wait(timeout=300) == -signal.SIGPIPE  # as `head` leaves `cat`, no traceback
    assert reading.stderr.read() == b""
