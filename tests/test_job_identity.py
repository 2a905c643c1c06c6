"""A job's process is known by pid, start time and command line; one labeling run per project
(label, pilot and resume, in the CLI and the app); statuses, parse failures and rows/s tell
the truth."""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from core import jobs
from core.jobs import lifecycle
from core.jobs import lease
from core.label import job as label_job

from core.jobs import processes
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import (
    REPO,
    TICKETS_CSV,
    correct_responder,
    import_csv,
    running_label_job,
    start_cli,
)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def wait_gone(pid: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while processes.pid_running(pid):
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.05)


@pytest.fixture
def sleeper():
    """An unrelated long-lived process."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---- process identity ----------------------------------------------------------------
def test_identity_is_pid_start_time_and_command_line(sleeper):
    me = processes.identity(os.getpid())
    with open(f"/proc/{os.getpid()}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22
    assert me["pid"] == os.getpid() and me["proc_start_ticks"] == start_ticks
    assert me["proc_cmdline_sha"] != processes.identity(sleeper.pid)["proc_cmdline_sha"]
    assert processes.alive(me) and processes.alive({"pid": sleeper.pid, **processes.identity(sleeper.pid)})
    # the same pid with another process's start time or command line is not this process
    assert not processes.alive({**me, "proc_start_ticks": me["proc_start_ticks"] + 1})
    assert not processes.alive({**me, "proc_cmdline_sha": "0" * 32})


def test_a_spawned_childs_identity_is_read_after_exec_has_set_its_command_line():
    """Popen returns a moment before the new command line shows in /proc (empty till then);
    recorded too early, a healthy child would look like a stranger on its own pid."""
    for _ in range(50):
        child = subprocess.Popen(["sleep", "30"])
        try:
            recorded = processes.identity_of_child(child.pid)
            time.sleep(0.002)
            assert recorded == processes.identity(child.pid) and recorded["proc_cmdline_sha"] is not None
        finally:
            child.kill()
            child.wait()


def test_without_proc_the_pid_alone_is_checked(monkeypatch, sleeper):
    stranger = {"pid": sleeper.pid, "proc_start_ticks": 1, "proc_cmdline_sha": "x"}
    assert not processes.alive(stranger)
    monkeypatch.setattr(processes, "proc_available", lambda: False)
    assert processes.alive(stranger)  # as before identities were recorded
    assert processes.alive({"pid": sleeper.pid, "proc_start_ticks": None, "proc_cmdline_sha": None})
    sleeper.kill()
    sleeper.wait()
    assert not processes.alive({"pid": sleeper.pid})


def test_a_reused_pid_shows_the_job_failed_and_cancel_leaves_that_process_alone(big, slow_fake, monkeypatch, sleeper):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", slow_fake.url)
    job_id = jobs.start_job(big, "tickets", "label", {"concurrency": 2}, env={"ANTHROPIC_API_KEY": "k"})
    job = running_label_job(big)
    assert job["id"] == job_id and job["proc_start_ticks"] is not None and job["proc_cmdline_sha"]
    os.kill(job["pid"], signal.SIGKILL)
    wait_gone(job["pid"])
    # the kernel hands the pid to an unrelated process (simulated: that process's pid in the row)
    big.update_job(job_id, pid=sleeper.pid)
    assert big.get_job(job_id)["status"] == "running"
    jobs.cancel_job(big, job_id)
    time.sleep(0.2)
    assert sleeper.poll() is None  # not signalled
    seen = big.get_job(job_id)
    assert seen["status"] == "failed" and "another process" in seen["error"]
    assert big.label_lease("tickets") is None  # a failed job holds no lease


def test_cancel_signals_only_a_verified_process(sleeper):
    other = processes.identity(os.getpid())
    assert not processes.signal_verified({**other, "pid": sleeper.pid}, signal.SIGTERM)
    time.sleep(0.1)
    assert sleeper.poll() is None
    assert processes.signal_verified(processes.identity(sleeper.pid), signal.SIGTERM)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM


# ---- one labeling run per project --------------------------------------------------------
def test_two_label_runs_at_once_one_runs_the_other_is_refused(big, slow_fake):
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": slow_fake.url}
    args = ("label", "--db", big.path, "--project", "tickets", "--concurrency", "2")
    first, second = start_cli(*args, env=env), start_cli(*args, env=env)
    # whichever lost exits at once with the lease message; the winner is labeling meanwhile
    deadline = time.monotonic() + 60
    while first.poll() is None and second.poll() is None:
        assert time.monotonic() < deadline, "neither run was refused"
        time.sleep(0.05)
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    out, err = loser.communicate(timeout=60)
    assert loser.returncode == 2, err[-2000:]
    running = running_label_job(big)
    refusal = last_json(out)
    assert refusal["kind"] == "busy"
    # refused by the early check, or by the lease itself while the winner was still queued
    assert re.search(f"Labeling job {running['id']} is already (queued|running) on project 'tickets'",
                     refusal["error"])
    assert f"python -m core cancel {running['id']}" in refusal["error"] and "Label page" in refusal["error"]
    assert running["pid"] == winner.pid and len(big.list_jobs("tickets", "label")) == 1  # the loser left no job

    pilot = subprocess.run([sys.executable, "-m", "core", "pilot", "--db", big.path, "--project", "tickets", "--json"],
                           cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, **env},
                           check=False)
    assert pilot.returncode == 2 and f"Labeling job {running['id']} is already" in last_json(pilot.stdout)["error"]
    assert big.get_job(running["id"])["status"] == "running"

    out, err = winner.communicate(timeout=240)
    assert winner.returncode == 0, err[-2000:]
    assert last_json(out)["status"] == "completed"
    assert big.label_lease("tickets") is None  # released with the run
    after = start_cli(*args, env=env)
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, err[-2000:]
    assert last_json(out)["status"] == "completed"


def test_a_stale_lease_of_a_killed_run_is_taken_over(big, slow_fake, fake, monkeypatch):
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": slow_fake.url}
    proc = start_cli("label", "--db", big.path, "--project", "tickets", "--concurrency", "2", env=env)
    dead = running_label_job(big)
    assert big.label_lease("tickets")["job_id"] == dead["id"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert big.get_job(dead["id"])["status"] == "running"  # nobody has looked yet: the lease is stale

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    taker, result = jobs.run_foreground(big, "tickets", "label", {"concurrency": 8})
    assert result["status"] == "completed" and taker != dead["id"]
    assert big.get_job(dead["id"])["status"] == "failed"
    assert big.count_items("tickets")["by_status"] == {"labeled": 200}
    assert big.label_lease("tickets") is None


def test_resume_and_the_app_start_take_the_lease_too(tickets, monkeypatch):
    holder = jobs.create_job(tickets, "tickets", "label", {}, lease=True, **processes.identity(os.getpid()))
    assert lifecycle.move(tickets, holder, "running")
    stopped = jobs.create_job(tickets, "tickets", "label", {})
    assert lifecycle.move(tickets, stopped, "running") and lifecycle.move(tickets, stopped, "paused")
    with pytest.raises(jobs.LabelingBusy, match=f"Labeling job {holder} is already running") as refused:
        jobs.resume_job(tickets, stopped)
    assert refused.value.job_id == holder and refused.value.kind == "busy"
    assert tickets.get_job(stopped)["status"] == "paused"  # nothing changed
    with pytest.raises(jobs.LabelingBusy):
        jobs.start_job(tickets, "tickets", "label", {})
    assert len(tickets.list_jobs("tickets", "label")) == 2
    import_csv(tickets, TICKETS_CSV, project="other")
    jobs.create_job(tickets, "other", "label", {}, lease=True)  # another project is free
    jobs.create_job(tickets, "tickets", "train", {}, lease=False)     # and training is not labeling
    assert lifecycle.move(tickets, holder, "completed")
    assert tickets.label_lease("tickets") is None


def test_a_lease_taken_for_a_process_still_starting_holds_for_a_grace_period(tickets, monkeypatch):
    starting = jobs.create_job(tickets, "tickets", "label", {}, lease=True)  # no pid yet
    with pytest.raises(jobs.LabelingBusy):
        jobs.create_job(tickets, "tickets", "label", {}, lease=True)
    monkeypatch.setattr(lease, "LEASE_GRACE_S", 0.0)  # its starter died before recording a process
    taker = jobs.create_job(tickets, "tickets", "label", {}, lease=True)
    assert tickets.label_lease("tickets")["job_id"] == taker != starting


def test_the_prompt_pages_pilot_is_refused_with_a_link_to_the_running_job(tickets, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DISTILL_DB", tickets.path)
    st.cache_resource.clear()
    holder = jobs.create_job(tickets, "tickets", "label", {}, lease=True, **processes.identity(os.getpid()))
    lifecycle.move(tickets, holder, "running")
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.query_params["project"] = "tickets"
        at.run()
        at.switch_page("pages/2_Prompt_and_budget.py").run()
        next(b for b in at.button if b.label == "Label a stratified pilot").click().run()
        assert any(f"Labeling job {holder} is already running" in e.value for e in at.error), [e.value for e in at.error]
        link = at.get("page_link")
        assert link and link[0].proto.label == f"Open job {holder}" and "job=" + holder in str(link[0].proto)
        assert len(tickets.list_jobs("tickets", "label")) == 1
    finally:
        lifecycle.move(tickets, holder, "cancelled")
        st.cache_resource.clear()


# ---- statuses, parse failures, rows/s ----------------------------------------------------
def gibberish_for_technical(body: dict) -> str:
    text = body["messages"][-1]["content"].lower()
    if "crash" in text or "error" in text:
        return "Hmm, hard to say. Maybe ask someone else?"
    return correct_responder(body)


def test_a_run_with_unparseable_answers_reports_its_parse_failure_share(tickets, monkeypatch):
    server = FakeAnthropic(responder=gibberish_for_technical).start()
    try:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        job_id, result = jobs.run_foreground(tickets, "tickets", "label", {"concurrency": 2})
    finally:
        server.stop()
    assert (result["labeled"], result["flagged"]) == (4, 2)
    assert result["parse_failure_share"] == pytest.approx(2 / 6, abs=1e-3)
    row = tickets.get_job(job_id)
    assert (row["done"], row["total"]) == (6, 6)
    share, text = label_job.parse_failures(row)
    assert share >= label_job.PARSE_FAILURE_ALERT and "33% of the answers could not be parsed (2 rows flagged)" in text


def test_progress_text_names_a_stop_and_its_reason():
    job = {"id": "label-1", "status": "stopped", "stop_reason": "budget", "done": 142, "total": 262, "cost_usd": 0.5,
           "live_rows": 0}
    assert "stopped: budget reached · 142/262 rows" in jobs.progress_text(job)
    assert "completed" not in jobs.progress_text(job)
    assert "cancelled · 3/9 rows" in jobs.progress_text({**job, "status": "cancelled", "stop_reason": None,
                                                          "done": 3, "total": 9})


def test_throughput_counts_only_live_rows_of_the_current_run():
    start = dt.datetime(2025, 1, 1, 12, 0, 0)
    job = {"started_at": start, "heartbeat_at": start + dt.timedelta(seconds=4), "done": 100, "live_rows": 10}
    assert jobs.throughput(job) == pytest.approx(2.5)
    assert jobs.throughput({**job, "live_rows": 0}) is None  # all from the cache: no rate to show


def test_rows_from_the_cache_are_not_counted_in_the_rate(tickets, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    first, _ = jobs.run_foreground(tickets, "tickets", "label", {})
    assert tickets.get_job(first)["live_rows"] == 6 and jobs.throughput(tickets.get_job(first)) > 0
    import_csv(tickets, TICKETS_CSV, project="copy")  # the same requests: all answered from the cache
    again, result = jobs.run_foreground(tickets, "copy", "label", {})
    assert result["cache_hits"] == 6
    row = tickets.get_job(again)
    assert row["done"] == 6 and row["live_rows"] == 0 and jobs.throughput(row) is None


def test_a_resumed_jobs_rate_counts_only_its_own_rows(big, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    job_id, first = jobs.run_foreground(big, "tickets", "label", {"budget_usd": 0.004, "concurrency": 1})
    assert first["status"] == "stopped" and first["live_rows"] > 0
    before = big.get_job(job_id)
    jobs.resume_job(big, job_id)
    row = jobs.wait(big, job_id, timeout_s=120)
    second = json.loads(row["message"])
    assert row["started_at"] > before["finished_at"]  # the rate's clock restarted with the run
    assert row["live_rows"] == second["labeled"] + second["flagged"] - second["cache_hits"]
    labeled_total = big.count_items("tickets")["by_status"]["labeled"]
    assert row["live_rows"] < labeled_total  # the first run's rows are not this run's
    seconds = (row["heartbeat_at"] - row["started_at"]).total_seconds()
    assert jobs.throughput(row) == pytest.approx(row["live_rows"] / seconds)
