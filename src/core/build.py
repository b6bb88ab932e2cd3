"""Config to object by Hydra's convention (`_target_`), with the checks that keep a config data.

The plug-in groups (model, data, optimizer, scheduler) each name a class in `_target_`; every other
key is an argument of that class. The callbacks and logger groups are sets of named entries, each
such a class and its arguments. Before anything is called:
- the target is imported and must be a class of the kind its group builds (a network is an
  `nn.Module` class, an optimizer a `torch.optim.Optimizer` class, ...), so neither a typo nor a
  checkpoint's saved config can call anything else (`os.system`, `subprocess.run`, ...);
- every key must be an argument of that class, of the type its signature annotates, and every
  argument without a default must be given;
and the object's own range checks (a ValueError) become one line that names the group.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.core.errors import UsageError, message_line

KINDS: dict[str, type] = {
    "model": nn.Module,
    "data": L.LightningDataModule,
    "optimizer": torch.optim.Optimizer,
    "scheduler": torch.optim.lr_scheduler.LRScheduler,
    "callbacks": Callback,  # each entry's class
    "logger": Logger,
}
HYDRA_KEYS = ("_target_", "_partial_")
EXAMPLES = {
    "model": "src.models.convnet.ConvNet",
    "data": "src.data.idx.IDXDataModule",
    "optimizer": "torch.optim.AdamW",
    "scheduler": "torch.optim.lr_scheduler.StepLR",
    "callbacks": "lightning.pytorch.callbacks.LearningRateMonitor",
    "logger": "lightning.pytorch.loggers.CSVLogger",
}


def settings_of(node: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A group's config as plain values (interpolations resolved)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in node.items()
    }


def target_class(group: str, settings: Mapping[str, Any], key: str | None = None) -> type:
    """The class `settings` names, imported and checked to be of the kind `group` builds; `key`
    is where the settings are (callbacks.<name>), the group's name if not given."""
    kind, key = KINDS[group], key or group
    name = settings.get("_target_")
    if not name or not isinstance(name, str):
        raise UsageError(
            f"{key}._target_ is missing: name the class to build, e.g. "
            f"{key}._target_={EXAMPLES[group]}"
        )
    try:
        target = located(name)
    except Exception as error:
        raise UsageError(
            f"{key}._target_={name} cannot be imported ({import_problem(error)})"
            f": name an importable class, e.g. {EXAMPLES[group]}, and run from the folder that "
            "holds its package"
        ) from None
    if not (isinstance(target, type) and issubclass(target, kind)):
        raise UsageError(
            f"{key}._target_={name} is not a {kind.__module__}.{kind.__qualname__} class, so it "
            f"is not built: a {group} config may only name such a class, e.g. {EXAMPLES[group]}"
        )
    return target


def located(name: str) -> Any:
    """hydra.utils.get_object without the traceback it logs: the caller says what went wrong."""
    hydra_log = logging.getLogger("hydra.utils")
    hydra_log.disabled = True
    try:
        return get_object(name)
    finally:
        hydra_log.disabled = False


