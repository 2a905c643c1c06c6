"""Data files and cells, as every stage reads and writes them: which suffix is which format, a
cell as text, a cell of answer choices as a list, and never writing over what is not ours."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.kernel.errors import AppError

# file suffix -> format; a reader or writer accepts a subset (format_of)
SUFFIX_FORMATS = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "ndjson": "jsonl", "json": "json",
                  "parquet": "parquet", "pq": "parquet"}


def format_of(name: str | Path, accepted: tuple[str, ...] | None = None) -> str | None:
    """The format a file name's suffix names, if it is one of `accepted` (default: any)."""
    fmt = SUFFIX_FORMATS.get(Path(name).suffix.lower().lstrip("."))
    return fmt if fmt is not None and (accepted is None or fmt in accepted) else None


def suffixes_of(accepted: tuple[str, ...]) -> list[str]:
    """The suffixes ('.csv', ...) that name one of `accepted`, sorted."""
    return sorted("." + s for s, fmt in SUFFIX_FORMATS.items() if fmt in accepted)


def cell_text(value: Any, keep_blank: bool = False) -> str | None:
    """A data cell as text: lists and objects as JSON, numpy values as Python's; missing or NaN:
    None, and blank too unless `keep_blank` (the text a file would hold: the import decides)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
    return text if keep_blank or text.strip() else None


class ChoicesError(ValueError):
    """A cell that holds no usable choices. `kind`: 'json' (not a valid JSON list; `detail` says
    why), 'few' (fewer than two) or 'empty' (a choice is blank). Callers word the message."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


def parse_choices(value: Any) -> list[str]:
    """Answer choices from a cell: a list, a JSON list, or "a | b | c"."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ChoicesError("json", exc.msg) from exc
        else:
            value = [c.strip() for c in text.split("|")]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list) or len(value) < 2:
        raise ChoicesError("few")
    out = [cell_text(v) for v in value]
    if any(v is None for v in out):
        raise ChoicesError("empty")
    return out  # type: ignore[return-value]


def is_duckdb_file(path: Path) -> bool:
    """DuckDB files carry the magic bytes 'DUCK' at offset 8."""
    try:
        with path.open("rb") as fh:
            return fh.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


def refuse_existing(path: Path, force: bool = False) -> None:
    """An output never replaces an existing file unless asked to (`force`)."""
    if path.exists() and not force:
        raise AppError(f"{path} already exists; choose a new file name, or pass --force to replace it.")
