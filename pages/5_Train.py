"""Train: one click starts a student training run in a background process."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import jobs
from core.students import OFFLINE_DEFAULT, available_students
from core.train import LABEL_SOURCES, OBJECTIVES, TrainConfig
from ui import page_setup, project_picker, show_error

CUSTOM = "Other (hub id or local folder)…"


@st.fragment(run_every=2.0)
def run_list(store, name: str) -> None:
    runs = jobs.jobs_for(store, name, "train")
    if not runs:
        st.caption("No training runs yet.")
        return
    table = []
    latest_of = store.latest_metrics_for([r["id"] for r in runs])  # one query per refresh
    for run in runs:
        latest = latest_of[run["id"]]
        cfg = run["config"]
        table.append({
            "run": run["id"], "status": run["status"], "sweep": run["parent_id"], "objective": cfg["objective"],
            "labels": cfg["label_source"], "alpha": cfg["alpha"], "rationale_fraction": cfg["rationale_fraction"],
            "seed": cfg["seed"], "steps": cfg["max_steps"], "student": cfg["student"],
            "train_loss": latest.get("train_loss"), "test_accuracy": latest.get("test_accuracy"),
            "error": run["error"],
        })
    st.dataframe(pd.DataFrame(table), hide_index=True)
    for sweep in jobs.jobs_for(store, name, "sweep"):
        if sweep["status"] in jobs.ACTIVE or sweep["status"] in jobs.RESUMABLE:
            job_controls(store, sweep, f"Sweep {sweep['id']}: {sweep['done']}/{sweep['total']} runs done",
                         sweep["done"] / max(1, sweep["total"]))
    for run in runs:
        if run["parent_id"] is None and (run["status"] in jobs.ACTIVE or run["status"] in jobs.RESUMABLE):
            step = latest_of[run["id"]].get("step", 0)
            total = run["config"]["max_steps"]
            job_controls(store, run, f"{run['id']}: step {step}/{total} ({run['status']})", step / total)


def job_controls(store, job: dict, text: str, share: float) -> None:
    """Progress plus pause / resume / cancel for one training run or sweep."""
    cols = st.columns([6, 1, 1])
    cols[0].progress(min(1.0, share), text=text)
    try:
        if job["status"] in jobs.ACTIVE:
            if cols[1].button("Pause", key=f"pause-{job['id']}"):
                jobs.pause_job(store, job["id"])
                st.toast("Pause requested: the run stops at its next step and keeps a checkpoint.")
            if cols[2].button("Cancel", key=f"cancel-{job['id']}"):
                jobs.cancel_job(store, job["id"])
                st.toast("Cancel requested")
        elif cols[1].button("Resume", key=f"resume-{job['id']}"):
            jobs.resume_job(store, job["id"])
            st.toast("Resumed from the last checkpoint")
    except Exception as exc:
        show_error(exc)


def sweep_form(store, name: str, options: list[str], labels: dict) -> None:
    with st.expander("Sweep: run a grid one run after another"):
        with st.form("sweep"):
            student = st.selectbox("Student", options[:-1], format_func=lambda s: labels.get(s, s), key="sweep_student")
            cols = st.columns(4)
            objectives = cols[0].multiselect("Objectives", OBJECTIVES, list(OBJECTIVES), key="sweep_objectives")
            fractions = cols[1].multiselect("Rationale fractions", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0], [0.25, 0.5, 1.0],
                                            key="sweep_fractions")
            seeds = cols[2].multiselect("Seeds", list(range(10)), [0], key="sweep_seeds")
            label_source = cols[3].selectbox("Labels from", LABEL_SOURCES, LABEL_SOURCES.index(TrainConfig.label_source),
                                             key="sweep_labels")
            cols = st.columns(2)
            steps = cols[0].number_input("Steps per run", 1, 100000, TrainConfig.max_steps, key="sweep_steps")
            batch = cols[1].number_input("Batch size", 1, 256, TrainConfig.batch_size, key="sweep_batch")
            go = st.form_submit_button("Start sweep")
        if go:
            try:
                base = {"project": name, "student": student, "label_source": label_source,
                        "max_steps": int(steps), "batch_size": int(batch)}
                grid = {"objective": objectives, "rationale_fraction": fractions, "seed": seeds}
                sweep_id = jobs.start_sweep(store, name, base, grid)
                n = len(store.child_jobs(sweep_id))
                st.success(f"Started sweep {sweep_id}: {n} runs, one after another, in a background process.")
            except Exception as exc:
                show_error(exc)


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
        objective = cols[1].radio("Objective", OBJECTIVES, OBJECTIVES.index(TrainConfig.objective), horizontal=True,
                                  format_func=lambda o: {"multitask": "Multi-task: label + rationale",
                                                         "standard": "Label only"}[o])
        label_source = cols[1].selectbox("Labels from", LABEL_SOURCES, LABEL_SOURCES.index(TrainConfig.label_source),
                                         help="reviewed = teacher labels with reviewer corrections")
        cols = st.columns(4)
        alpha = cols[0].slider("α (label weight)", 0.0, 1.0, TrainConfig.alpha, 0.05)
        fraction = cols[1].slider("Rationale fraction", 0.0, 1.0, TrainConfig.rationale_fraction, 0.05)
        steps = cols[2].number_input("Steps", 1, 100000, TrainConfig.max_steps, key="steps")
        batch = cols[3].number_input("Batch size", 1, 256, TrainConfig.batch_size)
        cols = st.columns(2)
        missing = cols[0].radio("Rows without a rationale", ["mask", "empty"], ["mask", "empty"].index(TrainConfig.rationale_missing),
                                horizontal=True, key="rationale_missing",
                                format_func={"mask": "no rationale loss (masked)",
                                             "empty": "train on an empty rationale (the seed paper's code)"}.get)
        approved = cols[1].checkbox("Use only rationales a reviewer approved", key="approved_only")
        start = st.form_submit_button("Start training", type="primary")
    st.caption("loss = α·label_loss + (1−α)·rationale_loss, with task prefixes [label] and [rationale]. "
               "Runs checkpoint every 50 steps and resume after a crash, a kill or a pause.")
    spec = custom.strip() if student == CUSTOM else student
    if start:
        try:
            if not spec:
                st.error("Enter a hub id or a local folder for the student.")
                return
            cfg = TrainConfig(project=name, student=spec, objective=objective, label_source=label_source,
                              alpha=alpha, rationale_fraction=fraction, max_steps=int(steps),
                              batch_size=int(batch), rationale_missing=missing,
                              approved_rationales_only=approved).validate()
            job_id = jobs.start_job(store, name, "train", asdict(cfg))
            st.success(f"Started run {job_id} in a background process. Reloading the page keeps it.")
        except Exception as exc:
            show_error(exc)
    sweep_form(store, name, options, labels)
    st.subheader("Runs")
    run_list(store, name)


main()
