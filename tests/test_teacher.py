import pytest

from core.kernel.errors import ConfigError
from core.label.teacher import label_project


def run(store, fake, **kw):
    kw.setdefault("api_key", "test-key")
    kw.setdefault("max_retries", 3)
    return label_project(store, "tickets", base_url=fake.url, **kw)


def test_labels_every_row_and_records_usage_and_cost(tickets, fake):
    summary = run(tickets, fake)
    assert (summary.rows, summary.labeled, summary.errors, summary.requests) == (6, 6, 0, 6)
    assert tickets.teacher_accuracy("tickets") == 1.0
    calls = tickets.query("SELECT * FROM teacher_calls WHERE project = 'tickets'")
    assert len(calls) == 6 and all(c["input_tokens"] > 0 and c["billed_usd"] > 0 for c in calls)
    assert summary.cost_usd == pytest.approx(sum(c["billed_usd"] for c in calls))
    cached = tickets.query("SELECT input_tokens, output_tokens, cost_usd FROM teacher_cache")
    assert all(c["cost_usd"] == pytest.approx((c["input_tokens"] * 1 + c["output_tokens"] * 5) / 1e6) for c in cached)


def test_429_529_500_are_retried_by_the_sdk(tickets, fake):
    fake.script("429", "529", "500")
    summary = run(tickets, fake, concurrency=1)
    assert summary.labeled == 6 and summary.errors == 0
    assert [r["fault"] for r in fake.requests[:3]] == ["429", "529", "500"]
    attempts = [c["attempts"] for c in tickets.query("SELECT attempts FROM teacher_calls ORDER BY id")]
    assert attempts[0] == 4 and attempts[1:] == [1] * 5  # first row: three failures then success
    assert sum(fake.billed.values()) == 6


def test_identical_request_is_never_sent_or_billed_twice(store, fake):
    from tests.helpers import import_csv

    import_csv(store, "id,text,label\n1,charged twice,billing\n2,charged twice,billing\n3,app crash,technical\n")
    first = label_project(store, "tickets", api_key="k", base_url=fake.url)
    assert first.requests == 2 and first.labeled == 3
    # relabel everything: all answers come from the cache
    with store.transaction() as con:
        con.execute("UPDATE items SET status = 'unlabeled'")
    second = label_project(store, "tickets", api_key="k", base_url=fake.url)
    assert second.requests == 0 and second.cache_hits == 3 and second.cost_usd == 0
    assert len(fake.requests) == 2 and max(fake.billed.values()) == 1
    billed = store.query("SELECT count(*) AS n FROM teacher_calls WHERE billed_usd > 0")[0]["n"]
    assert billed == 2


def test_a_failed_call_is_a_row_error_and_is_retried_next_run(tickets, fake):
    fake.script("malformed")
    summary = run(tickets, fake, concurrency=1, max_retries=0)
    assert summary.errors == 1 and summary.labeled == 5
    err = tickets.query("SELECT row_id, status, error FROM items WHERE status = 'error'")
    assert len(err) == 1 and err[0]["error"].startswith("bad_response")
    assert tickets.recent_errors("tickets")[0]["error_type"] == "bad_response"
    again = run(tickets, fake)
    assert (again.rows, again.requests, again.labeled) == (1, 1, 1)


def test_timeout_and_truncated_body_become_row_errors(tickets, fake):
    fake.timeout_sleep_s = 2.0
    fake.script("timeout", "truncated_body")
    summary = run(tickets, fake, concurrency=1, max_retries=0, timeout_s=0.5)
    kinds = sorted(r["error_type"] for r in tickets.recent_errors("tickets"))
    assert summary.errors == 2 and kinds[0] in ("connection", "timeout", "bad_response") and len(kinds) == 2
    assert summary.labeled == 4


def test_max_tokens_response_is_flagged_with_raw_text_kept(tickets, fake):
    fake.script("max_tokens")
    summary = run(tickets, fake, concurrency=1)
    assert summary.flagged == 1
    row = tickets.query("SELECT row_id FROM items WHERE status = 'flagged'")[0]
    call = tickets.last_call_for_row("tickets", row["row_id"])
    assert '"stop_reason": "max_tokens"' in call["response"]


def test_no_key_refuses_live_calls_with_a_clear_message(tickets, fake):
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        label_project(tickets, "tickets", base_url=fake.url)
    assert fake.requests == []


def test_budget_stops_before_spend_could_pass_the_cap(tickets, fake):
    summary = run(tickets, fake, concurrency=3, budget_usd=0.0025)
    assert summary.stopped == "budget" and 0 < summary.requests < 6
    assert summary.cost_usd <= 0.0025


def test_key_never_reaches_the_database(tickets, fake, tmp_path):
    run(tickets, fake, api_key="test-secret-key-value-123")
    raw = open(tickets.path, "rb").read()
    assert b"test-secret-key-value-123" not in raw
