"""The teacher engine under load and failure: rate limits, Message Batches, pause and
resume, and SIGKILL at any moment (nothing lost, nothing requested again)."""

import os
import signal
import time

import pytest

from core import jobs
from core.kernel import paths
from core.label.teacher import label_project
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, many_tickets


@pytest.fixture
def server():
    started = []

    def make(**kw):
        kw.setdefault("responder", correct_responder)
        fake = FakeAnthropic(**kw).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


def wait_until(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_limiter_learns_the_limit_from_headers_and_stays_under_it(store, server):
    many_tickets(store, 60)
    fake = server(rpm=1200, latency_s=0.02)
    summary = label_project(store, "tickets", api_key="k", base_url=fake.url, concurrency=16)
    assert summary.labeled == 60 and summary.errors == 0
    assert fake.rate_limited <= 1  # paced, not bounced: the first response taught it 1,200 RPM
    # the server's own clock agrees: no 1-second window held more than its bucket allows (+1 for rounding)
    times = fake.admitted_at
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 1200 / 60 * 2 + 1


def test_without_the_limiter_the_same_run_hits_real_429s(store, server):
    """The comparison that shows the limiter does something: a bare SDK loop at the same
    concurrency is bounced by the server's rate limiter."""
    import asyncio

    import anthropic

    fake = server(rpm=120, latency_s=0.02)
    client = anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0)

    async def burst():
        calls = [client.messages.create(model="claude-haiku-4-5", max_tokens=20,
                                        messages=[{"role": "user", "content": f"categories: billing. {i}"}])
                 for i in range(30)]
        return await asyncio.gather(*calls, return_exceptions=True)

    started = time.monotonic()
    results = asyncio.run(burst())
    elapsed = time.monotonic() - started
    # a bucket of 2 refilled at 2 per second admits at most 2 + 2 * elapsed of the 30
    assert fake.rate_limited >= min(30 - (2 + 2 * elapsed), 10) > 0
    assert any(isinstance(r, anthropic.RateLimitError) for r in results)


def test_batch_mode_labels_at_half_price_and_retries_failed_rows_in_a_new_batch(store, server):
    many_tickets(store, 12)
    failing = {}

    def batch_fault(custom_id):
        return failing.get(custom_id)

    fake = server(batch_fault_for=batch_fault, batch_delay_s=0.1)
    keys = [r["request_hash"] for r in []]  # filled below once requests are known
    from core.kernel.hashing import request_hash
    from core.prompt.templates import build_request

    project = store.get_project("tickets")
    items = store.items_by_order("tickets", None)
    keys = [request_hash(build_request(project.template, it, project.label_set, project.model, project.max_tokens))
            for it in items]
    failing.update({keys[0]: "errored", keys[1]: "expired", keys[2]: "canceled"})
    first = label_project(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.05)
    assert (first.labeled, first.errors, first.batches) == (9, 3, 1)
    errors = {r["error_type"] for r in store.recent_errors("tickets")}
    assert errors == {"batch_errored", "batch_expired", "batch_canceled"}
    calls = store.query("SELECT * FROM teacher_calls WHERE error_type IS NULL")
    assert all(c["batch_id"] for c in calls)
    for c in calls:  # 50% of the realtime price
        assert c["billed_usd"] == pytest.approx(0.5 * (c["input_tokens"] * 1 + c["output_tokens"] * 5) / 1e6)

    failing.clear()
    second = label_project(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.05)
    assert (second.rows, second.labeled, second.batches) == (3, 3, 1)
    assert fake.batches_created == 2 and max(fake.billed.values()) == 1
    assert store.count_items("tickets")["by_status"] == {"labeled": 12}


def test_a_restarted_batch_run_polls_the_stored_batch_instead_of_submitting_again(store, server):
    many_tickets(store, 8)
    fake = server(batch_delay_s=0.5)
    paused = label_project(store, "tickets", api_key="k", base_url=fake.url, batch=True,
                           should_stop=lambda: "paused" if store.open_batches("tickets") else None)
    assert paused.stopped == "paused" and len(store.open_batches("tickets")) == 1
    resumed = label_project(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.05)
    assert resumed.labeled == 8 and fake.batches_created == 1 and sum(fake.billed.values()) == 8
    assert store.open_batches("tickets") == []


def start_label_job(store, fake, monkeypatch, **config):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    return jobs.start_job(store, "tickets", "label", config, env={"ANTHROPIC_API_KEY": "k"})


def labeled_count(store) -> int:
    return store.scalar("SELECT count(*) FROM items WHERE status = 'labeled'")


