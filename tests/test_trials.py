"""Trying a prompt on N rows (core/label/trials.py and the Prompt & budget page): price first, the same
rows for every try, each try recorded per template version, the cache answering an unchanged
prompt for free, two versions compared, and JSON-mode presets without free-text format lines."""


import pytest
from streamlit.testing.v1 import AppTest

from core.label import trials
from core.kernel.errors import BudgetExceeded
from core.kernel.prices import load_prices
from core.prompt.json_mode import format_conflict, json_mode_template
from core.prompt.templates import MODES, preset_template
from core.kernel.tasks import TASK_TYPES
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import REPO, correct_responder, import_csv, many_tickets

PAGE = "pages/2_Prompt_and_budget.py"


def parcel_doubter(body: dict) -> str:
    """A good teacher that will not decide about parcels unless the prompt says 'Be decisive'."""
    text = body["messages"][-1]["content"]
    if "parcel" in text and "Be decisive" not in text:
        return "Hard to say; it could be several things."
    return correct_responder(body)


@pytest.fixture
def doubter():
    server = FakeAnthropic(responder=parcel_doubter).start()
    yield server
    server.stop()


@pytest.fixture
def teacher_env(monkeypatch):
    def point_at(server):
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    return point_at


# ---- core -----------------------------------------------------------------------------
def test_trial_rows_are_the_same_every_time_exactly_n_and_stratified(store):
    many_tickets(store, 30)  # ten rows of each of three labels
    rows = trials.trial_rows(store, "tickets", 10)
    assert len(rows) == 10 and rows == trials.trial_rows(store, "tickets", 10)
    golds = {it["row_id"]: it["gold"] for it in store.get_items("tickets", rows)}
    assert sorted(list(golds.values()).count(g) for g in ("billing", "technical", "shipping")) == [3, 3, 4]
    assert set(rows) <= set(trials.trial_rows(store, "tickets", 20))  # a larger try keeps these rows
    assert len(trials.trial_rows(store, "tickets", 500)) == 30


def test_two_template_versions_on_the_same_rows_then_an_unchanged_try_is_free(store, doubter, teacher_env):
    teacher_env(doubter)
    many_tickets(store, 30)  # every sixth ticket is about a lost parcel
    prices = load_prices()
    quote = trials.quote_trial(store, "tickets", prices, 10)
    assert (quote.requests, quote.cache_hits) == (10, 0) and quote.forecast.cost_usd_p90 > 0
    assert quote.over_budget is None

    first = trials.run_trial(store, "tickets", prices, 10)
    parcels = sum("parcel" in it["inputs"]["text"] for it in store.get_items("tickets", quote.row_ids))
    assert parcels > 0
    assert first["template_version"] == 1 and first["status"] == "completed"
    assert (first["rows"], first["answered"], first["parsed"], first["with_gold"]) == (10, 10, 10 - parcels, 10)
    assert first["correct"] == 10 - parcels
    assert first["parse_rate"] == pytest.approx((10 - parcels) / 10)
    assert first["accuracy"] == pytest.approx((10 - parcels) / 10)
    billed_first = doubter.billed_usd(prices)
    assert first["cost_usd"] == pytest.approx(billed_first, rel=1e-6) and first["cost_usd"] > 0
    assert first["output_tokens"] == sum(u["output_tokens"] for u in doubter.usage)

    project = store.get_project("tickets")
    store.update_project("tickets", template=project.template + "\nBe decisive.")
    second = trials.run_trial(store, "tickets", prices, 10)
    assert second["template_version"] == 2
    assert (second["parsed"], second["correct"], second["parse_rate"], second["accuracy"]) == (10, 10, 1.0, 1.0)
    assert second["cost_usd"] == pytest.approx(doubter.billed_usd(prices) - billed_first, rel=1e-6)

    sent = len(doubter.usage)
    assert trials.quote_trial(store, "tickets", prices, 10).requests == 0  # priced as free before sending
    third = trials.run_trial(store, "tickets", prices, 10)
    assert len(doubter.usage) == sent  # nothing was sent: the cache answered
    assert third["template_version"] == 2 and third["cost_usd"] == 0 and third["cache_hits"] == 10
    assert (third["parsed"], third["correct"], third["output_tokens"]) == (10, 10, second["output_tokens"])

    recorded = store.list_trials("tickets")
    assert [t["template_version"] for t in recorded] == [2, 2, 1]
    assert all(t["row_ids"] == quote.row_ids for t in recorded)  # the same rows every time

    table = trials.trial_table(store, first["id"])
    assert [r["row"] for r in table] == sorted(quote.row_ids, key=int)
    doubtful = [r for r in table if "parcel" in r["text"]]
    assert all(r["label"] is None and r["flag"] and r["raw answer"].startswith("Hard to say") and r["correct"] is False
               for r in doubtful)
    assert all(r["raw answer"].startswith("Answer: ") and r["correct"] for r in table if r not in doubtful)

    cmp = trials.compare_trials(store, first["id"], second["id"])
    assert cmp["common"] == 10
    assert [t["parse rate"] for t in cmp["tries"]] == [pytest.approx((10 - parcels) / 10), 1.0]
    assert cmp["tries"][1]["cost usd"] == pytest.approx(second["cost_usd"])
    assert sorted(r["row"] for r in cmp["read_once"]) == sorted(r["row"] for r in doubtful)
    assert cmp["differ"] == []  # an unread answer is no label, not a different one
    assert trials.compare_trials(store, second["id"], third["id"])["differ"] == []


