"""What `python -m src.train` prints: the run's own lines, none of Lightning's chatter, which
the run's train.log keeps."""

import re

from tests.conftest import TINY, run_module

# Lightning's messages about its set-up, and a warning about what the command line asked for.
CHATTER = (
    "GPU available: False, used: False",
    "TPU available",
    "litlogger",
    "`Trainer(limit_train_batches=1.0)` was configured so 100% of the batches",
    "is smaller than the logging interval",
    "Restoring states from the checkpoint path",
)


def test_the_console_shows_the_runs_own_lines_and_train_log_keeps_the_chatter(tiny_mnist, tmp_path):
    settings = [
        f"data.data_dir={tiny_mnist}",
        *TINY,
        # 10 steps an epoch: fewer than the logging interval (Lightning warns), and the bar shows
        # the training loss from step 15, in the second epoch.
        "trainer.log_every_n_steps=15",
        "callbacks.progress_bar_refresh=1",
    ]
    result = run_module("src.train", *settings, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]

    console = result.stdout + result.stderr
    assert [line for line in CHATTER if line in console] == []
    # Nothing in this run is worth a warning (testing by ckpt_path="best" with two checkpoint
    # callbacks gave one; the best checkpoint is now tested by its path).
    assert "warning" not in console.lower()
    assert "Test metric" not in console  # Lightning's table of the test results
    log_file = (tmp_path / "train.log").read_text()
    assert [line for line in CHATTER if line not in log_file] == []

    assert result.stdout.startswith(f"settings: {' '.join(settings)}\n")
    # The network's own layers with their multiply-adds; no metric objects among them.
    assert re.search(r"^\| conv1 +\| Conv2d +\| 32 x 28 x 28 \| 320 +\| 225,792 ", console, re.M)
    assert "MulticlassAccuracy" not in console and "MeanMetric" not in console
    # The bar's live loss and accuracy, one line per validation, the result at the end.
    assert re.search(r"epoch 2/2: .*train/loss=\d\.\d+, train/acc=\d\.\d+", console)
    for epoch in (1, 2):
        line = (
            rf"epoch {epoch}/2 \| train/loss \d\.\d{{4}} \| train/acc \d+\.\d\d% \| "
            r"val/acc \d+\.\d\d% \| val/loss \d\.\d{4} \| best \d+\.\d\d%"
        )
        assert re.search(line, console), line
    last = result.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(r"test acc \d+\.\d\d% \(\d+ of 100\) \| best val acc .* \| run .*", last)
