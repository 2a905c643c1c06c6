import pytest

from core.kernel.errors import PriceFileError, TemplateError
from core.kernel.prices import load_prices, parse_prices, save_prices
from core.kernel.hashing import request_hash
from core.prompt.templates import build_request, preset_template, validate_template
from core.kernel.tasks import TASKS


def test_unknown_placeholder_is_named():
    with pytest.raises(TemplateError, match=r"Unknown placeholder \{qestion\}"):
        validate_template("Q: {qestion}", ["question"], "multiple-choice")
    with pytest.raises(TemplateError, match="unbalanced"):
        validate_template("Q: {question", ["question"], "classification")
    with pytest.raises(TemplateError, match="none of the input fields"):
        validate_template("Label it: {labels}", ["text"], "classification")


@pytest.mark.parametrize("task", TASKS)
def test_each_preset_validates_and_renders(task):
    fields = ["premise", "hypothesis"] if task == "nli" else ["text"]
    template = preset_template(task, fields)
    validate_template(template, fields, task)
    item = {"inputs": {f: f"value of {f}" for f in fields}, "choices": ["x", "y"] if task == "multiple-choice" else None}
    req = build_request(template, item, ["a", "b"], "claude-haiku-4-5", 200)
    content = req["messages"][0]["content"]
    assert all(f"value of {f}" in content for f in fields)
    assert "Answer:" in content and "Rationale:" in content and "temperature" not in req


def test_request_hash_depends_on_content_only():
    a = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    b = {"messages": [{"content": "hi", "role": "user"}], "max_tokens": 5, "model": "m"}
    assert request_hash(a) == request_hash(b)
    assert request_hash(a) != request_hash({**a, "model": "other"})


def test_price_file_has_source_and_costs_are_per_million():
    prices = load_prices()
    assert prices.source.startswith("https://") and prices.date
    assert prices.cost("claude-haiku-4-5", 1_000_000, 1_000_000) == pytest.approx(6.0)
    assert prices.cost("claude-haiku-4-5-20251001", 1_000_000, 0) == pytest.approx(1.0)  # dated id -> alias
    assert prices.cost("claude-haiku-4-5", 1_000_000, 0, batch=True) == pytest.approx(0.5)
    assert prices.cost("no-such-model", 10, 10) is None  # never a silent $0


@pytest.mark.parametrize("text,message", [
    ("not toml = = 1", "not valid TOML"),
    ("[meta]\nsource='x'\n[models.a]\ninput=1\noutput=2\n", "source and a date"),
    ("[meta]\nsource='x'\ndate='d'\n[models.a]\ninput='cheap'\noutput=2\n", "models.a.input"),
    ("[meta]\nsource='x'\ndate='d'\n", "no \\[models"),
])
def test_bad_price_file_gets_a_clear_error(text, message):
    with pytest.raises(PriceFileError, match=message):
        parse_prices(text)


def test_saving_a_bad_price_file_keeps_the_good_one(tmp_path):
    path = tmp_path / "p.toml"
    good = "[meta]\nsource='s'\ndate='d'\n[models.m]\ninput=1\noutput=2\n"
    save_prices(good, path)
    with pytest.raises(PriceFileError):
        save_prices("[meta]\n", path)
    assert path.read_text() == good


def test_estimate_scales_sample_to_all_rows(store):
    from core.prompt.forecast import forecast
    from tests.helpers import many_tickets

    many_tickets(store, 1000)  # more rows than the 200-row sample
    prices = load_prices()
    est = forecast(store, "tickets", prices)
    assert est.rows == 1000 and est.input_tokens_p50 == pytest.approx(est.input_tokens_per_row * 1000, rel=1e-3)
    assert est.cost_usd_p50 == pytest.approx((est.input_tokens_p50 * 1 + est.output_tokens_p50 * 5) / 1e6)
    unknown = forecast(store, "tickets", prices, model="mystery")
    assert unknown.cost_usd_p50 is None and not unknown.price_known


# ---- prompt modes, structured output, forecast, budget (issue 3) --------------------------
from core.prompt.templates import MODES, mode_template


@pytest.mark.parametrize("task, fields", [("classification", ["text"]), ("multiple-choice", ["question"]),
                                          ("nli", ["premise", "hypothesis"]), ("numeric", ["problem"])])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_preset_validates_and_renders(task, fields, mode):
    template = mode_template(task, fields, mode)
    validate_template(template, fields, task, mode)
    item = {"inputs": {f: f"<{f}>" for f in fields}, "choices": ["x", "y"] if task == "multiple-choice" else None,
            "gold": "y"}
    from core.prompt.templates import render

    text = render(template, item, ["a", "b"], examples="EXAMPLES")
    assert all(f"<{f}>" in text for f in fields)
    assert ("EXAMPLES" in text) == (mode == "few-shot")
    assert ("The correct" in text and "y" in text) if mode == "explain-label" else "{gold}" not in template


def test_mode_specific_placeholders_are_checked():
    with pytest.raises(TemplateError, match=r"Unknown placeholder \{gold\}"):
        validate_template("{text} is {gold}", ["text"], "classification", "zero-shot")
    with pytest.raises(TemplateError, match=r"\{examples\}"):
        validate_template("{text}", ["text"], "classification", "few-shot")
    with pytest.raises(TemplateError, match="mode"):
        validate_template("{text}", ["text"], "classification", "many-shot")