def test_a_try_whose_p90_exceeds_the_cap_is_refused_unless_overridden(store, fake, teacher_env):
    teacher_env(fake)
    import_csv(store)
    store.update_project("tickets", budget_usd=0.000001)
    quote = trials.quote_trial(store, "tickets", load_prices(), 4)
    assert quote.over_budget and "exceeds the remaining budget" in quote.over_budget
    with pytest.raises(BudgetExceeded):
        trials.run_trial(store, "tickets", load_prices(), 4)
    assert store.list_trials("tickets") == [] and fake.requests == []


@pytest.mark.parametrize("task", sorted(TASK_TYPES))
@pytest.mark.parametrize("mode", MODES)
def test_json_mode_presets_have_no_free_text_format_lines(task, mode):
    fields = ["premise", "hypothesis"] if task == "nli" else ["text"]
    text = preset_template(task, fields, mode, "text")
    assert "Answer:" in text  # the free-text preset asks for the format
    assert format_conflict(text, "json") and not format_conflict(text, "text")
    json_text = preset_template(task, fields, mode, "json")
    lines = [line.strip() for line in json_text.splitlines()]
    assert not [line for line in lines if line.startswith(("Answer:", "Rationale:", "Reply "))], json_text
    assert not format_conflict(json_text, "json")
    assert "- label: " in json_text and "- rationale: " in json_text and "- confidence: " in json_text
    assert all("{" + f + "}" in json_text for f in fields)


def test_json_mode_keeps_the_field_hints_and_leaves_row_fields_alone():
    text = preset_template("classification", ["text"], "zero-shot", "json")
    assert "- label: <category>" in text
    assert "- rationale: <one sentence explaining which evidence in the text decides the category>" in text
    shown = "Question: {question}\nAnswer: {answer}\nIs the answer right?"
    assert not format_conflict(shown, "json") and json_mode_template(shown) == shown


# ---- the page -------------------------------------------------------------------------
def open_page(project: str) -> AppTest:
    at = AppTest.from_file(str(REPO / PAGE), default_timeout=120)
    at.query_params["project"] = project
    return at.run()


def summary_caption(at: AppTest) -> str:
    """The try's one-line summary, as shown (Markdown-escaped: plain text from the page)."""
    return next(c.value.replace("\\", "") for c in at.caption if c.value.replace("\\", "").startswith("Try #"))


