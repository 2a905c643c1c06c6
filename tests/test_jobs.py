"""Background jobs in their own process, read by this process while they write."""

import time
from dataclasses import asdict

import pytest

from core import jobs
from core.kernel import paths
from core.label.teacher import label_project
from core.train.trainer import TrainConfig


@pytest.fixture
def labeled(tickets, fake):
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    return tickets


def test_label_job_runs_in_background_process(tickets, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    job_id = jobs.start_job(tickets, "tickets", "label", {"concurrency": 2}, env={"ANTHROPIC_API_KEY": "k"})
    job = jobs.wait(tickets, job_id, timeout_s=120)
    assert job["status"] == "completed", job["error"]
    assert job["done"] == job["total"] == 6
    assert tickets.count_items("tickets")["by_status"] == {"labeled": 6}
    assert paths.workspace_dir(tickets).joinpath("jobs", job_id, "job.log").exists()


def test_app_reads_metrics_while_training_process_writes(labeled):
    cfg = TrainConfig(project="tickets", student="tiny-random", max_steps=40, batch_size=4, log_every=1)
    job_id = jobs.start_job(labeled, "tickets", "train", asdict(cfg))
    seen_steps, reads = [], 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = jobs.refresh(labeled, labeled.get_job(job_id))  # each read opens the shared file
        rows = labeled.metrics([job_id])
        reads += 1
        steps = [m["step"] for m in rows if m["name"] == "train_loss"]
        seen_steps.append(max(steps, default=0))
        if job["status"] not in jobs.ACTIVE:
            break
    assert job["status"] == "completed", job["error"]
    assert reads > 5 and seen_steps == sorted(seen_steps)  # progress only moves forward
    assert len(set(seen_steps)) > 2  # the reader saw the run in several intermediate states
    assert labeled.latest_metrics(job_id)["test_accuracy"] >= 0


def start_endless_run(store) -> str:
    """A training job that would run for ages, returned once it has logged a step."""
    cfg = TrainConfig(project="tickets", student="tiny-random", max_steps=100000, batch_size=2, log_every=1)
    job_id = jobs.start_job(store, "tickets", "train", asdict(cfg))
    deadline = time.monotonic() + 120
    while not store.metrics([job_id]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return job_id


def test_cancel_stops_a_training_run(labeled):
    job_id = start_endless_run(labeled)
    jobs.cancel_job(labeled, job_id)
    job = jobs.wait(labeled, job_id, timeout_s=120)
    assert job["status"] == "cancelled"
    steps = max(m["step"] for m in labeled.metrics([job_id]))
    assert steps < 100000


def test_killed_job_is_reported_failed(labeled):
    import os
    import signal

    job_id = start_endless_run(labeled)
    os.kill(labeled.get_job(job_id)["pid"], signal.SIGKILL)
    job = jobs.wait(labeled, job_id, timeout_s=30)
    assert job["status"] == "failed" and "unexpectedly" in job["error"]


def test_killed_training_resumes_from_its_checkpoint_and_finishes(labeled):
    import os
    import signal

    cfg = TrainConfig(project="tickets", student="tiny-random", max_steps=60, batch_size=2, log_every=1,
                      checkpoint_every=5)
    job_id = jobs.start_job(labeled, "tickets", "train", asdict(cfg))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [m["step"] for m in labeled.metrics([job_id]) if m["name"] == "train_loss"]
        if max(done, default=0) >= 12:
            break
        time.sleep(0.1)
    os.kill(labeled.get_job(job_id)["pid"], signal.SIGKILL)
    assert jobs.wait(labeled, job_id, timeout_s=30)["status"] == "failed"
    jobs.resume_job(labeled, job_id)
    job = jobs.wait(labeled, job_id, timeout_s=180)
    assert job["status"] == "completed", job["error"]
    result = __import__("json").loads(job["message"])
    assert result["resumed_from"] >= 10 and result["resumed_from"] % 5 == 0 and result["steps"] == 60
    steps = [m["step"] for m in labeled.metrics([job_id]) if m["name"] == "train_loss"]
    assert sorted(steps) == list(range(1, 61))  # each step logged once: no gap, no duplicate


def test_pause_then_resume_a_training_run(labeled):
    job_id = start_endless_run(labeled)
    jobs.pause_job(labeled, job_id)
    job = jobs.wait(labeled, job_id, timeout_s=120)
    assert job["status"] == "paused"
    paused_at = __import__("json").loads(job["message"])["steps"]
    assert (paths.job_dir(labeled, job_id) / "output" / "checkpoint.pt").exists()
    jobs.resume_job(labeled, job_id)
    deadline = time.monotonic() + 120
    while max((m["step"] for m in labeled.metrics([job_id])), default=0) <= paused_at + 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    jobs.cancel_job(labeled, job_id)
    assert jobs.wait(labeled, job_id, timeout_s=120)["status"] == "cancelled"


APP_TAB = """
import sys, time
from core.db import Store
store = Store(sys.argv[1], hold_s=0.3)  # as the app holds it: open 0.3 s past the last query
reads = 0
while True:  # a tab refreshing without pause: the queue, the counts, the job
    store.review_page("tickets", ["all"], page=0)
    store.count_items("tickets")
    store.list_jobs("tickets")
    reads += 1
    print(reads, flush=True)
"""


def test_app_tabs_refreshing_without_pause_never_stall_a_labeling_job(store, monkeypatch):
    """Three app processes (tabs of three users) read the file continuously while a labeling job
    writes 300 rows: the app lets go of the file whenever the job waits for it, so the job
    finishes, every row labeled, and the tabs kept reading meanwhile."""
    import subprocess
    import sys

    from tests.fake_anthropic import FakeAnthropic
    from tests.helpers import REPO, correct_responder, many_tickets

    many_tickets(store, 300)
    fake = FakeAnthropic(responder=correct_responder, latency_s=0.01).start()
    tabs = [subprocess.Popen([sys.executable, "-c", APP_TAB, str(store.path)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        time.sleep(1.0)  # the tabs hold the file in turn before the job starts
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        job_id = jobs.start_job(store, "tickets", "label", {"concurrency": 4}, env={"ANTHROPIC_API_KEY": "k"})
        job = jobs.wait(store, job_id, timeout_s=240)
    finally:
        for tab in tabs:
            tab.kill()
        outputs = [tab.communicate()[0].split() for tab in tabs]
        fake.stop()
    assert job["status"] == "completed", job["error"]
    assert store.count_items("tickets")["by_status"] == {"labeled": 300}
    assert all(len(out) > 3 for out in outputs)  # every tab went on reading while the job wrote
