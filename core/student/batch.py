"""A whole file through a saved student: rows in, predictions out.

    predict_file(student, "rows.csv", "predictions.parquet", chunk_rows=256)

Files (CSV/TSV, JSON Lines, Parquet) stream in chunks of `chunk_rows`: Parquet and CSV through
pyarrow's batch readers (every CSV column read as text), JSON Lines a line at a time (pyarrow's
JSON reader refuses a column whose type changes between rows, e.g. ids 1 and "b2"). Only one
chunk is held at a time. The output goes to a hidden temporary file that is renamed when
complete: a failure leaves nothing half-written, and an existing file is replaced only with
`force`.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from core.kernel.errors import AppError, ConfigError, NotFound
from core.kernel.formats import format_of, is_duckdb_file, refuse_existing, suffixes_of
from core.student.predict import CHOICES_COLUMN, Student, load_student_model, saved_train_config

ID_COLUMNS = ("row_id", "id")      # the first of these a file has is carried into the output
INPUT_FORMATS = ("csv", "tsv", "jsonl", "parquet")
OUTPUT_FORMATS = ("csv", "jsonl", "parquet")
_CSV_BLOCK = 4 * 1024 * 1024       # pyarrow's CSV block: the memory a CSV read holds besides the chunk


# ---- what may be read and written (the rules of core.kernel.formats) ---------
def _format_of(path: Path, formats: tuple[str, ...], what: str) -> str:
    """The format a file name's suffix names, if `formats` accepts it."""
    fmt = format_of(path, formats)
    if fmt is None:
        raise AppError(f"{path.name}: the {what} must end in one of {', '.join(suffixes_of(formats))}.")
    return fmt


def check_output(out: Path, source: Path | None = None, force: bool = False) -> None:
    """Refuse to write over the file being read, a folder, any DuckDB file, or (without
    `force`) an existing file."""
    if source is not None and out.resolve() == source.resolve():
        raise AppError(f"{out} is the file being read; choose another output file.")
    if out.is_dir():
        raise AppError(f"{out} is a folder; give a file name for the predictions.")
    if out.is_file() and is_duckdb_file(out):
        raise AppError(f"{out} is a DuckDB database; predictions never overwrite one.")
    refuse_existing(out, force)


