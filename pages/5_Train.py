"""Train: one click starts a student training run in a background process."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import jobs
from core.students import OFFLINE_DEFAULT, available_students
from core.train import TrainConfig
from ui import page_setup, project_picker, show_error

CUSTOM = "Other (hub id or local folder)…"


@st.fragment(run_every=2.0)
def run_list(store, name: str) -> None:
    runs = jobs.jobs_for(store, name, "train")
    if not runs:
        st.caption("No training runs yet.")
        return
    table = []
    for run in runs:
        latest = store.latest_metrics(run["id"])
        cfg = run["config"]
        table.append({
            "run": run["id"], "status": run["status"], "objective": cfg["objective"], "labels": cfg["label_source"],
            "alpha": cfg["alpha"], "steps": cfg["max_steps"], "student": cfg["student"],
            "train_loss": latest.get("train_loss"), "test_accuracy": latest.get("test_accuracy"),
            "error": run["error"],
        })
    st.dataframe(pd.DataFrame(table), hide_index=True)
    active = [r for r in runs if r["status"] in jobs.ACTIVE]
    for run in active:
        steps = store.metrics([run["id"]])
        step = max((m["step"] for m in steps if m["name"] == "train_loss"), default=0)
        total = run["config"]["max_steps"]
        st.progress(min(1.0, step / total), text=f"{run['id']}: step {step}/{total}")
        if st.button("Cancel", key=f"cancel-{run['id']}"):
            jobs.cancel_job(store, run["id"])
            st.toast("Cancel requested")


def main() -> None:
    store = page_setup("Train")
    name = project_picker(store)
    if not name:
        return
    students = available_students()
    options = [s["spec"] for s in students if s["available"]] + [CUSTOM]
    labels = {s["spec"]: s["label"] for s in students}
    with st.form("train"):
        cols = st.columns(2)
        student = cols[0].selectbox("Student", options, index=options.index(OFFLINE_DEFAULT) if OFFLINE_DEFAULT in options else 0,
                                    format_func=lambda s: labels.get(s, s), key="student")
        custom = cols[0].text_input("Hub id or local folder (for Other)", placeholder="google/flan-t5-small")
        objective = cols[1].radio("Objective", ["multitask", "standard"], horizontal=True,
                                  format_func=lambda o: {"multitask": "Multi-task: label + rationale",
                                                         "standard": "Label only"}[o])
        label_source = cols[1].selectbox("Labels from", ["reviewed", "teacher", "gold"],
                                         help="reviewed = teacher labels with reviewer corrections")
        cols = st.columns(4)
        alpha = cols[0].slider("α (label weight)", 0.0, 1.0, 0.5, 0.05)
        fraction = cols[1].slider("Rationale fraction", 0.0, 1.0, 1.0, 0.05)
        steps = cols[2].number_input("Steps", 1, 100000, 120, key="steps")
        batch = cols[3].number_input("Batch size", 1, 256, 8)
        start = st.form_submit_button("Start training", type="primary")
    st.caption("loss = α·label_loss + (1−α)·rationale_loss, with task prefixes [label] and [rationale]; "
               "rows without a rationale add no rationale loss (masked).")
    if start:
        try:
            spec = custom.strip() if student == CUSTOM else student
            if not spec:
                st.error("Enter a hub id or a local folder for the student.")
                return
            cfg = TrainConfig(project=name, student=spec, objective=objective, label_source=label_source,
                              alpha=alpha, rationale_fraction=fraction, max_steps=int(steps),
                              batch_size=int(batch)).validate()
            job_id = jobs.start_job(store, name, "train", asdict(cfg))
            st.success(f"Started run {job_id} in a background process. Reloading the page keeps it.")
        except Exception as exc:
            show_error(exc)
    st.subheader("Runs")
    run_list(store, name)


main()
