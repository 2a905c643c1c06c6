"""Re-asking what changed (`--relabel failed|stale|all`) and the rationale fraction executed
(`--rationale-fraction F --seed S`), through the CLI against the fake server."""

import json

import pytest

from core.kernel.prices import load_prices
from core.prompt.planner import LABEL_ONLY_MAX_TOKENS, rationale_rows
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, many_tickets, start_cli

LABELS = ["billing", "technical", "shipping"]


def honest_responder(body: dict) -> str:
    """A good teacher that answers as asked: label only when the prompt asks for one line,
    and nothing parseable for tickets about parcels unless the prompt says 'Be decisive'."""
    text = body["messages"][-1]["content"]
    answer = correct_responder(body)
    if "parcel" in text and "Be decisive" not in text:
        return "Hard to say; it could be several things."
    if "Reply with exactly one line" in text:
        return answer.split("\n")[0]
    return answer


@pytest.fixture
def server():
    fake = FakeAnthropic(responder=honest_responder).start()
    yield fake
    fake.stop()


def cli(db, *args, fake=None):
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": fake.url} if fake else None
    proc = start_cli(*args[:1], "--db", db, "--project", "tickets", *args[1:], env=env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_rationale_rows_are_stratified_seeded_and_grow_with_the_fraction():
    items = [{"row_id": str(i), "gold": LABELS[i % 3]} for i in range(300)]
    third = rationale_rows(items, 0.3, seed=1)
    assert len(third) == 90
    assert all(sum(int(r) % 3 == k for r in third) == 30 for k in range(3))  # 30 per label
    assert third <= rationale_rows(items, 0.6, seed=1)  # a top-up keeps the rows that have one
    assert third != rationale_rows(items, 0.3, seed=2)


def test_label_with_a_rationale_fraction_sends_label_only_prompts_and_the_forecast_matches(store, server):
    many_tickets(store, 200)
    store.release()
    est = cli(store.path, "estimate", "--rationale-fraction", "0.3", "--seed", "1")
    assert est["rows"] == 200 and est["rationale_fraction"] == pytest.approx(0.3, abs=0.05)
    out = cli(store.path, "label", "--rationale-fraction", "0.3", "--seed", "1", "--concurrency", "4", fake=server)
    assert out["requests"] == 200
    assert out["rationale_requests"] == pytest.approx(60, abs=10)  # the share within ±5% of the rows
    assert out["rationale_requests"] + out["label_only_requests"] == 200
    bodies = [r["body"] for r in server.requests if r["fault"] is None]
    short = [b for b in bodies if "Reply with exactly one line" in b["messages"][-1]["content"]]
    assert len(short) == out["label_only_requests"]
    assert {b["max_tokens"] for b in short} == {LABEL_ONLY_MAX_TOKENS}
    assert all(b["max_tokens"] > LABEL_ONLY_MAX_TOKENS for b in bodies if b not in short)
    billed = server.billed_usd(load_prices())
    assert out["cost_usd"] == pytest.approx(billed, rel=1e-6)
    # no pilot here, so output tokens come from the preset's length; bench/estimate.py measures the
    # error after a pilot. The bill stays under P90, and the split is the one the run used.
    assert billed <= est["cost_usd_p90"]
    # topping rationales up to every row re-asks only the label-only rows
    top_up = cli(store.path, "estimate", "--relabel", "stale", "--seed", "1")
    assert (top_up["rows"], top_up["cache_hits"]) == (out["label_only_requests"], 0)
    everything = cli(store.path, "estimate", "--relabel", "all", "--seed", "1")
    assert (everything["rows"], everything["cache_hits"]) == (out["label_only_requests"], out["rationale_requests"])
    labeled = [it for it in store.items_by_order("tickets", None) if it["status"] == "labeled"]
    with_rationale = [it for it in labeled if it["teacher_rationale"]]
    assert 0 < len(with_rationale) < 0.45 * len(labeled)  # label-only answers carry no rationale

    # the top-up asks rows whose label is known to explain it (explain-label), the rest in full
    sent = len(server.requests)
    topped = cli(store.path, "label", "--relabel", "stale", "--seed", "1", fake=server)
    bodies = [r["body"]["messages"][-1]["content"] for r in server.requests[sent:] if r["fault"] is None]
    explain = [b for b in bodies if "Explain in one sentence why this answer is correct" in b]
    assert topped["requests"] == out["label_only_requests"] == len(bodies)
    assert 0 < len(explain) < len(bodies)  # label-only rows whose answer did not parse have no label to explain
    assert cli(store.path, "estimate", "--relabel", "stale", "--seed", "1")["rows"] == 0  # nothing stale now


def test_relabel_failed_sends_only_changed_requests_and_prices_what_it_sends(store, server):
    many_tickets(store, 30)
    store.release()
    first = cli(store.path, "label", fake=server)
    failed = first["flagged"]
    assert failed == 5  # every "parcel lost" ticket
    sent = len(server.usage)

    same = cli(store.path, "estimate", "--relabel", "failed")
    assert (same["rows"], same["cache_hits"]) == (0, failed)  # same prompt: the cache answers, free
    again = cli(store.path, "label", "--relabel", "failed", fake=server)
    assert again["requests"] == 0 and len(server.usage) == sent

    project = store.get_project("tickets")
    store.update_project("tickets", template=project.template + "\nBe decisive.")
    store.release()
    est = cli(store.path, "estimate", "--relabel", "failed")
    assert (est["rows"], est["cache_hits"]) == (failed, 0)
    fixed = cli(store.path, "label", "--relabel", "failed", fake=server)
    assert fixed["requests"] == est["rows"] == len(server.usage) - sent
    assert fixed["flagged"] == 0
    assert all(it["status"] == "labeled" for it in store.items_by_order("tickets", None))

    stale = cli(store.path, "estimate", "--relabel", "stale")
    assert (stale["rows"], stale["cache_hits"]) == (25, 0)  # the rows answered by the first prompt
    everything = cli(store.path, "estimate", "--relabel", "all")
    assert (everything["rows"], everything["cache_hits"]) == (25, 5)
    calls = store.query("SELECT count(*) AS n FROM teacher_calls WHERE project = 'tickets' AND NOT cached")
    assert calls[0]["n"] == 35  # the old answers stay in the history


@pytest.mark.parametrize("task", ["classification", "nli", "multiple-choice", "numeric"])
def test_the_rationale_fraction_is_the_share_asked_on_every_task_type(task):
    """300 rows: exactly round(F * 300) rows, spread over the task's classes (a multiple-choice
    gold is its own choice text on every row, a numeric gold its own number: they are classed by
    the gold's position and by its order of magnitude)."""
    choices = [["red", "blue", "green", "gray", "pink"]]
    golds = {"classification": lambda i: LABELS[i % 3], "nli": lambda i: ["entailment", "neutral", "contradiction"][i % 3],
             "multiple-choice": lambda i: f"answer {i}", "numeric": lambda i: str(i * 7)}
    items = [{"row_id": str(i), "gold": golds[task](i),
              "choices": [f"answer {i}", *choices[0]][:5] if task == "multiple-choice" else None} for i in range(300)]
    if task == "multiple-choice":  # the gold stands at position i % 5
        for i, it in enumerate(items):
            opts = [c for c in choices[0]][:4]
            opts.insert(i % 5, it["gold"])
            it["choices"] = opts
    for fraction in (0.1, 0.3, 0.55):
        chosen = rationale_rows(items, fraction, seed=0, task=task)
        assert len(chosen) == round(fraction * 300), (task, fraction, len(chosen))
        assert chosen <= rationale_rows(items, min(1.0, fraction + 0.2), seed=0, task=task)
    if task == "multiple-choice":
        third = rationale_rows(items, 0.3, seed=0, task=task)
        assert all(abs(sum(int(r) % 5 == k for r in third) - 18) <= 1 for k in range(5))  # 18 per position


def mc_and_numeric(store) -> None:
    """Two 100-row projects whose gold is a different value on every row."""
    import json as _json

    from core.ingest.files import ColumnMapping, import_source, open_bytes

    colors = ["red", "blue", "green", "gray", "pink"]
    mc = "\n".join(_json.dumps({"id": str(i), "q": f"Which colour is thing {i}?", "choices": colors[i % 5:] + colors[:i % 5],
                                "answer": colors[(i * 3) % 5]}) for i in range(100))
    import_source(store, open_bytes(mc.encode(), "mc.jsonl"), "mc", "multiple-choice",
                  ColumnMapping(input_fields=["q"], id_field="id", label_field="answer", choices_field="choices"))
    num = "id,q,answer\n" + "\n".join(f"{i},What is {i} times 13?,{i * 13}" for i in range(100)) + "\n"
    import_source(store, open_bytes(num.encode(), "num.csv"), "num", "numeric",
                  ColumnMapping(input_fields=["q"], id_field="id", label_field="answer"))


def test_the_fraction_runs_as_asked_on_multiple_choice_and_numeric_projects(store):
    def answer(body: dict) -> str:
        text = body["messages"][-1]["content"]
        if "Answer Choices" in text:
            return "Answer: (a) " + text.split("(a) ")[1].split("\n")[0] + "\nRationale: It fits."
        number = int(text.split("What is ")[1].split(" times")[0]) * 13
        return f"Rationale: {number // 13} times 13.\nAnswer: {number}"

    mc_and_numeric(store)
    store.release()
    fake = FakeAnthropic(responder=answer).start()
    try:
        for project in ("mc", "num"):
            est = cli(store.path, "estimate", "--project", project, "--rationale-fraction", "0.3")
            assert est["rows"] == 100 and est["rationale_fraction"] == pytest.approx(0.3, abs=0.02), est
            out = cli(store.path, "label", "--project", project, "--rationale-fraction", "0.3", fake=fake)
            assert out["rationale_requests"] == 30 and out["label_only_requests"] == 70, out
    finally:
        fake.stop()


def test_a_rationale_top_up_never_takes_away_the_label_it_explains(store):
    """Explain-label top-ups whose answers cannot be read (or name another label) keep the row's
    label; the readable ones add their rationale."""
    def answer(body: dict) -> str:
        text = body["messages"][-1]["content"]
        if "Explain in one sentence" in text:
            n = int(text.split("Ticket ")[1].split(":")[0])
            return ("Hmm, I am not sure about this one." if n % 3 == 0 else "Answer: something else\nRationale: no"
                    if n % 3 == 1 else correct_responder(body))
        return correct_responder(body).split("\n")[0] if "Reply with exactly one line" in text else correct_responder(body)

    many_tickets(store, 60)
    store.release()
    fake = FakeAnthropic(responder=answer).start()
    try:
        cli(store.path, "label", "--rationale-fraction", "0", fake=fake)
        before = {it["row_id"]: it["label"] for it in store.items_by_order("tickets", None)}
        assert all(before.values())
        topped = cli(store.path, "label", "--relabel", "stale", fake=fake)
        assert topped["requests"] == 60
    finally:
        fake.stop()
    after = {it["row_id"]: it for it in store.items_by_order("tickets", None)}
    assert {r: it["label"] for r, it in after.items()} == before  # no label lost or changed
    with_rationale = {r for r, it in after.items() if it["teacher_rationale"]}
    assert with_rationale == {r for r in after if int(r) % 3 == 2}  # only readable top-ups add a rationale
