"""The app shares the database with jobs: with sessions polling all the time, a job still
gets the file (the app lets go as soon as a job waits for it)."""

import json
import os
import subprocess
import sys
import threading
import time

from core.db import Store
from tests.helpers import REPO, many_tickets


def test_a_job_gets_the_file_while_five_app_sessions_poll(tmp_path, fake):
    db = tmp_path / "shared.duckdb"
    many_tickets(Store(db), 40)
    app = Store(db, hold_s=0.3)  # the app's store, as ui.get_store makes it
    stop, polls, errors = threading.Event(), [0], []

    def session() -> None:  # an auto-refreshing page: a few queries, then a short pause
        while not stop.is_set():
            try:
                app.count_items("tickets")
                app.list_jobs("tickets")
                polls[0] += 1
            except Exception as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)
            time.sleep(0.05)

    sessions = [threading.Thread(target=session, daemon=True) for _ in range(5)]
    for t in sessions:
        t.start()
    time.sleep(0.5)  # the app now holds the file continuously
    env = {**os.environ, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": fake.url, "DISTILL_BUSY_TIMEOUT_S": "20"}
    # with a 20 s busy timeout: a job starved by the app would fail with StoreBusy
    proc = subprocess.run([sys.executable, "-m", "core", "label", "--db", str(db), "--project", "tickets",
                           "--concurrency", "4", "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    stop.set()
    for t in sessions:
        t.join(timeout=10)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed" and out["labeled"] == 40
    assert not errors and polls[0] > 20  # the sessions kept polling throughout
