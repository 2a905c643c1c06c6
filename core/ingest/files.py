"""Reading user data and mapping its columns onto items, streaming through DuckDB.

Sources: CSV/TSV, JSON Lines, one JSON array of objects, Parquet, and Hugging Face datasets (a
`save_to_disk` folder or a Hub id). A source is read by a private in-memory DuckDB (one thread,
memory-capped, spilling to a temporary folder), never by the app's store connection (the store's
lock is per process and other processes wait on it), and never as one Python object per row:

- limits first: file size, compressed text refused, Parquet footers (rows, inflated size), then
  streaming aggregates (rows, longest cell, total text) before anything is materialised;
- a text file is parsed once into a Parquet stage (every column as text, plus `_ord`, the record's
  1-based place in the file, which every later step keeps so that no step has to keep order);
- rows are validated in SQL (missing columns, empty ids and inputs, repeated ids: the first
  offending record wins), gold labels are normalised over distinct values, or in chunks when they
  depend on the row's choices;
- the items go to a temporary Parquet file that Store.import_items inserts in one transaction.

Every problem is a DataImportError naming the line (CSV, JSON Lines: physical lines, counting
quoted newlines and blank lines) or the row (JSON array, Parquet, dataset) and the column; nothing
is written to the store until the whole source has been validated.

    with open_file(path) as source:              # or open_hf(id_or_folder, split), open_bytes(data, name)
        source.rows, source.columns, source.preview(10)
    n, labels = import_source(store, open_file(path), project, task, ColumnMapping(["text"], ...))
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.kernel.errors import DataImportError
from core.kernel.tasks import TaskType, get_task

if TYPE_CHECKING:
    from core.db import Store

FORMATS = ("csv", "jsonl", "json", "parquet")
ITEM_FIELDS = ("row_id", "split", "inputs", "choices", "gold")
_ITEMS_SCHEMA = pa.schema([(f, pa.string()) for f in ITEM_FIELDS] + [("_ord", pa.int64())])
_SUFFIXES = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "ndjson": "jsonl", "json": "json",
             "parquet": "parquet", "pq": "parquet"}
_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
               b"PK\x03\x04": "zip"}
_COMPRESSED_SUFFIXES = ("gz", "gzip", "zst", "zstd", "bz2", "xz", "zip", "7z")
_WS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.strip() removes
_CSV_BUFFER = 4 * 1024 * 1024  # DuckDB's CSV buffer and longest line; small buffers keep memory low
_JSON_MAX_LINE = 16 * 1024 * 1024  # DuckDB's maximum_object_size default
_BATCH_BYTES = 8 * 1024 * 1024  # per chunk of rows Python sees, and per row group of the Parquet files written here


@dataclass(frozen=True)
class ImportLimits:
    """What an import accepts. Each refusal names the limit and the value found."""

    max_file_bytes: int = 200 * 1024 * 1024  # = server.maxUploadSize (MB) in .streamlit/config.toml
    max_rows: int = 1_000_000
    max_field_chars: int = 100_000  # one mapped cell
    max_text_bytes: int = 1024 ** 3  # all mapped cells together, decoded (a Parquet file can inflate)
    memory_mb: int = 64  # DuckDB memory while parsing; beyond it DuckDB spills to a temporary folder
    insert_memory_mb: int = 32  # the store's memory while inserting the items (it spills too)
    max_memory_mb: int = 1024  # wide rows need more (DuckDB works on 2,048 rows at a time): doubled up to this


DEFAULT_LIMITS = ImportLimits()


@dataclass
class ColumnMapping:
    input_fields: list[str]
    id_field: str | None = None
    label_field: str | None = None
    choices_field: str | None = None
    split_field: str | None = None
    labels: list[str] | None = None  # explicit label set for classification
    extra: dict = field(default_factory=dict)


class _OutOfMemory(DataImportError):
    """DuckDB ran out of the import's memory cap (see Source._grow_on_oom)."""


# ---- small helpers ------------------------------------------------------------------
def _lit(text: str) -> str:
    """A SQL string literal (paths and names are inlined: COPY and table functions take no parameters)."""
    return "'" + str(text).replace("'", "''") + "'"


_NOT_WS = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in _WS) + "]"  # RE2's \s misses some of these


def _blank(col: str) -> str:
    """SQL: the cell is missing or whitespace only (as str.strip() sees it). A regular expression
    that stops at the first other character: trim() over every cell is several times slower."""
    return f"({col} IS NULL OR NOT regexp_matches({col}, {_lit(_NOT_WS)}))"


def _size(n: int) -> str:
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.1f} GB"
    if n >= 1024 * 1024:
        return f"{n / 1024 ** 2:.1f} MB"
    return f"{n:,} bytes"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):  # NaN from Parquet/pandas
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    return text if text.strip() else None


