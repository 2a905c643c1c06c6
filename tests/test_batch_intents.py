"""Batches are never paid twice: an intent is stored before a batch is created, and a batch
whose id never reached the database is found at the API and adopted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core import jobs
from core.label.teacher import TeacherRun
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import REPO, correct_responder, many_tickets


@pytest.fixture
def slow_create():
    server = FakeAnthropic(responder=correct_responder, batch_delay_s=0.3, batch_create_delay_s=5.0).start()
    yield server
    server.stop()


def test_a_kill_between_creating_a_batch_and_storing_its_id_adopts_that_batch(store, slow_create, monkeypatch):
    many_tickets(store, 30)
    env = {**os.environ, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": slow_create.url}
    proc = subprocess.Popen([sys.executable, "-m", "core", "label", "--db", store.path, "--project", "tickets",
                             "--batch", "--poll-interval", "0.2", "--json"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while slow_create.batches_created == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow_create.batches_created == 1
    os.kill(proc.pid, signal.SIGKILL)  # the API has the batch; its id never reached the database
    proc.communicate(timeout=30)
    assert [b["status"] for b in store.list_batches("tickets")] == ["intent"]

    job = store.list_jobs("tickets", "label")[0]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", slow_create.url)
    jobs.resume_job(store, job["id"])
    done = jobs.wait(store, job["id"], timeout_s=120)
    assert done["status"] == "completed", done["error"]
    assert json.loads(done["message"])["adopted_batches"] == 1
    assert slow_create.batches_created == 1  # adopted, not created again
    assert max(slow_create.billed.values()) == 1 and sum(slow_create.billed.values()) == 30
    assert store.count_items("tickets")["by_status"] == {"labeled": 30}
    assert [b["status"] for b in store.list_batches("tickets")] == ["collected"]


def test_an_intent_the_api_never_created_is_dropped_and_its_rows_asked_again(store, fake):
    many_tickets(store, 10)
    rows = store.items_by_order("tickets", None)
    store.add_batch_intent("tickets", None, "claude-haiku-4-5", [
        {"custom_id": "x" + r["row_id"], "request_hash": "h" + r["row_id"], "request": "{}",
         "row_ids": json.dumps([r["row_id"]]), "worst_usd": 0.001} for r in rows])
    summary = TeacherRun(store, "tickets", api_key="k", base_url=fake.url).run()
    assert store.list_batches("tickets") == [] and summary.adopted_batches == 0
    assert summary.labeled == 10


def test_a_live_run_skips_the_rows_of_a_paused_batch(store):
    fake = FakeAnthropic(responder=correct_responder, batch_delay_s=1.5).start()
    many_tickets(store, 12)
    asked = iter([None, None])
    first = TeacherRun(store, "tickets", api_key="k", base_url=fake.url, batch=True, limit=5, poll_interval_s=0.1,
                       should_stop=lambda: next(asked, "paused"))
    assert first.run().stopped == "paused" and len(store.open_batches("tickets")) == 1
    live = TeacherRun(store, "tickets", api_key="k", base_url=fake.url).run()
    assert live.held_by_batches == 5 and live.requests == 7  # the batch's rows were not bought again
    resumed = TeacherRun(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.1).run()
    assert resumed.requests == 0 and store.count_items("tickets")["by_status"] == {"labeled": 12}
    assert max(fake.billed.values()) == 1
    fake.stop()
