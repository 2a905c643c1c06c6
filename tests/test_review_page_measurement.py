"""The Review page measures itself (issue 15): blind rows, the keyboard actions, independent
second review, review quality and cost, prompt fixes. AppTest drives the widgets as a person."""

from core.review import rules as review
from tests.helpers import open_page

DEMO = "support-tickets-demo"


def wait_for_job(store, project: str, timeout_s: float = 120) -> dict:
    import time

    from core import jobs

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.jobs_for(store, project, "label")[0]
        if job["status"] not in jobs.ACTIVE:
            return job
        time.sleep(0.5)
    raise AssertionError("the labeling job did not finish")


def page_strings(at) -> str:
    """Everything the page shows as text, tables included."""
    parts = [e.value for kind in ("text", "caption", "markdown", "code", "info", "success", "error")
             for e in getattr(at, kind)]
    parts += [e.value.to_string() for e in at.dataframe]
    parts += [str(t.value) for t in at.text_area] + [str(t.value) for t in at.text_input]
    return "\n".join(str(p) for p in parts)


def button(at, key):
    return next(b for b in at.button if b.key == key)


def test_blind_row_shows_nothing_of_the_teacher_before_the_own_label_is_saved(app_store):
    at = open_page("pages/4_Review.py", DEMO)
    at.number_input(key="plan_blind").set_value(1.0)
    button(at, "plan_create").click().run()
    at.multiselect(key="review_filter").set_value(["blind (spot check)"]).run()
    row_id = at.selectbox(key="review_row").value
    item = app_store.get_item(DEMO, row_id)
    shown = page_strings(at)
    assert item["teacher_rationale"] not in shown and f"teacher: {item['teacher_label']}" not in shown
    assert "(blind)" in shown
    assert not any(t.label == "Rationale" for t in at.text_area)
    at.text_input(key="reviewer_name").set_value("ana").run()
    assert item["teacher_rationale"] not in page_strings(at)
    picker = at.selectbox(key=f"review_blind_label:{row_id}:{item['version']}:blind")
    assert picker.value is None  # nothing pre-selected, not even the teacher's label
    other = next(x for x in app_store.get_project(DEMO).label_set if x != item["teacher_label"])
    button(at, f"pick_{app_store.get_project(DEMO).label_set.index(other) + 1}").click().run()  # key 1-9
    assert any("Your label is saved" in s.value for s in at.success), [e.value for e in at.error]
    assert app_store.blind_label(DEMO, row_id, "ana") == other
    shown = page_strings(at)
    assert item["teacher_rationale"] in shown and f"teacher: {item['teacher_label']}" in shown  # revealed
    assert f"Your own label, given blind: {other}" in shown  # beside the teacher's, for the verdict
    assert app_store.get_item(DEMO, row_id)["reviewed"] is False  # the verdict is still to come


def test_keyboard_actions_accept_and_move_on_in_one_rerun(app_store):
    at = open_page("pages/4_Review.py", DEMO)
    at.text_input(key="reviewer_name").set_value("ana").run()
    first = at.selectbox(key="review_row").value
    order = list(app_store.review_ids(DEMO, ["unreviewed"]))
    button(at, "quick_accept").click().run()  # A
    assert app_store.get_item(DEMO, first)["verdict"] == "accept"
    second = at.selectbox(key="review_row").value
    assert second == order[1]
    labels = app_store.get_project(DEMO).label_set
    teacher = app_store.get_item(DEMO, second)["teacher_label"]
    other = next(x for x in labels if x != teacher)
    button(at, f"pick_{labels.index(other) + 1}").click().run()  # a number key: that label, saved, next row
    saved = app_store.get_item(DEMO, second)
    assert (saved["label"], saved["verdict"]) == (other, "correct")
    third = at.selectbox(key="review_row").value
    button(at, "quick_reject").click().run()  # X
    assert app_store.get_item(DEMO, third)["verdict"] == "reject_rationale"
    fourth = at.selectbox(key="review_row").value
    button(at, "quick_flag").click().run()  # F
    assert app_store.get_item(DEMO, fourth)["verdict"] == "flag"
    button(at, "undo").click().run()  # U
    assert app_store.get_item(DEMO, fourth)["reviewed"] is False
    button(at, "prev_row").click().run()  # K
    assert at.selectbox(key="review_row").value == fourth  # the undone row is back in the queue, just before
    events = [e for e in app_store.review_events(DEMO) if e["reviewer"] == "ana"]
    assert len(events) == 4 and all(e["opened_at"] is not None and e["shown"] == "teacher" for e in events)


