"""One AppTest per page, each driving the page's main action."""

import json
import os

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.jobs import lifecycle
from core.jobs import runner
from core.kernel import paths

from core.jobs import processes

from core.review import rules as review
from tests.helpers import REPO, import_csv, open_page

DEMO = "support-tickets-demo"



def test_home_shows_demo_project(app_store):
    at = open_page("app.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "400" and metrics["Teacher spend"] == "$0.0000"
    assert any("recorded demo teacher" in c.value for c in at.sidebar.caption)


def test_data_page_shows_counts_and_preview(app_store):
    at = open_page("pages/1_Data.py")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Rows"] == "400"
    assert len(at.dataframe) == 1


def test_prompt_page_validates_saves_and_estimates(app_store):
    at = open_page("pages/2_Prompt_and_budget.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    # the demo is fully labeled, so the forecast is for re-labeling its 400 rows with this prompt
    assert metrics["Cost P50"].startswith("$") and metrics["Cost P90"].startswith("$")
    at.text_area(key="template_text").set_value("Ticket: {subject} {bodyy}").run()
    next(b for b in at.button if b.label == "Save prompt").click().run()
    assert any("Unknown placeholder {bodyy}" in e.value for e in at.error)
    assert app_store.get_project(DEMO).template.startswith("Classify")  # unchanged
    at.text_area(key="template_text").set_value("Categorise ({labels}): {subject}\n{body}").run()
    next(b for b in at.button if b.label == "Save prompt").click().run()
    assert not at.error
    assert app_store.get_project(DEMO).template == "Categorise ({labels}): {subject}\n{body}"
    assert any('"max_tokens": 200' in c.value for c in at.code)  # exact request preview
    assert len(app_store.template_versions(DEMO)) == 2


def test_prompt_page_json_mode_preview_and_budget_cap(app_store):
    at = open_page("pages/2_Prompt_and_budget.py")
    at.radio(key="output_format").set_value("json").run()
    assert any('"output_config"' in c.value and '"json_schema"' in c.value for c in at.code)
    at.number_input(key="budget_cap").set_value(0.5).run()
    next(b for b in at.button if b.label == "Save cap").click().run()
    assert app_store.get_project(DEMO).budget_usd == 0.5
    assert not at.exception and len(at.dataframe) == 0  # the cost table waits to be asked for
    next(b for b in at.button if b.key == "compute_table").click().run()
    assert not at.exception and len(at.dataframe) == 1


def test_label_page_starts_a_background_job(app_store, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    at = open_page("pages/3_Label.py")
    import_csv(app_store)
    at.run()
    at.sidebar.selectbox(key="_project_widget").set_value("tickets").run()  # as a person picks it
    at.button[0].click().run()  # Start labeling (form submit)
    assert any("Started job" in s.value for s in at.success), [e.value for e in at.error]
    job = app_store.list_jobs("tickets", "label")[0]
    assert jobs.wait(app_store, job["id"], timeout_s=120)["status"] == "completed"
    at.run()
    assert {m.label: m.value for m in at.metric}["Requests billed"] == "6"
    assert "test-key" not in json.dumps([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_label_page_prices_and_runs_the_chosen_rows_and_rationale_fraction(app_store, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    import_csv(app_store)
    at = open_page("pages/3_Label.py", "tickets")
    assert any("would send 6 requests; 0 rows are answered from the cache" in c.value for c in at.caption)
    at.slider(key="label_fraction").set_value(0.5).run()
    at.button[0].click().run()
    job = app_store.list_jobs("tickets", "label")[0]
    assert jobs.wait(app_store, job["id"], timeout_s=120)["status"] == "completed"
    assert (job["config"]["rationale_fraction"], job["config"]["relabel"]) == (0.5, None)
    at.selectbox(key="relabel").set_value("all").run()
    assert any("would send 0 requests; 6 rows are answered from the cache" in c.value for c in at.caption)
    at.slider(key="label_fraction").set_value(1.0).run()  # topping rationales up: only the label-only rows
    label_only = sum("Reply with exactly one line" in r["body"]["messages"][-1]["content"] for r in fake.requests)
    assert label_only == 3 and any(f"would send {label_only} requests" in c.value for c in at.caption)


def test_label_page_refuses_a_second_run_and_opens_the_running_one(app_store):
    import_csv(app_store)
    holder = jobs.create_job(app_store, "tickets", "label", {}, lease=True, **processes.identity(os.getpid()))
    lifecycle.move(app_store, holder, "running")
    newer = jobs.create_job(app_store, "tickets", "label", {})  # listed first: the page must find the running one
    lifecycle.move(app_store, newer, "cancelled")
    try:
        at = open_page("pages/3_Label.py", "tickets")
        at.button[0].click().run()  # Start labeling (form submit)
        assert any(f"Labeling job {holder} is already running" in e.value for e in at.error), [e.value for e in at.error]
        assert len(app_store.list_jobs("tickets", "label")) == 2  # nothing new was recorded
        next(b for b in at.button if b.label == f"Open job {holder}").click().run()
        assert at.query_params["job"] in (holder, [holder])
        assert at.get("progress")[0].proto.text.replace("\\", "").startswith(f"Job {holder}: running")
    finally:
        lifecycle.move(app_store, holder, "cancelled")


def test_label_page_shows_why_a_job_stopped_and_its_parse_failures(app_store):
    import_csv(app_store)
    job_id = jobs.create_job(app_store, "tickets", "label", {})
    lifecycle.move(app_store, job_id, "running")
    app_store.update_job(job_id, done=142, total=262)
    runner.finish(app_store, job_id, {"status": "stopped", "stop_reason": "budget", "labeled": 71, "flagged": 71,
                                     "parse_failure_share": 0.5})
    at = open_page("pages/3_Label.py", "tickets")
    text = at.get("progress")[0].proto.text.replace("\\", "")
    assert "stopped: budget reached · 142/262 rows" in text and "completed" not in text
    assert {m.label: m.value for m in at.metric}["Unparseable answers"] == "50%"
    assert any("50% of the answers could not be parsed (71 rows flagged)" in e.value for e in at.error)


def test_review_page_saves_an_audited_edit(app_store):
    at = open_page("pages/4_Review.py")
    assert not at.exception
    at.multiselect(key="review_filter").set_value(["all"]).run()
    row_id = at.selectbox(key="review_row").value
    at.text_input(key="reviewer_name").set_value("ana")
    version = app_store.get_item(DEMO, row_id)["version"]
    at.selectbox(key=f"review_label:{row_id}:{version}").set_value("technical")
    at.text_area(key=f"review_rationale:{row_id}:{version}").set_value("A reviewer's rationale.")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    item = app_store.get_item(DEMO, row_id)
    assert (item["label"], item["rationale"], item["reviewer"], item["verdict"]) == (
        "technical", "A reviewer's rationale.", "ana", "correct")
    assert app_store.audit_trail(DEMO, row_id)[0]["reviewer"] == "ana"
    table = next(d.value for d in at.dataframe if "state" in d.value.columns)
    state = table.set_index("row_id").loc[row_id, "state"]
    assert state == "corrected by ana"  # not "labeled"
    assert any("corrected by ana" in t.value for t in at.text)  # the open row says so too
    next(b for b in at.button if b.label == "Next ▶").click().run()
    assert at.selectbox(key="review_row").value != row_id
    next(b for b in at.button if b.label.startswith("Undo ana")).click().run()
    assert app_store.get_item(DEMO, row_id)["reviewed"] is False
    undone = next(s.value for s in at.success if s.value.startswith("Undid"))
    assert f"row {row_id}:" in undone.replace("\\", "") and "label" in undone
    # Back on the row: the form shows the stored (undone) values, not the text typed before.
    at.selectbox(key="review_row").set_value(row_id).run()
    assert next(t for t in at.text_area if t.label == "Rationale").value == app_store.get_item(DEMO, row_id)["rationale"]


def test_review_page_refuses_a_stale_edit_as_a_conflict(app_store):
    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    row_id = at.selectbox(key="review_row").value
    version = app_store.get_item(DEMO, row_id)["version"]  # the version ana's form was filled from
    review.save_review(app_store, DEMO, row_id, "ben", None, "Ben got there first.")  # another session saves
    at.text_input(key="reviewer_name").set_value("ana")
    at.text_area(key=f"review_rationale:{row_id}:{version}").set_value("Ana's edit on the old copy.")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("changed by someone else" in e.value for e in at.error), [e.value for e in at.error]
    assert app_store.get_item(DEMO, row_id)["rationale"] == "Ben got there first."
    at.run()  # the next rerun: ben has decided the row, so ana now decides it independently
    item = app_store.get_item(DEMO, row_id)
    assert next(t for t in at.text_area if t.label == "Rationale").value == item["teacher_rationale"]
    picker = at.selectbox(key=f"review_label:{row_id}:{item['version']}:independent")
    assert picker.value is None  # her form starts empty
    assert not any("Ben got there first." in t.value for t in at.text)


def test_review_page_refuses_a_form_opened_before_a_new_teacher_answer(app_store):
    from core.db import TeacherWrites

    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    row_id = at.selectbox(key="review_row").value
    version = app_store.get_item(DEMO, row_id)["version"]
    app_store.write_teacher(DEMO, TeacherWrites(results=[{  # a labeling job writes a fresh answer meanwhile
        "row_id": row_id, "status": "labeled", "label": "returns", "rationale": "The teacher's new answer.",
        "flag": None, "request_hash": None, "source": "teacher", "confidence": None}]))
    at.text_input(key="reviewer_name").set_value("ana")
    at.text_area(key=f"review_rationale:{row_id}:{version}").set_value("Judged on the old answer.")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("changed by someone else" in e.value for e in at.error), [e.value for e in at.error]
    item = app_store.get_item(DEMO, row_id)
    assert (item["rationale"], item["reviewed"]) == ("The teacher's new answer.", False)


def test_review_page_leaves_a_missing_label_unpicked_and_refuses_to_save_it(app_store):
    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["parse errors"]).run()
    row_id = at.selectbox(key="review_row").value
    item = app_store.get_item(DEMO, row_id)
    assert item["label"] is None
    picker = at.selectbox(key=f"review_label:{row_id}:{item['version']}")
    assert picker.value is None and picker.placeholder == "Pick a label"
    at.text_input(key="reviewer_name").set_value("ana")
    next(b for b in at.button if b.label == "Save review").click().run()  # Ctrl+Enter with nothing picked
    assert any("Pick a label" in e.value for e in at.error), [e.value for e in at.error]
    assert app_store.get_item(DEMO, row_id) == item and not app_store.audit_trail(DEMO, row_id)
    at.selectbox(key=f"review_label:{row_id}:{item['version']}").set_value("returns")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    assert app_store.get_item(DEMO, row_id)["label"] == "returns"


def test_review_page_bulk_action_applies_to_the_rows_it_counted(app_store):
    import_csv(app_store)  # six unlabeled tickets
    at = open_page("pages/4_Review.py", "tickets")
    at.multiselect(key="review_filter").set_value(["unlabeled"]).run()
    at.text_input(key="reviewer_name").set_value("ana")  # ana reviews row 1 first, which names her
    at.selectbox(key="review_label:1:0").set_value("billing")
    next(b for b in at.button if b.label == "Save review").click().run()
    at.selectbox(key="bulk_action").set_value("flag").run()
    at.checkbox(key="bulk_confirm").check().run()
    assert "6 rows" in at.checkbox(key="bulk_confirm").label
    # after the confirmation: two rows enter the queue, and ben corrects one of the six
    import_csv(app_store, "id,text,label\n7,Refund not received,billing\n8,Parcel damaged,shipping\n")
    review.save_review(app_store, "tickets", "2", "ben", "technical", None)
    next(b for b in at.button if b.key == "bulk_apply").click().run()
    flagged = {r["row_id"] for r in app_store.review_page("tickets", "flagged by a reviewer")[0]}
    assert flagged == {"1", "3", "4", "5", "6"}, [e.value for e in at.error]
    assert app_store.get_item("tickets", "2")["label"] == "technical"  # ben's correction stands
    message = next(s.value for s in at.success if "Applied" in s.value)
    assert "Applied to 5 of the 6 rows you confirmed" in message and "Skipped 1 row(s)" in message, message
    assert "2 row(s) that entered this queue after you confirmed were left alone" in message
    at.run()
    assert at.checkbox(key="bulk_confirm").value is False  # done: a next bulk action is confirmed anew


def test_review_page_sampling_plan_and_bulk_flag(app_store):
    at = open_page("pages/4_Review.py")
    assert {m.label: m.value for m in at.metric}["Rows to review"] == "78"  # ±10% at 95% of 400 rows
    tradeoff = next(c.value for c in at.caption if c.value.startswith("Checking 78 of the 400 rows"))
    assert "±5% needs 197" in tradeoff.replace("\\", "")  # the cost of a narrower margin, in plain words
    at.number_input(key="plan_margin").set_value(0.05).run()
    assert {m.label: m.value for m in at.metric}["Rows to review"] == "197"  # ±5% at 95% of 400 rows
    next(b for b in at.button if b.key == "plan_create").click().run()
    assert app_store.scalar("SELECT count(*) FROM spot_checks") == pytest.approx(197, abs=3)
    at.multiselect(key="review_filter").set_value(["parse errors"]).run()
    at.selectbox(key="bulk_action").set_value("flag").run()
    at.checkbox(key="bulk_confirm").check().run()
    # the page learns the reviewer's name from the review form, as a person gives it: type it, save a review
    at.text_input(key="reviewer_name").set_value("ana")
    next(b for b in at.button if b.label == "Save review").click().run()
    at.checkbox(key="bulk_confirm").check().run()
    next(b for b in at.button if b.key == "bulk_apply").click().run()
    assert any("Applied to" in s.value for s in at.success), [e.value for e in at.error]
    assert app_store.review_page(DEMO, "flagged by a reviewer")[1] == app_store.review_page(DEMO, "parse errors")[1] > 0


def test_review_page_exports_the_dataset_as_a_zipped_hf_folder(app_store):
    import io
    import zipfile

    at = open_page("pages/4_Review.py")
    at.radio(key="dataset_format").set_value("hf")
    at.button(key="dataset_prepare").click().run()
    assert not at.exception and not at.error
    filename, data = at.session_state["dataset_file"]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert filename == f"{DEMO}-hf.zip" and f"{DEMO}-hf/dataset_info.json" in names
    at.radio(key="dataset_format").set_value("jsonl")
    at.button(key="dataset_prepare").click().run()
    lines = at.session_state["dataset_file"][1].decode().splitlines()
    labeled = app_store.scalar("SELECT count(*) FROM items WHERE project = ? AND label IS NOT NULL", [DEMO])
    assert len(lines) == labeled > 390 and json.loads(lines[0])["teacher_source"] == "recorded-demo"


def test_train_page_starts_a_run(app_store):
    at = open_page("pages/5_Train.py")
    assert not at.exception
    split = next(c.value for c in at.caption if "rows to train on" in c.value)  # the split, before any run
    assert "280 rows to train on, 40 validation rows" in split and "80 test rows (scored once)" in split
    assert any("at steps 24, 48, 72, 96, 120" in c.value for c in at.caption)  # the accuracy curve's points
    at.selectbox(key="student").set_value("tiny-random")
    at.number_input(key="steps").set_value(3)
    at.button[0].click().run()
    assert any("Started run" in s.value for s in at.success), [e.value for e in at.error]
    run = app_store.list_jobs(DEMO, "train")[0]
    assert run["config"]["student"] == "tiny-random" and run["config"]["max_steps"] == 3
    assert jobs.wait(app_store, run["id"], timeout_s=300)["status"] == "completed"


def test_train_page_starts_a_sweep_and_pauses_it(app_store):
    at = open_page("pages/5_Train.py")
    at.selectbox(key="sweep_student").set_value("tiny-random")
    at.multiselect(key="sweep_objectives").set_value(["multitask", "standard"])
    at.multiselect(key="sweep_fractions").set_value([0.5, 1.0])
    at.number_input(key="sweep_steps").set_value(100000)
    next(b for b in at.button if b.label == "Start sweep").click().run()
    assert any("3 runs" in s.value for s in at.success), [e.value for e in at.error]
    sweep = app_store.list_jobs(DEMO, "sweep")[0]
    assert {c["config"]["student"] for c in app_store.child_jobs(sweep["id"])} == {"tiny-random"}
    import time

    deadline = time.monotonic() + 120
    while not any(m["name"] == "train_loss" for c in app_store.child_jobs(sweep["id"])
                  for m in app_store.metrics([c["id"]])):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    at.run()
    next(b for b in at.button if b.key == f"pause-{sweep['id']}").click().run()
    assert jobs.wait(app_store, sweep["id"], timeout_s=120)["status"] == "paused"
    statuses = sorted(c["status"] for c in app_store.child_jobs(sweep["id"]))
    assert statuses == ["paused", "paused", "paused"]
    at.run()
    assert any(b.key == f"resume-{sweep['id']}" for b in at.button)


def test_results_page_compares_runs_and_exports(app_store, tmp_path):
    from dataclasses import asdict

    from core.train.trainer import TrainConfig

    open_page("app.py")  # creates the demo project
    for fraction in (0.5, 1.0):
        cfg = TrainConfig(project=DEMO, student="tiny-random", max_steps=2, batch_size=4, log_every=1, eval_limit=8,
                          rationale_fraction=fraction, label_source="teacher")
        job_id = app_store.create_job(DEMO, "train", asdict(cfg))
        app_store.update_job(job_id, out_dir=str(paths.job_dir(app_store, job_id)))
        jobs.run_job(app_store, job_id)
    at = open_page("pages/6_Results.py")
    assert not at.exception, at.exception
    titles = [s.value for s in at.subheader]
    assert titles[:5] == ["Run comparison", "Training loss per task", "Accuracy over steps",
                          "Accuracy against rationale fraction", "Accuracy against teacher spend"]
    assert len(at.dataframe[0].value) == 2
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Macro-F1"] != "—" and 0 <= float(metrics["Macro-F1"]) <= 1  # beside accuracy
    per_class = next(d.value for d in at.dataframe if "precision" in d.value.columns)
    assert {"class", "precision", "recall", "F1", "rows"} <= set(per_class.columns)
    assert any("best on the validation rows" in c.value for c in at.caption)
    at.radio(key="export_format").set_value("svg")
    at.button(key="export_prepare").click().run()
    assert at.session_state["chart_file"][1].lstrip().startswith(b"<svg")
    at.radio(key="pred_filter").set_value("all").run()
    predictions = at.dataframe[-1].value
    assert len(predictions) == 8 and {"prediction", "student_rationale", "teacher"} <= set(predictions.columns)
    at.text_input(key="export_dir").set_value(str(tmp_path / "student"))
    at.button(key="export_model").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    assert (tmp_path / "student" / "README.md").exists()


def test_text_from_data_is_shown_as_text_not_markup(app_store):
    import_csv(app_store, "id,text,label\n1,<b>bold</b> [click](http://evil.example) :red[x],billing\n"
                          "2,plain,shipping\n", project="xss")
    at = open_page("pages/4_Review.py", "xss")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    assert any(t.value == "<b>bold</b> [click](http://evil.example) :red[x]" for t in at.text)
    from ui import plain
    assert plain("[click](http://e) <b>") == "\\[click\\](http\\:/\u200b/e) \\<b\\>"


def test_review_page_offers_login_when_streamlit_auth_is_configured(app_store):
    at = AppTest.from_file(str(REPO / "pages/4_Review.py"), default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "s",
                          "server_metadata_url": "https://accounts.example/.well-known/openid-configuration"}
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not [t for t in at.text_input if t.key == "reviewer_name"]  # signed out: no typed name, no review


def test_cli_and_review_page_store_the_same_verdict_for_accept_with_an_edit(app_store):
    """The rule "accept plus an edit is a correction" lives in core.review.rules, for both."""
    import subprocess
    import sys

    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    row_id = at.selectbox(key="review_row").value
    item = app_store.get_item(DEMO, row_id)
    labels = app_store.get_project(DEMO).label_set
    at.text_input(key="reviewer_name").set_value("ana")
    suffix = f"{row_id}:{item['version']}"
    at.selectbox(key=f"review_label:{suffix}").set_value(next(x for x in labels if x != item["label"]))
    at.radio(key=f"review_verdict:{suffix}").set_value("accept")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]

    other = next(r for r in at.selectbox(key="review_row").options if r != row_id)
    other_label = next(x for x in labels if x != app_store.get_item(DEMO, other)["label"])
    proc = subprocess.run([sys.executable, "-m", "core", "review", "--db", app_store.path, "--project", DEMO,
                           "--row-id", other, "--reviewer", "ben", "--verdict", "accept", "--label", other_label,
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert app_store.get_item(DEMO, row_id)["verdict"] == app_store.get_item(DEMO, other)["verdict"] == "correct"
    plain_accept = next(r for r in at.selectbox(key="review_row").options if r not in (row_id, other))
    subprocess.run([sys.executable, "-m", "core", "review", "--db", app_store.path, "--project", DEMO, "--row-id",
                    plain_accept, "--reviewer", "ben", "--verdict", "accept", "--json"], cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    assert app_store.get_item(DEMO, plain_accept)["verdict"] == "accept"  # no edit: stays an accept


def test_review_export_says_which_rows_it_leaves_out(app_store):
    from core.label.answers import import_teacher_outputs

    import_csv(app_store)
    import_teacher_outputs(app_store, "tickets", [("1", "Answer: billing\nRationale: a charge."), ("2", "No idea.")])
    at = open_page("pages/4_Review.py", "tickets")
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert "Left out: 4 rows (not answered by the teacher yet)." in captions
    assert "Left out: 1 row (the answer did not parse)." in captions


def test_prompt_page_warns_about_a_template_without_a_reply_format_and_adds_it(app_store):
    import_csv(app_store)
    at = open_page("pages/2_Prompt_and_budget.py", "tickets")
    assert not at.exception
    assert not [n for n in at.number_input if n.key == "shots"]  # zero-shot: no demonstrations to count
    assert not any("does not say how to reply" in w.value for w in at.warning)  # the preset has its format
    at.text_area(key="template_text").set_value("Which team should handle this ticket?\n\n{text}").run()
    assert any("does not say how to reply" in w.value for w in at.warning)
    at.button(key="format_lines").click().run()
    fixed = at.text_area(key="template_text").value
    assert fixed.startswith("Which team should handle this ticket?") and "Reply in exactly this format:" in fixed
    assert "{labels}" in fixed  # a template that named no labels gets them listed
    assert not any("does not say how to reply" in w.value for w in at.warning)
    at.selectbox(key="prompt_mode").set_value("few-shot").run()
    assert [n for n in at.number_input if n.key == "shots"]
