"""Shared test helpers: sample data, importers and a teacher that answers correctly.
(conftest.py keeps the fixtures only.)"""

from pathlib import Path

from core.db import Store
from core.ingest import ColumnMapping, import_source, open_bytes

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

TICKETS_CSV = (
    "id,text,label\n"
    "1,My card was charged twice for one order,billing\n"
    "2,The app crashes when I open settings,technical\n"
    "3,Where is my parcel? Tracking has not moved,shipping\n"
    "4,I was billed after cancelling,billing\n"
    "5,Login page shows error 500,technical\n"
    "6,The courier lost my package,shipping\n"
)


def import_csv(store: Store, text: str = TICKETS_CSV, project: str = "tickets", task: str = "classification",
               **mapping) -> int:
    mapping = {"input_fields": ["text"], "id_field": "id", "label_field": "label", **mapping}
    n, _ = import_source(store, open_bytes(text.encode(), "data.csv"), project, task, ColumnMapping(**mapping))
    return n


TICKET_WORDS = ["charged twice", "app crash", "parcel lost", "billed after cancel", "error 500", "courier late"]


def many_tickets(store, n: int, project: str = "tickets") -> None:
    lines = ["id,text,label"] + [f"{i},Ticket {i}: {TICKET_WORDS[i % 6]},{['billing', 'technical', 'shipping'][i % 6 % 3]}"
                                 for i in range(n)]
    import_csv(store, "\n".join(lines) + "\n", project=project)


def correct_responder(body: dict) -> str:
    """Answers like a good teacher for TICKETS_CSV."""
    text = body["messages"][-1]["content"].lower()
    label = ("billing" if ("charged" in text or "billed" in text) else
             "technical" if ("crash" in text or "error" in text) else "shipping")
    return f"Answer: {label}\nRationale: The ticket mentions {label} problems."


def start_cli(*args, env=None):
    """`python -m core ARGS --json` as a separate process (stdout, stderr piped)."""
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "core", *args, "--json"], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def running_label_job(store: Store, project: str = "tickets", done_at_least: int = 1, timeout_s: float = 60) -> dict:
    """The project's running labeling job once it has answered `done_at_least` rows."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [j for j in store.list_jobs(project, "label") if j["status"] == "running"]
        if found and (found[0]["done"] or 0) >= done_at_least:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no running label job with {done_at_least} rows done: {store.list_jobs(project, 'label')}")


def open_page(path: str, project: str | None = None):
    """Open a page with Streamlit's AppTest the way a link does: ?project=name chooses the project."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / path), default_timeout=60)
    if project:
        at.query_params["project"] = project
    return at.run()
