"""The priced second reading of unread answers (core/label/reread.py, `core reread`): a cheap model
with structured output reads each unread stored answer; priced first, refused over the cap, billed
once, recorded per row, tested against the fake Anthropic server."""

import json

import pytest

from core import jobs
from core.kernel.prices import load_prices
from core.label.answers import import_teacher_outputs, save_label_words
from core.label.reread import quote_reread, reread_request
from core.label.config import LabelConfig
from tests.helpers import import_csv, start_cli

MAIL = ("id,text,label\n1,Why was I charged twice?,complaint\n2,Do you ship to Norway?,question\n"
        "3,The parcel arrived broken,complaint\n4,Can I pay by invoice?,question\n")
PROSE = ["They are clearly unhappy about the double charge.", "This customer just wants to know the shipping area.",
         "A broken parcel would make anyone unhappy.", "Hard to say what this one is."]


def reader(body: dict) -> str:
    """A cheap model reading an answer: unhappy -> complaint, wants to know -> question, else none."""
    answer = body["messages"][-1]["content"].split("<answer>")[1]
    label = "complaint" if "unhappy" in answer else "question" if "wants to know" in answer else "none"
    return f"Answer: {label}"


@pytest.fixture
def cheap(serve_teacher):
    return serve_teacher(reader)


@pytest.fixture
def mail(store):
    import_csv(store, MAIL, project="mail")
    import_teacher_outputs(store, "mail", [(str(i + 1), a) for i, a in enumerate(PROSE)])
    return store


def reread(store, **kw):
    cfg = LabelConfig("mail", reread_model="claude-haiku-4-5", **kw).validate()
    return jobs.run_foreground(store, "mail", "label", cfg.as_job_config())[1]


def test_the_request_asks_for_one_label_of_an_enum_with_structured_output(mail):
    project = mail.get_project("mail")
    item = mail.get_item("mail", "1")
    request = reread_request(project, item, PROSE[0], "claude-haiku-4-5")
    schema = request["output_config"]["format"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["complaint", "question", "none"]
    assert PROSE[0] in request["messages"][0]["content"] and "temperature" not in request


def test_quote_prices_the_reread_and_sends_nothing(mail, cheap):
    quote = quote_reread(mail, "mail", load_prices())
    assert (quote.rows, quote.requests, quote.cache_hits) == (4, 4, 0)
    assert 0 < quote.cost_usd_p50 < quote.cost_usd_p90
    assert cheap.requests == []


def test_over_the_cap_it_is_refused_and_nothing_is_sent(mail, cheap):
    mail.update_project("mail", budget_usd=1e-7)
    quote = quote_reread(mail, "mail", load_prices())
    assert quote.over_budget and "exceeds the remaining budget" in quote.over_budget
    result = reread(mail)  # started anyway: the spend ledger stops it before any call
    assert result["status"] == "stopped" and result["stop_reason"] == "budget"
    assert cheap.requests == []


def test_reread_labels_what_it_can_records_it_and_never_bills_twice(mail, cheap):
    result = reread(mail)
    assert result["status"] == "completed" and (result["labeled"], result["flagged"]) == (3, 1)
    rows = {r["row_id"]: r for r in mail.items_by_order("mail", None)}
    assert [rows[i]["label"] for i in "1234"] == ["complaint", "question", "complaint", None]
    assert [rows[i]["label_source"] for i in "123"] == ["reread"] * 3
    assert rows["1"]["rationale"] == PROSE[0]  # the teacher's own words stay the rationale
    assert {r: v["label"] for r, v in mail.rereads("mail").items()} == {"1": "complaint", "2": "question",
                                                                       "3": "complaint", "4": None}
    assert len(cheap.usage) == 4
    assert mail.spend("mail") == pytest.approx(cheap.billed_usd(load_prices()))
    # the one still unread was read by this model and named no label: it is not offered, nor sent, again
    assert quote_reread(mail, "mail", load_prices()).rows == 0
    again = reread(mail)
    assert again["rows"] == 0 and len(cheap.usage) == 4
    save_label_words(mail, "mail", "unhappy=complaint")  # reading the answers again keeps the re-read labels
    rows = {r["row_id"]: r for r in mail.items_by_order("mail", None)}
    assert [rows[i]["label"] for i in "123"] == ["complaint", "question", "complaint"]


def test_cli_quotes_without_yes_and_reads_with_it(mail, cheap):
    mail.release()
    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": cheap.url}
    proc = start_cli("reread", "--db", mail.path, "--project", "mail", env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    quoted = json.loads(out.strip().splitlines()[-1])
    assert quoted["sent"] == 0 and quoted["quote"]["requests"] == 4 and cheap.requests == []
    proc = start_cli("reread", "--db", mail.path, "--project", "mail", "--yes", env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    done = json.loads(out.strip().splitlines()[-1])
    assert done["status"] == "completed" and done["labeled"] == 3 and len(cheap.usage) == 4


def test_cli_refuses_over_the_cap(mail, cheap):
    mail.update_project("mail", budget_usd=1e-7)
    mail.release()
    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": cheap.url}
    proc = start_cli("reread", "--db", mail.path, "--project", "mail", "--yes", env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "exceeds the remaining budget" in out + err
    assert cheap.requests == []



def test_page_prices_the_reread_as_its_own_line_and_starts_it(app_store, cheap):
    from tests.helpers import open_page

    import_csv(app_store, MAIL, project="mail")
    import_teacher_outputs(app_store, "mail", [(str(i + 1), a) for i, a in enumerate(PROSE)])
    at = open_page("pages/2_Prompt_and_budget.py", "mail")
    at.checkbox(key="stored_why").check().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    versions = next(d.value for d in at.dataframe if "template version" in d.value.columns)
    assert list(versions["template version"]) == ["imported"] and list(versions["parse rate"]) == [0.0]
    assert "Re-read requests" not in {m.label for m in at.metric}  # priced on request only
    at.button(key="reread_price").click().run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Re-read requests"] == "4" and metrics["Re-read cost P90"].startswith("$")
    assert cheap.requests == []  # priced, nothing sent
    next(b for b in at.button if b.label == "Re-read 4 answers").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    started = next(s.value for s in at.success if "Re-read job" in s.value)
    job_id = started.split("Re-read job ")[1].split(" ")[0].replace("\\", "")
    assert jobs.wait(app_store, job_id, timeout_s=120)["status"] == "completed"
    assert len(cheap.usage) == 4
    assert sum(r["label_source"] == "reread" for r in app_store.items_by_order("mail", None)) == 3


def test_empty_answers_are_not_sent_to_a_reread(store, cheap):
    import_csv(store, MAIL, project="mail")
    import_teacher_outputs(store, "mail", [("1", ""), ("2", PROSE[1])])
    quote = quote_reread(store, "mail", load_prices())
    assert (quote.rows, quote.requests) == (1, 1)
