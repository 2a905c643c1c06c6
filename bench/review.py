"""Review at scale: 100,000 annotated rows in DuckDB.

Prints the import time, median and p95 of a filtered queue-page query, the time to save
one edit, the time to render the Review page through Streamlit's AppTest, and the median
rerun latency of each keyboard action (one key press is one rerun).

    .venv/bin/python bench/review.py [--rows 100000]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd

from core.review import rules as review
from core.db import Store

LABELS = ["billing", "technical", "shipping", "account", "other"]


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "row_id": [str(i) for i in range(rows)],
        "split": ["train"] * rows,
        "inputs": [json.dumps({"text": f"Ticket {i}: customer writes about {LABELS[i % 5]} issue number {i * 7919 % 100000}"})
                   for i in range(rows)],
        "choices": [None] * rows,
        "gold": [LABELS[i % 5] for i in range(rows)],
    })


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def action_latencies(AppTest, project: str, labels: list[str], repeats: int = 8) -> dict[str, list[float]]:
    """The rerun each keyboard action costs, on the Review page in focus mode (the reviewer's
    working view): A accept & next, a label key (save & next), X, F, U undo, J next, K previous."""
    at = AppTest.from_file(str(REPO / "pages/4_Review.py"), default_timeout=120)
    at.query_params["project"] = project
    at.run()
    at.text_input(key="reviewer_name").set_value("bench").run()
    at.toggle(key="focus_mode").set_value(True).run()
    keys = [("A  accept & next", "quick_accept"), ("2  label & next", "pick_2"), ("X  reject rationale & next",
            "quick_reject"), ("F  flag & next", "quick_flag"), ("U  undo", "undo"), ("J  next row", "next_row"),
            ("K  previous row", "prev_row")]
    out: dict[str, list[float]] = {name: [] for name, _ in keys}
    for _ in range(repeats):
        for name, key in keys:
            button = next(b for b in at.button if b.key == key)
            start = time.perf_counter()
            button.click().run()
            out[name].append(time.perf_counter() - start)
            assert not at.exception, at.exception
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    db = Path(tmp) / "review.duckdb"
    store = Store(db)
    data = frame(args.rows)
    start = time.perf_counter()
    store.import_items("big", "classification", ["text"], LABELS, data, "Classify {text} into {labels}",
                       "claude-haiku-4-5")
    import_s = time.perf_counter() - start
    with store.transaction() as con:  # the teacher's answers, as a labeling run would leave them
        con.execute("UPDATE items SET status = CASE WHEN idx % 40 = 0 THEN 'flagged' ELSE 'labeled' END, "
                    "flag = CASE WHEN idx % 40 = 0 THEN 'ambiguous' END, "
                    "teacher_label = CASE WHEN idx % 10 = 0 THEN 'other' ELSE gold END, "
                    "label = CASE WHEN idx % 10 = 0 THEN 'other' ELSE gold END, "
                    "rationale = 'Because the ticket mentions ' || gold || ' in sentence ' || idx, "
                    "teacher_rationale = 'Because the ticket mentions ' || gold || ' in sentence ' || idx, "
                    "label_source = 'teacher' WHERE project = 'big'")

    queries = [
        lambda: store.review_page("big", ["unreviewed", "teacher ≠ gold"], page=3),
        lambda: store.review_page("big", ["parse errors"], search="billing", page=1),
        lambda: store.review_page("big", ["all"], sort="longest rationale", page=200),
        lambda: store.review_page("big", ["unreviewed"], page=1000),
    ]
    times = []
    for _ in range(10):
        for q in queries:
            times += timed(q, 1)
    def row_id() -> str:
        return str(int(time.perf_counter() * 1e6) % args.rows)

    def save_one(on: Store) -> None:  # as the CLI saves: core.review.rules reads the row and its project itself
        review.save_review(on, "big", row_id(), "bench", "billing", "edited")

    cold = timed(lambda: save_one(store), 20)  # opens and closes the file itself (CLI, jobs)
    app_store = Store(db, hold_s=0.3)  # the app's store: the rerun that saves has the file open already

    def save_in_rerun() -> None:
        spec = app_store.get_project("big")  # the rerun's first query (project picker) opens the file
        row = app_store.get_item("big", row_id())  # the row the page shows in its form
        start = time.perf_counter()
        review.save_review(app_store, "big", row["row_id"], "bench", "billing", "edited", row=row, spec=spec)
        save.append(time.perf_counter() - start)
        time.sleep(0.5)  # idle past the hold: the next rerun opens the file again

    save: list[float] = []
    for _ in range(20):
        save_in_rerun()

    os.environ["DISTILL_DB"] = str(db)
    os.chdir(REPO)
    from streamlit.testing.v1 import AppTest

    def render():
        at = AppTest.from_file(str(REPO / "pages/4_Review.py"), default_timeout=120)
        at.query_params["project"] = "big"
        at.run()
        assert not at.exception, at.exception

    render()  # first run imports streamlit modules
    renders = timed(render, 5)
    actions = action_latencies(AppTest, "big", LABELS)

    result = {
        "rows": args.rows, "import_s": round(import_s, 2),
        "queue_p50_ms": round(1000 * statistics.median(times), 1), "queue_p95_ms": round(1000 * p95(times), 1),
        "save_ms": round(1000 * statistics.median(save), 1), "save_cold_ms": round(1000 * statistics.median(cold), 1),
        "render_s": round(statistics.median(renders), 2),
        "action_rerun_ms": {k: round(1000 * statistics.median(v), 1) for k, v in actions.items()},
    }
    print(f"{args.rows:,} rows imported in {result['import_s']} s")
    print(f"filtered queue page: median {result['queue_p50_ms']} ms, p95 {result['queue_p95_ms']} ms "
          f"({len(times)} queries over 4 filter/sort/search mixes)")
    print(f"save one edit (audit + version check) in the app's page rerun: median {result['save_ms']} ms")
    print(f"save one edit opening and closing the file itself (CLI): median {result['save_cold_ms']} ms "
          f"({result['save_cold_ms'] / result['save_ms']:.1f}x the in-rerun save)")
    print(f"Review page render through AppTest: median {result['render_s']} s")
    print("one key press = one rerun; median rerun latency per action (AppTest, focus mode, this project):")
    for action, ms in result["action_rerun_ms"].items():
        print(f"  {action:<28} {ms:8.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
