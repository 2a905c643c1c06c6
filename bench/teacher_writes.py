"""Writing teacher results: one UPDATE per row (the first design) against the set-based
Store.write_teacher, on the same rows, measured side by side in one run.

    .venv/bin/python bench/teacher_writes.py [--rows 10000]

Prints both timings and the ratio; the last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from core.db import Store, TeacherWrites


def fresh_store(tmp: Path, name: str, rows: int) -> Store:
    store = Store(tmp / f"{name}.duckdb")
    frame = pd.DataFrame({"row_id": [str(i) for i in range(rows)], "split": "train",
                          "inputs": [json.dumps({"text": f"ticket {i}"}) for i in range(rows)],
                          "choices": None, "gold": "billing"})
    store.import_items("p", "classification", ["text"], ["billing", "shipping"], frame, "{text} {labels}", "m")
    return store


def results(rows: int) -> list[dict]:
    return [{"row_id": str(i), "status": "labeled", "label": "billing", "rationale": f"because {i}",
             "flag": None, "request_hash": f"h{i}", "source": "teacher"} for i in range(rows)]


def per_row(store: Store, rows: list[dict]) -> float:
    started = time.perf_counter()
    with store.transaction() as con:
        for r in rows:
            con.execute(
                "UPDATE items SET status = ?, teacher_label = ?, teacher_rationale = ?, flag = ?, request_hash = ?, "
                "label = ?, rationale = ?, label_source = ? WHERE project = 'p' AND row_id = ?",
                [r["status"], r["label"], r["rationale"], r["flag"], r["request_hash"], r["label"], r["rationale"],
                 r["source"], r["row_id"]],
            ).fetchall()
    return time.perf_counter() - started


def set_based(store: Store, rows: list[dict]) -> float:
    started = time.perf_counter()
    store.write_teacher("p", TeacherWrites(results=rows))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10000)
    args = parser.parse_args()
    rows = results(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = fresh_store(Path(tmp), "a", args.rows), fresh_store(Path(tmp), "b", args.rows)
        t_row, t_set = per_row(a, rows), set_based(b, rows)
        same = a.query("SELECT row_id, label, rationale FROM items ORDER BY row_id") == \
            b.query("SELECT row_id, label, rationale FROM items ORDER BY row_id")
    print(f"rows: {args.rows}")
    print(f"per-row UPDATE:      {t_row:8.3f} s")
    print(f"set-based UPDATE:    {t_set:8.3f} s")
    print(f"speedup: {t_row / t_set:.1f}x   identical result: {same}")
    print(json.dumps({"rows": args.rows, "per_row_s": round(t_row, 3), "set_based_s": round(t_set, 3),
                      "speedup": round(t_row / t_set, 1), "identical": same}))


if __name__ == "__main__":
    main()
