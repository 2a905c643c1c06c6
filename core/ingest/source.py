"""One opened source: its columns, rows, a preview, and validated items.

A source is read by a private in-memory DuckDB (core.db.import_scan: one thread, memory-capped,
spilling to a temporary folder), never as one Python object per row:

- rows are counted (and refused over the limit) first; a text file is then parsed once into a
  Parquet stage (every column as text, plus `_ord`, the record's 1-based place in the file,
  which every later step keeps so that no step has to keep order);
- streaming aggregates (longest cell, total text) before anything is materialised;
- rows are validated in SQL (missing columns, empty ids and inputs, repeated ids: the first
  offending record wins), gold labels are normalised over distinct values, or in chunks when they
  depend on the row's choices;
- the items go to a temporary Parquet file (core.ingest.items.Items).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.db.import_scan import ImportScan
from core.ingest.items import ITEMS_SCHEMA, Items
from core.ingest.limits import BATCH_BYTES, ImportLimits, size_text
from core.kernel.errors import DataImportError
from core.kernel.formats import ChoicesError, cell_text, parse_choices
from core.kernel.tasks import TaskType, get_task

if TYPE_CHECKING:
    from core.ingest.files import ColumnMapping

_CHOICES_PROBLEM = {"few": "need a list of at least two choices.", "empty": "a choice is empty."}


class _OutOfMemory(DataImportError):
    """DuckDB ran out of the import's memory cap (see Source._grow_on_oom)."""


def _choices(value: Any, lineno: int, col: str) -> list[str]:
    try:
        return parse_choices(value)
    except ChoicesError as exc:
        problem = (f"choices are not a valid JSON list ({exc.detail})." if exc.kind == "json"
                   else _CHOICES_PROBLEM[exc.kind])
        raise DataImportError(f"line {lineno}, column {col!r}: {problem}") from exc


def _relocated(exc: DataImportError, ordinal: int, where: str) -> DataImportError:
    """Task and choice checks say 'line N' with the number they were given (the record's ordinal);
    say where the record really is (a physical line, or 'row N')."""
    msg, prefix = str(exc), f"line {ordinal}"
    return DataImportError(where + msg[len(prefix):] if msg.startswith(prefix) else msg)


def _uses_golds(kind: TaskType) -> bool:
    # Only task types with their own label_set look at the gold values; skip collecting them for
    # the others (a numeric column can hold a million distinct values).
    return type(kind).label_set is not TaskType.label_set


def _try_gold(kind: TaskType, raw: str, name: str) -> str | None:
    try:
        return kind.normalize_gold(raw, None, 0, name)
    except DataImportError:
        return None  # the first row holding it is found and reported afterwards


