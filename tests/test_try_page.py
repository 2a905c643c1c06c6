"""The Try the student page, driven through its widgets: pick a run, type an input or pick a
held-out row, predict, and see the label, rationale and latency (beside the teacher's answer
for a held-out row); predict an uploaded file and download the predictions; a bad file and a
project without a finished run get clear messages."""

import json
import re
import tempfile
from dataclasses import asdict
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import jobs
from core.kernel import paths
from core.label.demo import ensure_demo
from core.student.predict import load_student_model
from core.kernel.tasks import student_input
from core.train.trainer import TrainConfig
from tests.helpers import REPO

DEMO = "support-tickets-demo"
PAGE = "pages/7_Try_the_student.py"


def trained_run(store, objective: str = "multitask") -> str:
    """A finished tiny run on the demo project (a few seconds on a CPU)."""
    ensure_demo(store)
    cfg = TrainConfig(project=DEMO, student="tiny-random", objective=objective, max_steps=2, batch_size=4, log_every=1,
                      eval_limit=8, label_source="teacher")
    job_id = store.create_job(DEMO, "train", asdict(cfg))
    store.update_job(job_id, out_dir=str(paths.job_dir(store, job_id)))
    assert jobs.run_job(store, job_id)["status"] == "completed"
    return job_id


def model_folder(store, run_id: str) -> Path:
    return paths.run_dir(store.get_job(run_id)) / "model"


def open_page() -> AppTest:
    at = AppTest.from_file(str(REPO / PAGE), default_timeout=120)
    at.query_params["project"] = DEMO
    return at.run()


def texts(at) -> list[str]:
    return [t.value for t in at.text]


def latency(at) -> str:
    return next(m.value for m in at.metric if m.label == "Latency")


def test_the_students_warnings_are_repeated_where_it_is_used(app_store):
    from core.results import runs as results

    run_id = trained_run(app_store)
    at = open_page()
    latest = app_store.latest_metrics(run_id)
    expected = results.run_warnings(app_store, {"run": run_id, "status": "completed",
                                                "test_accuracy": latest.get("test_accuracy")})
    assert expected  # a 2-step tiny student has learned nothing, and the Results page says so
    shown = [w.value.replace("\\", "") for w in at.warning]  # shown as text (markdown characters escaped)
    assert shown == [w.replace("\\", "") for w in expected]


def test_without_a_finished_run_the_page_says_what_to_do(app_store):
    ensure_demo(app_store)
    at = open_page()
    assert not at.exception
    assert any("No finished training run" in i.value for i in at.info)
    assert not at.button  # nothing to press


def test_type_an_input_or_pick_a_held_out_row_and_see_the_answer(app_store):
    run_id = trained_run(app_store)
    student = load_student_model(model_folder(app_store, run_id))
    at = open_page()
    assert not at.exception, at.exception
    assert at.selectbox(key="try_run").value == run_id
    # one text area per input field of the project
    assert {t.key for t in at.text_area} >= {"try_field_subject", "try_field_body"}
    at.button(key="try_predict").click().run()
    assert any("Type an input first" in w.value for w in at.warning)

    typed = {"subject": "Charged twice", "body": "My card was billed two times for one order."}
    at.text_area(key="try_field_subject").set_value(typed["subject"])
    at.text_area(key="try_field_body").set_value(typed["body"])
    at.button(key="try_predict").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = student.predict([student_input(typed, None)], rationale=True)[0]
    assert f"Label: {expected['label'] or '(empty)'}" in texts(at)
    assert f"Confidence: {expected['confidence']:.3f}" in texts(at)  # calibrated, as predict gives it
    assert f"Rationale: {expected['rationale'] or '(empty)'}" in texts(at)
    assert re.fullmatch(r"[\d,]+ ms", latency(at))

    at.radio(key="try_source").set_value("A held-out row").run()
    held_out = [p["row_id"] for p in app_store.predictions(run_id, "all", limit=100)]
    assert at.selectbox(key="try_row").options[:1] and len(at.selectbox(key="try_row").options) == len(held_out) == 8
    row_id = held_out[3]
    at.selectbox(key="try_row").set_value(row_id).run()
    item = app_store.get_item(DEMO, row_id)
    assert item["inputs"]["body"] in texts(at)  # the row's inputs, as text
    at.button(key="try_predict_row").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    answer = student.predict([student_input(item["inputs"], None)], rationale=True)[0]
    shown = texts(at)
    assert f"Label: {answer['label'] or '(empty)'}" in shown
    # the teacher's answer beside the student's
    assert item["teacher_label"] and f"Label: {item['teacher_label']}" in shown
    assert f"Rationale: {item['teacher_rationale']}" in shown
    assert f"Gold label: {item['gold']}" in shown
    assert any(m.value == "**Teacher**" for m in at.markdown)
    assert re.fullmatch(r"[\d,]+ ms", latency(at))


