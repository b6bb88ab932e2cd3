"""The sweeper of `python -m src.train -m`: Hydra's basic sweeper (the cartesian product of the
swept values), except for a job whose config cannot be composed (an option that is not a file of
its group, a key that is not a setting). Hydra composes every job before it launches any and ends
the whole sweep, over many lines, at the first that fails; here that job is recorded as failed and
the sweep goes on (src/core/composing.py, which the Optuna search shares).

Hydra takes a sweeper from the hydra_plugins package only: hydra_plugins/mnist_convnets names
this one, and conf/hydra/default_sweeper.yaml selects it (hydra/sweeper: keep_going).
"""

from __future__ import annotations

# Hydra's cartesian product of the swept values has no public home: the basic sweeper is the
# only implementation of it, and it is Hydra's default sweeper, so it stays as it is.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from src.core.composing import RecordsJobsThatCannotBeComposed


class KeepGoingSweeper(RecordsJobsThatCannotBeComposed, BasicSweeper):
    """Hydra's basic sweeper, going on past a job whose config cannot be composed."""
