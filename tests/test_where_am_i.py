"""Every page says where the project stands and what to do next (core/workflow.py, ui.where_am_i):
one stage per step of the workflow, computed from the database, and the line at the top of the
pages follows an action on the same or the next rerun."""

import os
import subprocess
import sys

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.jobs import processes

from core.review import rules as review
from core.label.answers import import_teacher_outputs
from core.db import TeacherWrites
from core.workflow import PARSE_ALERT, STEPS, count, percent, project_stage
from tests.helpers import import_csv, many_tickets, open_page

RIGHT = [  # correct answers for the six tickets of TICKETS_CSV, in import order
    "Answer: billing\nRationale: The customer was charged twice.",
    "Answer: technical\nRationale: The app crashes.",
    "Answer: shipping\nRationale: The parcel has not moved.",
    "Answer: billing\nRationale: A charge after cancelling.",
    "Answer: technical\nRationale: A server error.",
    "Answer: shipping\nRationale: The courier lost it.",
]
UNREADABLE = "I would rather not say."


def answers(texts):
    return [(None, t) for t in texts]


def finished_job(store, project: str, kind: str) -> str:
    """A job moved through the store's transitions to completed (no process needed)."""
    job_id = store.create_job(project, kind, {})
    assert store.transition_job(job_id, "running", ("queued",))
    assert store.transition_job(job_id, "completed", ("running",))
    return job_id


def running_job(store, project: str, kind: str, pid: int, **fields) -> str:
    """A job whose process is `pid` (its identity recorded as core.jobs records it)."""
    job_id = store.create_job(project, kind, {})
    assert store.transition_job(job_id, "running", ("queued",), **processes.identity(pid))
    if fields:
        store.update_job(job_id, **fields)
    return job_id


# ---- the stages, in the order of the workflow -------------------------------------------------
def test_formatting_is_for_people():
    assert count(1234567) == "1,234,567" and count(6) == "6"
    assert percent(0.125) == "12.5%" and percent(0.2) == "20%" and percent(1 / 3) == "33.3%"
    assert percent(0.0002) == "under 0.1%" and percent(0) == "0%"


def test_a_project_without_rows_points_to_the_data_page(store):
    empty = pd.DataFrame({"row_id": [], "split": [], "inputs": [], "choices": [], "gold": []})
    store.import_items("empty", "classification", ["text"], None, empty, "Classify: {text}", "claude-haiku-4-5")
    stage = project_stage(store, "empty")
    assert stage.key == "no_data" and stage.page == "Data" and stage.done == frozenset()
    assert "no rows" in stage.line and "Data page" in stage.next_step


def test_imported_rows_without_answers_point_to_the_prompt_page(tickets):
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_prompt_tried" and stage.done == {"Data"}
    assert stage.line == "6 rows imported; no prompt has been tried on them yet."
    assert stage.next_step == "Write a prompt on the Prompt & budget page and try it on a few rows there."


def test_only_failed_calls_point_to_the_label_page(tickets):
    tickets.write_teacher("tickets", TeacherWrites(errors=[{"row_id": "1", "error": "overloaded"},
                                                           {"row_id": "2", "error": "overloaded"}]))
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_prompt_tried" and stage.page == "Label"
    assert "every teacher call so far failed (2 rows with API errors)" in stage.line
    assert "Label page" in stage.next_step


def test_a_low_parse_rate_names_the_share_and_the_fix(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT[:4] + [UNREADABLE, UNREADABLE]))
    stage = project_stage(tickets, "tickets")
    assert stage.key == "parse_rate_low" and stage.page == "Prompt & budget"
    assert stage.line == "33.3% of the teacher's 6 answers could not be read (2 flagged)."
    assert "prompt or the label words" in stage.next_step and "Prompt & budget page" in stage.next_step
    assert stage.done == {"Data", "Label"}  # every row has an answer, but the prompt is not done