def _raw_text(value: Any) -> str | None:
    """A Python value as the text a file would hold (blank stays blank: SQL decides what is empty)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


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


def _relocated(exc: DataImportError, ordinal: int, where: str) -> DataImportError:
    """Task and choice checks say 'line N' with the number they were given (the record's ordinal);
    say where the record really is (a physical line, or 'row N')."""
    msg, prefix = str(exc), f"line {ordinal}"
    return DataImportError(where + msg[len(prefix):] if msg.startswith(prefix) else msg)


def _uses_golds(kind: TaskType) -> bool:
    # Only task types with their own label_set look at the gold values; skip collecting them for
    # the others (a numeric column can hold a million distinct values).
    return type(kind).label_set is not TaskType.label_set


# ---- checks on the raw file, before DuckDB reads it ----------------------------------------
def _kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in _COMPRESSED_SUFFIXES:
        raise DataImportError(f"{name} is compressed ({suffix}): decompress it first. Compressed files are refused "
                              "because they can inflate far beyond the import limits.")
    if suffix not in _SUFFIXES:
        raise DataImportError(f"Unsupported file type {suffix!r}: use .csv, .tsv, .jsonl, .json or .parquet.")
    return _SUFFIXES[suffix]


def _refuse_compressed(path: Path, name: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise DataImportError(f"{name} is {kind}-compressed: decompress it first. Compressed files are refused "
                                  "because they can inflate far beyond the import limits.")


def _check_utf8(path: Path) -> None:
    """Stream the bytes through a UTF-8 decoder; name the line of the first invalid byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = (pending + chunk)[: exc.start].count(b"\n")
                raise DataImportError(f"line {line + at}: the file is not valid UTF-8 ({exc.reason}).") from exc
            if not chunk:
                return
            line += chunk.count(b"\n")


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with _csv_reader(path, delimiter) as reader:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataImportError(f"line {reader.line_num}: malformed CSV header ({exc}).") from exc
    if header is None:
        raise DataImportError("The file has no rows.")
    names = [h if h.strip() else f"column_{i + 1}" for i, h in enumerate(header)]  # a trailing comma
    lowered = [n.lower() for n in names]  # DuckDB's column names ignore case
    if len(set(lowered)) != len(lowered):
        raise DataImportError("line 1: the CSV header repeats a column name.")
    return names


@contextmanager
def _csv_reader(path: Path, delimiter: str):
    """csv.reader over the file as a stream, fields up to DuckDB's longest line (csv's own limit is
    process-wide, so it is restored)."""
    old = csv.field_size_limit(_CSV_BUFFER)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield csv.reader(f, delimiter=delimiter, strict=True)
    finally:
        csv.field_size_limit(old)


def _csv_lines(path: Path, delimiter: str, ncols: int) -> Iterator[int]:
    """The physical line on which each record ends, in DuckDB's record order: DuckDB skips blank
    lines, except in a one-column file where a blank line is a (null) record."""
    with _csv_reader(path, delimiter) as reader:
        try:
            next(reader, None)
            for row in reader:
                if row or ncols == 1:
                    yield reader.line_num
        except csv.Error:
            return


def _diagnose_csv(path: Path, delimiter: str, ncols: int, limits: ImportLimits) -> None:
    """DuckDB refused the file: find the first bad record with Python's csv module, which counts
    physical lines (DuckDB's own line numbers skip quoted newlines)."""
    with _csv_reader(path, delimiter) as reader:
        try:
            next(reader, None)
            for row in reader:
                if row and len(row) != ncols:
                    raise DataImportError(f"line {reader.line_num}: {len(row)} cells but the header has {ncols} columns.")
                longest = max((len(cell) for cell in row), default=0)
                if longest > limits.max_field_chars:
                    raise DataImportError(f"line {reader.line_num}: a cell of {longest:,} characters; the limit is "
                                          f"{limits.max_field_chars:,}.")
        except csv.Error as exc:
            raise DataImportError(f"line {reader.line_num}: malformed CSV ({exc}).") from exc


def _json_lines(path: Path) -> Iterator[int]:
    """The physical line of each record of a JSON Lines file (DuckDB skips blank lines)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(_JSON_MAX_LINE), b""), start=1):
            if raw.strip():
                yield lineno


def _diagnose_jsonl(path: Path, hint: str) -> None:
    """DuckDB refused the file (its line numbers are off by one): find the first bad line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(_JSON_MAX_LINE + 1), b""), start=1):
            if len(raw) > _JSON_MAX_LINE:
                raise DataImportError(f"line {lineno}: longer than {_size(_JSON_MAX_LINE)}.{hint}")
            raw = raw.removeprefix(codecs.BOM_UTF8) if lineno == 1 else raw
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataImportError(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}).{hint}") from exc
            if not isinstance(obj, dict):
                raise DataImportError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}.{hint}")