# ---- reading and writing in chunks --------------------------------------------------------
class _Reader:
    """One input file read in chunks of rows (dicts of the needed columns)."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.columns = self._columns()

    def _columns(self) -> list[str]:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        if self.fmt in ("csv", "tsv"):
            try:
                with open(self.path, newline="", encoding="utf-8-sig") as fh:
                    header = next(csv.reader(fh, delimiter="\t" if self.fmt == "tsv" else ","), None)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise AppError(f"{self.path.name}: cannot read the header row ({exc}); is it a UTF-8 CSV file?") from exc
            if not header:
                raise AppError(f"{self.path.name} is empty: no header row.")
            return header
        for _, record in self._records(limit=1):
            return list(record)
        raise AppError(f"{self.path.name} holds no JSON lines.")

    def total(self) -> int | None:
        """Rows in the file, counted without holding them (a cheap pass next to the model)."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        if self.fmt in ("csv", "tsv"):
            return sum(b.num_rows for b in self._csv_batches(self.columns[:1]))
        with open(self.path, "rb") as fh:
            return sum(1 for line in fh if line.strip())

    def _csv_batches(self, columns: list[str]):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(
            self.path, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8"),
            parse_options=pcsv.ParseOptions(delimiter="\t" if self.fmt == "tsv" else ",", newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                include_columns=columns, strings_can_be_null=False))
        try:
            yield from reader
        except pa.ArrowInvalid as exc:
            raise AppError(f"{self.path.name} is not a valid CSV file: {exc}") from exc

    def _records(self, limit: int | None = None) -> Iterator[tuple[int, dict]]:
        try:
            yield from self._json_records(limit)
        except UnicodeDecodeError as exc:
            raise AppError(f"{self.path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc

    def _json_records(self, limit: int | None) -> Iterator[tuple[int, dict]]:
        with open(self.path, encoding="utf-8-sig") as fh:
            n = 0
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AppError(f"{self.path.name}, line {lineno}: not valid JSON ({exc.msg}).") from exc
                if not isinstance(record, dict):
                    raise AppError(f"{self.path.name}, line {lineno}: each line must be a JSON object.")
                yield lineno, record
                n += 1
                if limit is not None and n >= limit:
                    return

    def chunks(self, columns: list[str], chunk_rows: int) -> Iterator[list[dict]]:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pylist()
            return
        if self.fmt == "jsonl":
            chunk: list[dict] = []
            for _, record in self._records():
                chunk.append({c: record.get(c) for c in columns})
                if len(chunk) == chunk_rows:
                    yield chunk
                    chunk = []
        else:
            chunk = []
            for batch in self._csv_batches(columns):
                for record in batch.to_pylist():
                    chunk.append(record)
                    if len(chunk) == chunk_rows:
                        yield chunk
                        chunk = []
        if chunk:
            yield chunk


class _Writer:
    """Predictions written chunk by chunk to a temporary file."""

    def __init__(self, path: Path, fmt: str, columns: list[str]):
        self.path, self.fmt, self.columns = path, fmt, columns
        self._fh = self._pq = None
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([(c, pa.float64() if c in ("confidence", "student_confidence") else pa.string()) for c in columns])
            self._pq = pq.ParquetWriter(str(path), self._schema)
        else:
            self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
            if fmt == "csv":
                self._csv = csv.writer(self._fh)
                self._csv.writerow(columns)

    def write(self, rows: list[dict]) -> None:
        if self._pq is not None:
            import pyarrow as pa

            self._pq.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        elif self.fmt == "csv":
            self._csv.writerows([[r.get(c) for c in self.columns] for r in rows])
        else:
            self._fh.writelines(json.dumps({c: r.get(c) for c in self.columns}, ensure_ascii=False) + "\n" for r in rows)

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ---- the file's predictions -------------------------------------------------------------
def predict_file(model_dir_or_student: str | Path | Student, path: str | Path, out: str | Path, *,
                 rationale: bool = False, chunk_rows: int = 256, input_columns: list[str] | None = None,
                 force: bool = False, on_progress: Callable[[int, int | None], None] | None = None,
                 batch_size: int = 16, id_column: str | None = None, keep_inputs: bool = False,
                 cascade=None) -> dict:
    """Predict every row of a CSV/TSV, JSON Lines or Parquet file into `out` (CSV, JSON Lines or
    Parquet, by its extension): the file's id column under its own name (`id_column`, else the
    project's own id column when the file has it, else `row_id` or `id`), the input columns when
    `keep_inputs`, `label`, `confidence`, and `rationale` when asked; with a `cascade`
    (core.student.cascade.Cascade), rows under its threshold are the teacher's, and
    `answered_by`, `student_confidence` and `teacher_error` say so (`confidence` is empty
    where the teacher answered). Streams `chunk_rows` rows at a time; `on_progress(done, total)`
    after each chunk. Returns rows, seconds, rows_per_s and out (seconds count reading,
    predicting and writing; loading the model is `load_seconds`)."""
    source, dest = Path(path), Path(out)
    if not source.is_file():
        raise NotFound(f"No such file: {path}")
    in_fmt = _format_of(source, INPUT_FORMATS, "input file")
    out_fmt = _format_of(dest, OUTPUT_FORMATS, "output file")
    if chunk_rows < 1:
        raise ConfigError("chunk_rows must be at least 1.")
    check_output(dest, source, force)
    reader = _Reader(source, in_fmt)  # reads the header: a bad file is refused before the model loads
    given = model_dir_or_student
    if isinstance(given, Student):
        task, known_fields, project_id = given.task, given.input_fields, given.id_field
    else:  # the folder's saved config is enough to check the file before the model loads
        if not Path(given).is_dir():
            raise NotFound(f"No model folder at {given}.")
        config = saved_train_config(Path(given))
        task, known_fields, project_id = config.get("task"), config.get("input_fields"), config.get("id_field")
    fields = list(input_columns or known_fields or [])
    if not fields:
        raise ConfigError("This model folder does not name its input fields (a run saved before they were recorded); "
                          "give the input columns (--input-columns).")
    missing = [c for c in fields if c not in reader.columns]
    if id_column is not None and id_column not in reader.columns:
        missing.append(id_column)
    if task == "multiple-choice" and CHOICES_COLUMN not in reader.columns:
        missing.append(CHOICES_COLUMN)
    if missing:
        raise AppError(f"{source.name} has no column {', '.join(repr(m) for m in missing)} (the model reads "
                       f"{', '.join(fields)}{' and choices' if task == 'multiple-choice' else ''}); "
                       f"its columns: {', '.join(reader.columns[:30])}.")
    started = time.perf_counter()
    student = given if isinstance(given, Student) else load_student_model(given)
    load_seconds = time.perf_counter() - started
    id_col = id_column or next((c for c in (project_id, *ID_COLUMNS) if c and c in reader.columns), None)
    use_choices = CHOICES_COLUMN in reader.columns and student.task in (None, "multiple-choice")
    needed = list(dict.fromkeys(([id_col] if id_col else []) + fields + ([CHOICES_COLUMN] if use_choices else [])))
    own = {"label", "rationale", "confidence", "answered_by", "student_confidence", "teacher_error"}
    if id_col in own:
        raise AppError(f"The id column {id_col!r} would clash with the predictions' own {id_col!r} column.")
    kept = [f for f in fields if f != id_col] if keep_inputs else []
    if own & set(kept):
        raise AppError(f"An input column named {sorted(own & set(kept))[0]!r} would clash with the predictions' own "
                       "columns; predict without keeping the inputs.")
    columns = (([id_col] if id_col else []) + kept + ["label", "confidence"] + (["rationale"] if rationale else [])
               + (["answered_by", "student_confidence", "teacher_error"] if cascade is not None else []))

    started = time.perf_counter()
    total = reader.total() if on_progress else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")  # hidden, never a user's file
    writer = _Writer(tmp, out_fmt, columns)
    done = 0
    try:
        for chunk in reader.chunks(needed, chunk_rows):
            texts, choices = [], []
            for i, row in enumerate(chunk):
                where = f"{source.name}, row {done + i + 1}"
                try:
                    texts.append(student.input_text(row, fields))
                    choices.append(student.row_choices(row) if use_choices else None)
                except AppError as exc:
                    raise type(exc)(f"{where}: {exc}") from exc
            predictions = (cascade.answer(chunk, rationale=rationale, batch_size=batch_size) if cascade is not None
                           else student.predict(texts, rationale=rationale, batch_size=batch_size, choices=choices))
            rows = []
            for row, p in zip(chunk, predictions):
                rec = {"label": p["label"], "confidence": p["confidence"]}
                if cascade is not None:
                    rec.update(answered_by=p["answered_by"], student_confidence=p["student_confidence"],
                               teacher_error=p["teacher_error"])
                if id_col:
                    rec[id_col] = None if row.get(id_col) is None else str(row[id_col])
                for f in kept:
                    rec[f] = row.get(f)
                if rationale:
                    rec["rationale"] = p["rationale"]
                rows.append(rec)
            writer.write(rows)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
        writer.close()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if dest.exists() and not force:  # appeared while we were predicting
        tmp.unlink(missing_ok=True)
        raise AppError(f"{dest} appeared while predicting; pass --force to replace it.")
    os.replace(tmp, dest)
    seconds = time.perf_counter() - started
    return {"rows": done, "seconds": round(seconds, 3), "rows_per_s": round(done / seconds, 2) if seconds else None,
            "out": str(dest), "format": out_fmt, "columns": columns, "model_format": student.format,
            "load_seconds": round(load_seconds, 3),
            **({} if cascade is None else {"cascade": {"threshold": cascade.threshold, **cascade.counts,
                                                       "teacher_spent_usd": cascade.spent_usd(),
                                                       "teacher_calls_job": cascade.job_id}})}
