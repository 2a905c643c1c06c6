"""Opening user data and importing its rows as items, streaming through DuckDB.

Sources: CSV/TSV, JSON Lines, one JSON array of objects, Parquet, and Hugging Face datasets (a
`save_to_disk` folder or a Hub id). A source is read by a private in-memory DuckDB (one thread,
memory-capped, spilling to a temporary folder), never by the app's store connection (the store's
lock is per process and other processes wait on it), and never as one Python object per row.

  limits.py   ImportLimits (what an import accepts)
  readers.py  checks on the raw file (size, compression, UTF-8, CSV header, Parquet footer) and
              the Python readers that name a bad record's physical line
  hf.py       Hugging Face datasets (a save_to_disk folder or a Hub id)
  source.py   Source: the DuckDB scan (core.db.import_scan), validation, the items
  items.py    Items: the validated rows in a temporary Parquet file for Store.import_items
  files.py    (here) opening each kind of source, and import_source

Every problem is a DataImportError naming the line (CSV, JSON Lines: physical lines, counting
quoted newlines and blank lines) or the row (JSON array, Parquet, dataset) and the column; nothing
is written to the store until the whole source has been validated.

    with open_file(path) as source:              # or open_hf(id_or_folder, split), open_bytes(data, name)
        source.rows, source.columns, source.preview(10)
    n, labels = import_source(store, open_file(path), project, task, ColumnMapping(["text"], ...))
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from core.db.import_scan import csv_scan, json_scan, parquet_scan
from core.ingest.hf import load_hf
from core.ingest.limits import CSV_BUFFER, DEFAULT_LIMITS, ImportLimits, size_text
from core.ingest.readers import (
    check_utf8,
    csv_header,
    csv_lines,
    diagnose_csv,
    diagnose_jsonl,
    json_layout,
    json_lines,
    kind_of,
    parquet_check,
    refuse_compressed,
)
from core.ingest.source import Source
from core.kernel.errors import DataImportError
from core.kernel.formats import cell_text
from core.kernel.tasks import get_task

if TYPE_CHECKING:
    from core.db import Store

FORMATS = ("csv", "jsonl", "json", "parquet")


@dataclass
class ColumnMapping:
    input_fields: list[str]
    id_field: str | None = None
    label_field: str | None = None
    choices_field: str | None = None
    split_field: str | None = None
    labels: list[str] | None = None  # explicit label set for classification
    extra: dict = field(default_factory=dict)


def open_file(path: str | Path, name: str | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """Open a CSV, TSV, JSON Lines, JSON array or Parquet file; `name` (default: the file's) picks
    the format and appears in messages."""
    path = Path(path)
    name = name or path.name
    kind = kind_of(name)
    if not path.is_file():
        raise DataImportError(f"No such file: {path}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataImportError(f"{name} is {size_text(size)}; the limit is {size_text(limits.max_file_bytes)}.")
    if kind == "parquet":
        chunk = parquet_check(path, name, limits)
        return _opened(name, limits, path, lambda s: s._attach(parquet_scan(path), stage=False), chunk)
    refuse_compressed(path, name)
    check_utf8(path)
    if kind in ("csv", "tsv"):
        return _open_csv(path, name, limits, "\t" if kind == "tsv" else ",")
    return _open_json(path, name, limits, json_layout(path, kind), kind)


def _opened(name: str, limits: ImportLimits, path: Path | None, setup: Callable[[Source], None],
            extra_memory: int = 0) -> Source:
    source = Source(name, limits, extra_memory)
    if path is not None:
        source._hide.append(str(path))
    try:
        setup(source)
    except BaseException:
        source.close()
        raise
    return source


def _open_csv(path: Path, name: str, limits: ImportLimits, delimiter: str) -> Source:
    header = csv_header(path, delimiter)
    scan = csv_scan(path, header, delimiter, CSV_BUFFER)

    def setup(source: Source) -> None:
        source._lines = lambda: csv_lines(path, delimiter, len(header))
        source._diagnose = lambda: diagnose_csv(path, delimiter, len(header), limits)
        source._attach(scan, drop_null_rows=len(header) == 1)  # a blank line in a one-column file

    return _opened(name, limits, path, setup)


def _open_json(path: Path, name: str, limits: ImportLimits, layout: str, kind: str) -> Source:
    hint = " A .json file holds one array of objects, or one object per line." if kind == "json" else ""

    def setup(source: Source) -> None:
        if layout == "newline_delimited":
            source._lines = lambda: json_lines(path)
            source._diagnose = lambda: diagnose_jsonl(path, hint)
        with source._errors():  # the keys, from DuckDB's sample of the file
            keys = [name for name, _ in source.scan.describe(json_scan(path, layout))]
        source._attach(json_scan(path, layout, keys))  # every value as JSON, then as text

    return _opened(name, limits, path, setup)


def open_bytes(data: bytes, name: str, limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """open_file for data in memory (tests, small uploads), through a temporary file."""
    kind = kind_of(name)
    if len(data) > limits.max_file_bytes:
        raise DataImportError(f"{name} is {size_text(len(data))}; the limit is {size_text(limits.max_file_bytes)}.")
    tmp = Path(tempfile.mkdtemp(prefix="distill-upload-"))
    path = tmp / f"data.{kind}"
    path.write_bytes(data)
    try:
        source = open_file(path, name, limits)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    source._owned.append(tmp)
    source._hide.append(str(path))
    return source


def open_hf(ref: str, split: str | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """Open a Hugging Face dataset: a folder written by `save_to_disk` (a Dataset, or a DatasetDict
    and a split) or, when `ref` is no local path, a Hub id through `datasets.load_dataset`. The
    Arrow data stays memory-mapped; DuckDB scans it in place."""
    ds = load_hf(ref, split)
    name = f"{ref} [{ds.split}]" if getattr(ds, "split", None) else ref
    if ds.num_rows > limits.max_rows:
        raise DataImportError(f"{name} has {ds.num_rows:,} rows; the limit is {limits.max_rows:,}.")
    label_names = {c: list(f.names) for c, f in ds.features.items() if type(f).__name__ == "ClassLabel"}
    return _opened(name, limits, None, lambda s: s._attach_arrow(ds.data.table, label_names))


def open_records(records: list[tuple[int, dict]], limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """A source over (line number, record) pairs already in memory (small data, tests)."""
    columns = list(dict.fromkeys(key for _, rec in records for key in rec))
    table = pa.table({c: pa.array([cell_text(rec.get(c), keep_blank=True) for _, rec in records], pa.string()) for c in columns})

    def setup(source: Source) -> None:
        source._lines = lambda: (line for line, _ in records)
        source._attach_arrow(table, {})

    return _opened("the records", limits, None, setup)


def import_source(store: Store, source: Source, project: str, task: str, mapping: ColumnMapping, *,
                  template: str | None = None, model: str = "claude-haiku-4-5",
                  default_split: str = "train") -> tuple[int, list[str] | None]:
    """Validate `source` against the mapping, close it (its memory goes before the store's insert),
    then insert the items in one transaction. Returns (rows, label set)."""
    from core.kernel.names import check_project_name

    try:
        project = check_project_name(project)  # before the work, not after it
        items = source.items(task, mapping, default_split)
    finally:
        source.close()
    with items:
        n = store.import_items(project, task, mapping.input_fields, items.label_set, items,
                               template or get_task(task).preset_template(mapping.input_fields), model)
    if mapping.id_field:  # kept for the files a student of this project predicts
        store.update_project(project, id_field=mapping.id_field)
    return n, items.label_set


def read_records(data: bytes | str | Path, name: str | None = None,
                 limits: ImportLimits = DEFAULT_LIMITS) -> list[tuple[int, dict]]:
    """(line, record) pairs, values as text, null cells left out. One dict per row, so for small
    files only (teacher completions); data imports stream through open_file and import_source."""
    source = open_bytes(data, name or "data.jsonl", limits) if isinstance(data, bytes) else open_file(data, name, limits)
    with source:
        return list(source.records())


def build_items(records: list[tuple[int, dict]], task: str, mapping: ColumnMapping,
                default_split: str = "train") -> tuple[pd.DataFrame, list[str] | None]:
    """Validate in-memory records against the mapping: (items frame, label set). Same checks as
    Source.items; for small data (a frame holds every row)."""
    with open_records(records) as source, source.items(task, mapping, default_split) as items:
        return items.to_frame(), items.label_set
