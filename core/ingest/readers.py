"""Checks on a raw file before DuckDB reads it, and the Python readers that find the physical
line of a record or the first bad one (DuckDB's line numbers skip quoted newlines and are off by
one for JSON Lines): format by suffix, compression refused, UTF-8, CSV header, JSON layout, and
the Parquet footer's limits."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from core.ingest.limits import CSV_BUFFER, JSON_MAX_LINE, ImportLimits, size_text
from core.kernel.errors import DataImportError
from core.kernel.formats import SUFFIX_FORMATS

_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
               b"PK\x03\x04": "zip"}
_COMPRESSED_SUFFIXES = ("gz", "gzip", "zst", "zstd", "bz2", "xz", "zip", "7z")


def kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in _COMPRESSED_SUFFIXES:
        raise DataImportError(f"{name} is compressed ({suffix}): decompress it first. Compressed files are refused "
                              "because they can inflate far beyond the import limits.")
    if suffix not in SUFFIX_FORMATS:
        raise DataImportError(f"Unsupported file type {suffix!r}: use .csv, .tsv, .jsonl, .json or .parquet.")
    return SUFFIX_FORMATS[suffix]


def refuse_compressed(path: Path, name: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise DataImportError(f"{name} is {kind}-compressed: decompress it first. Compressed files are refused "
                                  "because they can inflate far beyond the import limits.")


def check_utf8(path: Path) -> None:
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


def csv_header(path: Path, delimiter: str) -> list[str]:
    with csv_reader(path, delimiter) as reader:
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
def csv_reader(path: Path, delimiter: str):
    """csv.reader over the file as a stream, fields up to DuckDB's longest line (csv's own limit is
    process-wide, so it is restored)."""
    old = csv.field_size_limit(CSV_BUFFER)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield csv.reader(f, delimiter=delimiter, strict=True)
    finally:
        csv.field_size_limit(old)


def csv_lines(path: Path, delimiter: str, ncols: int) -> Iterator[int]:
    """The physical line on which each record ends, in DuckDB's record order: DuckDB skips blank
    lines, except in a one-column file where a blank line is a (null) record."""
    with csv_reader(path, delimiter) as reader:
        try:
            next(reader, None)
            for row in reader:
                if row or ncols == 1:
                    yield reader.line_num
        except csv.Error:
            return


def diagnose_csv(path: Path, delimiter: str, ncols: int, limits: ImportLimits) -> None:
    """DuckDB refused the file: find the first bad record with Python's csv module, which counts
    physical lines (DuckDB's own line numbers skip quoted newlines)."""
    with csv_reader(path, delimiter) as reader:
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
            if "field larger than field limit" in str(exc):
                raise DataImportError(f"line {reader.line_num}: a cell longer than {size_text(CSV_BUFFER)}; the limit "
                                      f"is {limits.max_field_chars:,} characters per field.") from exc
            raise DataImportError(f"line {reader.line_num}: malformed CSV ({exc}).") from exc


def json_lines(path: Path) -> Iterator[int]:
    """The physical line of each record of a JSON Lines file (DuckDB skips blank lines)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(JSON_MAX_LINE), b""), start=1):
            if raw.strip():
                yield lineno


def diagnose_jsonl(path: Path, hint: str) -> None:
    """DuckDB refused the file (its line numbers are off by one): find the first bad line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(JSON_MAX_LINE + 1), b""), start=1):
            if len(raw) > JSON_MAX_LINE:
                raise DataImportError(f"line {lineno}: longer than {size_text(JSON_MAX_LINE)}.{hint}")
            raw = raw.removeprefix(codecs.BOM_UTF8) if lineno == 1 else raw
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataImportError(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}).{hint}") from exc
            if not isinstance(obj, dict):
                raise DataImportError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}.{hint}")


def json_layout(path: Path, kind: str) -> str:
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


def parquet_check(path: Path, name: str, limits: ImportLimits) -> int:
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
        raise DataImportError(f"{name} decompresses to {size_text(inflated)}; the limit is {size_text(limits.max_text_bytes)}.")
    groups = (meta.row_group(r) for r in range(meta.num_row_groups))
    return max((sum(g.column(c).total_compressed_size for c in range(g.num_columns)) for g in groups), default=0)
