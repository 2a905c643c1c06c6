"""A labeling job while other processes open the same DuckDB file.

Labels --rows rows as a background job against the fake server (10 ms latency), side by side:

  alone        nothing else opens the file
  app tabs     three app processes read without pause (the queue, the counts, the jobs), holding
               the file as the app does (0.3 s past the last query, let go when a job waits)
  notebook     one process that opens the file with plain duckdb, holds it 2 s, closes it for 0.5 s
               (a notebook cell or the duckdb shell: it does not know the app's protocol)

and prints rows per second and each case's ratio to "alone".

    .venv/bin/python bench/contention.py [--rows 300]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import jobs
from core.db import Store
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, many_tickets

APP_TAB = """
import sys
from core.db import Store
store = Store(sys.argv[1], hold_s=0.3)
while True:
    store.review_page("tickets", ["all"], page=0)
    store.count_items("tickets")
    store.list_jobs("tickets")
"""

NOTEBOOK = """
import sys, time, duckdb
while True:
    try:
        con = duckdb.connect(sys.argv[1])
    except duckdb.IOException:
        time.sleep(0.05)
        continue
    con.execute("SELECT count(*) FROM items").fetchall()
    time.sleep(2.0)
    con.close()
    time.sleep(0.5)
"""


def run_case(rows: int, others: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        many_tickets(store, rows)
        fake = FakeAnthropic(responder=correct_responder, latency_s=0.01).start()
        procs = [subprocess.Popen([sys.executable, "-c", code, str(store.path)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for code in others]
        try:
            time.sleep(1.0 if others else 0)
            os.environ["ANTHROPIC_BASE_URL"] = fake.url
            started = time.monotonic()
            job_id = jobs.start_job(store, "tickets", "label", {"concurrency": 4}, env={"ANTHROPIC_API_KEY": "k"})
            job = jobs.wait(store, job_id, timeout_s=1800)
            seconds = time.monotonic() - started
        finally:
            for p in procs:
                p.kill()
                p.wait()
            fake.stop()
        labeled = store.count_items("tickets")["by_status"].get("labeled", 0)
        return {"status": job["status"], "labeled": labeled, "seconds": round(seconds, 1),
                "rows_per_s": round(labeled / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    cases = {"alone": [], "app tabs": [APP_TAB] * 3, "notebook": [NOTEBOOK]}
    results = {}
    for name, others in cases.items():
        results[name] = run_case(args.rows, others)
        print(f"{name:9} {results[name]}", flush=True)
    base = results["alone"]["rows_per_s"]
    for name, r in results.items():
        r["ratio_to_alone"] = round(r["rows_per_s"] / base, 2) if base else None
        print(f"{name:9} {r['rows_per_s']:6.1f} rows/s  = {r['ratio_to_alone']:.2f}x alone", flush=True)
    print(json.dumps({"bench": "contention", "rows": args.rows, "cases": results}))


if __name__ == "__main__":
    main()
