from PIL import Image

from tests.conftest import evaluate, run_here


def test_eval_tests_the_best_checkpoint_prints_the_table_and_writes_its_files(
    trained_run, tiny_mnist, tmp_path
):
    run_dir, metrics = trained_run
    out_dir = tmp_path / "eval"
    result, report = evaluate(run_dir, tiny_mnist, out_dir)
    # The same checkpoint, the same test set, counted the same way: the same exact fraction.
    assert report["test/acc"] == report["test/correct"] / report["test/images"]
    assert (report["test/correct"], report["test/images"]) == (
        metrics["test/correct"],
        metrics["test/images"],
    )
    assert report["test/acc"] == metrics["test/acc"]
    assert abs(report["test/loss"] - metrics["test/loss"]) < 1e-5
    assert report["checkpoint"] == str(run_dir / "checkpoints" / "best.ckpt")
    assert sum(digit["support"] for digit in report["per_class"].values()) == 100
    assert report["misclassified"] == 100 - report["test/correct"] > 0

    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"test acc {metrics['test/acc']:.2%}")
    header = lines.index("class  precision   recall  support")
    assert [line.split()[0] for line in lines[header + 1 : header + 11]] == list("0123456789")
    for picture in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out_dir / picture) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_eval_names_a_missing_checkpoint_in_one_line(tmp_path):
    for case, (args, message) in enumerate(
        (
            ([], "error: ckpt_path is missing: python -m src.eval ckpt_path="),
            ([f"ckpt_path={tmp_path / 'none'}"], f"error: no checkpoint at {tmp_path / 'none'}"),
        )
    ):
        result = run_here("src.eval", *args, f"hydra.run.dir={tmp_path / str(case)}")
        assert result.returncode == 2
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_a_group_given_to_eval_is_named_as_the_checkpoints_to_choose():
    result = run_here("src.eval", "ckpt_path=x.ckpt", "model=mlp")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: model is not a group of python -m src.eval (the network and its settings come "
        "from the checkpoint): `python -m src.eval --help` lists them"
    )


def test_a_training_setting_given_to_eval_is_named_without_the_hint_for_plug_ins(tmp_path):
    result = run_here("src.eval", "ckpt_path=x.ckpt", "data.batch_size=0")
    assert result.returncode == 2
    assert result.stderr.strip() == (  # no `+data.batch_size=...`: eval's data is no plug-in
        "error: data.batch_size is not a setting: the settings of data are data_dir, "
        "eval_batch_size"
    )
