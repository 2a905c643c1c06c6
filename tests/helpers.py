"""Shared test helpers: sample data, importers and a teacher that answers correctly.
(conftest.py keeps the fixtures only.)"""

from contextlib import contextmanager
from pathlib import Path

from core.db import Store
from core.ingest.files import ColumnMapping, import_source, open_bytes

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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(folder, env_extra: dict | None = None, drop_key: bool = False):
    """The app started the way the README starts it (`make app`) on a free port, with a fresh
    DISTILL_DB in `folder`; yields (url, db path), stops it (its whole process group) after."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    import pytest

    port, db = free_port(), Path(folder) / "app.duckdb"
    env = {**os.environ, "DISTILL_DB": str(db), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           **(env_extra or {})}
    if drop_key:
        env.pop("ANTHROPIC_API_KEY", None)
    # the app's output goes to a file: an unread pipe fills up and then blocks the app on its next log line
    log_path = Path(folder) / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["make", "-s", "app", f"PORT={port}"], cwd=REPO, env=env, start_new_session=True,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            pytest.fail("the app did not start: " + log_path.read_text(errors="replace")[-5000:])
        try:
            yield url, db
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@contextmanager
def chromium():
    """Debian's chromium driven by Playwright (its own browser download fails here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def trained_run(store: Store, project: str, **config) -> str:
    """A tiny-random training run of `project` (teacher labels), run as the Train page's job runs
    it, in this process; returns its id. `config` overrides TrainConfig fields."""
    from dataclasses import asdict

    from core import jobs
    from core.kernel import paths
    from core.train.trainer import TrainConfig

    cfg = TrainConfig(**{"project": project, "student": "tiny-random", "max_steps": 3, "batch_size": 4, "log_every": 1,
                         "label_source": "teacher", **config})
    job_id = store.create_job(project, "train", asdict(cfg))
    store.update_job(job_id, out_dir=str(paths.job_dir(store, job_id)))
    jobs.run_job(store, job_id)
    return job_id