def test_sigkill_mid_run_then_resume_loses_nothing_and_rerequests_nothing_answered(store, server, monkeypatch):
    many_tickets(store, 150)
    fake = server(latency_s=0.03)
    job_id = start_label_job(store, fake, monkeypatch, concurrency=4)
    wait_until(lambda: labeled_count(store) >= 30)
    os.kill(store.get_job(job_id)["pid"], signal.SIGKILL)
    assert jobs.wait(store, job_id, timeout_s=30)["status"] == "failed"
    time.sleep(0.3)  # let the server finish what was in flight at the kill
    answered = {r["request_hash"] for r in store.query("SELECT request_hash FROM teacher_cache")}
    lost = sum(fake.billed.values()) - len(answered)  # billed by the server, answer never stored
    seen_before = len(fake.requests)

    jobs.resume_job(store, job_id, env={"ANTHROPIC_API_KEY": "k"})
    job = jobs.wait(store, job_id, timeout_s=120)
    assert job["status"] == "completed", job["error"]
    assert store.count_items("tickets")["by_status"] == {"labeled": 150}  # nothing lost
    from core.kernel.hashing import request_hash

    after = [request_hash(r["body"]) for r in fake.requests[seen_before:]]
    assert not answered & set(after)  # no stored answer was requested again
    # The only requests billed twice are those whose answers died with the process: in flight,
    # or received but not yet committed. Without idempotency keys no client can avoid that.
    twice = sum(n - 1 for n in fake.billed.values() if n > 1)
    # answers spooled before the kill are replayed on resume, so at most the lost ones are paid twice
    assert twice <= lost and lost <= 4 + 16
    assert store.scalar("SELECT count(*) FROM teacher_calls WHERE NOT cached AND error_type IS NULL") == len(fake.billed)


def test_sigkill_during_batch_polling_then_resume_never_submits_twice(store, server, monkeypatch):
    many_tickets(store, 20)
    fake = server(batch_delay_s=2.0)
    job_id = start_label_job(store, fake, monkeypatch, batch=True, poll_interval_s=0.1)
    wait_until(lambda: store.open_batches("tickets"))
    os.kill(store.get_job(job_id)["pid"], signal.SIGKILL)
    assert jobs.wait(store, job_id, timeout_s=30)["status"] == "failed"
    jobs.resume_job(store, job_id, env={"ANTHROPIC_API_KEY": "k"})
    job = jobs.wait(store, job_id, timeout_s=120)
    assert job["status"] == "completed", job["error"]
    assert fake.batches_created == 1
    assert store.count_items("tickets")["by_status"] == {"labeled": 20}
    assert sum(fake.billed.values()) == 20 and max(fake.billed.values()) == 1


def test_pause_then_resume_finishes_the_job_without_double_billing(store, server, monkeypatch):
    many_tickets(store, 120)
    fake = server(latency_s=0.03)
    job_id = start_label_job(store, fake, monkeypatch, concurrency=2)
    wait_until(lambda: labeled_count(store) >= 10)
    jobs.pause_job(store, job_id)
    job = jobs.wait(store, job_id, timeout_s=60)
    assert job["status"] == "paused", job["error"]
    assert 10 <= labeled_count(store) < 120
    jobs.resume_job(store, job_id, env={"ANTHROPIC_API_KEY": "k"})
    job = jobs.wait(store, job_id, timeout_s=120)
    log = (paths.job_dir(store, job_id) / "job.log").read_text()[-3000:]
    assert job["status"] == "completed" and labeled_count(store) == 120, (job["error"], log)
    assert max(fake.billed.values()) == 1 and job["cost_usd"] == pytest.approx(store.spend("tickets"))


def test_batch_budget_counts_earlier_spend_once_and_sends_more_once_a_batch_settles(store, server):
    """With a project cap, a batch may reserve exactly what is left of the cap (worst cases);
    once it settles at its real cost, the next batch is sent from what is left."""
    from core.prompt.templates import build_request
    from core.label.teacher import TeacherRun

    many_tickets(store, 40)
    fake = server(batch_delay_s=0.05)
    label_project(store, "tickets", api_key="k", base_url=fake.url, limit=10)  # realtime: some spend first
    spent = store.spend("tickets")
    run = TeacherRun(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.05)
    project = store.get_project("tickets")
    worst = run._worst_case(build_request(project.template, store.items_to_label("tickets", 1)[0],
                                          project.label_set, project.model, project.max_tokens))
    cap = spent + 10.5 * worst
    store.update_project("tickets", budget_usd=cap)  # room for 10 more worst cases, not 11
    summary = label_project(store, "tickets", api_key="k", base_url=fake.url, batch=True, poll_interval_s=0.05)
    sizes = [len(b["requests"]) for b in fake.batches.values()]
    assert sizes[0] == 10  # the first batch: exactly what the worst cases allow
    assert summary.batches == len(sizes) >= 2 and summary.batch_rounds == len(sizes) - 1
    assert summary.requests == sum(sizes) > 10  # later rounds used what the settled batches left
    assert store.spend("tickets") <= cap and max(fake.billed.values()) == 1
    if summary.requests < 30:  # stopped before the rows ran out: by the cap, and truthfully so
        assert summary.stopped == "budget"
    else:
        assert summary.stopped is None and summary.labeled == 30
