"""Label words end to end: a prompt that asks "yes / no" for labels complaint / question, and
teacher answers imported or stored before the words were set."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.label.answers import import_teacher_outputs, reparse_answers, save_label_words
from core.kernel.errors import AppError
from core.prompt.templates import build_request, validate_template
from tests.helpers import REPO, import_csv, start_cli

MAIL = ("id,text,label\n1,Why was I charged twice?,complaint\n2,Do you ship to Norway?,question\n"
        "3,The parcel arrived broken,complaint\n4,Can I pay by invoice?,question\n")
ANSWERS = ["Yes, the customer complains about a double charge.", "Answer: no. It is a plain question.",
           "**Yes**: a broken parcel is a complaint.", "The answer is no because they only ask."]


@pytest.fixture
def mail(store):
    import_csv(store, MAIL, project="mail")
    return store


def test_answers_in_other_words_are_flagged_without_words_and_read_with_them(mail):
    out = import_teacher_outputs(mail, "mail", [(None, a) for a in ANSWERS])
    # without words only the answer that names a label in prose ("... is a complaint") is read
    assert out["parsed"] == 1 and out["flagged"] == 3
    again = save_label_words(mail, "mail", "yes=complaint, no=question")
    assert again["label_words"] == {"yes": "complaint", "no": "question"}
    assert (again["changed"], again["parsed_before"], again["parsed_after"]) == (4, 1, 4)
    labels = {r["row_id"]: r["label"] for r in mail.items_by_order("mail", None)}
    assert labels == {"1": "complaint", "2": "question", "3": "complaint", "4": "question"}
    assert reparse_answers(mail, "mail")["changed"] == 0  # nothing new to read


def test_bad_label_words_are_refused_and_nothing_is_saved(mail):
    for spec, why in [("yes=complaint, no=praise", "praise"), ("yes", "="), ("yes=complaint,yes=question", "yes")]:
        with pytest.raises(AppError, match=why):
            save_label_words(mail, "mail", spec)
    assert mail.get_project("mail").label_words is None


def test_the_prompt_can_list_the_words_and_json_mode_enumerates_them(mail):
    save_label_words(mail, "mail", "yes=complaint,no=question")
    project = mail.get_project("mail")
    with pytest.raises(AppError, match="no label words"):
        validate_template("Is it a complaint ({label_words})? {text}", ["text"], "classification")
    validate_template("Is it a complaint ({label_words})? {text}", ["text"], "classification",
                      label_words=project.label_words)
    item = mail.items_by_order("mail", None)[0]
    req = build_request("Is it a complaint ({label_words})? {text}", item, project.label_set, "m", 50,
                        output_format="json", task="classification", label_words=project.label_words)
    assert req["messages"][0]["content"].startswith("Is it a complaint (yes, no)?")
    assert req["output_config"]["format"]["schema"]["properties"]["label"]["enum"] == ["yes", "no"]


def test_cli_import_teacher_with_label_words(mail, tmp_path):
    mail.release()
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": str(i + 1), "response": a}) + "\n" for i, a in enumerate(ANSWERS)))
    proc = start_cli("import-teacher", "--db", mail.path, "--project", "mail", "--label-words", "yes=complaint,no=question",
                     str(answers))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["parsed"], result["flagged"], result["teacher_accuracy"]) == (4, 0, 1.0)
    bad = start_cli("import-teacher", "--db", mail.path, "--project", "mail", "--label-words", "yes=praise", str(answers))
    out, err = bad.communicate(timeout=300)
    assert bad.returncode != 0 and "praise" in out + err


def test_cli_label_words_sets_and_shows_them(mail):
    mail.release()
    proc = start_cli("label-words", "--db", mail.path, "--project", "mail", "yes=complaint, no=question")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["label_words"] == {"yes": "complaint", "no": "question"}
    show = start_cli("label-words", "--db", mail.path, "--project", "mail")
    out, _ = show.communicate(timeout=300)
    assert json.loads(out.strip().splitlines()[-1])["label_words"] == {"yes": "complaint", "no": "question"}


def test_prompt_page_saves_label_words_and_rereads_stored_answers(app_store):
    import_csv(app_store, MAIL, project="mail")
    import_teacher_outputs(app_store, "mail", [(None, a) for a in ANSWERS])
    at = AppTest.from_file(str(REPO / "pages/2_Prompt_and_budget.py"), default_timeout=60)
    at.query_params["project"] = "mail"
    at.run()
    at.text_input(key="label_words").set_value("yes=complaint, no=question").run()
    next(b for b in at.button if b.label == "Save prompt").click().run()
    assert not at.exception and not at.error
    assert any("4 now parse, 1 did before" in i.value for i in at.info)
    assert app_store.get_project("mail").label_words == {"yes": "complaint", "no": "question"}
