"""The registry of subcommands: each CLI module declares its commands next to their code,
and core.cli.main builds the parser from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

Flags = Callable[[argparse.ArgumentParser], None]


@dataclass
class Command:
    name: str
    func: Callable  # (args, store) -> dict, the JSON the command prints
    help: str
    flags: Flags | None = None  # adds the command's own arguments
    project: bool = True        # takes --project
    defaults: dict = field(default_factory=dict)


COMMANDS: list[Command] = []


def command(name: str, help: str, flags: Flags | None = None, project: bool = True, **defaults):
    """Register the decorated function as subcommand `name` (stackable: one function, several names)."""
    def register(func: Callable) -> Callable:
        COMMANDS.append(Command(name, func, help, flags, project, defaults))
        return func
    return register
