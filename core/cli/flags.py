"""Command-line flags from a config dataclass, and the config back from the parsed flags
(as HfArgumentParser does): a setting is written once, in its dataclass field.

A field's metadata may hold:
    help     the flag's help text
    flag     the flag's name where it differs from the field's (--lr for learning_rate)
    choices  the allowed values
    cli      False: no flag (set by the program, not by a person: out_dir, row_ids)
The flag's dest is always the field name, so `config_from_args` finds it again."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable

# A field annotated with one of these becomes a flag of that type; None in a union means "optional".
_SCALARS = (str, int, float, bool)


def cli_fields(cls) -> list[dataclasses.Field]:
    """The fields of `cls` a person may set from the command line."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _scalar_type(annotation) -> type:
    """int for `int` and `int | None`; anything else (a dict, a list) has no flag."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    options = [t for t in options if t is not type(None)]
    if len(options) != 1 or options[0] not in _SCALARS:
        raise TypeError(f"no command-line flag for a field of type {annotation!r}; mark it cli=False")
    return options[0]


def add_config_flags(parser: argparse.ArgumentParser, cls, only: Iterable[str] | None = None,
                     skip: Iterable[str] = ("project",), many: Iterable[str] = (),
                     overrides: dict[str, dict] | None = None) -> None:
    """One flag per field of `cls` (all of them, or `only` these, in field order, less `skip`).
    `many` fields take one or more values (a sweep's grid; default: [the field's default]).
    `overrides` adds or replaces argparse keywords for one field (choices defined elsewhere)."""
    hints = typing.get_type_hints(cls)
    only, skip, many, overrides = (set(only) if only is not None else None), set(skip), set(many), overrides or {}
    for f in cli_fields(cls):
        if f.name in skip or only is not None and f.name not in only:
            continue
        kind, default = _scalar_type(hints[f.name]), f.default
        help_text = f.metadata.get("help")
        kwargs: dict = {"dest": f.name, "help": help_text.replace("%", "%%") if help_text else None}
        if f.metadata.get("choices") is not None:
            kwargs["choices"] = list(f.metadata["choices"])
        if kind is bool and f.name in many:
            raise TypeError(f"{f.name}: a switch takes no list of values")
        if kind is bool:
            # An off switch turns on (--batch); an on switch turns off (--no-x).
            name = flag_name(f) if not default else "--no-" + flag_name(f)[2:]
            kwargs |= {"action": "store_false" if default else "store_true", "default": default}
        else:
            name = flag_name(f)
            kwargs |= {"type": kind, "default": default}
            if "flag" in f.metadata:  # the metavar follows the flag, not the field: --lr LR, not --lr LEARNING_RATE
                kwargs["metavar"] = name[2:].replace("-", "_").upper()
            if f.name in many:
                kwargs |= {"nargs": "+", "default": [default]}
        kwargs |= overrides.get(f.name, {})
        if "choices" in kwargs:
            kwargs.pop("metavar", None)  # argparse shows the choices instead
        parser.add_argument(name, **kwargs)


def config_values(cls, args: argparse.Namespace) -> dict:
    """The fields of `cls` that the parsed args hold (flags added above, and the shared --project)."""
    return {f.name: getattr(args, f.name) for f in cli_fields(cls) if hasattr(args, f.name)}


def config_from_args(cls, args: argparse.Namespace, **given):
    """`cls` built from the parsed flags; `given` sets fields that have no flag (row_ids)."""
    return cls(**(config_values(cls, args) | given))
