"""The spend ledger: a budget cap that holds for any mix of runs and processes, judged by the
fake server's own record of what it billed."""

import datetime as dt
import os
import subprocess
import sys

import pytest

from core.db import TeacherWrites
from core.kernel.prices import load_prices
from core.label.teacher import TeacherRun
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import REPO, correct_responder, many_tickets

LABEL_ROWS = """
import sys
from core.db import Store
from core.label.teacher import TeacherRun
store = Store(sys.argv[1])
rows = sys.argv[2].split(",")
s = TeacherRun(store, "tickets", concurrency=4, row_ids=rows, job_id=sys.argv[3]).run()
print(s.stopped, s.labeled, s.cost_usd)
"""


def open_reserved(store) -> float:
    return store.scalar("SELECT coalesce(sum(reserved_usd), 0) FROM spend_ledger WHERE state = 'reserved'")


def test_reservations_fit_under_the_cap_with_every_other_open_reservation(tickets):
    tickets.update_project("tickets", budget_usd=1.0)
    other = tickets.reserve_spend("tickets", "other-process", [0.3, 0.3], expires_s=600)
    assert len(other) == 2 and tickets.reserved_spend("tickets") == pytest.approx(0.6)
    mine = tickets.reserve_spend("tickets", "me", [0.25, 0.25, 0.25], expires_s=600)
    assert len(mine) == 1  # 0.6 reserved elsewhere + 0.25 fits, a second 0.25 would pass 1.0
    assert len(tickets.reserve_spend("tickets", "me", [0.1], expires_s=600, run_room=0.05)) == 0  # the run's own cap
    tickets.release_spend(other)
    assert len(tickets.reserve_spend("tickets", "me", [0.25, 0.25], expires_s=600)) == 2


def test_a_reservation_settles_with_its_cost_in_the_same_write_and_expired_ones_stop_counting(tickets):
    tickets.update_project("tickets", budget_usd=1.0)
    [rid] = tickets.reserve_spend("tickets", "j", [0.5], expires_s=600)
    tickets.write_teacher("tickets", TeacherWrites(
        calls=[{"row_id": "1", "job_id": "j", "request_hash": "h", "template_hash": None, "model": "m",
                "cached": False, "billed_usd": 0.01, "input_tokens": 1, "output_tokens": 1, "error_type": None,
                "error_message": None, "attempts": 1, "batch_id": None, "template_version": 1}],
        settled=[(rid, 0.01)]))
    assert tickets.spend("tickets") == pytest.approx(0.01) and tickets.reserved_spend("tickets") == 0
    row = tickets.query("SELECT state, settled_usd FROM spend_ledger WHERE id = ?", [rid])[0]
    assert (row["state"], row["settled_usd"]) == ("settled", 0.01)
    # a process that died mid-request: its reservation counts until it expires, then not
    [stale] = tickets.reserve_spend("tickets", "dead", [0.9], expires_s=600)
    assert tickets.reserve_spend("tickets", "me", [0.2], expires_s=600) == []
    with tickets.transaction() as con:
        con.execute("UPDATE spend_ledger SET expires_at = ? WHERE id = ?",
                    [dt.datetime.now() - dt.timedelta(seconds=1), stale])
    assert len(tickets.reserve_spend("tickets", "me", [0.2], expires_s=600)) == 1


