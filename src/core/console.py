"""What the commands print: the lines a person reads. Lightning's and MLflow's messages about
their set-up stay in the run's train.log, which keeps every record; their warnings reach both.
And a reader that stops early (`src.summarize outputs/ | head`) ends a command quietly.

Hydra's console handler gets the three pieces below (conf/train.yaml, hydra.job_logging); the
file handler keeps Hydra's full format and every record.
"""

from __future__ import annotations

import logging
import signal

from tqdm import tqdm

# Lightning's informational messages (GPU and TPU availability, a cloud-logger tip, what each
# `limit_*_batches` means, where a checkpoint was restored from) and MLflow's (its store's tables,
# made on first use) come from these loggers; the run says what matters in its own lines.
LIBRARIES = ("lightning", "mlflow", "alembic")
# Warnings that only repeat what the command line asked for.
EXPECTED_WARNINGS = (
    # a short run (debug=fast, limit_train_batches) has fewer steps than the logging interval
    "is smaller than the logging interval",
    # logger=mlflow's first run in a store makes its experiment
    "not found. Creating it",
)


class HideLibraryChatter(logging.Filter):
    """Lets through the libraries' warnings and errors, not their information; warnings (which
    `logging.captureWarnings` sends to the `py.warnings` logger) unless expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and any(
            text in record.getMessage() for text in EXPECTED_WARNINGS
        ):
            return False
        if record.name.split(".")[0] in LIBRARIES:
            return record.levelno >= logging.WARNING
        return True


class ConsoleFormatter(logging.Formatter):
    """The message alone; a warning or an error says which it is first."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record).rstrip()  # a captured warning ends in a newline
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


class ConsoleHandler(logging.StreamHandler):
    """Writes through tqdm, so a line logged while a progress bar is drawn (the epoch's validation
    result) lands above the bar instead of inside it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)


def end_quietly_when_the_reader_stops() -> None:
    """`python -m src.summarize outputs/ | head`: when the reader closes the pipe, end as Unix
    tools do (SIGPIPE), not with a BrokenPipeError traceback."""
    if hasattr(signal, "SIGPIPE"):  # not on Windows
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
