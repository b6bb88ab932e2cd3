"""python -m tests.interrupt_at <step> [overrides]: `python -m src.train` that presses Ctrl-C on
itself (SIGINT) when the given global step starts, to interrupt a run at a known step."""

import os
import signal
import sys

import lightning as L

import src.train
from src.core.config import CONF_DIR
from src.core.errors import exit_on_config_error


class CtrlCAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    step = int(sys.argv.pop(1))
    sys.argv.insert(1, f"--config-path={CONF_DIR}")  # Hydra looks beside this module otherwise
    build_callbacks = src.train.build_callbacks
    src.train.build_callbacks = lambda *args, **kwargs: [
        *build_callbacks(*args, **kwargs),
        CtrlCAt(step),
    ]
    exit_on_config_error(src.train.main)()
