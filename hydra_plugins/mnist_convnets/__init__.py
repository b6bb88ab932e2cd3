"""The project's Hydra plugins. Hydra instantiates a sweeper only from a class defined in the
hydra_plugins package; the code lives in src/core/sweeper.py."""

from src.core import sweeper


class KeepGoingSweeper(sweeper.KeepGoingSweeper):
    """A sweep goes on past a job whose config cannot be composed (src/core/sweeper.py)."""


try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # without the sweeps extra (make install has it): no Optuna search
    pass
else:

    class SearchSweeper(sweeper.SearchWithoutABestTrial, OptunaSweeper):
        """Optuna's sweeper (hparams_search=optuna), ending as any sweep when no trial finished."""
