"""A folder named on the command line that already holds a run or a sweep is refused in one line,
before Hydra writes into it: nothing of the earlier run is overwritten."""

from pathlib import Path

import pytest

from tests.conftest import run_here
from tests.core.test_errors import assert_one_error_line

EARLIER_RUN = {
    ".hydra/config.yaml": "seed: 1\n",
    "metrics.json": '{"status": "ok"}\n',
    "checkpoints/best.ckpt": "weights",
    "train.log": "the earlier run's lines\n",
}


def files_of(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    folder = tmp_path / "run"
    for name, text in EARLIER_RUN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(  # not src.predict, which writes nothing
    ("module", "settings"), [("src.train", []), ("src.eval", ["ckpt_path=x"])]
)
def test_a_command_refuses_the_folder_of_an_earlier_run(earlier_run, module, settings):
    result = run_here(module, *settings, f"hydra.run.dir={earlier_run}")
    assert_one_error_line(
        result, f"hydra.run.dir={earlier_run} already holds a run (.hydra/config.yaml)"
    )
    assert files_of(earlier_run) == EARLIER_RUN


def test_a_sweep_refuses_the_folder_of_an_earlier_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    result = run_here("src.train", "-m", "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert_one_error_line(result, f"hydra.sweep.dir={sweep} already holds a sweep (multirun.yaml)")
    assert files_of(sweep) == {"multirun.yaml": "hydra: {}\n"}


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_folder_that_cannot_be_made_is_named(tmp_path, key):
    (tmp_path / "a_file").write_text("")
    sweep = ["-m"] if key == "hydra.sweep.dir" else []
    result = run_here("src.train", *sweep, f"{key}={tmp_path / 'a_file' / 'run'}")
    assert_one_error_line(result, f"{key}={tmp_path / 'a_file' / 'run'} cannot be made")