def test_second_reviewer_decides_independently_and_kappa_counts_the_pair(app_store):
    at = open_page("pages/4_Review.py", DEMO)  # the first run makes the demo project
    row_id = next(iter(app_store.review_ids(DEMO, ["unreviewed"])))
    teacher = app_store.get_item(DEMO, row_id)["teacher_label"]
    review.save_review(app_store, DEMO, row_id, "ana", teacher, "Ana's own rationale.", mode="first")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    at.selectbox(key="review_row").set_value(row_id).run()
    at.text_input(key="reviewer_name").set_value("ben").run()
    shown = page_strings(at)
    assert "Ana's own rationale." not in shown and "another reviewer decided this row" in shown
    version = app_store.get_item(DEMO, row_id)["version"]
    picker = at.selectbox(key=f"review_label:{row_id}:{version}:independent")
    assert picker.value is None
    picker.set_value(teacher)
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    assert app_store.get_item(DEMO, row_id)["rationale"] == "Ana's own rationale."  # ben did not touch it
    assert "(1 independent pairs)" in page_strings(at)


def test_quality_panel_and_prompt_fixes(app_store):
    open_page("pages/4_Review.py", DEMO)  # the first run makes the demo project
    rows = list(app_store.review_ids(DEMO, ["unreviewed"]))[:3]
    labels = app_store.get_project(DEMO).label_set
    for row_id in rows:
        teacher = app_store.get_item(DEMO, row_id)["teacher_label"]
        review.save_review(app_store, DEMO, row_id, "ana", next(x for x in labels if x != teacher), None,
                           comment="reviewer note", mode="first")
    at = open_page("pages/4_Review.py", DEMO)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Decisions"] == "3" and metrics["Accepted labels"] == "3"
    assert "Automation bias: not measured yet" in page_strings(at)
    clusters = at.selectbox(key="fix_cluster")
    assert clusters.value.startswith("confusion: ")
    amendment = next(t for t in at.text_area if t.label == "Amendment to the prompt")
    assert "reviewer note" in amendment.value
    assert "Re-asking" not in page_strings(at)  # priced on request only
    button(at, "fix_price").click().run()
    assert "Re-asking" in page_strings(at) and "expected cost $" in page_strings(at)
    version = app_store.template_version(DEMO)
    button(at, "fix_apply").click().run()  # the demo has no API key: refused before anything changes
    assert any("no API key is set" in e.value for e in at.error), [e.value for e in at.error]
    assert app_store.template_version(DEMO) == version and not app_store.list_jobs(DEMO, "label")


def test_prompt_fix_reask_runs_as_a_labeling_job(app_store, fake, monkeypatch):
    from tests.helpers import import_csv

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    import_csv(app_store)
    from core.label.teacher import label_project

    label_project(app_store, "tickets", api_key="k", base_url=fake.url)
    review.save_review(app_store, "tickets", "1", "ana", "technical", None, mode="first")
    at = open_page("pages/4_Review.py", "tickets")
    at.selectbox(key="fix_cluster").set_value("confusion: billing -> technical").run()
    button(at, "fix_price").click().run()
    version, sent = app_store.template_version("tickets"), len(fake.requests)
    button(at, "fix_apply").click().run()
    assert any("re-asks 1 row(s)" in s.value for s in at.success), [e.value for e in at.error]
    job = wait_for_job(app_store, "tickets")
    assert job["status"] == "completed", job
    assert app_store.template_version("tickets") == version + 1 and len(fake.requests) == sent + 1


def test_focus_mode_highlights_shared_words_and_escapes_the_data(app_store, fake):
    from core.label.teacher import label_project
    from tests.helpers import import_csv

    import_csv(app_store, "id,text,label\n1,<img src=x onerror=alert(1)> I was charged twice,billing\n"
                          "2,The app crashes,technical\n")
    label_project(app_store, "tickets", api_key="k", base_url=fake.url)
    review.save_review(app_store, "tickets", "1", "ana", None, "Charged twice: a billing matter.", mode="first")
    at = open_page("pages/4_Review.py", "tickets")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    at.selectbox(key="review_row").set_value("1").run()
    at.text_input(key="reviewer_name").set_value("ana").run()  # her own row: her rationale is the one shown
    at.toggle(key="focus_mode").set_value(True).run()
    bodies = [e.proto.body for e in at.get("html")]
    text = next(b for b in bodies if "focus-text" in b and "charged" in b)
    assert "<mark>charged</mark>" in text and "<mark>twice</mark>" in text and "<mark>I</mark>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "<img" not in text  # shown as typed, never as HTML
    assert not any(e.label == "Bulk action" for e in at.expander)  # the panels are hidden in focus mode