def check_arguments(
    group: str, target: type, settings: Mapping[str, Any], given_by_the_run: Sequence[str] = ()
) -> None:
    """Every key an argument of `target` with a value of its annotated type; nothing missing."""
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    named = [n for n, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hints = annotations_of(target)
    # With _partial_, the first argument (the parameters, the optimizer) is given by the program.
    later = 1 if settings.get("_partial_") else 0
    for key, value in settings.items():
        if key in HYDRA_KEYS:
            continue
        if key.startswith("_") or (key not in parameters and not takes_any):
            raise UsageError(
                f"{group}.{key} is not an argument of {qualified(target)}: its arguments are "
                f"{', '.join(n for n in named[later:] if n not in given_by_the_run)}"
            )
        if isinstance(value, Mapping) and "_target_" in value:
            raise UsageError(
                f"{group}.{key} names a class of its own ({value['_target_']}): the arguments "
                "of a config's class are plain values"
            )
        if key in hints and not conforms(value, hints[key]):
            raise UsageError(
                f"{group}.{key}={value!r} is not of type {type_name(hints[key])}, as "
                f"{qualified(target)} needs"
            )
    required = [
        n
        for n, p in list(parameters.items())[later:]
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    missing = [n for n in required if n not in settings and n not in given_by_the_run]
    if missing:
        raise UsageError(
            f"{group}.{missing[0]} is missing: {qualified(target)} needs it "
            f"(+{group}.{missing[0]}=... on the command line adds it)"
        )


def build(
    group: str,
    node: DictConfig | Mapping[str, Any],
    *args: Any,
    own_keys: Sequence[str] = (),
    where: str | None = None,
    offered: Mapping[str, Any] | None = None,
    **given_by_the_run: Any,
) -> Any:
    """The object a group's config describes, after the checks above; `args` come first (with
    `_partial_`, the Hydra convention for objects that need them: parameters, an optimizer).
    `own_keys` are the project's settings beside the arguments, not
    passed on; `given_by_the_run` are arguments the program fills in (the data set's image
    shape, the run's number of steps); `offered` are those it fills in only where the class takes
    them and the config leaves them unset (the run folder); `where` is the config's key, the
    group's if not given."""
    where = where or group
    settings = {k: v for k, v in settings_of(node).items() if k not in own_keys}
    target = target_class(group, settings, where)
    takes = inspect.signature(target).parameters
    given_by_the_run |= {
        k: v for k, v in (offered or {}).items() if k in takes and k not in settings
    }
    if args and not settings.get("_partial_"):
        first = next(iter(inspect.signature(target).parameters))
        raise UsageError(
            f"{where}._partial_ must be true: the program gives {qualified(target)} its first "
            f"argument ({first}); add `_partial_: true` to the YAML (+{where}._partial_=true)"
        )
    check_arguments(where, target, settings, list(given_by_the_run))
    # Made as a partial, then called with what the run gives: instantiate would turn those
    # objects (a dataclass, a tensor) into config nodes. `args` come first, as _partial_ wants.
    make = instantiate({**settings, "_partial_": True}, _recursive_=False, _convert_="all")
    try:
        return make(*args, **given_by_the_run)
    except Exception as error:
        cause = error.__cause__ or error  # Hydra wraps what the constructor raised
        if isinstance(cause, (ValueError, TypeError)):
            raise UsageError(f"{where} ({qualified(target)}): {message_line(cause)}") from None
        raise


def build_entries(
    group: str, node: DictConfig | Mapping[str, Any] | None, offered: Mapping[str, Any]
) -> dict[str, Any]:
    """Every named entry of a group of entries (callbacks, logger), each built as a plug-in is;
    an entry that is null, or whose _target_ is null, is off. `offered`: what the run gives an
    argument of that name which the entry leaves unset (the run folder, the run's name)."""
    built = {}
    for name, settings in (settings_of(node) if node else {}).items():
        if not isinstance(settings, dict) or settings.get("_target_") is None:
            continue  # off, or a shortcut that the entries read (callbacks.patience)
        built[name] = build(group, settings, where=f"{group}.{name}", offered=offered)
    return built


def import_problem(error: BaseException) -> str:
    """The reason behind Hydra's `Error loading '...'` (an ImportError, a missing attribute)."""
    reason = error.__cause__ or error
    return f"{type(reason).__name__}: {message_line(reason)}"


def takes(group: str, node: DictConfig | Mapping[str, Any], argument: str) -> bool:
    """Whether the class a group's config names has this argument."""
    target = target_class(group, settings_of(node))
    return argument in inspect.signature(target).parameters


def annotations_of(target: type) -> dict[str, Any]:
    """The constructor's annotations as types; an annotation that does not resolve is skipped
    (the object checks that argument itself)."""
    try:
        return typing.get_type_hints(target.__init__)
    except Exception:
        raw = getattr(target.__init__, "__annotations__", {})
        return {k: v for k, v in raw.items() if not isinstance(v, str)}


def conforms(value: Any, hint: Any) -> bool:
    """Whether a value from YAML or the command line fits a type annotation. Types that YAML
    cannot write (a tensor, a callable) are left to the object."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        # `float | Tensor` (Adam's lr): from a config, only the members a config can write
        writable = [a for a in args if writable_in_yaml(a)]
        return any(conforms(value, a) for a in writable or args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(conforms, value, args))
        return not args or all(conforms(v, args[0]) for v in value)
    return True


def writable_in_yaml(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return hint in (bool, int, float, str, type(None)) or origin in (
        typing.Literal,
        list,
        tuple,
        Sequence,
    )


def type_name(hint: Any) -> str:
    """A type as a config's reader knows it: int | None, 'epoch' | 'step', torch.Tensor."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(map(type_name, args)))
    if origin is typing.Literal:
        return " | ".join(map(repr, args))
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and origin is None:
        return hint.__name__ if hint.__module__ == "builtins" else qualified(hint)
    return str(hint).replace("typing.", "")


def qualified(target: type) -> str:
    return f"{target.__module__}.{target.__qualname__}"
