"""A callback that presses Ctrl-C on its own process (SIGINT) when the given global step starts,
or, with `when: test`, when the final test starts its first batch: a run interrupted at a known
point. Added as a user adds any callback:
python -m src.train +callbacks.ctrl_c._target_=tests.interrupt_at.CtrlCAt +callbacks.ctrl_c.when=14
"""

import os
import signal

import lightning as L


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class CtrlCAt(L.Callback):
    def __init__(self, when: int | str) -> None:
        self.when = str(when)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.when == str(trainer.global_step):
            ctrl_c()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.when == "test" and batch_idx == 0:
            ctrl_c()


def ctrl_c_at(when: int | str) -> list[str]:
    """The overrides that add the callback."""
    return [
        "+callbacks.ctrl_c._target_=tests.interrupt_at.CtrlCAt",
        f"+callbacks.ctrl_c.when={when}",
    ]
