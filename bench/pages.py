"""How long each page takes to render for a user: a 300-row project labeled by the teacher (the
fake server), a trained tiny student, every page rendered through Streamlit's AppTest in a fresh
process (first render: imports included, as after the app starts) and again in the same session
(a rerun: what every click costs).

    .venv/bin/python bench/pages.py [--rows 300]

The last line is one JSON object. Target: every page's first render under 3 s on this machine.
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

PAGES = ["app.py", "pages/1_Data.py", "pages/2_Prompt_and_budget.py", "pages/3_Label.py", "pages/4_Review.py",
         "pages/5_Train.py", "pages/6_Results.py", "pages/7_Try_the_student.py"]

RENDER = """
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=300)
at.query_params["project"] = "claims"
at.run()
first = time.perf_counter() - t0
assert not at.exception, at.exception
t1 = time.perf_counter()
at.run()
print(json.dumps({"first_s": round(first, 2), "rerun_s": round(time.perf_counter() - t1, 2)}))
"""


def setup(folder: Path, rows: int) -> Path:
    from dataclasses import asdict

    from core import jobs
    from core.db import Store
    from core.kernel import paths
    from core.label.teacher import label_project
    from core.train.trainer import TrainConfig
    from tests.fake_anthropic import FakeAnthropic
    from tests.helpers import correct_responder, import_csv

    db = folder / "distill.duckdb"
    store = Store(db)
    words = ["card charged twice", "app crashes", "parcel lost", "billed after cancel", "error 500", "courier late"]
    lines = ["id,text,label"] + [f"{i},Ticket {i}: {words[i % 6]} and more words about it,"
                                 f"{['billing', 'technical', 'shipping'][i % 6 % 3]}" for i in range(rows)]
    import_csv(store, "\n".join(lines) + "\n", project="claims")
    fake = FakeAnthropic(responder=correct_responder).start()
    try:
        label_project(store, "claims", api_key="k", base_url=fake.url)
    finally:
        fake.stop()
    cfg = TrainConfig(project="claims", student="tiny-random", max_steps=20, batch_size=8)
    job_id = store.create_job("claims", "train", asdict(cfg))
    store.update_job(job_id, out_dir=str(paths.job_dir(store, job_id)))
    jobs.run_job(store, job_id)
    return db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = setup(Path(tmp), args.rows)
        env = {**os.environ, "DISTILL_DB": str(db)}
        results = {}
        for page in PAGES:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", RENDER, str(ROOT / page)], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=600, check=False)
            line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            if proc.returncode != 0 or not line:
                raise SystemExit(f"{page} failed: {proc.stderr[-1500:]}")
            results[page] = json.loads(line[-1]) | {"process_s": round(time.perf_counter() - started, 2)}
            r = results[page]
            print(f"{page:32} first render {r['first_s']:5.2f} s   rerun {r['rerun_s']:5.2f} s", flush=True)
    slowest = max(results.items(), key=lambda kv: kv[1]["first_s"])
    print(f"slowest first render: {slowest[0]} {slowest[1]['first_s']} s (target < 3 s); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(json.dumps({"bench": "pages", "rows": args.rows, "pages": results}))


if __name__ == "__main__":
    main()
