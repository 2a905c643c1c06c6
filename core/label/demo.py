"""The bundled demo project: sample tickets plus a recorded demo teacher.

The recorded responses are loaded into the same response cache that live calls fill,
and the demo is labeled by the normal teacher run, which finds every request in the
cache: no API key, no network, no spend."""

from __future__ import annotations

import json
from pathlib import Path

from core.db import Store, TeacherWrites
from core.ingest.files import ColumnMapping, import_source, open_file
from core.label.teacher import DEMO_SOURCE, TeacherRun

DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


def demo_spec() -> dict:
    return json.loads((DEMO_DIR / "project.json").read_text())


def load_recorded_responses(store: Store, path: Path | None = None) -> int:
    path = path or DEMO_DIR / "teacher_responses.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    writes = TeacherWrites(cache=[{
        "request_hash": rec["request_hash"], "model": rec["request"]["model"], "request": json.dumps(rec["request"]),
        "response": json.dumps(rec["response"]), "input_tokens": rec["response"].get("usage", {}).get("input_tokens"),
        "output_tokens": rec["response"].get("usage", {}).get("output_tokens"), "cost_usd": 0.0, "source": DEMO_SOURCE,
    } for rec in records])
    store.write_teacher("", writes)
    return len(records)


def ensure_demo(store: Store) -> str:
    """Create and label the demo project once; later calls do nothing."""
    spec = demo_spec()
    name = spec["project"]
    if name in store.list_projects():
        return name
    mapping = ColumnMapping(input_fields=spec["input_fields"], id_field=spec["id_field"],
                            label_field=spec["label_field"], labels=spec["labels"])
    load_recorded_responses(store)
    import_source(store, open_file(DEMO_DIR / spec["file"]), name, spec["task"], mapping,
                  template=spec["template"], model=spec["model"])
    store.update_project(name, max_tokens=spec["max_tokens"], demo_teacher=True)
    TeacherRun(store, name).run()
    return name