def test_page_prices_a_try_runs_it_and_shows_the_answers(app_store, fake, teacher_env):
    teacher_env(fake)
    import_csv(app_store)
    at = open_page("tickets")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(c.value == "No tries yet." for c in at.caption)
    at.number_input(key="trial_n").set_value(4).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests to send"] == "4" and metrics["Try cost P90"].startswith("$")
    at.button(key="trial_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(fake.usage) == 4
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parse rate"] == "100%" and metrics["Accuracy against gold"] == "100%"
    line = summary_caption(at)
    assert "parsed 4 of 4 answers (100%)" in line and "4 of 4 right against gold" in line, line
    table = at.dataframe[0].value
    assert list(table.columns) == ["row", "label", "gold", "correct", "flag", "raw answer", "rationale", "text"]
    assert len(table) == 4 and all(table["label"] == table["gold"])
    assert all(table["raw answer"].str.startswith("Answer: "))
    trial = app_store.list_trials("tickets")[0]
    assert trial["rows"] == 4 and trial["template_version"] == app_store.template_version("tickets")

    # fix the prompt in the editor and try again: the edit is saved as a new version first
    at.text_area(key="template_text").set_value(at.text_area(key="template_text").value + "\nBe brief.").run()
    at.button(key="trial_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [t["template_version"] for t in app_store.list_trials("tickets")] == [2, 1]
    assert len(fake.usage) == 8
    assert at.selectbox(key="trial_a").value != at.selectbox(key="trial_b").value
    compared = at.dataframe[1].value
    assert list(compared["template version"]) == [1, 2] and list(compared["parse rate"]) == [1.0, 1.0]
    assert any("same label on all 4 rows" in c.value for c in at.caption)

    at.button(key="trial_start").click().run()  # unchanged: answered by the cache
    assert len(fake.usage) == 8
    assert "billed $0.0000, 4 from the cache" in summary_caption(at)


def test_page_warns_when_a_trys_p90_exceeds_the_budget_cap(app_store, fake, teacher_env):
    teacher_env(fake)
    import_csv(app_store)
    app_store.update_project("tickets", budget_usd=0.000001)
    at = open_page("tickets")
    assert not at.exception
    assert any("exceeds the remaining budget" in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="trial_start").click().run()  # refused without the override
    assert any("exceeds the remaining budget" in e.value for e in at.error)
    assert app_store.list_trials("tickets") == [] and fake.requests == []


def test_page_loads_the_json_preset_without_format_lines(app_store):
    import_csv(app_store)
    at = open_page("tickets")
    at.radio(key="output_format").set_value("json").run()
    assert any("format lines" in w.value for w in at.warning)  # the saved text preset contradicts JSON
    next(b for b in at.button if b.label.startswith("Load the classification preset")).click().run()
    template = at.text_area(key="template_text").value
    assert "Answer:" not in template and "Rationale:" not in template and "- label: " in template
    assert not any("format lines" in w.value for w in at.warning)


def test_a_failed_call_is_a_row_without_an_answer_not_a_parse_failure(store, fake, teacher_env):
    teacher_env(fake)
    import_csv(store)
    fake.script("malformed")  # the first request gets a 200 whose body is not JSON
    out = trials.run_trial(store, "tickets", load_prices(), 4)
    assert (out["rows"], out["answered"], out["parsed"], out["with_gold"]) == (4, 3, 3, 3)
    assert out["parse_rate"] == 1.0 and out["accuracy"] == 1.0
    assert "1 row without an answer" in trials.summary_line(store.get_trial(out["id"]))
    failed = [r for r in trials.trial_table(store, out["id"]) if r["label"] is None]
    assert len(failed) == 1 and failed[0]["flag"].startswith("bad_response") and failed[0]["correct"] is None


def test_page_with_label_words_in_the_template_prices_a_try(app_store):
    import_csv(app_store)
    app_store.update_project("tickets", label_words={"money": "billing", "bug": "technical", "post": "shipping"},
                             template="One of {label_words}: {text}\nAnswer: <word>\nRationale: <one sentence>")
    at = open_page("tickets")
    assert not at.exception and not at.error, [e.value for e in at.error]  # {label_words} was refused before
    assert {m.label: m.value for m in at.metric}["Requests to send"] == "6"


def test_a_try_keeps_the_rows_stored_answers_unless_asked_to_replace_them(store, fake, teacher_env):
    """A try of a draft prompt that the teacher answers in prose must not turn good stored answers
    into unreadable ones: its answers stay with the try (and the cache) unless replace_answers."""
    from core.label.teacher import label_project

    import_csv(store)
    teacher_env(fake)
    label_project(store, "tickets")
    before = {r["row_id"]: (r["label"], r["rationale"], r["status"], r["request_hash"])
              for r in store.items_by_order("tickets", None)}
    store.update_project("tickets", template="Which team should handle this?\n\n{text}")  # no reply format
    fake.responder = lambda body: "Probably the people who handle this kind of thing."
    kept = trials.run_trial(store, "tickets", load_prices(), 6)
    assert kept["answered"] == 6 and kept["parsed"] == 0  # the try saw the unreadable answers ...
    after = {r["row_id"]: (r["label"], r["rationale"], r["status"], r["request_hash"])
             for r in store.items_by_order("tickets", None)}
    assert after == before  # ... and the rows keep theirs
    replaced = trials.run_trial(store, "tickets", load_prices(), 6, replace_answers=True)
    assert replaced["cache_hits"] == 6  # the same requests: answered by the cache, not bought again
    assert store.count_items("tickets")["by_status"] == {"flagged": 6}  # asked for: now the try's answers