def test_json_output_goes_through_output_config_and_never_temperature():
    item = {"inputs": {"text": "hello"}, "choices": None}
    req = build_request("{text}", item, ["billing", "shipping"], "claude-haiku-4-5", 100,
                        output_format="json", task="classification")
    schema = req["output_config"]["format"]["schema"]
    assert req["output_config"]["format"]["type"] == "json_schema"
    assert schema["properties"]["label"]["enum"] == ["billing", "shipping"] and "temperature" not in req
    assert schema["required"] == ["label", "rationale", "confidence"]


def test_json_mode_labels_through_the_fake_server(tickets, fake):
    from core.label.teacher import label_project

    tickets.update_project("tickets", output_format="json")
    summary = label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    assert summary.labeled == 6 and "output_config" in fake.requests[0]["body"]
    assert tickets.teacher_accuracy("tickets") == 1.0


def test_teacher_confidence_from_json_answers_feeds_a_review_queue(tickets, fake):
    from core.label.parsing import parse_response
    from core.label.teacher import label_project
    from tests.helpers import correct_responder

    # the fake teacher is unsure about lost parcels
    fake.responder = lambda body: correct_responder(body) + (
        "\nConfidence: 0.35" if "lost" in body["messages"][-1]["content"].lower() else "")
    tickets.update_project("tickets", output_format="json")
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    low, _ = tickets.review_page("tickets", ["low teacher confidence (< 0.7)"])
    assert [r["inputs"]["text"] for r in low] == ["The courier lost my package"]
    first, _ = tickets.review_page("tickets", ["all"], sort="lowest teacher confidence")
    assert first[0]["teacher_confidence"] == 0.35 and first[1]["teacher_confidence"] == 0.9
    assert parse_response('{"label": "billing", "rationale": "r", "confidence": 85}', "classification",
                          labels=["billing"]).confidence == 0.85
    assert parse_response("Answer: billing\nRationale: r", "classification", labels=["billing"]).confidence is None


def test_templates_are_versioned_and_calls_record_their_version(tickets, fake):
    from core.label.teacher import label_project

    v1 = tickets.template_version("tickets")
    label_project(tickets, "tickets", api_key="k", base_url=fake.url, limit=2)
    tickets.update_project("tickets", template=tickets.get_project("tickets").template + "\nBe brief.")
    v2 = tickets.template_version("tickets")
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    assert v2 == v1 + 1 and [v["version"] for v in tickets.template_versions("tickets")] == [v2, v1]
    used = tickets.query("SELECT template_version, count(*) AS n FROM teacher_calls GROUP BY ALL ORDER BY 1")
    assert [(u["template_version"], u["n"]) for u in used] == [(v1, 2), (v2, 4)]


def test_forecast_gives_p50_below_p90_and_calibrates_on_a_pilot(store, fake):
    from core.prompt.forecast import forecast, pilot_rows
    from core.kernel.prices import load_prices
    from core.label.teacher import label_project
    from tests.helpers import many_tickets

    many_tickets(store, 300)
    prices = load_prices()
    before = forecast(store, "tickets", prices)
    assert before.input_source == "offline" and before.output_source == "preset"
    assert 0 < before.cost_usd_p50 < before.cost_usd_p90
    rows = pilot_rows(store, "tickets", 0.02, floor=20)
    assert 20 <= len(rows) <= 23  # per-label shares round up
    labels = {r["gold"] for r in store.get_items("tickets", rows)}
    assert labels == {"billing", "technical", "shipping"}  # stratified over the gold labels
    label_project(store, "tickets", api_key="k", base_url=fake.url, row_ids=rows)
    after = forecast(store, "tickets", prices)
    assert after.rows == 300 - len(rows) and after.input_source == "observed" and after.output_source == "observed"
    label_project(store, "tickets", api_key="k", base_url=fake.url)
    actual = store.spend("tickets") - sum(c["billed_usd"] for c in store.query(
        "SELECT billed_usd FROM teacher_calls WHERE list_contains(?, row_id)", [rows]))
    assert abs(after.cost_usd_p50 - actual) / actual < 0.03 and actual <= after.cost_usd_p90


def test_budget_guard_refuses_p90_over_the_cap_and_never_passes_it_with_requests_in_flight(store):
    from core.kernel.errors import BudgetExceeded
    from core.prompt.forecast import preflight
    from core.kernel.prices import load_prices
    from core.label.teacher import label_project
    from tests.fake_anthropic import FakeAnthropic
    from tests.helpers import many_tickets

    many_tickets(store, 200)
    prices = load_prices()
    p90 = preflight(store, "tickets", prices).cost_usd_p90
    store.update_project("tickets", budget_usd=p90 / 4)
    with pytest.raises(BudgetExceeded, match="P90"):
        preflight(store, "tickets", prices)
    assert preflight(store, "tickets", prices, override=True)
    with FakeAnthropic(latency_s=0.05) as fake:  # slow answers: many requests in flight at once
        summary = label_project(store, "tickets", api_key="k", base_url=fake.url, concurrency=32)
    assert summary.stopped == "budget" and 0 < summary.labeled < 200
    assert store.spend("tickets") <= p90 / 4
