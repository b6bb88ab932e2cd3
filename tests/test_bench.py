import json

import pytest

from src.bench import main, parse_args


def test_smoke_run_compares_the_plain_loop_with_the_project(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tiny_mnist))
    monkeypatch.chdir(tmp_path)
    report = main(
        [
            "--images",
            "96",
            "--batch-size",
            "32",
            "--repeats",
            "1",
            "--override",
            "data.val_size=100",
            "--override",
            "data.eval_batch_size=50",
        ]
    )
    (variants,) = report["rounds"]
    assert [v["variant"] for v in variants] == [
        "A plain loop",
        "B project fp32",
        "C project bf16-mixed",
    ]
    assert all(v["images"] == 96 and v["images_per_second"] > 0 for v in variants)
    assert set(report["ratios"]) == {"B/A", "C/A"}
    (written,) = (tmp_path / "outputs" / "bench").glob("compare-*.json")
    assert json.loads(written.read_text())["ratios"] == report["ratios"]


def test_profile_attributes_the_training_steps_time_to_operators(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tiny_mnist))
    monkeypatch.chdir(tmp_path)
    report = main(
        ["profile", "--images", "160", "--batch-size", "16"]
        + ["--override", "data.val_size=100", "--override", "data.eval_batch_size=50"]
    )
    shares = report["self_cpu_time_shares"]
    assert report["profiled_steps"] == 160 // 16 - 6
    assert shares["convolutions"] > 0 and shares["linear layers"] > 0
    assert sum(shares.values()) == pytest.approx(1)
    assert len(list((tmp_path / "outputs" / "bench").glob("profile-*.json"))) == 1


def test_asking_for_a_gpu_where_there_is_none_is_named(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--device", "cuda"])
    assert stopped.value.code == 2
    assert (
        "error: --device cuda needs a GPU, and this machine shows none" in capsys.readouterr().err
    )
