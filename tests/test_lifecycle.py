"""One job lifecycle for every run: the CLI's foreground runs are jobs like background ones,
the state machine refuses impossible moves, and a stopped run says why."""

import json
import os
import signal
import subprocess
import sys

import pytest

from core import jobs
from core.jobs import lifecycle, states
from core.kernel.errors import AppError
from tests.helpers import (
    REPO,
    running_label_job,
    start_cli,
)


def test_a_foreground_label_run_honours_cancel_from_another_process(big, slow_fake):
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": slow_fake.url}
    proc = start_cli("label", "--db", big.path, "--project", "tickets", "--concurrency", "2", env=env)
    job = running_label_job(big, "tickets", done_at_least=2)
    assert job["pid"] == proc.pid  # the CLI process itself runs the job
    cancel = subprocess.run([sys.executable, "-m", "core", "cancel", "--db", big.path, job["id"], "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cancel.returncode == 0, cancel.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["job_id"] == job["id"] and summary["status"] == "cancelled" and summary["stopped"] == "cancelled"
    assert summary["rows"] == 200 and summary["labeled"] < 200
    row = big.get_job(job["id"])
    assert row["status"] == "cancelled" and row["finished_at"] is not None


def test_a_killed_foreground_run_shows_failed_and_resumes(big, slow_fake, monkeypatch):
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": slow_fake.url}
    proc = start_cli("label", "--db", big.path, "--project", "tickets", "--concurrency", "2", env=env)
    job = running_label_job(big, "tickets", done_at_least=2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    seen = jobs.refresh(big, big.get_job(job["id"]))
    assert seen["status"] == "failed" and "unexpectedly" in seen["error"]
    answered = big.count_items("tickets")["by_status"].get("labeled", 0)
    assert 0 < answered < 200

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", slow_fake.url)
    # the server still answers (and bills) what the dead process had in flight: those bills are the
    # killed run's, so count from when they have all come in
    billed_before = _billed_when_settled(slow_fake)
    jobs.resume_job(big, job["id"])
    done = jobs.wait(big, job["id"], timeout_s=240)
    assert done["status"] == "completed", done["error"]
    assert big.count_items("tickets")["by_status"] == {"labeled": 200}
    # the resumed run asked only for the rows the killed one had not stored
    assert sum(slow_fake.billed.values()) - billed_before <= 200 - answered
    # only the requests in flight when the process died (at most --concurrency) could be paid twice
    assert sum(1 for n in slow_fake.billed.values() if n > 1) <= 2


def _billed_when_settled(server, quiet_s: float = 1.0) -> int:
    """The server's billed count once it has not changed for `quiet_s` (several answer latencies)."""
    import time

    billed, since = sum(server.billed.values()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        now = sum(server.billed.values())
        if now != billed:
            billed, since = now, time.monotonic()
    return billed


def test_a_run_stopped_by_the_budget_is_stopped_not_completed(big, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    job_id, result = jobs.run_foreground(big, "tickets", "label", {"budget_usd": 0.0005, "concurrency": 1})
    row = big.get_job(job_id)
    assert result["stopped"] == "budget"
    assert (row["status"], row["stop_reason"]) == ("stopped", "budget")
    assert row["status"] in jobs.RESUMABLE


def test_the_state_machine_refuses_impossible_moves(tickets):
    job_id = jobs.create_job(tickets, "tickets", "label", {})
    assert tickets.get_job(job_id)["status"] == "queued"
    assert not lifecycle.move(tickets, job_id, "completed")  # a queued job never ran
    assert tickets.get_job(job_id)["status"] == "queued"
    jobs.cancel_job(tickets, job_id)  # no process yet: cancelled at once
    assert tickets.get_job(job_id)["status"] == "cancelled"
    assert not lifecycle.move(tickets, job_id, "running")
    done = jobs.create_job(tickets, "tickets", "label", {})
    assert lifecycle.move(tickets, done, "running") and lifecycle.move(tickets, done, "completed")
    with pytest.raises(AppError, match="only a paused, stopped, failed or cancelled"):
        jobs.resume_job(tickets, done)
    assert tickets.get_job(done)["status"] == "completed"
    assert set(states.ALLOWED_FROM) == set(jobs.STATUSES)  # every status has its one rule