def _json_layout(path: Path, kind: str) -> str:
    """'array' for a .json file holding one array, else 'newline_delimited' (JSON Lines)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16).removeprefix(codecs.BOM_UTF8).lstrip()
        while not head:
            more = f.read(1 << 16)
            if not more:
                raise DataImportError("The file has no rows.")
            head = more.lstrip()
    if kind == "json" and head.startswith(b"["):
        if head[1:].lstrip().startswith(b"]"):
            raise DataImportError("The file has no rows.")
        return "array"
    return "newline_delimited"


def _parquet_check(path: Path, name: str, limits: ImportLimits) -> int:
    """Refuse from the footer alone, before a page is decompressed. Returns the largest row group's
    compressed size: DuckDB reads a column chunk into one buffer, so the parse needs that much more."""
    try:
        with pq.ParquetFile(path) as pf:
            meta = pf.metadata
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataImportError(f"cannot read Parquet file {name}: {exc}") from exc
    if meta.num_rows > limits.max_rows:
        raise DataImportError(f"{name} has {meta.num_rows:,} rows; the limit is {limits.max_rows:,}.")
    inflated = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if inflated > limits.max_text_bytes:
        raise DataImportError(f"{name} decompresses to {_size(inflated)}; the limit is {_size(limits.max_text_bytes)}.")
    groups = (meta.row_group(r) for r in range(meta.num_row_groups))
    return max((sum(g.column(c).total_compressed_size for c in range(g.num_columns)) for g in groups), default=0)


# ---- a source -----------------------------------------------------------------------
class Source:
    """One opened source: `columns`, `rows`, `preview()`, and validated `items()`. Holds a private
    in-memory DuckDB and temporary files: close it (or use `with`) before importing."""

    def __init__(self, name: str, limits: ImportLimits, extra_memory: int = 0):
        self.name, self.limits = name, limits
        self.memory_mb = limits.memory_mb + -(-extra_memory // 2 ** 20)
        self.columns: list[str] = []
        self.rows = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="distill-import-"))
        self._owned = [self._tmp]  # folders deleted on close (an upload's copy joins them)
        self._cleanup = weakref.finalize(self, _remove, self._owned)
        self.con = duckdb.connect(":memory:", config={
            "memory_limit": f"{self.memory_mb}MB", "temp_directory": str(self._tmp / "spill"),
            "threads": 1,  # one thread: memory stays small (and the machine is shared)
            "preserve_insertion_order": True})
        self._lines: Callable[[], Iterable[int]] | None = None  # physical line of each record
        self._diagnose: Callable[[], None] | None = None  # raises a precise error for a parse failure
        self._hide: list[str] = []  # temporary paths replaced by the name in messages
        self._batch_rows = 4096  # rows per chunk that Python sees; fewer for wide rows (see _prescan)
        self._growth = 1  # how many times the memory cap was doubled (the insert's grows alike)

    # -- lifetime
    def close(self) -> None:
        self.con.close()
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- setup
    def _attach(self, scan: str, drop_null_rows: bool = False, stage: bool = True) -> None:
        """View `raw` over a file scan (columns c0..cN and the record ordinal _ord), then `src`
        (see _finish). Parquet is scanned in place each time (cheap, and never a copy of a bomb)."""
        with self._errors():
            described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            self.columns = [r[0] for r in described]
            aliases = ", ".join([f"c{i}" for i in range(len(described))] + ["_ord"])
            self.con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {scan} WITH ORDINALITY AS raw({aliases})")
        self._finish([r[1] for r in described], {}, drop_null_rows, stage)

    def _attach_arrow(self, table: pa.Table, label_names: dict[str, list[str]]) -> None:
        """An Arrow table (a memory-mapped dataset): scanned in place, zero-copy."""
        import numpy as np

        self.columns = list(table.column_names)
        if len(set(self.columns)) != len(self.columns):
            raise DataImportError(f"{self.name} repeats a column name.")
        ordinal = pa.array(np.arange(1, table.num_rows + 1))
        self.con.register("raw_arrow", table.rename_columns([f"c{i}" for i in range(table.num_columns)])
                          .append_column("_ord", ordinal))
        with self._errors():
            self.con.execute("CREATE TEMP VIEW raw AS SELECT * FROM raw_arrow")
            types = [r[1] for r in self.con.execute("DESCRIBE raw").fetchall()][:-1]
        self._finish(types, label_names)

    def _finish(self, types: list[str], label_names: dict[str, list[str]], drop_null_rows: bool = False,
                stage: bool = False) -> None:
        """View `src`: every column as text (c0..cN) and _ord. Rows are counted (and refused over
        the limit) first; a text file is then parsed once into a Parquet stage, so that the
        parser's buffers are gone before the checks' aggregates need memory, and every later pass
        reads compact columns instead of parsing again."""
        texts = [f"{_as_text(f'c{i}', t, label_names.get(c))} AS c{i}" for i, (c, t) in enumerate(zip(self.columns, types))]
        where = " WHERE " + " OR ".join(f"c{i} IS NOT NULL" for i in range(len(types))) if drop_null_rows else ""
        select = f"SELECT {', '.join(texts + ['_ord'])} FROM raw{where}"
        self.rows = self._grow_on_oom(lambda: self._one(f"SELECT count(*) FROM raw{where}")[0])
        if self.rows > self.limits.max_rows:
            raise DataImportError(f"{self.name} has {self.rows:,} rows; the limit is {self.limits.max_rows:,}.")
        if stage:
            staged = self._tmp / "stage.parquet"
            self._grow_on_oom(lambda: self._copy(select, staged))
            select = f"SELECT * FROM read_parquet({_lit(staged)})"
        with self._errors():
            self.con.execute(f"CREATE TEMP VIEW src AS {select}")

    def _grow_on_oom(self, step: Callable[[], Any]) -> Any:
        """Run a step; when DuckDB runs out of memory (wide rows: it works on 2,048 rows at a time,
        so a vector of 100,000-character cells is hundreds of MB), double the cap and run it again,
        up to limits.max_memory_mb. Typical rows never get here."""
        while True:
            try:
                with self._errors():
                    return step()
            except _OutOfMemory:
                if self.memory_mb >= self.limits.max_memory_mb:
                    raise
                self.memory_mb = min(self.memory_mb * 2, self.limits.max_memory_mb)
                self._growth *= 2
                self.con.execute(f"SET memory_limit = '{self.memory_mb}MB'")

    @contextmanager
    def _errors(self):
        """DuckDB's errors as DataImportErrors: a parse failure is diagnosed to its line."""
        try:
            yield
        except DataImportError:
            raise
        except duckdb.OutOfMemoryException as exc:
            raise _OutOfMemory(f"Reading {self.name} needed more than the import's {self.memory_mb} MB of "
                               "memory.") from exc
        except duckdb.Error as exc:
            if self._diagnose is not None:
                self._diagnose()
            message = str(exc).split("\n")[0].replace("Invalid Input Error: ", "")
            for hidden in self._hide:
                message = message.replace(hidden, self.name)
            raise DataImportError(f"cannot read {self.name}: {message}") from exc

    def _copy(self, select: str, path: Path) -> None:
        """Write a query to Parquet in row groups of at most _BATCH_BYTES (rows of 100,000-character
        cells would make a row group of 16,384 rows gigabytes). DuckDB bounds row groups by bytes
        only without insertion order; every file written here carries _ord instead."""
        self.con.execute("SET preserve_insertion_order = false")
        try:
            self.con.execute(f"COPY ({select}) TO {_lit(path)} (FORMAT parquet, ROW_GROUP_SIZE 16384, "
                             f"ROW_GROUP_SIZE_BYTES {_BATCH_BYTES})")
        finally:
            self.con.execute("SET preserve_insertion_order = true")

    # -- reading
    def _one(self, sql: str) -> tuple | None:
        """The first row of a query, the result fetched to the end (DuckDB refuses the next
        streaming query while a result is unfinished)."""
        rows = self.con.execute(sql).fetchall()
        return rows[0] if rows else None

    def where(self, ordinal: int) -> str:
        """Where record `ordinal` (1-based) is: 'line N' in a CSV or JSON Lines file, else 'row N'."""
        if self._lines is not None:
            for i, line in enumerate(self._lines(), start=1):
                if i == ordinal:
                    return f"line {line}"
        return f"row {ordinal}"

    def preview(self, n: int = 10, max_chars: int = 300) -> pd.DataFrame:
        """The first n rows as text, long cells cut."""
        cols = ", ".join(f'left(c{i}, {max_chars}) AS "{c.replace(chr(34), chr(34) * 2)}"'
                         for i, c in enumerate(self.columns))
        with self._errors():
            return self.con.execute(f"SELECT {cols} FROM src ORDER BY _ord LIMIT {int(n)}").df()

    def records(self) -> Iterator[tuple[int, dict]]:
        """(line or row number, record) for every row, null cells left out. One dict per row: for
        small sources only (teacher completions)."""
        lines = iter(self._lines()) if self._lines is not None else None
        seen, line = 0, None
        with self._errors():
            cur = self.con.execute("SELECT * FROM src ORDER BY _ord")
            while rows := cur.fetchmany(1000):
                for *values, ordinal in rows:
                    while lines is not None and seen < ordinal:  # records dropped from src still have lines
                        line, seen = next(lines, None), seen + 1
                    yield line or ordinal, {c: v for c, v in zip(self.columns, values) if v is not None}

    # -- validation and items
    def items(self, task: str, mapping: ColumnMapping, default_split: str = "train") -> Items:
        """Validate every row against the mapping and write the items (see Items)."""
        kind = get_task(task)
        if not self.rows:
            raise DataImportError("The file has no rows.")
        if not mapping.input_fields:
            raise DataImportError("Choose at least one input field.")
        col = self._mapped(mapping)
        if kind.needs_choices and not mapping.choices_field:
            raise DataImportError(f"A {task} task needs a choices column.")
        return self._grow_on_oom(lambda: self._validated_items(kind, mapping, col, default_split))

    def _validated_items(self, kind: TaskType, mapping: ColumnMapping, col: dict[str, str],
                         default_split: str) -> Items:
        self._prescan(col)
        self._check_rows(mapping, col)
        out = Items(self.limits.insert_memory_mb * self._growth)
        try:
            write = self._write_by_row if mapping.choices_field else self._write_with_gold_map
            golds = write(kind, mapping, col, default_split, out.path)
            out.label_set = kind.label_set(golds, mapping.labels)
            out.rows = pq.read_metadata(out.path).num_rows
        except BaseException:
            out.close()
            raise
        return out

    def _mapped(self, mapping: ColumnMapping) -> dict[str, str]:
        """{column name: its SQL column} for every mapped column; a clear error for a missing one."""
        index = {c: f"c{i}" for i, c in enumerate(self.columns)}
        roles = [("input", f) for f in mapping.input_fields] + [
            ("id", mapping.id_field), ("label", mapping.label_field),
            ("choices", mapping.choices_field), ("split", mapping.split_field)]
        for role, name in roles:
            if name and name not in index:
                raise DataImportError(
                    f"The {role} column {name!r} is not in the file. Columns: {', '.join(sorted(self.columns))}."
                )
        return {name: index[name] for _, name in roles if name}

    def _prescan(self, col: dict[str, str]) -> None:
        """Streaming aggregates over the mapped columns, before anything is materialised. strlen is
        the stored byte length (no decoding); exact characters are counted only for a suspect column."""
        names = list(col)
        longest = ", ".join(f"max(strlen({col[n]}))" for n in names)
        total = " + ".join(f"coalesce(sum(strlen({col[n]})), 0)" for n in names)
        with self._errors():
            *lengths, text_bytes = self._one(f"SELECT {longest}, {total} FROM src")
        self._batch_rows = max(1, min(4096, _BATCH_BYTES // max(1, sum(n or 0 for n in lengths))))
        limit = self.limits.max_field_chars
        for name, length in zip(names, lengths):
            if (length or 0) > limit:
                self._refuse_long_field(name, col[name], limit)
        if text_bytes > self.limits.max_text_bytes:
            raise DataImportError(f"The mapped columns hold {_size(text_bytes)} of text; the limit is "
                                  f"{_size(self.limits.max_text_bytes)}.")

    def _refuse_long_field(self, name: str, c: str, limit: int) -> None:
        with self._errors():
            row = self._one(f"SELECT _ord, length({c}) FROM src WHERE length({c}) > {limit} ORDER BY _ord LIMIT 1")
        if row:
            raise DataImportError(f"{self.where(row[0])}, column {name!r}: {row[1]:,} characters; the limit is "
                                  f"{limit:,} per field.")

    def _check_rows(self, mapping: ColumnMapping, col: dict[str, str]) -> None:
        """Empty ids and inputs, repeated ids: the first offending row wins, and within a row the
        order the checks had when rows were read one by one (id, repeated id, inputs)."""
        checks: list[tuple[str, str]] = []  # (SQL condition, message after the location)
        if mapping.id_field:
            checks.append((_blank(col[mapping.id_field]), f", column {mapping.id_field!r}: empty id."))
        checks += [(_blank(col[f]), f", column {f!r}: empty input text.") for f in mapping.input_fields]
        firsts = ", ".join(f"min(_ord) FILTER (WHERE {cond})" for cond, _ in checks)
        with self._errors():
            found = self._one(f"SELECT {firsts} FROM src")
        problems = [(o, float(rank), msg) for rank, (o, (_, msg)) in enumerate(zip(found, checks)) if o is not None]
        if mapping.id_field:
            problems += self._repeated_id(col[mapping.id_field])
        if problems:
            ordinal, _, message = min(problems)
            raise DataImportError(self.where(ordinal) + message)

    def _repeated_id(self, c: str) -> list[tuple[int, float, str]]:
        sql = (f"WITH firsts AS (SELECT {c} AS id, min(_ord) AS first FROM src WHERE {c} IS NOT NULL "
               f"GROUP BY {c} HAVING count(*) > 1) "
               f"SELECT s._ord, s.{c}, f.first FROM src s JOIN firsts f ON s.{c} = f.id WHERE s._ord > f.first "
               "ORDER BY s._ord LIMIT 1")
        with self._errors():
            row = self._one(sql)
        if row is None:
            return []
        return [(row[0], 0.5, f": id {row[1]!r} repeats {self.where(row[2])}.")]  # after an empty id

    def _common_sql(self, mapping: ColumnMapping, col: dict[str, str], default_split: str) -> str:
        """row_id, split and inputs as SQL (ids default to the 0-based record number)."""
        row_id = col[mapping.id_field] if mapping.id_field else "CAST(src._ord - 1 AS VARCHAR)"
        split = _lit(default_split)
        if mapping.split_field:
            s = col[mapping.split_field]
            split = f"CASE WHEN {_blank(s)} THEN {split} ELSE {s} END"
        inputs = "json_object(" + ", ".join(f"{_lit(f)}, {col[f]}" for f in mapping.input_fields) + ")"
        return f"{row_id} AS row_id, {split} AS split, {inputs} AS inputs"

    def _write_with_gold_map(self, kind: TaskType, mapping: ColumnMapping, col: dict[str, str],
                             default_split: str, path: Path) -> list[str]:
        """Gold labels that depend on nothing else: normalised once per distinct value, joined back."""
        gold, join, golds = "NULL", "", []
        if mapping.label_field:
            gold_map = self._gold_map(kind, mapping.label_field, col[mapping.label_field])
            gold = "gm.norm"
            join = f" LEFT JOIN read_parquet({_lit(gold_map)}) AS gm ON src.{col[mapping.label_field]} = gm.raw"
            if _uses_golds(kind):
                with self._errors():
                    golds = [r[0] for r in self.con.execute(
                        f"SELECT DISTINCT norm FROM read_parquet({_lit(gold_map)}) WHERE norm IS NOT NULL ORDER BY 1"
                    ).fetchall()]
        select = (f"SELECT {self._common_sql(mapping, col, default_split)}, NULL::VARCHAR AS choices, "
                  f"{gold} AS gold, src._ord AS _ord FROM src{join}")  # a join may reorder rows: _ord keeps the order
        with self._errors():
            self._copy(select, path)
        return golds

    def _gold_map(self, kind: TaskType, name: str, c: str) -> Path:
        """A Parquet file (raw, norm, bad) over the distinct non-blank gold values, written in chunks;
        refuses at the first row whose gold the task rejects."""
        path = self._tmp / "gold_map.parquet"
        schema = pa.schema([("raw", pa.string()), ("norm", pa.string()), ("bad", pa.bool_())])
        any_bad = False
        with self._errors(), pq.ParquetWriter(path, schema) as writer:
            reader = self.con.sql(f"SELECT DISTINCT {c} FROM src WHERE NOT {_blank(c)}").to_arrow_reader(
                self._batch_rows)
            for batch in reader:
                raws = batch.column(0).to_pylist()
                norms = [_try_gold(kind, raw, name) for raw in raws]
                any_bad = any_bad or None in norms
                writer.write_table(pa.table({"raw": raws, "norm": norms, "bad": [n is None for n in norms]}, schema))
        if any_bad:
            self._refuse_first_bad_gold(kind, name, c, path)
        return path

    def _refuse_first_bad_gold(self, kind: TaskType, name: str, c: str, gold_map: Path) -> None:
        with self._errors():
            ordinal, raw = self._one(
                f"SELECT src._ord, src.{c} FROM src JOIN read_parquet({_lit(gold_map)}) AS gm ON src.{c} = gm.raw "
                "WHERE gm.bad ORDER BY src._ord LIMIT 1")
        try:
            kind.normalize_gold(raw, None, ordinal, name)
        except DataImportError as exc:
            raise _relocated(exc, ordinal, self.where(ordinal)) from None

    def _write_by_row(self, kind: TaskType, mapping: ColumnMapping, col: dict[str, str],
                      default_split: str, path: Path) -> list[str]:
        """Choices (and a gold that names one of them) need every row in Python: in chunks. The
        stream need not be in source order, so the earliest bad row is kept and reported at the end."""
        gold = col[mapping.label_field] if mapping.label_field else "NULL"
        select = (f"SELECT {self._common_sql(mapping, col, default_split)}, {col[mapping.choices_field]} AS raw_choices, "
                  f"{gold} AS raw_gold, src._ord AS _ord FROM src")
        golds: set[str] = set()
        first_bad: list[tuple[int, DataImportError]] = []
        with self._errors(), pq.ParquetWriter(path, _ITEMS_SCHEMA) as writer:
            for batch in self.con.sql(select).to_arrow_reader(self._batch_rows):
                rows = batch.to_pydict()
                choices, gold_out = self._choices_and_gold(kind, mapping, rows, first_bad)
                if _uses_golds(kind):
                    golds.update(g for g in gold_out if g is not None)
                writer.write_table(pa.table({"row_id": rows["row_id"], "split": rows["split"], "inputs": rows["inputs"],
                                             "choices": choices, "gold": gold_out, "_ord": rows["_ord"]}, _ITEMS_SCHEMA))
        if first_bad:
            ordinal, exc = first_bad[0]
            raise _relocated(exc, ordinal, self.where(ordinal))
        return sorted(golds)

    @staticmethod
    def _choices_and_gold(kind: TaskType, mapping: ColumnMapping, rows: dict,
                          first_bad: list[tuple[int, DataImportError]]) -> tuple[list, list]:
        choices_out, gold_out = [], []
        for ordinal, raw_choices, raw_gold in zip(rows["_ord"], rows["raw_choices"], rows["raw_gold"]):
            try:
                choices = _choices(raw_choices, ordinal, mapping.choices_field)
                gold = _text(raw_gold)
                if gold is not None:
                    gold = kind.normalize_gold(gold, choices, ordinal, mapping.label_field)
            except DataImportError as exc:
                if not first_bad or ordinal < first_bad[0][0]:
                    first_bad[:] = [(ordinal, exc)]
                choices, gold = None, None
            choices_out.append(json.dumps(choices, ensure_ascii=False) if choices else None)
            gold_out.append(gold)
        return choices_out, gold_out


def _remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _try_gold(kind: TaskType, raw: str, name: str) -> str | None:
    try:
        return kind.normalize_gold(raw, None, 0, name)
    except DataImportError:
        return None  # the first row holding it is found and reported afterwards


def _as_text(c: str, dtype: str, label_names: list[str] | None = None) -> str:
    """A column of any DuckDB type as the text a user would see (JSON for nested values, NaN as
    missing, a ClassLabel's name rather than its number)."""
    if label_names:
        names = "[" + ", ".join(_lit(n) for n in label_names) + "]"
        return f"CASE WHEN {c} >= 0 AND {c} < {len(label_names)} THEN {names}[{c} + 1] END"
    if dtype == "VARCHAR":
        return c
    if dtype == "JSON":
        return (f"CASE json_type({c}) WHEN 'VARCHAR' THEN json_extract_string({c}, '$') WHEN 'NULL' THEN NULL "
                f"ELSE CAST({c} AS VARCHAR) END")
    if dtype in ("DOUBLE", "FLOAT"):
        return f"CASE WHEN isnan({c}) THEN NULL ELSE CAST({c} AS VARCHAR) END"
    if dtype.endswith("]") or dtype.startswith(("STRUCT", "MAP", "UNION")):
        return f"CAST(to_json({c}) AS VARCHAR)"
    return f"CAST({c} AS VARCHAR)"


# ---- items --------------------------------------------------------------------------
class Items:
    """Validated items in a temporary Parquet file (`path`: row_id, split, inputs as JSON text,
    choices as JSON text, gold, and _ord, the row's 1-based place in the source, which orders the
    rows: the file itself may not be in order), with `rows` and the project's `label_set`.
    Store.import_items reads it with INSERT ... SELECT. Close it (or use `with`) to delete the file."""

    def __init__(self, memory_mb: int = DEFAULT_LIMITS.insert_memory_mb):
        self._tmp = Path(tempfile.mkdtemp(prefix="distill-items-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self.path = self._tmp / "items.parquet"
        self.rows = 0
        self.label_set: list[str] | None = None
        self.memory_mb = memory_mb  # the store's memory cap for the insert

    def to_frame(self) -> pd.DataFrame:
        """As a pandas frame: for small imports and tests."""
        frame = pd.read_parquet(self.path).sort_values("_ord")[list(ITEM_FIELDS)].astype(object).reset_index(drop=True)
        return frame.where(frame.notna(), None)  # missing is None, as in the rows the store returns

    def close(self) -> None:
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- opening sources ----------------------------------------------------------------
def open_file(path: str | Path, name: str | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """Open a CSV, TSV, JSON Lines, JSON array or Parquet file; `name` (default: the file's) picks
    the format and appears in messages."""
    path = Path(path)
    name = name or path.name
    kind = _kind_of(name)
    if not path.is_file():
        raise DataImportError(f"No such file: {path}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataImportError(f"{name} is {_size(size)}; the limit is {_size(limits.max_file_bytes)}.")
    if kind == "parquet":
        chunk = _parquet_check(path, name, limits)
        return _opened(name, limits, path, lambda s: s._attach(f"read_parquet({_lit(path)})", stage=False), chunk)
    _refuse_compressed(path, name)
    _check_utf8(path)
    if kind in ("csv", "tsv"):
        return _open_csv(path, name, limits, "\t" if kind == "tsv" else ",")
    return _open_json(path, name, limits, _json_layout(path, kind), kind)


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
    header = _csv_header(path, delimiter)
    columns = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in header) + "}"
    scan = (f"read_csv({_lit(path)}, auto_detect=false, header=true, columns={columns}, delim={_lit(delimiter)}, "
            "quote='\"', escape='\"', strict_mode=true, null_padding=false, compression='none', "
            f"buffer_size={_CSV_BUFFER}, max_line_size={_CSV_BUFFER})")

    def setup(source: Source) -> None:
        source._lines = lambda: _csv_lines(path, delimiter, len(header))
        source._diagnose = lambda: _diagnose_csv(path, delimiter, len(header), limits)
        source._attach(scan, drop_null_rows=len(header) == 1)  # a blank line in a one-column file

    return _opened(name, limits, path, setup)


def _open_json(path: Path, name: str, limits: ImportLimits, layout: str, kind: str) -> Source:
    base = f"read_json({_lit(path)}, format='{layout}', records=true, compression='none'"
    hint = " A .json file holds one array of objects, or one object per line." if kind == "json" else ""

    def setup(source: Source) -> None:
        if layout == "newline_delimited":
            source._lines = lambda: _json_lines(path)
            source._diagnose = lambda: _diagnose_jsonl(path, hint)
        with source._errors():  # the keys, from DuckDB's sample of the file
            keys = [r[0] for r in source.con.execute(f"DESCRIBE SELECT * FROM {base})").fetchall()]
        # Every value read as JSON and converted to text: a column typed from the sample would
        # refuse a later row holding another type.
        source._attach(base + ", columns={" + ", ".join(f"{_lit(k)}: 'JSON'" for k in keys) + "})")

    return _opened(name, limits, path, setup)


def open_bytes(data: bytes, name: str, limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """open_file for data in memory (tests, small uploads), through a temporary file."""
    kind = _kind_of(name)
    if len(data) > limits.max_file_bytes:
        raise DataImportError(f"{name} is {_size(len(data))}; the limit is {_size(limits.max_file_bytes)}.")
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
    ds = _load_hf(ref, split)
    name = f"{ref} [{ds.split}]" if getattr(ds, "split", None) else ref
    if ds.num_rows > limits.max_rows:
        raise DataImportError(f"{name} has {ds.num_rows:,} rows; the limit is {limits.max_rows:,}.")
    label_names = {c: list(f.names) for c, f in ds.features.items() if type(f).__name__ == "ClassLabel"}
    return _opened(name, limits, None, lambda s: s._attach_arrow(ds.data.table, label_names))


def _load_hf(ref: str, split: str | None):
    import datasets

    path = Path(ref).expanduser()
    if path.exists():
        if not any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
            raise DataImportError(f"{ref} is not a dataset folder written by datasets' save_to_disk; import its "
                                  "data files instead.")
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise DataImportError(f"could not load the dataset folder {ref}: {exc}") from exc
    else:
        try:
            ds = datasets.load_dataset(ref, split=split or None)
        except Exception as exc:
            raise DataImportError(f"could not load {ref!r} from the Hugging Face Hub: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if isinstance(ds, dict):  # a DatasetDict
        ds = _pick_split(ds, split, ref)
    elif split and ds.split is not None and str(ds.split) != split:
        raise DataImportError(f"{ref} holds only the split {str(ds.split)!r}, not {split!r}.")
    if not isinstance(ds, datasets.Dataset):
        raise DataImportError(f"{ref} is not a dataset that can be imported ({type(ds).__name__}).")
    return ds.flatten_indices() if ds._indices is not None else ds


def _pick_split(splits: dict, split: str | None, ref: str):
    if split and split in splits:
        return splits[split]
    if not split and len(splits) == 1:
        return next(iter(splits.values()))
    named = ", ".join(splits)
    if split:
        raise DataImportError(f"{ref} has no split {split!r}; its splits: {named}.")
    raise DataImportError(f"{ref} has several splits ({named}): choose one.")


def open_records(records: list[tuple[int, dict]], limits: ImportLimits = DEFAULT_LIMITS) -> Source:
    """A source over (line number, record) pairs already in memory (small data, tests)."""
    columns = list(dict.fromkeys(key for _, rec in records for key in rec))
    table = pa.table({c: pa.array([_raw_text(rec.get(c)) for _, rec in records], pa.string()) for c in columns})

    def setup(source: Source) -> None:
        source._lines = lambda: (line for line, _ in records)
        source._attach_arrow(table, {})

    return _opened("the records", limits, None, setup)


# ---- importing ----------------------------------------------------------------------
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
    return n, items.label_set


# ---- the earlier in-memory API, kept for small data ----------------------------------------
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
