"""The project's Hydra plugins. Hydra instantiates a sweeper only from a class defined in the
hydra_plugins package; the code lives in src/core/sweeper.py."""

from src.core import sweeper


class KeepGoingSweeper(sweeper.KeepGoingSweeper):
    """A sweep goes on past a job whose config cannot be composed (src/core/sweeper.py)."""
