"""The SQL of an import: a private in-memory DuckDB that scans a source file (or an Arrow table)
and answers the validation's questions with streaming aggregates. Generic: it knows views `raw`
(the scan, columns c0..cN and `_ord`, the record's 1-based place) and `src` (every column as
text), never what a task or a mapping means; core.ingest.source asks and decides.

Never the store's connection: the store's lock is per process and other processes wait on it.
Paths and names are inlined as literals (COPY and table functions take no parameters)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

_WS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.strip() removes
_NOT_WS = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in _WS) + "]"  # RE2's \s misses some of these


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def blank(col: str) -> str:
    """SQL: the cell is missing or whitespace only (as str.strip() sees it). A regular expression
    that stops at the first other character: trim() over every cell is several times slower."""
    return f"({col} IS NULL OR NOT regexp_matches({col}, {lit(_NOT_WS)}))"


def as_text(c: str, dtype: str, label_names: list[str] | None = None) -> str:
    """A column of any DuckDB type as the text a user would see (JSON for nested values, NaN as
    missing, a ClassLabel's name rather than its number)."""
    if label_names:
        names = "[" + ", ".join(lit(n) for n in label_names) + "]"
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


# ---- scans of a file ----------------------------------------------------------------
def parquet_scan(path: Path) -> str:
    return f"read_parquet({lit(path)})"


def csv_scan(path: Path, header: list[str], delimiter: str, buffer_bytes: int) -> str:
    """Every column as text, strict quoting, no compression, DuckDB's buffer and longest line
    `buffer_bytes` (small buffers keep memory low)."""
    columns = "{" + ", ".join(f"{lit(c)}: 'VARCHAR'" for c in header) + "}"
    return (f"read_csv({lit(path)}, auto_detect=false, header=true, columns={columns}, delim={lit(delimiter)}, "
            "quote='\"', escape='\"', strict_mode=true, null_padding=false, compression='none', "
            f"buffer_size={buffer_bytes}, max_line_size={buffer_bytes})")


def json_scan(path: Path, layout: str, keys: list[str] | None = None) -> str:
    """`layout` is 'array' or 'newline_delimited'. With `keys`, every value is read as JSON (a
    column typed from DuckDB's sample would refuse a later row holding another type)."""
    base = f"read_json({lit(path)}, format='{layout}', records=true, compression='none'"
    if keys is None:
        return base + ")"
    return base + ", columns={" + ", ".join(f"{lit(k)}: 'JSON'" for k in keys) + "})"


class ImportScan:
    """One in-memory DuckDB: one thread, memory-capped, spilling to `spill`. Every method is one
    query; DuckDB's own errors pass through for the caller to explain."""

    def __init__(self, memory_mb: int, spill: Path):
        self.con = duckdb.connect(":memory:", config={
            "memory_limit": f"{memory_mb}MB", "temp_directory": str(spill),
            "threads": 1,  # one thread: memory stays small (and the machine is shared)
            "preserve_insertion_order": True})

    def close(self) -> None:
        self.con.close()

    def set_memory(self, memory_mb: int) -> None:
        self.con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")

    def _one(self, sql: str) -> tuple | None:
        """The first row, the result fetched to the end (DuckDB refuses the next streaming query
        while a result is unfinished)."""
        rows = self.con.execute(sql).fetchall()
        return rows[0] if rows else None

    # -- views
    def describe(self, scan: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of a scan."""
        return [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def attach_scan(self, scan: str, ncols: int) -> None:
        """View `raw` over a file scan: columns c0..cN and _ord."""
        aliases = ", ".join([f"c{i}" for i in range(ncols)] + ["_ord"])
        self.con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {scan} WITH ORDINALITY AS raw({aliases})")

    def attach_arrow(self, table: pa.Table, ordinal: pa.Array) -> list[str]:
        """View `raw` over an Arrow table, scanned in place (zero-copy); returns the column types."""
        self.con.register("raw_arrow", table.rename_columns([f"c{i}" for i in range(table.num_columns)])
                          .append_column("_ord", ordinal))
        self.con.execute("CREATE TEMP VIEW raw AS SELECT * FROM raw_arrow")
        return [r[1] for r in self.con.execute("DESCRIBE raw").fetchall()][:-1]

    @staticmethod
    def text_select(columns: list[str], types: list[str], label_names: dict[str, list[str]],
                    drop_null_rows: bool) -> tuple[str, str]:
        """(the query of `raw` as text columns c0..cN and _ord, its WHERE clause)."""
        texts = [f"{as_text(f'c{i}', t, label_names.get(c))} AS c{i}" for i, (c, t) in enumerate(zip(columns, types))]
        where = " WHERE " + " OR ".join(f"c{i} IS NOT NULL" for i in range(len(types))) if drop_null_rows else ""
        return f"SELECT {', '.join(texts + ['_ord'])} FROM raw{where}", where

    def count_raw(self, where: str) -> int:
        return self._one(f"SELECT count(*) FROM raw{where}")[0]

    def stage(self, select: str, path: Path, batch_bytes: int) -> str:
        """Write `select` to a Parquet stage; returns the query that reads it back."""
        self.copy(select, path, batch_bytes)
        return f"SELECT * FROM {parquet_scan(path)}"

    def create_src(self, select: str) -> None:
        self.con.execute(f"CREATE TEMP VIEW src AS {select}")

    def copy(self, select: str, path: Path, batch_bytes: int) -> None:
        """Write a query to Parquet in row groups of at most `batch_bytes` (rows of 100,000-character
        cells would make a row group of 16,384 rows gigabytes). DuckDB bounds row groups by bytes
        only without insertion order; every file written here carries _ord instead."""
        self.con.execute("SET preserve_insertion_order = false")
        try:
            self.con.execute(f"COPY ({select}) TO {lit(path)} (FORMAT parquet, ROW_GROUP_SIZE 16384, "
                             f"ROW_GROUP_SIZE_BYTES {batch_bytes})")
        finally:
            self.con.execute("SET preserve_insertion_order = true")

    # -- reading `src`
    def preview(self, columns: list[str], n: int, max_chars: int):
        cols = ", ".join(f'left(c{i}, {max_chars}) AS "{c.replace(chr(34), chr(34) * 2)}"'
                         for i, c in enumerate(columns))
        return self.con.execute(f"SELECT {cols} FROM src ORDER BY _ord LIMIT {int(n)}").df()

    def rows_in_order(self, chunk: int = 1000) -> Iterator[tuple]:
        cur = self.con.execute("SELECT * FROM src ORDER BY _ord")
        while rows := cur.fetchmany(chunk):
            yield from rows

    def lengths(self, cols: list[str]) -> tuple[list[int | None], int]:
        """(the longest stored byte length per column, the byte length of all of them together).
        strlen is the stored length: nothing is decoded."""
        longest = ", ".join(f"max(strlen({c}))" for c in cols)
        total = " + ".join(f"coalesce(sum(strlen({c})), 0)" for c in cols)
        *each, together = self._one(f"SELECT {longest}, {total} FROM src")
        return each, together

    def first_longer(self, c: str, limit: int) -> tuple[int, int] | None:
        """(ordinal, characters) of the first cell of `c` longer than `limit` characters."""
        return self._one(f"SELECT _ord, length({c}) FROM src WHERE length({c}) > {int(limit)} ORDER BY _ord LIMIT 1")

    def first_blank(self, cols: list[str]) -> list[int | None]:
        """Per column, the ordinal of its first blank cell (None: none is blank)."""
        return list(self._one("SELECT " + ", ".join(f"min(_ord) FILTER (WHERE {blank(c)})" for c in cols) + " FROM src"))

    def first_repeat(self, c: str) -> tuple[int, str, int] | None:
        """(ordinal, value, ordinal of its first occurrence) of the first repeated value of `c`."""
        return self._one(
            f"WITH firsts AS (SELECT {c} AS id, min(_ord) AS first FROM src WHERE {c} IS NOT NULL "
            f"GROUP BY {c} HAVING count(*) > 1) "
            f"SELECT s._ord, s.{c}, f.first FROM src s JOIN firsts f ON s.{c} = f.id WHERE s._ord > f.first "
            "ORDER BY s._ord LIMIT 1")

    def distinct_values(self, c: str, batch_rows: int) -> pa.RecordBatchReader:
        """The distinct non-blank values of `c`, streamed."""
        return self.con.sql(f"SELECT DISTINCT {c} FROM src WHERE NOT {blank(c)}").to_arrow_reader(batch_rows)

    # -- the items
    @staticmethod
    def item_columns(row_id: str | None, split: str | None, default_split: str, inputs: dict[str, str]) -> str:
        """row_id, split and inputs (a JSON object) as SQL over `src`; ids default to the 0-based
        record number, a blank split to `default_split`."""
        row_id_sql = row_id or "CAST(src._ord - 1 AS VARCHAR)"
        split_sql = lit(default_split)
        if split:
            split_sql = f"CASE WHEN {blank(split)} THEN {split_sql} ELSE {split} END"
        inputs_sql = "json_object(" + ", ".join(f"{lit(f)}, {c}" for f, c in inputs.items()) + ")"
        return f"{row_id_sql} AS row_id, {split_sql} AS split, {inputs_sql} AS inputs"

    def write_items_mapped(self, columns: str, gold: str | None, gold_map: Path | None, path: Path,
                           batch_bytes: int) -> None:
        """The items to Parquet, the gold of column `gold` looked up in `gold_map` (raw, norm)."""
        gold_sql, join = "NULL", ""
        if gold is not None and gold_map is not None:
            gold_sql = "gm.norm"
            join = f" LEFT JOIN {parquet_scan(gold_map)} AS gm ON src.{gold} = gm.raw"
        # a join may reorder rows: _ord keeps the order
        self.copy(f"SELECT {columns}, NULL::VARCHAR AS choices, {gold_sql} AS gold, src._ord AS _ord FROM src{join}",
                  path, batch_bytes)

    def mapped_norms(self, gold_map: Path) -> list[str]:
        return [r[0] for r in self.con.execute(
            f"SELECT DISTINCT norm FROM {parquet_scan(gold_map)} WHERE norm IS NOT NULL ORDER BY 1").fetchall()]

    def first_bad_mapped(self, c: str, gold_map: Path) -> tuple[int, str]:
        """(ordinal, raw value) of the first row whose value of `c` the map marks bad."""
        return self._one(f"SELECT src._ord, src.{c} FROM src JOIN {parquet_scan(gold_map)} AS gm ON src.{c} = gm.raw "
                         "WHERE gm.bad ORDER BY src._ord LIMIT 1")

    def items_with_choices(self, columns: str, choices: str, gold: str | None,
                           batch_rows: int) -> pa.RecordBatchReader:
        """The item columns with raw_choices and raw_gold, streamed (not in source order)."""
        return self.con.sql(f"SELECT {columns}, {choices} AS raw_choices, {gold or 'NULL'} AS raw_gold, "
                            "src._ord AS _ord FROM src").to_arrow_reader(batch_rows)
