"""Why answers were not read (core/label/diagnosis.py, `core why-unread`, the Prompt page): the
unread answers grouped by shape, one suggested fix, applied as a new template version."""

import json

import pytest

from core.label.answers import import_teacher_outputs
from core.label.diagnosis import apply_fix, group_unread, stored_diagnosis, suggest_fix
from tests.helpers import correct_responder, import_csv, open_page, start_cli

LABELS = ["billing", "technical", "shipping"]
MAIL = ("id,text,label\n1,Why was I charged twice?,complaint\n2,Do you ship to Norway?,question\n"
        "3,The parcel arrived broken,complaint\n4,Can I pay by invoice?,question\n"
        "5,You billed me after I cancelled,complaint\n6,Is there a store in Oslo?,question\n")


def answers(*texts, stop_reason="end_turn", gold=None):
    return [{"text": t, "stop_reason": stop_reason, "choices": None, "gold": gold} for t in texts]


def shapes_of(rows, labels=LABELS, task="classification"):
    return {s.key: s.count for s in group_unread(rows, task, labels)}


# ---- shapes ---------------------------------------------------------------------------------
def test_each_unread_answer_is_put_in_one_shape_and_read_ones_are_skipped():
    rows = (answers("Answer: billing\nRationale: charged twice.")                     # read: skipped
            + answers("Yes, the customer complains.", "Answer: no. Just a question.")  # other words
            + answers("It is both a billing and a shipping problem.")                  # several
            + answers("I'm sorry, I cannot help with that request.")                   # refusal
            + answers("The customer seems upset about something.")                     # no answer
            + answers('{"rationale": "The customer was charged tw", "lab')              # broken JSON
            + answers("The charge appears", stop_reason="max_tokens")                  # cut off
            + [{"text": None, "error": "overloaded_error", "choices": None, "gold": None}])
    assert shapes_of(rows) == {"other_words": 2, "several": 1, "refusal": 1, "no_answer": 1, "broken_json": 1,
                               "cut_off": 1, "failed": 1}


def test_examples_are_kept_per_shape_and_groups_are_largest_first():
    rows = answers(*[f"The customer seems upset about thing {i}." for i in range(5)]) + answers("Both billing and shipping.")
    groups = group_unread(rows, "classification", LABELS)
    assert [g.key for g in groups] == ["no_answer", "several"]
    assert groups[0].count == 5 and len(groups[0].examples) == 3


# ---- the fix ------------------------------------------------------------------------------
class Project:
    def __init__(self, **kw):
        self.task, self.label_set, self.label_words = "classification", LABELS, None
        self.template, self.output_format, self.mode, self.max_tokens = "Which team? {text}", "text", "zero-shot", 200
        self.input_fields = ["text"]
        self.__dict__.update(kw)


def test_prose_without_a_format_line_gets_the_format_line_with_the_labels():
    fix = suggest_fix(Project(), group_unread(answers("The customer seems upset."), "classification", LABELS))
    assert fix.kind == "format_line"
    assert fix.template.startswith("Which team? {text}")
    assert "{labels}" in fix.template and "Answer: <category>" in fix.template


def test_a_template_that_has_a_format_line_is_switched_to_json_output():
    project = Project(template="Which team? {text}\n\nReply in exactly this format:\nAnswer: <team>\nRationale: <why>")
    fix = suggest_fix(project, group_unread(answers("Billing or shipping, hard to say."), "classification", LABELS))
    assert fix.kind == "json_output" and fix.settings == {"output_format": "json"}
    assert "Answer: <team>" not in fix.template  # the free-text format lines become JSON field hints


