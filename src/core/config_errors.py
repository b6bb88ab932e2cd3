"""A command line Hydra cannot compose (an unknown option or key, a value of the wrong type, an
override that does not parse) as one line that names the fix, and exit status 2."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from src.core.config import CONF_DIR, TrainConfig, settings_below
from src.core.errors import EXIT_USAGE, message_line, not_a_setting, show_traceback
from src.core.trainer import ARGUMENTS, not_an_argument

T = TypeVar("T")

_hydra_raises_for_us = False  # HYDRA_FULL_ERROR is set by exit_on_config_error, not the user


def exit_on_config_error(app: Callable[[], T]) -> Callable[[], T]:
    """Around a @hydra.main app. Hydra reports a command line it cannot compose (an unknown option
    or key, a value of the wrong type) over many lines with exit status 1, and suggests a fix
    the schemas refuse (`+key=value`). Here Hydra raises these errors instead (HYDRA_FULL_ERROR,
    until `ConfigComposed` gives the variable back) and each becomes one line and exit status 2.
    """

    @functools.wraps(app)
    def wrapper() -> T:
        global _hydra_raises_for_us
        if show_traceback():
            return app()
        os.environ["HYDRA_FULL_ERROR"] = "1"
        _hydra_raises_for_us = True
        try:
            return app()
        except (HydraException, OmegaConfBaseException) as error:
            print(f"error: {explain_config_error(error)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except ValueError as error:  # Hydra's word for a group given a number (model=5)
            if not str(error).startswith("Config group override must be a string"):
                raise
            print(
                f"error: {message_line(error)}: a group takes the name of one of its options, "
                "e.g. model=convnet16 (--help lists them)",
                file=sys.stderr,
            )
            sys.exit(EXIT_USAGE)
        finally:
            give_back_hydra_full_error()

    return wrapper


def give_back_hydra_full_error() -> None:
    global _hydra_raises_for_us
    if _hydra_raises_for_us:
        os.environ.pop("HYDRA_FULL_ERROR", None)
        _hydra_raises_for_us = False


class ConfigComposed(Callback):
    """Once Hydra has composed the config, errors are the program's own again: bugs get Hydra's
    usual report, and the processes a run or sweep starts do not inherit HYDRA_FULL_ERROR."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # `resume=` checks its folder as Hydra resolves the run's folder, next. If that fails,
        # Hydra must go on raising (its own report would add two lines of noise).
        try:
            config.hydra.run.dir  # noqa: B018
        except OmegaConfBaseException:
            return
        give_back_hydra_full_error()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        give_back_hydra_full_error()


def explain_config_error(error: Exception) -> str:
    """One line for a command line Hydra could not compose, naming the fix: an option that is not
    a file of its group, a key that is not a setting, a value of the wrong type, an override that
    does not parse, several values without -m, a group the command does not have."""
    cause = error.__cause__
    program = Path(sys.argv[0]).stem  # train, eval or predict
    command = f"python -m src.{program}"
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")  # hydra/launcher too
        # Hydra lists the options when one was chosen, not one of a list (logger=[a,b])
        options = error.options or sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return (
            f"{group}={option} is not an option of the {group} group: choose one of "
            f"{', '.join(options)} (the files in conf/{group}/)"
        )
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        return explain_unknown_key(cause, training=program == "train")
    if isinstance(cause, ValidationError):
        return (
            f"{cause.full_key}: {message_line(cause)} (`{command} --cfg job` shows every "
            "setting with a value of its type)"
        )
    message = message_line(error)
    if isinstance(error, OverrideParseException):
        return f"cannot read {error.override} ({message}): write group=option or key=value"
    if several := re.match(r"Ambiguous value for argument '(.*)'", message):
        return (
            f"{several[1]} gives several values: add -m to run one job each ({command} -m "
            f"{several[1]}), or write a list as [a,b]"
        )
    if no_group := re.match(r"Could not override '(.*)'\. No match in the defaults list", message):
        from_checkpoint = " (the network and its settings come from the checkpoint)"
        why = from_checkpoint if program != "train" else ""
        return f"{no_group[1]} is not a group of {command}{why}: `{command} --help` lists them"
    return message.split("raised while resolving interpolation: ")[-1]


def explain_unknown_key(cause: ConfigAttributeError | ConfigKeyError, training: bool) -> str:
    """The settings beside the unknown key; in a plug-in group of training, a YAML need not list
    every argument of its class, and `+` adds one. (src.eval's and src.predict's `data` holds only
    their own settings.)"""
    parent, _, name = cause.full_key.rpartition(".")
    settings = [str(k) for k in cause.parent_node or {} if k != "hydra"]
    if training and parent == "trainer":
        return unknown_trainer_key(name)
    if training and parent in ("callbacks", "logger"):
        return (
            f"{cause.full_key} is not an entry of {parent} ({', '.join(settings)}): "
            f"+{cause.full_key}._target_=<class> adds one"
        )
    entry = parent.startswith(("callbacks.", "logger."))
    plug_in = training and (parent in ("model", "data", "optimizer", "scheduler") or entry)
    if plug_in and not settings:  # scheduler=none: no class to give arguments to
        return (
            f"{cause.full_key} is not a setting: this {parent} option has none; choose "
            f"another ({parent}=<option>, listed by --help), or name a class of your own: "
            f"+{parent}._target_=<class> +{parent}._partial_=true"
        )
    hint = f" (`+{cause.full_key}=...` adds an argument its class takes)" if plug_in else ""
    return not_a_setting(cause.full_key, settings) + hint


def unknown_trainer_key(name: str) -> str:
    """A key conf/trainer does not list: a Trainer argument that needs `++`, or the closest ones."""
    if name in ARGUMENTS:
        return (
            f"trainer.{name} is a Trainer argument that conf/trainer does not list: "
            f"++trainer.{name}=... sets it"
        )
    return not_an_argument(name, settings_below(TrainConfig, ""))