def test_the_parse_alert_is_above_ten_percent(store):
    many_tickets(store, 10)
    texts = [f"Answer: {['billing', 'technical', 'shipping'][i % 3]}\nRationale: r." for i in range(9)]
    import_teacher_outputs(store, "tickets", answers(texts + [UNREADABLE]))  # exactly 10% unreadable
    assert PARSE_ALERT == 0.10
    stage = project_stage(store, "tickets")
    assert stage.key == "no_spot_check" and "(10% flagged as unreadable)" in stage.line


def test_unlabeled_rows_are_counted_with_thousands_separators(store):
    many_tickets(store, 1200)
    texts = [f"Answer: {['billing', 'technical', 'shipping'][i % 3]}\nRationale: r." for i in range(1000)]
    import_teacher_outputs(store, "tickets", answers(texts))
    store.write_teacher("tickets", TeacherWrites(errors=[{"row_id": "1100", "error": "overloaded"}]))
    stage = project_stage(store, "tickets")
    assert stage.key == "rows_unlabeled" and stage.page == "Label"
    assert stage.line == "200 of 1,200 rows have no teacher answer yet, 1 of them after API errors."
    assert stage.next_step == "Label them on the Label page."
    assert stage.done == {"Data", "Prompt & budget"}


def test_all_answered_and_nothing_reviewed_suggests_a_spot_check(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_spot_check" and stage.page == "Review"
    assert stage.line == "All 6 rows have a teacher answer, and none has been reviewed yet."
    assert "spot-check set on the Review page" in stage.next_step
    tickets.create_spot_check("tickets", 3, stratified=False)
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_spot_check" and "a spot-check set of 3 rows is waiting" in stage.line
    assert "'spot check' filter" in stage.next_step


def test_reviewed_without_a_student_points_to_the_train_page(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    review.save_review(tickets, "tickets", "1", "ana", "billing", "Charged twice.")
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_student" and stage.page == "Train"
    assert stage.line == "1 of 6 rows reviewed; no student has been trained yet."
    assert stage.next_step == "Train a student on the Train page."
    assert stage.done == {"Data", "Prompt & budget", "Label", "Review"}


def test_a_trained_student_points_to_results(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    review.save_review(tickets, "tickets", "1", "ana", "billing", "Charged twice.")
    finished_job(tickets, "tickets", "train")
    finished_job(tickets, "tickets", "label")  # a finished labeling job is not a student
    stage = project_stage(tickets, "tickets")
    assert stage.key == "done" and stage.page == "Results"
    assert stage.line == "1 of 6 rows reviewed; 1 student trained."
    assert "Results page" in stage.next_step
    assert stage.done == set(STEPS) - {"Results"}


def test_a_student_without_review_still_asks_for_the_spot_check(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    finished_job(tickets, "tickets", "train")
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_spot_check" and "Train" in stage.done and "Review" not in stage.done


def test_a_running_labeling_job_is_mentioned_and_a_dead_one_is_not(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT[:3]))
    running_job(tickets, "tickets", "label", os.getpid(), done=3, total=6)
    stage = project_stage(tickets, "tickets")
    assert stage.key == "rows_unlabeled"
    assert stage.line == ("3 of 6 rows have no teacher answer yet. "
                          "A labeling job is running (3 of 6 rows answered).")
    assert stage.next_step == "Follow the labeling job on the Label page."


def test_a_job_whose_process_is_gone_is_not_mentioned(tickets):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = running_job(tickets, "tickets", "label", gone.pid)
    gone.wait()
    stage = project_stage(tickets, "tickets")
    assert tickets.get_job(dead)["status"] == "running"  # its row still says so; the line does not
    assert "job" not in stage.line and stage.key == "no_prompt_tried"


def test_a_running_training_run_is_mentioned_with_its_step(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    review.save_review(tickets, "tickets", "1", "ana", "billing", "Charged twice.")
    job = running_job(tickets, "tickets", "train", os.getpid(), total=2000)
    tickets.add_metrics(job, [(10, "loss", 2.0), (1200, "loss", 1.0)])
    stage = project_stage(tickets, "tickets")
    assert stage.key == "no_student"
    assert stage.line == ("1 of 6 rows reviewed; the first student is being trained. "
                          "A training run is running (step 1,200 of 2,000).")
    assert stage.next_step == "Follow the training on the Train page."


# ---- the line on the pages --------------------------------------------------------------------

def line(at: AppTest) -> str:
    assert not at.exception, at.exception
    return at.info[0].value


def test_the_data_page_shows_the_stage_and_moves_on_after_an_import(app_store):
    import_csv(app_store)
    at = open_page("pages/1_Data.py", "tickets")
    assert "6 rows imported; no prompt has been tried on them yet." in line(at)
    assert "Prompt & budget page" in line(at)
    import_teacher_outputs(app_store, "tickets", answers(RIGHT))  # teacher answers arrive (the CLI, a job)
    at.run()
    assert "All 6 rows have a teacher answer, and none has been reviewed yet." in line(at)
    assert "Review page" in line(at)


def test_the_review_page_line_follows_a_saved_review(app_store):
    import_csv(app_store)
    import_teacher_outputs(app_store, "tickets", answers(RIGHT))
    at = open_page("pages/4_Review.py", "tickets")
    assert "none has been reviewed yet" in line(at)
    row_id = at.selectbox(key="review_row").value
    version = app_store.get_item("tickets", row_id)["version"]
    at.text_input(key="reviewer_name").set_value("ana")
    at.text_area(key=f"review_rationale:{row_id}:{version}").set_value("Checked by hand.")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    # saved in a callback before the page reran: the line at the top already says so
    assert "1 of 6 rows reviewed; no student has been trained yet." in line(at)
    assert "Train page" in line(at)


def test_the_review_page_explains_its_numbers(app_store):
    import_csv(app_store)
    import_teacher_outputs(app_store, "tickets", answers(RIGHT))
    at = open_page("pages/4_Review.py", "tickets")
    assert not at.exception
    assert "Cochran" in next(m for m in at.metric if m.label == "Rows to review").help
    assert at.number_input(key="plan_margin").help and at.selectbox(key="plan_confidence").help
    assert "kappa" in next(t for t in at.text if t.value.startswith("Cohen's kappa")).help
    assert "accept" in next(r for r in at.radio if r.key.startswith("review_verdict")).help


def test_the_home_page_checks_off_the_steps_done(app_store):
    import_csv(app_store)
    import_teacher_outputs(app_store, "tickets", answers(RIGHT))
    at = open_page("app.py", "tickets")
    assert "none has been reviewed yet" in line(at)
    done, next_, not_yet = (":green[:material/check_circle:]", ":blue[:material/arrow_forward:]",
                            ":material/radio_button_unchecked:")
    checklist = next(m.value for m in at.markdown if "**Data**" in m.value)
    assert f"1. {done} **Data**" in checklist and f"2. {done} **Prompt & budget**" in checklist
    assert f"3. {done} **Label**" in checklist and f"4. {next_} **Review**" in checklist
    assert f"5. {not_yet} **Train**" in checklist and f"6. {not_yet} **Results**" in checklist


def test_the_home_page_offers_your_own_data_beside_the_demo(app_store):
    from tests.helpers import open_page

    at = open_page("app.py")
    assert not at.exception
    links = at.get("page_link")
    assert any("Start with your own data" in link.proto.label and link.proto.page.endswith("Data")
               for link in links), [link.proto for link in links]
    assert any("demo project" in c.value for c in at.caption)


def test_a_spot_check_in_progress_stays_the_next_step_until_it_is_done(tickets):
    import_teacher_outputs(tickets, "tickets", answers(RIGHT))
    tickets.create_spot_check("tickets", 3, stratified=False)
    spot = [r["row_id"] for r in tickets.review_page("tickets", "spot check")[0]]
    review.save_review(tickets, "tickets", spot[0], "ana", None, None)
    stage = project_stage(tickets, "tickets")
    assert stage.key == "spot_check_open" and stage.page == "Review"  # not yet "train a student"
    assert stage.line == "1 of 6 rows reviewed; the spot check is 1 of 3 done."
    for row_id in spot[1:]:
        review.save_review(tickets, "tickets", row_id, "ana", None, None)
    assert project_stage(tickets, "tickets").key == "no_student"  # done: now training is next