def test_other_words_become_label_words_mapped_by_the_gold_labels():
    rows = (answers("Yes, they are upset about the charge.", "Yes: a broken parcel.", "Yes. Billed twice.",
                    gold="complaint")
            + answers("No - they only ask.", "No. They want to know the price.", "No, an address.", gold="question")
            + answers("Maybe: hard to tell.", gold="question"))  # one row is too few to map a word
    project = Project(label_set=["complaint", "question"])
    groups = group_unread(rows, "classification", ["complaint", "question"])
    assert [(g.key, g.count) for g in groups] == [("other_words", 7)]
    fix = suggest_fix(project, groups)
    assert fix.kind == "label_words" and fix.label_words == {"yes": "complaint", "no": "question"}
    assert "'maybe'" in fix.message and "gold label" in fix.message  # what it left, and where the mapping came from


def test_nli_words_are_mapped_by_gold_and_unknown_words_without_gold_get_a_format_line():
    # (supported / refuted are read as NLI words directly now; these two are not)
    project = Project(task="nli", label_set=["entailment", "neutral", "contradiction"], template="{text}")
    rows = (answers("Confirmed. The premise says so.", "Confirmed: it is stated.", "Confirmed, clearly.",
                    gold="entailment")
            + answers("Disproved, the premise says the opposite.", "Disproved: he was asleep.", "Disproved.",
                      gold="contradiction"))
    fix = suggest_fix(project, group_unread(rows, "nli", project.label_set))
    assert fix.kind == "label_words" and fix.label_words == {"confirmed": "entailment", "disproved": "contradiction"}
    no_gold = answers("Confirmed. The premise says so.", "Disproved: he was asleep.")
    fix = suggest_fix(project, group_unread(no_gold, "nli", project.label_set))
    assert fix.kind == "format_line"  # nothing tells which label a new word stands for


def test_cut_off_answers_double_max_tokens():
    fix = suggest_fix(Project(), group_unread(answers("The charge", stop_reason="max_tokens"), "classification", LABELS))
    assert fix.kind == "max_tokens" and fix.settings == {"max_tokens": 400}


def test_refusals_alone_suggest_no_prompt_change():
    assert suggest_fix(Project(), group_unread(answers("I'm sorry, I cannot do that."), "classification", LABELS)) is None


# ---- stored answers, the CLI ----------------------------------------------------------------
@pytest.fixture
def mail(store):
    import_csv(store, MAIL, project="mail")
    store.update_project("mail", template="Is this a complaint? {text}")
    return store


YES_NO = ["Yes, they were charged twice.", "No, they only ask.", "Yes: broken parcel.",
          "No. They ask about paying.", "Yes - billed after cancelling.", "No, they want an address."]


def test_stored_answers_in_yes_no_are_diagnosed_and_the_label_words_fix_reads_them(mail):
    import_teacher_outputs(mail, "mail", [(str(i + 1), a) for i, a in enumerate(YES_NO)])
    report = stored_diagnosis(mail, "mail")
    assert report["versions"] == [{"template_version": None, "answers": 6, "parsed": 0, "unread": 6,
                                   "parse_rate": 0.0}]
    assert [(s["shape"], s["count"]) for s in report["shapes"]] == [("other_words", 6)]
    assert report["fix"].label_words == {"yes": "complaint", "no": "question"}
    out = apply_fix(mail, "mail", report["fix"])
    assert out["reread"]["parsed_after"] == 6
    assert stored_diagnosis(mail, "mail")["versions"][0]["parse_rate"] == 1.0


def test_cli_import_teacher_says_why_and_why_unread_applies_the_fix(mail, tmp_path):
    mail.release()
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps({"id": str(i + 1), "response": a}) + "\n" for i, a in enumerate(YES_NO)))
    proc = start_cli("import-teacher", "--db", mail.path, "--project", "mail", str(path))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    imported = json.loads(out.strip().splitlines()[-1])
    assert imported["flagged"] == 6 and imported["why_unread"]["shapes"][0]["shape"] == "other_words"
    assert imported["why_unread"]["fix"]["kind"] == "label_words"
    proc = start_cli("why-unread", "--db", mail.path, "--project", "mail", "--apply")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    applied = json.loads(out.strip().splitlines()[-1])["applied"]
    assert applied["fix"] == "label_words" and applied["reread"]["parsed_after"] == 6


