"""Try the student: type an input, or pick a held-out row, and see the student's label, its
rationale and the latency beside the teacher's answer; predict a whole file (CSV, JSON Lines,
Parquet) and download the predictions."""

import json
import re
import tempfile
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from core import jobs

from core.results import runs as results
from core.kernel.paths import run_dir
from core.student.batch import predict_file
from core.student.predict import saved_train_config
from ui import get_student, page_setup, plain, project_picker, show_error

HELD_OUT_SHOWN = 200  # held-out rows offered in the picker (the run's evaluation order)
FILE_TYPES = ["csv", "jsonl", "parquet"]
MIME = {".csv": "text/csv", ".jsonl": "application/jsonl", ".parquet": "application/vnd.apache.parquet"}


def finished_runs(store, project: str) -> list[tuple[dict, Path]]:
    """(run, its model folder) for the project's training runs that finished with a saved model."""
    found = []
    for job in jobs.jobs_for(store, project, "train"):
        folder = run_dir(job)
        if job["status"] in ("completed", "cancelled") and folder and (folder / "model" / "config.json").exists():
            found.append((job, folder / "model"))
    return found


def run_label(job: dict, latest: dict) -> str:
    accuracy = latest.get("test_accuracy")
    return (f"{job['id']} · {results.objective_name(job['config'].get('objective', ''))} · "
            + ("accuracy —" if accuracy is None else f"held-out accuracy {accuracy:.3f}"))


def load(model_dir: Path):
    return get_student(str(model_dir), (model_dir / "config.json").stat().st_mtime)


class StudentOnDemand:
    """The run's student as the page needs it: what its folder records at once (input fields,
    task, the project's id column), the model only when a prediction is asked. Loading the model
    was most of the page's first render (4.7 s of it, 300 rows)."""

    def __init__(self, folder: Path):
        self.folder = folder
        config = saved_train_config(folder)
        self.input_fields, self.task, self.id_field = (config.get("input_fields"), config.get("task"),
                                                       config.get("id_field"))

    def model(self):
        with st.spinner("Loading the student..."):
            return load(self.folder)


def predict_one(student, row: dict, fields: list[str], rationale: bool) -> tuple[dict, float]:
    """The student's answer for one row of input-field values (and `choices`), and the wall time
    of the prediction in milliseconds."""
    text = student.input_text(row, fields)
    started = time.perf_counter()
    answer = student.predict([text], rationale=rationale, choices=[row.get("choices")])[0]
    return answer, (time.perf_counter() - started) * 1000


def show_student(container, answer: dict, ms: float, rationale: bool) -> None:
    container.markdown("**Student**")
    container.text(f"Label: {answer.get('label') or '(empty)'}")
    if answer.get("confidence") is not None:
        container.text(f"Confidence: {answer['confidence']:.3f}")
    if rationale:
        container.text(f"Rationale: {answer.get('rationale') or '(empty)'}")
    container.metric("Latency", f"{ms:,.0f} ms",
                     help="Wall time of this one prediction on this server"
                          + (" (label and rationale: two generations)." if rationale else " (label only)."))


def show_teacher(container, item: dict) -> None:
    container.markdown("**Teacher**")
    if item.get("teacher_label") is None:
        container.caption("The teacher has not answered this row.")
    else:
        container.text(f"Label: {item['teacher_label']}")
        container.text(f"Rationale: {item.get('teacher_rationale') or '(none)'}")
    if item.get("gold") is not None:
        container.text(f"Gold label: {item['gold']}")


def typed_input(student, fields: list[str], task: str, rationale: bool) -> None:
    values = {field: st.text_area(field, key=f"try_field_{field}", height=100) for field in fields}
    choices = None
    if task == "multiple-choice":
        typed = st.text_area("Answer choices, one per line", key="try_choices", height=120)
        choices = [c.strip() for c in typed.splitlines() if c.strip()]
    if not st.button("Predict", key="try_predict", type="primary"):
        return
    if not any(v.strip() for v in values.values()):
        st.warning("Type an input first.")
        return
    if task == "multiple-choice" and len(choices or []) < 2:
        st.warning("Give at least two answer choices, one per line.")
        return
    try:
        answer, ms = predict_one(student.model(), {**values, **({"choices": choices} if choices else {})}, fields,
                                 rationale)
    except Exception as exc:
        show_error(exc)
        return
    show_student(st, answer, ms, rationale)


def held_out_row(store, project: str, run: dict, student, fields: list[str], rationale: bool) -> None:
    rows = store.predictions(run["id"], "all", limit=HELD_OUT_SHOWN)
    if not rows:
        st.caption("This run has no held-out predictions (it was stopped before its evaluation).")
        return
    preview = {r["row_id"]: " | ".join(str(v) for v in r["inputs"].values())[:80] for r in rows}
    row_id = st.selectbox(f"Held-out row (the first {len(rows)} the run was evaluated on)", list(preview),
                          key="try_row", format_func=lambda r: f"{r}: {preview[r]}")
    item = store.get_item(project, row_id)
    for field, value in item["inputs"].items():
        st.caption(plain(field))
        st.text(value)
    if item.get("choices"):
        st.caption("Answer choices")
        st.text("\n".join(item["choices"]))
    if not st.button("Predict", key="try_predict_row", type="primary"):
        return
    try:
        row = {**item["inputs"], **({"choices": item["choices"]} if item.get("choices") else {})}
        answer, ms = predict_one(student.model(), row, fields, rationale)
    except Exception as exc:
        show_error(exc)
        return
    left, right = st.columns(2)
    show_student(left, answer, ms, rationale)
    show_teacher(right, item)


