"""Names typed into forms and the paths derived from them.

A project name ends up in file names (exports, downloads) and URLs, so it is restricted to
letters, digits, space and `._-`; every path built from user input is checked to stay
inside the folder it was meant for."""

from __future__ import annotations

import re
from pathlib import Path

from core.kernel.errors import AppError

MAX_PROJECT_NAME = 64
_PROJECT_NAME = re.compile(r"[A-Za-z0-9 ._-]+")


class InvalidName(AppError):
    kind = "name"


def check_project_name(name: str) -> str:
    """The name, stripped, if it is a valid project name; a clear AppError otherwise."""
    name = (name or "").strip()
    if not name:
        raise InvalidName("Enter a project name.")
    if len(name) > MAX_PROJECT_NAME:
        raise InvalidName(f"A project name has at most {MAX_PROJECT_NAME} characters (this one has {len(name)}).")
    if not _PROJECT_NAME.fullmatch(name):
        bad = sorted({c for c in name if not _PROJECT_NAME.fullmatch(c)})
        raise InvalidName("A project name may hold letters, digits, spaces and . _ - only; "
                         f"remove {' '.join(repr(c) for c in bad[:5])}.")
    if name.strip(".") == "":
        raise InvalidName("A project name cannot be only dots.")
    return name


def inside(base: Path, *parts: str) -> Path:
    """base/parts..., refused unless the resolved path stays inside base."""
    base = Path(base).resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base):
        raise InvalidName(f"{'/'.join(parts)!r} would leave the folder {base}.")
    return path