def test_two_processes_under_one_project_cap_never_bill_past_it(store, tmp_path):
    """Two labeling processes on disjoint rows of one project, started at once."""
    many_tickets(store, 160)
    cap = 0.012
    store.update_project("tickets", budget_usd=cap)
    server = FakeAnthropic(responder=correct_responder, latency_s=0.05, latency_jitter_s=0.04).start()
    try:
        env = {**os.environ, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": server.url, "PYTHONPATH": str(REPO)}
        ids = [str(i) for i in range(160)]
        procs = [subprocess.Popen([sys.executable, "-c", LABEL_ROWS, store.path, ",".join(part), f"run-{n}"],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n, part in enumerate((ids[:80], ids[80:]))]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
        billed = server.billed_usd(load_prices())
    finally:
        server.stop()
    assert 0 < billed <= cap + 1e-9, (billed, cap)
    assert max(server.billed.values()) == 1  # no request paid twice
    assert store.spend("tickets") == pytest.approx(billed)  # our ledger agrees with the server's
    assert [o.split()[0] for o, _ in outs] == ["budget", "budget"]  # both stopped by the cap, truthfully
    assert open_reserved(store) == 0  # every reservation settled or released


def fail_from_the_second_write(store, monkeypatch):
    """The store takes the first batch of answers, then refuses every write ("disk full");
    returns the real writer, to put back."""
    real_write = store.write_teacher
    calls = {"n": 0}

    def failing_write(project, writes):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise RuntimeError("disk full")
        return real_write(project, writes)

    monkeypatch.setattr(store, "write_teacher", failing_write)
    return real_write


def test_a_failing_writer_stops_dispatch_and_resume_replays_the_paid_answers(tickets, fake, monkeypatch, tmp_path):
    """When answers cannot be stored, no more answers are bought, and none is bought twice."""
    many_tickets(tickets, 60, project="more")
    spool = tmp_path / "answers.spool.jsonl"
    real_write = fail_from_the_second_write(tickets, monkeypatch)
    run = TeacherRun(tickets, "more", api_key="k", base_url=fake.url, concurrency=2, spool_path=str(spool))
    with pytest.raises(Exception, match="Storing teacher answers failed"):
        run.run()
    assert run.summary.stopped == "writer failed"
    paid = sum(fake.billed.values())
    assert paid < 60  # dispatch stopped instead of buying every remaining row
    stored = tickets.count_items("more")["by_status"].get("labeled", 0)
    assert stored < paid  # some paid answers never reached the database ...

    monkeypatch.setattr(tickets, "write_teacher", real_write)
    resumed = TeacherRun(tickets, "more", api_key="k", base_url=fake.url, concurrency=2, spool_path=str(spool)).run()
    assert resumed.replayed == paid - stored  # ... and the resume stored them from the spool
    assert tickets.count_items("more")["by_status"] == {"labeled": 60}
    assert max(fake.billed.values()) == 1 and sum(fake.billed.values()) == 60  # none bought twice
    assert open_reserved(tickets) == 0


def test_a_new_labeling_job_stores_what_a_dead_job_paid_for_before_asking_again(tickets, fake, monkeypatch):
    """Every answer is spooled as it arrives (before it waits for the writer), and a new job,
    not only a resume of the dead one, replays the dead job's spool."""
    from core.jobs.lifecycle import create_job
    from core.jobs.states import now

    many_tickets(tickets, 60, project="more")
    real_write = fail_from_the_second_write(tickets, monkeypatch)
    dead = create_job(tickets, "more", "label", {}, lease=True)
    with pytest.raises(Exception, match="Storing teacher answers failed"):
        TeacherRun(tickets, "more", api_key="k", base_url=fake.url, concurrency=4, job_id=dead).run()
    tickets.transition_job(dead, "failed", ("queued", "running"), release_lease=True, error="killed",
                           finished_at=now())
    paid = sum(fake.billed.values())
    stored = tickets.count_items("more")["by_status"].get("labeled", 0)
    assert stored < paid

    monkeypatch.setattr(tickets, "write_teacher", real_write)
    fresh = create_job(tickets, "more", "label", {}, lease=True)
    summary = TeacherRun(tickets, "more", api_key="k", base_url=fake.url, concurrency=4, job_id=fresh).run()
    assert summary.replayed == paid - stored  # every answer received was spooled, even those still queued
    assert tickets.count_items("more")["by_status"] == {"labeled": 60}
    assert max(fake.billed.values()) == 1 and sum(fake.billed.values()) == 60
    assert open_reserved(tickets) == 0
