"""Export of the labeled dataset with provenance columns.

Provenance per row: label source (teacher, reviewer, gold), reviewer and verdict, teacher
model, prompt template version, and the cost of the teacher answer. Files are written to a
temporary name and renamed, so a failed export never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

from core.db import Store
from core.errors import AppError

FORMATS = ("jsonl", "csv", "parquet", "hf")


def _frame(store: Store, project: str):
    store.get_project(project)
    frame = store.export_frame(project)
    for column in ("inputs", "choices"):  # JSON text in DuckDB; structured in every export
        frame[column] = frame[column].map(lambda v: json.loads(v) if isinstance(v, str) else v)
    return frame


def _write(frame, fmt: str, path: Path) -> None:
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False, date_format="iso")
    elif fmt == "csv":
        flat = frame.copy()
        for column in ("inputs", "choices"):
            flat[column] = flat[column].map(lambda v: json.dumps(v, ensure_ascii=False) if v is not None else None)
        flat.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "hf":
        from datasets import Dataset

        Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(path))
    else:
        raise AppError(f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def export_project(store: Store, project: str, fmt: str, out: str) -> dict:
    """Write the labeled rows to `out` (a file; a folder for hf, loadable with datasets.load_from_disk)."""
    if fmt not in FORMATS:
        raise AppError(f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.")
    frame = _frame(store, project)
    path = Path(out)
    if fmt == "hf" and path.exists() and (path.is_file() or any(path.iterdir())):
        raise AppError(f"{path} exists and is not an empty folder; choose a new folder for the hf export.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    _remove(tmp)
    try:
        _write(frame, fmt, tmp)
    except BaseException:
        _remove(tmp)
        raise
    if fmt == "hf" and path.exists():
        path.rmdir()
    tmp.replace(path)
    return {"project": project, "rows": len(frame), "format": fmt, "path": str(path),
            "columns": list(frame.columns)}


def export_bytes(store: Store, project: str, fmt: str, tmp_dir: str) -> tuple[str, bytes]:
    """(file name, content) for a browser download; the hf folder comes zipped."""
    name = f"{project}.{fmt}" if fmt != "hf" else f"{project}-hf"
    out = Path(tmp_dir) / name
    export_project(store, project, fmt, str(out))
    if fmt != "hf":
        return name, out.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(out.rglob("*")):
            if file.is_file():
                zf.write(file, f"{name}/{file.relative_to(out)}")
    return f"{name}.zip", buffer.getvalue()
