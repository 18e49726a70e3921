"""Command lines over the environment contracts: the same settings, from flags or variables.

Each entry point (``itl-worker``, ``itl-api``, the operator) reads a pydantic-settings model from
the environment. ``load_settings`` adds the command line in front of it: ``--help`` lists each
flag with its variable and default, a flag overrides its variable, an unknown argument is
refused with a usage message (exit 2), and an invalid value, from either source, ends the
process with one line naming the flag or the variable (exit 1). Secrets (broker URLs, tokens)
have no flag: command lines are visible to every user of the machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from itl_controlplane_sdk import __version__
from itl_controlplane_sdk.validation import describe

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one field of the settings model."""

    name: str
    """The long option, e.g. ``--port``."""
    field: str
    """The settings field it sets."""
    type: Callable[[str], Any] = str
    choices: Sequence[str] | None = None
    repeat: bool = False
    """Repeatable (``--namespace a --namespace b``), for list fields."""
    switch: bool = False
    """A boolean: ``--name`` sets it, ``--no-name`` clears it."""


def env_var(settings: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` (its alias, or the prefixed field name)."""
    alias = settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return (str(settings.model_config.get("env_prefix", "")) + field).upper()


def _init_key(settings: type[BaseSettings], field: str) -> str:
    """The keyword that sets ``field`` when the model is built in code."""
    alias = settings.model_fields[field].validation_alias
    return env_var(settings, field) if alias is not None else field


def _help(settings: type[BaseSettings], field: str) -> str:
    info = settings.model_fields[field]
    default = info.get_default(call_default_factory=False)
    shown = "" if default is None or info.default_factory is not None else f", default {default}"
    description = (info.description or "").rstrip(".")
    return f"{description} (env {env_var(settings, field)}{shown})".lstrip()


def build_parser(
    settings: type[BaseSettings], *, prog: str, description: str, flags: Sequence[Flag]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Every flag overrides its environment variable; variables alone also work.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for flag in flags:
        if flag.switch:
            parser.add_argument(
                flag.name,
                dest=flag.field,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=_help(settings, flag.field),
            )
            continue
        parser.add_argument(
            flag.name,
            dest=flag.field,
            type=flag.type,
            choices=flag.choices,
            action="append" if flag.repeat else "store",
            default=None,
            metavar=flag.field.upper() if flag.choices is None else None,
            help=_help(settings, flag.field),
        )
    return parser


def load_settings(
    settings: type[S],
    *,
    prog: str,
    description: str,
    flags: Sequence[Flag],
    what: str,
    argv: Sequence[str] | None = None,
) -> S:
    """Parses ``argv`` (default: ``sys.argv[1:]``) and builds the settings, or exits."""
    parser = build_parser(settings, prog=prog, description=description, flags=flags)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    try:
        return settings(**{_init_key(settings, field): value for field, value in given.items()})
    except ValidationError as exc:
        by_flag = {_init_key(settings, f.field): f.name for f in flags if f.field in given}
        by_env = {
            _init_key(settings, name): env_var(settings, name) for name in settings.model_fields
        }
        names = {**by_env, **by_flag}
        sys.exit(f"{prog}: invalid {what} configuration: {describe(exc, names=names)}")
