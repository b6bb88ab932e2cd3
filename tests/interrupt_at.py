"""python -m tests.interrupt_at <step|test> [overrides]: `python -m src.train` that presses Ctrl-C
on itself (SIGINT) when the given global step starts, or `test`: when the final test starts its
first batch, to interrupt a run at a known point."""

import os
import signal
import sys

import lightning as L

import src.train
from src.core.config import CONF_DIR
from src.core.errors import exit_on_config_error


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class CtrlCAt(L.Callback):
    def __init__(self, when: str) -> None:
        self.when = when

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.when == str(trainer.global_step):
            ctrl_c()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.when == "test" and batch_idx == 0:
            ctrl_c()


if __name__ == "__main__":
    when = sys.argv.pop(1)
    sys.argv.insert(1, f"--config-path={CONF_DIR}")  # Hydra looks beside this module otherwise
    build_callbacks = src.train.build_callbacks
    src.train.build_callbacks = lambda *args, **kwargs: [
        *build_callbacks(*args, **kwargs),
        CtrlCAt(when),
    ]
    exit_on_config_error(src.train.main)()
