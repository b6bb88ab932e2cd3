"""User-facing errors: one clear message and a non-zero exit, no traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from lightning.fabric.utilities.exceptions import MisconfigurationException

T = TypeVar("T")

EXIT_USAGE = 2


class UsageError(Exception):
    """Something the user can fix: the message names the problem and the fix."""


# Lightning's own word for a setting it cannot work with (e.g. a batch limit that leaves no
# batch); its messages name the fix too.
USER_ERRORS = (UsageError, MisconfigurationException)


def show_traceback() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("DEBUG") == "1"


def exit_on_usage_error(entry_point: Callable[..., T]) -> Callable[..., T]:
    """Turn a UsageError into `error: <message>` on stderr and exit status 2."""

    @functools.wraps(entry_point)
    def wrapper(*args, **kwargs):
        try:
            return entry_point(*args, **kwargs)
        except USER_ERRORS as error:
            if show_traceback():
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    return wrapper


def not_a_setting(key: str, settings: list[str]) -> str:
    parent = key.rpartition(".")[0]
    where = f"of {parent}" if parent else "at the top level"
    return f"{key} is not a setting: the settings {where} are {', '.join(settings)}"


def message_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
