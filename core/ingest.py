"""Reading user data files (CSV, JSONL, Parquet) and mapping their columns onto items.

Every problem is reported as a DataImportError that names the line (CSV/JSONL) or the
column, and nothing is written until the whole file has been validated."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import DataImportError
from core.tasks import get_task

FORMATS = ("csv", "jsonl", "parquet")


@dataclass
class ColumnMapping:
    input_fields: list[str]
    id_field: str | None = None
    label_field: str | None = None
    choices_field: str | None = None
    split_field: str | None = None
    labels: list[str] | None = None  # explicit label set for classification
    extra: dict = field(default_factory=dict)


def detect_format(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise DataImportError(f"Unsupported file type {suffix!r}: use .csv, .jsonl or .parquet.")


def read_records(data: bytes, name: str) -> list[tuple[int, dict]]:
    """Parse a file into (line number, record) pairs. Line numbers are 1-based file lines
    (for Parquet, the row number)."""
    fmt = detect_format(name)
    if fmt == "jsonl":
        return _read_jsonl(data)
    if fmt == "csv":
        return _read_csv(data, delimiter="\t" if name.lower().endswith(".tsv") else ",")
    return _read_parquet(data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataImportError(f"line {line}: the file is not valid UTF-8 ({exc.reason}).") from exc


def _read_jsonl(data: bytes) -> list[tuple[int, dict]]:
    text = _decode(data)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataImportError(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}).") from exc
        if not isinstance(obj, dict):
            raise DataImportError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}.")
        out.append((lineno, obj))
    return out


def _read_csv(data: bytes, delimiter: str) -> list[tuple[int, dict]]:
    text = _decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out = []
    try:
        header = reader.fieldnames or []
        if len(set(header)) != len(header):
            raise DataImportError("line 1: the CSV header repeats a column name.")
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataImportError(
                    f"line {reader.line_num}: {len(header) + len(row[None])} cells but the header has {len(header)} columns."
                )
            out.append((reader.line_num, dict(row)))
    except csv.Error as exc:
        raise DataImportError(f"line {reader.line_num}: malformed CSV ({exc}).") from exc
    return out


def _read_parquet(data: bytes) -> list[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataImportError(f"cannot read Parquet file: {exc}") from exc
    return [(i + 1, rec) for i, rec in enumerate(table.to_pylist())]


def columns_of(records: list[tuple[int, dict]]) -> list[str]:
    seen: dict[str, None] = {}
    for _, rec in records[:200]:
        for key in rec:
            seen.setdefault(key, None)
    return list(seen)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from Parquet/pandas
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    return text if text.strip() else None


def _choices(value: Any, lineno: int, col: str) -> list[str]:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise DataImportError(f"line {lineno}, column {col!r}: choices are not a valid JSON list ({exc.msg}).") from exc
        else:
            value = [c.strip() for c in stripped.split("|")]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list) or len(value) < 2:
        raise DataImportError(f"line {lineno}, column {col!r}: need a list of at least two choices.")
    out = [_text(v) for v in value]
    if any(v is None for v in out):
        raise DataImportError(f"line {lineno}, column {col!r}: a choice is empty.")
    return out  # type: ignore[return-value]


def build_items(
    records: list[tuple[int, dict]], task: str, mapping: ColumnMapping, default_split: str = "train"
) -> tuple[pd.DataFrame, list[str] | None]:
    """Validate records against the mapping and return (items frame, label set)."""
    kind = get_task(task)
    if not records:
        raise DataImportError("The file has no rows.")
    if not mapping.input_fields:
        raise DataImportError("Choose at least one input field.")
    columns = set(columns_of(records))
    for role, col in [("input", f) for f in mapping.input_fields] + [
        ("id", mapping.id_field), ("label", mapping.label_field),
        ("choices", mapping.choices_field), ("split", mapping.split_field),
    ]:
        if col and col not in columns:
            raise DataImportError(
                f"The {role} column {col!r} is not in the file. Columns: {', '.join(sorted(columns))}."
            )
    if kind.needs_choices and not mapping.choices_field:
        raise DataImportError(f"A {task} task needs a choices column.")

    rows = []
    seen_ids: dict[str, int] = {}
    for n, (lineno, rec) in enumerate(records):
        row_id = _text(rec.get(mapping.id_field)) if mapping.id_field else str(n)
        if row_id is None:
            raise DataImportError(f"line {lineno}, column {mapping.id_field!r}: empty id.")
        if row_id in seen_ids:
            raise DataImportError(f"line {lineno}: id {row_id!r} repeats line {seen_ids[row_id]}.")
        seen_ids[row_id] = lineno
        inputs = {}
        for f in mapping.input_fields:
            value = _text(rec.get(f))
            if value is None:
                raise DataImportError(f"line {lineno}, column {f!r}: empty input text.")
            inputs[f] = value
        choices = _choices(rec.get(mapping.choices_field), lineno, mapping.choices_field) if mapping.choices_field else None
        gold = _text(rec.get(mapping.label_field)) if mapping.label_field else None
        if gold is not None:
            gold = kind.normalize_gold(gold, choices, lineno, mapping.label_field)
        split = (_text(rec.get(mapping.split_field)) if mapping.split_field else None) or default_split
        rows.append(
            {
                "row_id": row_id,
                "split": split,
                "inputs": json.dumps(inputs, ensure_ascii=False),
                "choices": json.dumps(choices, ensure_ascii=False) if choices else None,
                "gold": gold,
            }
        )
    frame = pd.DataFrame(rows, columns=["row_id", "split", "inputs", "choices", "gold"])
    label_set = kind.label_set(sorted(set(frame["gold"].dropna())), mapping.labels)
    return frame, label_set