def test_a_format_fix_is_saved_as_a_new_template_version(store):
    import_csv(store)
    store.update_project("tickets", template="Which team handles this? {text}")
    before = store.template_version("tickets")
    fix = suggest_fix(store.get_project("tickets"), group_unread(answers("Upset customer."), "classification", LABELS))
    out = apply_fix(store, "tickets", fix)
    assert out["template_version"] == before + 1
    assert "Reply in exactly this format:" in store.get_project("tickets").template


# ---- the page -------------------------------------------------------------------------------
def prose_unless_formatted(body: dict) -> str:
    """A teacher that answers in prose naming no team unless the prompt gives a reply format."""
    if "Reply in exactly this format" in body["messages"][-1]["content"]:
        return correct_responder(body)
    return "This customer clearly needs help from someone soon."


@pytest.fixture
def prose_teacher(serve_teacher):
    return serve_teacher(prose_unless_formatted)


def test_page_shows_why_a_try_was_not_read_and_one_click_fixes_the_prompt(app_store, prose_teacher):
    import_csv(app_store)
    app_store.update_project("tickets", template="Which team handles this ticket? {text}")
    at = open_page("pages/2_Prompt_and_budget.py", "tickets")
    at.number_input(key="trial_n").set_value(4).run()
    at.button(key="trial_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Parse rate"] == "0%"
    shapes = next(d.value for d in at.dataframe if "shape" in d.value.columns)
    assert list(shapes["shape"]) == ["names no answer"] and list(shapes["answers"]) == [4]
    assert any("Suggested fix" in i.value and "format lines" in i.value for i in at.info)
    version = app_store.template_version("tickets")
    next(b for b in at.button if b.label.startswith("Apply the fix")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert app_store.template_version("tickets") == version + 1
    assert any(f"template version {version + 1}" in s.value for s in at.success)
    assert "Reply in exactly this format:" in at.text_area(key="template_text").value  # the editor shows it
    at.button(key="trial_start").click().run()  # the fixed prompt, tried again
    assert {m.label: m.value for m in at.metric}["Parse rate"] == "100%"
    assert [t["template_version"] for t in app_store.list_trials("tickets")] == [version + 1, version]


# ---- what a new user hit ----------------------------------------------------------------------
def test_a_labelled_answer_naming_two_labels_is_several_not_other_words():
    rows = answers("Answer: billing, shipping", "Answer: technical or shipping", gold="billing")
    assert shapes_of(rows) == {"several": 2}


def test_json_with_a_label_outside_the_set_is_not_broken_json_and_json_is_not_suggested_again():
    rows = answers('{"label": "technical or shipping", "rationale": "both"}', "")
    assert shapes_of(rows) == {"json_label": 1, "empty": 1}
    assert suggest_fix(Project(output_format="json"), group_unread(rows, "classification", LABELS)) is None


def test_a_max_tokens_already_raised_since_the_answers_were_cut_is_not_raised_again():
    rows = [{**a, "output_tokens": 200} for a in answers("The charge", stop_reason="max_tokens")]
    groups = group_unread(rows, "classification", LABELS)
    assert suggest_fix(Project(max_tokens=200), groups).settings == {"max_tokens": 400}
    assert suggest_fix(Project(max_tokens=400), groups) is None


def test_answers_of_an_older_version_or_imported_ones_get_no_prompt_change(store):
    groups = group_unread(answers("The customer seems upset."), "classification", LABELS)
    assert suggest_fix(Project(), groups, "older") is None and suggest_fix(Project(), groups, "imported") is None
    import_csv(store)
    store.update_project("tickets", template="Which team? {text}")
    import_teacher_outputs(store, "tickets", [("1", "The customer seems upset."), ("2", "Nobody knows.")])
    report = stored_diagnosis(store, "tickets")
    assert report["answers_from"] == "imported" and report["fix"] is None
    assert "imported" in report["note"]
