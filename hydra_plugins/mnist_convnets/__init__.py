"""The project's Hydra plugins. Hydra instantiates a sweeper only from a class defined in the
hydra_plugins package; the code lives in src/core/sweeper.py and src/core/search.py."""

from src.core import sweeper


class KeepGoingSweeper(sweeper.KeepGoingSweeper):
    """A sweep goes on past a job whose config cannot be composed (src/core/sweeper.py)."""


try:
    from src.core import search
except ImportError:  # without the sweeps extra (make install has it): no Optuna search
    pass
else:

    class SearchSweeper(search.SearchSweeper):
        """An Optuna search (hparams_search=optuna), trial by trial (src/core/search.py)."""
