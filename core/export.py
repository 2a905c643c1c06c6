"""Export of the labeled dataset with provenance columns."""

from __future__ import annotations

from pathlib import Path

from core.errors import AppError
from core.store import Store


def export_project(store: Store, project: str, fmt: str, out: str) -> dict:
    store.get_project(project)
    frame = store.export_frame(project)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AppError(f"Unknown export format {fmt!r}: use jsonl, csv or parquet.")
    return {"project": project, "rows": len(frame), "format": fmt, "path": str(path)}
