"""A checkpoint's saved config is data, not a program: a config crafted to name a callable that
runs a command is refused by src.eval, src.predict and resume= before anything is called."""

import shutil

import pytest
import torch
import yaml

from tests.conftest import TINY, run_here, run_module


@pytest.fixture(scope="module")
def run_dir(tiny_mnist, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "run"
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, "trainer.max_epochs=1", "logger=none",
        f"hydra.run.dir={folder}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def craft(run_dir, tmp_path, group, target, arguments):
    """A copy of the run whose saved config (in every checkpoint and in .hydra/config.yaml) names
    `target` for `group`, with `arguments` that would create a file if it were called."""
    crafted = tmp_path / "crafted"
    shutil.copytree(run_dir, crafted)
    for path in (crafted / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["hyper_parameters"][group] = {"_target_": target, **arguments}
        torch.save(checkpoint, path)
    config_file = crafted / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config[group] = {"_target_": target, **arguments}
    config_file.write_text(yaml.safe_dump(config))
    return crafted


ATTACKS = [
    ("model", "os.system", "command", "torch.nn.modules.module.Module"),
    ("model", "subprocess.run", "args", "torch.nn.modules.module.Module"),
    ("optimizer", "os.system", "command", "torch.optim.optimizer.Optimizer"),
    ("data", "subprocess.run", "args", "lightning.pytorch.core.datamodule.LightningDataModule"),
]


@pytest.mark.parametrize(("group", "target", "argument", "kind"), ATTACKS)
def test_eval_predict_and_resume_refuse_a_config_that_names_a_callable_of_the_wrong_kind(
    run_dir, tiny_mnist, tmp_path, group, target, argument, kind
):
    marker = tmp_path / "code-ran"
    command = f"touch {marker}" if argument == "command" else ["touch", str(marker)]
    crafted = craft(run_dir, tmp_path, group, target, {argument: command})
    (tmp_path / "one.png").write_bytes(b"")
    commands = {
        "src.eval": [f"ckpt_path={crafted}", f"data.data_dir={tiny_mnist}",
                     f"hydra.run.dir={tmp_path / 'eval'}"],
        "src.predict": [f"ckpt_path={crafted}", f"inputs={tmp_path / 'one.png'}"],
        "src.train": [f"resume={crafted}"],
    }  # fmt: skip
    for module, args in commands.items():
        result = run_here(module, *args)
        assert result.returncode == 2, (module, result.stderr[-3000:])
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and f"{group}._target_={target} is not a {kind}" in last
        assert not marker.exists(), module
