import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, TINY


def test_sigterm_while_training_saves_the_state_prints_the_resume_command_and_exits(
    tiny_mnist, tmp_path
):
    run_dir = tmp_path / "run"
    training = subprocess.Popen(
        [sys.executable, "-m", "src.train", f"data.data_dir={tiny_mnist}", *TINY]
        + ["trainer.max_epochs=1000", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and training.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # until the first epoch is done: training is under way
    training.send_signal(signal.SIGTERM)
    output, _ = training.communicate(timeout=300)

    assert training.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()
    assert "SIGTERM at step" in output
    assert output.rstrip().endswith(f"python -m src.train resume={run_dir}")
    assert "Traceback" not in output