def test_a_label_only_run_predicts_labels_without_a_rationale(app_store):
    run_id = trained_run(app_store, objective="standard")
    at = open_page()
    assert at.selectbox(key="try_run").value == run_id
    assert not any(c.key in ("try_rationale", "batch_rationale") for c in at.checkbox)
    assert any("never learned to explain" in c.value for c in at.caption)
    at.text_area(key="try_field_subject").set_value("Broken zip")
    at.text_area(key="try_field_body").set_value("The zipper of my tent broke on the first night.")
    at.button(key="try_predict").click().run()
    shown = texts(at)
    assert any(t.startswith("Label: ") for t in shown) and not any(t.startswith("Rationale: ") for t in shown)


def upload_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("distill-predict-*")}


def test_batch_prediction_of_an_uploaded_file_with_progress_and_download(app_store):
    run_id = trained_run(app_store)
    student = load_student_model(model_folder(app_store, run_id))
    before = upload_dirs()
    at = open_page()
    rows = [{"id": "a1", "subject": "Refund", "body": "I sent the boots back two weeks ago."},
            {"id": "a2", "subject": "App", "body": "The app crashes on start."},
            {"id": "a3", "subject": "Parcel", "body": "Tracking has not moved."}]
    jsonl = "".join(json.dumps(r) + "\n" for r in rows).encode()
    at.file_uploader(key="batch_file").set_value(("tickets.jsonl", jsonl, "application/jsonl")).run()
    at.checkbox(key="batch_rationale").check()
    at.checkbox(key="batch_keep_inputs").check()
    at.button(key="batch_predict").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Predicted 3 rows" in s.value for s in at.success)
    result = at.session_state["batch_result"]
    assert result["name"] == "tickets-predictions.jsonl"
    got = [json.loads(line) for line in result["data"].decode().splitlines()]
    assert list(got[0]) == ["id", "subject", "body", "label", "confidence", "rationale"]  # joins back, inputs beside
    shown = at.dataframe[-1].value  # a preview of the file on the page
    assert list(shown["id"]) == ["a1", "a2", "a3"] and "label" in shown.columns
    expected = student.predict([student_input({"subject": r["subject"], "body": r["body"]}, None) for r in rows],
                               rationale=True)
    assert [g["id"] for g in got] == ["a1", "a2", "a3"]
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    assert [g["rationale"] for g in got] == [e["rationale"] for e in expected]
    assert upload_dirs() == before  # the temporary copy and output are gone

    # a file without the model's input columns: a clear error, no download
    at.file_uploader(key="batch_file").set_value(("other.csv", b"id,text\n1,hello\n", "text/csv")).run()
    at.button(key="batch_predict").click().run()
    assert not at.exception
    assert any("has no column 'subject', 'body'" in e.value.replace("\\", "") for e in at.error), \
        [e.value for e in at.error]
    assert not any("Predicted" in s.value for s in at.success)
    # a broken JSON Lines file names the line
    at.file_uploader(key="batch_file").set_value(("bad.jsonl", b'{"subject": "x", "body": "y"}\n{oops\n',
                                                  "application/jsonl")).run()
    at.button(key="batch_predict").click().run()
    assert any("line 2" in e.value and "not valid JSON" in e.value for e in at.error), [e.value for e in at.error]
    assert upload_dirs() == before
