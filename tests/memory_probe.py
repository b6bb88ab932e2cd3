"""A Hydra callback that records what a sweep's process holds each time a job starts, so after
every job before it: one JSON line per job. Added to any sweep from the command line:

python -m src.train -m 'seed=range(1,121)' trainer.max_epochs=1 trainer.limit_train_batches=3 \
    +hydra.callbacks.probe._target_=tests.memory_probe.MemoryProbe \
    +hydra.callbacks.probe.path=outputs/memory.jsonl
"""

from __future__ import annotations

import gc
import json
import os
import threading
from pathlib import Path
from typing import Any

import lightning as L
from hydra.experimental.callback import Callback


def resident_mb() -> float:
    """The process's resident memory now (Linux /proc: VmRSS in kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class MemoryProbe(Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path).absolute()
        self.jobs = 0

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        # Before any collection: the finished jobs' trainers the process still holds.
        trainers = sum(isinstance(thing, L.Trainer) for thing in gc.get_objects())
        rss_mb = resident_mb()
        gc.collect()
        record = {
            "jobs_done": self.jobs,
            "rss_mb": round(rss_mb, 1),
            "trainers": trainers,
            "objects": len(gc.get_objects()),  # after a collection: those still referenced
            "threads": threading.active_count(),
            "open_files": len(os.listdir("/proc/self/fd")),
        }
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        self.jobs += 1