def batch_section(run: dict, student, fields: list[str], task: str, multitask: bool) -> None:
    st.subheader("Predict a file", help="Every row of a CSV, JSON Lines or Parquet file through the student; "
                                        "the predictions come back as a file of the same format.")
    st.caption(plain(f"The file needs a column for each input field ({', '.join(fields)})"
                     + (" and a choices column (a JSON list, or choices separated by |)" if task == "multiple-choice"
                        else "")
                     + (f"; its id column ('{student.id_field}', as the project was imported), or an id or row_id "
                        "column, is carried into the predictions so they join back to your rows."
                        if student.id_field else "; an id or row_id column is carried into the predictions.")))
    upload = st.file_uploader("File to predict", type=FILE_TYPES, key="batch_file")
    with_rationale = multitask and st.checkbox("With rationales (about twice as slow)", key="batch_rationale")
    keep_inputs = st.checkbox("Keep the input columns beside the predictions", key="batch_keep_inputs")
    if upload is not None and st.button("Predict file", key="batch_predict"):
        suffix = Path(upload.name).suffix.lower()
        bar = st.progress(0.0, text="Starting…")

        def on_progress(done: int, total: int | None) -> None:
            share = min(1.0, done / total) if total else 0.0
            bar.progress(share, text=f"{done:,} of {total:,} rows" if total else f"{done:,} rows")

        try:
            with tempfile.TemporaryDirectory(prefix="distill-predict-") as tmp:  # removed however it ends
                # named as uploaded (safe characters only): errors name the user's file, not ours
                stem = re.sub(r"[^\w.-]", "_", Path(upload.name).stem)[:64].lstrip(".") or "upload"
                source, out = Path(tmp) / f"{stem}{suffix}", Path(tmp) / f"{stem}-predictions{suffix}"
                source.write_bytes(upload.getbuffer())
                summary = predict_file(student.model(), str(source), str(out), rationale=with_rationale,
                                       input_columns=fields, on_progress=on_progress, keep_inputs=keep_inputs)
                data = Path(summary.get("out") or out).read_bytes()
                summary["preview"] = preview_rows(Path(summary.get("out") or out))
        except Exception as exc:
            bar.empty()
            show_error(exc)
            return
        bar.progress(1.0, text=f"{summary['rows']:,} rows done")
        name = f"{Path(upload.name).stem}-predictions{suffix}"
        st.session_state["batch_result"] = {"run": run["id"], "file": upload.file_id, "name": name, "data": data,
                                            "summary": summary, "mime": MIME.get(suffix, "application/octet-stream")}
    done = st.session_state.get("batch_result")
    if done and upload is not None and done["run"] == run["id"] and done["file"] == upload.file_id:
        s = done["summary"]
        st.success(f"Predicted {s['rows']:,} rows in {s['seconds']:.1f} s ({s['rows_per_s']:.1f} rows/s).")
        st.download_button(f"Download {done['name']}", done["data"], file_name=done["name"], mime=done["mime"],
                           key="batch_download")
        st.caption("The first rows of the predicted file:")
        st.dataframe(pd.DataFrame(s["preview"]), hide_index=True)


def preview_rows(path: Path, n: int = 10) -> list[dict]:
    """The first n rows of a predicted file (CSV, JSON Lines or Parquet), as text."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).read_row_group(0).slice(0, n).to_pylist() if path.stat().st_size else []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for _, line in zip(range(n), f) if line.strip()]
    return pd.read_csv(path, nrows=n, dtype=str, keep_default_na=False).to_dict("records")


def main() -> None:
    store = page_setup("Try the student")
    project = project_picker(store)
    if not project:
        return
    runs = finished_runs(store, project)
    if not runs:
        st.info("No finished training run with a saved student yet. Train one on the Train page, then try it here.")
        return
    latest = store.latest_metrics_for([job["id"] for job, _ in runs])
    by_id = {job["id"]: (job, folder) for job, folder in runs}
    run_id = st.selectbox("Run", list(by_id), key="try_run", format_func=lambda r: run_label(by_id[r][0], latest[r]))
    run, folder = by_id[run_id]
    row = {"run": run_id, "status": run["status"], "test_accuracy": latest[run_id].get("test_accuracy")}
    for warning in results.run_warnings(store, row):  # the Results page's warnings, where the student is used
        st.warning(plain(warning), icon="⚠️")
    try:
        student = StudentOnDemand(folder)
    except Exception as exc:
        show_error(exc)
        return
    multitask = run["config"].get("objective") == "multitask"
    rationale = multitask and st.checkbox(
        "Also generate the rationale", value=True, key="try_rationale",
        help="A multi-task student explains its label (a second generation, so about twice the latency).")
    if not multitask:
        st.caption("A label-only student gives labels only: it never learned to explain them.")
    source = st.radio("Input", ["Type an input", "A held-out row"], horizontal=True, key="try_source")
    # what the model folder records, else the project's own (runs saved before folders recorded it)
    info = store.get_project(project)
    fields, task = list(student.input_fields or info.input_fields), student.task or info.task
    if source == "Type an input":
        typed_input(student, fields, task, rationale)
    else:
        held_out_row(store, project, run, student, fields, rationale)
    st.divider()
    batch_section(run, student, fields, task, multitask)


main()