def _remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


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
        self.scan = ImportScan(self.memory_mb, self._tmp / "spill")
        self._lines: Callable[[], Iterable[int]] | None = None  # physical line of each record
        self._diagnose: Callable[[], None] | None = None  # raises a precise error for a parse failure
        self._hide: list[str] = []  # temporary paths replaced by the name in messages
        self._batch_rows = 4096  # rows per chunk that Python sees; fewer for wide rows (see _prescan)
        self._growth = 1  # how many times the memory cap was doubled (the insert's grows alike)

    # -- lifetime
    def close(self) -> None:
        self.scan.close()
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- setup
    def _attach(self, scan: str, drop_null_rows: bool = False, stage: bool = True) -> None:
        """View `raw` over a file scan, then `src` (see _finish). Parquet is scanned in place each
        time (cheap, and never a copy of a bomb)."""
        with self._errors():
            described = self.scan.describe(scan)
            self.columns = [name for name, _ in described]
            self.scan.attach_scan(scan, len(described))
        self._finish([dtype for _, dtype in described], {}, drop_null_rows, stage)

    def _attach_arrow(self, table: pa.Table, label_names: dict[str, list[str]]) -> None:
        """An Arrow table (a memory-mapped dataset): scanned in place, zero-copy."""
        import numpy as np

        self.columns = list(table.column_names)
        if len(set(self.columns)) != len(self.columns):
            raise DataImportError(f"{self.name} repeats a column name.")
        with self._errors():
            types = self.scan.attach_arrow(table, pa.array(np.arange(1, table.num_rows + 1)))
        self._finish(types, label_names)

    def _finish(self, types: list[str], label_names: dict[str, list[str]], drop_null_rows: bool = False,
                stage: bool = False) -> None:
        """View `src`: every column as text (c0..cN) and _ord. Rows are counted (and refused over
        the limit) first; a text file is then parsed once into a Parquet stage, so that the
        parser's buffers are gone before the checks' aggregates need memory, and every later pass
        reads compact columns instead of parsing again."""
        select, where = self.scan.text_select(self.columns, types, label_names, drop_null_rows)
        self.rows = self._grow_on_oom(lambda: self.scan.count_raw(where))
        if self.rows == 0 and self._diagnose is not None:
            self._diagnose()  # DuckDB reads a file whose only record outgrows its buffer as empty: name that record
        if self.rows > self.limits.max_rows:
            raise DataImportError(f"{self.name} has {self.rows:,} rows; the limit is {self.limits.max_rows:,}.")
        if stage:
            staged = self._tmp / "stage.parquet"
            select = self._grow_on_oom(lambda: self.scan.stage(select, staged, BATCH_BYTES))
        with self._errors():
            self.scan.create_src(select)

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
                self.scan.set_memory(self.memory_mb)

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

    # -- reading
    def where(self, ordinal: int) -> str:
        """Where record `ordinal` (1-based) is: 'line N' in a CSV or JSON Lines file, else 'row N'."""
        if self._lines is not None:
            for i, line in enumerate(self._lines(), start=1):
                if i == ordinal:
                    return f"line {line}"
        return f"row {ordinal}"

    def preview(self, n: int = 10, max_chars: int = 300) -> pd.DataFrame:
        """The first n rows as text, long cells cut."""
        with self._errors():
            return self.scan.preview(self.columns, n, max_chars)

    def records(self) -> Iterator[tuple[int, dict]]:
        """(line or row number, record) for every row, null cells left out. One dict per row: for
        small sources only (teacher completions)."""
        lines = iter(self._lines()) if self._lines is not None else None
        seen, line = 0, None
        with self._errors():
            for *values, ordinal in self.scan.rows_in_order():
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
        out = Items(self.limits.insert_memory_mb * self._growth, self.limits.max_memory_mb)
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
        """Streaming aggregates over the mapped columns, before anything is materialised. Stored
        byte lengths first; exact characters are counted only for a suspect column."""
        names = list(col)
        with self._errors():
            lengths, text_bytes = self.scan.lengths([col[n] for n in names])
        self._batch_rows = max(1, min(4096, BATCH_BYTES // max(1, sum(n or 0 for n in lengths))))
        limit = self.limits.max_field_chars
        for name, length in zip(names, lengths):
            if (length or 0) > limit:
                self._refuse_long_field(name, col[name], limit)
        if text_bytes > self.limits.max_text_bytes:
            raise DataImportError(f"The mapped columns hold {size_text(text_bytes)} of text; the limit is "
                                  f"{size_text(self.limits.max_text_bytes)}.")

    def _refuse_long_field(self, name: str, c: str, limit: int) -> None:
        with self._errors():
            row = self.scan.first_longer(c, limit)
        if row:
            raise DataImportError(f"{self.where(row[0])}, column {name!r}: {row[1]:,} characters; the limit is "
                                  f"{limit:,} per field.")

    def _check_rows(self, mapping: ColumnMapping, col: dict[str, str]) -> None:
        """Empty ids and inputs, repeated ids: the first offending row wins, and within a row the
        order the checks had when rows were read one by one (id, repeated id, inputs)."""
        checks: list[tuple[str, str]] = []  # (SQL column, message after the location)
        if mapping.id_field:
            checks.append((col[mapping.id_field], f", column {mapping.id_field!r}: empty id."))
        checks += [(col[f], f", column {f!r}: empty input text.") for f in mapping.input_fields]
        with self._errors():
            found = self.scan.first_blank([c for c, _ in checks])
        problems = [(o, float(rank), msg) for rank, (o, (_, msg)) in enumerate(zip(found, checks)) if o is not None]
        if mapping.id_field:
            problems += self._repeated_id(col[mapping.id_field])
        if problems:
            ordinal, _, message = min(problems)
            raise DataImportError(self.where(ordinal) + message)

    def _repeated_id(self, c: str) -> list[tuple[int, float, str]]:
        with self._errors():
            row = self.scan.first_repeat(c)
        if row is None:
            return []
        return [(row[0], 0.5, f": id {row[1]!r} repeats {self.where(row[2])}.")]  # after an empty id

    def _item_columns(self, mapping: ColumnMapping, col: dict[str, str], default_split: str) -> str:
        return self.scan.item_columns(col[mapping.id_field] if mapping.id_field else None,
                                      col[mapping.split_field] if mapping.split_field else None, default_split,
                                      {f: col[f] for f in mapping.input_fields})

    def _write_with_gold_map(self, kind: TaskType, mapping: ColumnMapping, col: dict[str, str],
                             default_split: str, path: Path) -> list[str]:
        """Gold labels that depend on nothing else: normalised once per distinct value, joined back."""
        gold, gold_map, golds = None, None, []
        if mapping.label_field:
            gold = col[mapping.label_field]
            gold_map = self._gold_map(kind, mapping.label_field, gold)
            if _uses_golds(kind):
                with self._errors():
                    golds = self.scan.mapped_norms(gold_map)
        with self._errors():
            self.scan.write_items_mapped(self._item_columns(mapping, col, default_split), gold, gold_map, path,
                                         BATCH_BYTES)
        return golds

    def _gold_map(self, kind: TaskType, name: str, c: str) -> Path:
        """A Parquet file (raw, norm, bad) over the distinct non-blank gold values, written in chunks;
        refuses at the first row whose gold the task rejects."""
        path = self._tmp / "gold_map.parquet"
        schema = pa.schema([("raw", pa.string()), ("norm", pa.string()), ("bad", pa.bool_())])
        any_bad = False
        with self._errors(), pq.ParquetWriter(path, schema) as writer:
            for batch in self.scan.distinct_values(c, self._batch_rows):
                raws = batch.column(0).to_pylist()
                norms = [_try_gold(kind, raw, name) for raw in raws]
                any_bad = any_bad or None in norms
                writer.write_table(pa.table({"raw": raws, "norm": norms, "bad": [n is None for n in norms]}, schema))
        if any_bad:
            self._refuse_first_bad_gold(kind, name, c, path)
        return path

    def _refuse_first_bad_gold(self, kind: TaskType, name: str, c: str, gold_map: Path) -> None:
        with self._errors():
            ordinal, raw = self.scan.first_bad_mapped(c, gold_map)
        try:
            kind.normalize_gold(raw, None, ordinal, name)
        except DataImportError as exc:
            raise _relocated(exc, ordinal, self.where(ordinal)) from None

    def _write_by_row(self, kind: TaskType, mapping: ColumnMapping, col: dict[str, str],
                      default_split: str, path: Path) -> list[str]:
        """Choices (and a gold that names one of them) need every row in Python: in chunks. The
        stream need not be in source order, so the earliest bad row is kept and reported at the end."""
        gold = col[mapping.label_field] if mapping.label_field else None
        golds: set[str] = set()
        first_bad: list[tuple[int, DataImportError]] = []
        with self._errors(), pq.ParquetWriter(path, ITEMS_SCHEMA) as writer:
            for batch in self.scan.items_with_choices(self._item_columns(mapping, col, default_split),
                                                      col[mapping.choices_field], gold, self._batch_rows):
                rows = batch.to_pydict()
                choices, gold_out = self._choices_and_gold(kind, mapping, rows, first_bad)
                if _uses_golds(kind):
                    golds.update(g for g in gold_out if g is not None)
                writer.write_table(pa.table({"row_id": rows["row_id"], "split": rows["split"], "inputs": rows["inputs"],
                                             "choices": choices, "gold": gold_out, "_ord": rows["_ord"]}, ITEMS_SCHEMA))
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
                gold = cell_text(raw_gold)
                if gold is not None:
                    gold = kind.normalize_gold(gold, choices, ordinal, mapping.label_field)
            except DataImportError as exc:
                if not first_bad or ordinal < first_bad[0][0]:
                    first_bad[:] = [(ordinal, exc)]
                choices, gold = None, None
            choices_out.append(json.dumps(choices, ensure_ascii=False) if choices else None)
            gold_out.append(gold)
        return choices_out, gold_out
