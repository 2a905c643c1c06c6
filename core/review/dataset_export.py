"""Export of the labeled dataset with provenance columns.

Provenance per row: label source (teacher, reviewer, gold), reviewer and verdict, teacher
model, prompt template version, and the cost of the teacher answer. Files are written to a
temporary name and renamed, so a failed export never leaves a half-written file.
"""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from pathlib import Path

from core.db import Store
from core.kernel.errors import AppError
from core.kernel.formats import is_duckdb_file, refuse_existing

FORMATS = ("jsonl", "csv", "parquet", "hf")
# The columns an export writes besides the input fields (core.db.items: the export rows).
PROVENANCE = ("row_id", "split", "choices", "gold", "label", "rationale", "teacher_label", "teacher_rationale", "flag",
              "label_source", "reviewed", "reviewer", "verdict", "verdict_reason", "row_version", "teacher_confidence",
              "teacher_model", "template_version", "template_hash", "teacher_source", "teacher_cost_usd")


LEFT_OUT_WHY = {"unlabeled": "not answered by the teacher yet", "flagged": "the answer did not parse",
                "error": "the teacher call failed", "labeled": "no label"}


def _input_columns(store: Store, project: str) -> list[tuple[str, str]]:
    """(column, input field): one column per input field, named after it (`input_<field>` when
    the name is taken by a provenance column)."""
    return [(field if field not in PROVENANCE else f"input_{field}", field)
            for field in store.get_project(project).input_fields]


def left_out(store: Store, project: str) -> list[dict]:
    """What an export leaves out and why: rows without a label, by status."""
    return [{"rows": n, "status": status, "why": LEFT_OUT_WHY.get(status, status)}
            for status, n in store.rows_without_label(project).items()]


def _write(store: Store, project: str, fmt: str, path: Path) -> tuple[int, list[str]]:
    """Stream the rows from DuckDB into the file (the hf folder: through a parquet file)."""
    if fmt not in FORMATS:
        raise AppError(f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.")
    if fmt != "hf":
        return store.export_to_file(project, _input_columns(store, project), fmt, str(path))
    import pyarrow.parquet as pq
    from datasets import Dataset

    staged = path.with_name(path.name + ".parquet")
    try:
        rows, columns = store.export_to_file(project, _input_columns(store, project), "parquet", str(staged))
        Dataset(pq.read_table(staged)).save_to_disk(str(path))
    finally:
        staged.unlink(missing_ok=True)
    return rows, columns


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_destination(store: Store, path: Path, fmt: str, force: bool = False) -> None:
    """Refuse to write over the open database (or any DuckDB file, its WAL included), and over
    an existing file unless `force`: an export never destroys what it did not create."""
    db = Path(store.path).resolve()
    target = path.resolve()
    if target in (db, db.with_name(db.name + ".wal")) or target == db.parent:
        raise AppError(f"{path} is the app's database; choose another file for the export.")
    if path.is_file() and is_duckdb_file(path):
        raise AppError(f"{path} is a DuckDB database; an export never overwrites one.")
    if fmt == "hf":
        if path.exists() and (path.is_file() or any(path.iterdir())):
            raise AppError(f"{path} exists and is not an empty folder; choose a new folder for the hf export.")
    elif path.is_dir():
        raise AppError(f"{path} is a folder; give a file name for the {fmt} export.")
    else:
        refuse_existing(path, force)


def export_project(store: Store, project: str, fmt: str, out: str, force: bool = False) -> dict:
    """Write the labeled rows to `out` (a file; a folder for hf, loadable with datasets.load_from_disk)."""
    if fmt not in FORMATS:
        raise AppError(f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.")
    path = Path(out)
    check_destination(store, path, fmt, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh hidden name: never a file of the user's, and a crash leaves no half-written export
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        rows, columns = _write(store, project, fmt, tmp)
    except BaseException:
        _remove(tmp)
        raise
    if fmt == "hf" and path.exists():
        path.rmdir()
    tmp.replace(path)
    return {"project": project, "rows": rows, "format": fmt, "path": str(path),
            "columns": columns, "left_out": left_out(store, project)}


def export_bytes(store: Store, project: str, fmt: str, tmp_dir: str) -> tuple[str, bytes]:
    """(file name, content) for a browser download; the hf folder comes zipped."""
    from core.kernel.names import check_project_name, inside

    stem = check_project_name(project)  # the name becomes a file name: no separators, no '..'
    name = f"{stem}.{fmt}" if fmt != "hf" else f"{stem}-hf"
    out = inside(Path(tmp_dir), name)
    export_project(store, project, fmt, str(out))
    if fmt != "hf":
        return name, out.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(out.rglob("*")):
            if file.is_file():
                zf.write(file, f"{name}/{file.relative_to(out)}")
    return f"{name}.zip", buffer.getvalue()
