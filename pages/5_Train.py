"""Train: one click starts a student training run in a background process."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import jobs

from core.results import charts
from core.results import runs as results
from core.results.runs import HELP
from core.train.jobs import start_sweep
from core.train.base_models import OFFLINE_DEFAULT, available_students
from core.train.data import describe_split
from core.train.trainer import LABEL_SOURCES, OBJECTIVES, TrainConfig
from ui import page_setup, plain, project_picker, show_error

CUSTOM = "Other (hub id or local folder)…"


REFRESH_S = 2  # seconds between refreshes of the run list and live curves while a run trains
OBJECTIVE_LABELS = {"multitask": "Multi-task: label + rationale", "standard": "Label-only: the label alone"}
RUN_COLUMNS = {
    "objective": ("objective", HELP["objective"]),
    "labels": ("labels from", HELP["label_source"]),
    "alpha": ("α", HELP["alpha"]),
    "rationale_fraction": ("rationale fraction", HELP["rationale_fraction"]),
    "rationale_loss": ("rows without rationale", HELP["rationale_loss"]),
    "seed": ("seed", HELP["seed"]),
    "steps": ("steps", HELP["steps"]),
    "student": ("student", HELP["student"]),
    "train_loss": ("training loss", HELP["train_loss"]),
    "finishes in": ("finishes in", "The time the run still needs for its remaining steps at the pace it has kept "
                                   "so far (evaluations add a little)."),
    "val_accuracy": ("validation accuracy", HELP["val_accuracy"]),
    "test_accuracy": ("held-out accuracy", HELP["test_accuracy"]),
}


def runs_section(store, name: str) -> None:
    """The run list, controls and live curves: refreshed every REFRESH_S seconds (only this part
    of the page) while a training run or sweep of the project is active, and not at all otherwise."""
    live = any(j["status"] in jobs.ACTIVE for j in jobs.jobs_for(store, name) if j["kind"] in ("train", "sweep"))
    st.fragment(run_list, run_every=REFRESH_S if live else None)(store, name, live)


def run_list(store, name: str, live: bool) -> None:
    runs = jobs.jobs_for(store, name, "train")
    sweeps = jobs.jobs_for(store, name, "sweep")
    active = [r for r in runs if r["status"] in jobs.ACTIVE]
    if live and not active and not any(s["status"] in jobs.ACTIVE for s in sweeps):
        st.rerun()  # the last run finished: rerun the page once, which turns the refresh off
    if not runs:
        st.caption("No training runs yet.")
        return
    table = []
    latest_of = store.latest_metrics_for([r["id"] for r in runs])  # one query per refresh
    for run in runs:
        latest = latest_of[run["id"]]
        cfg = run["config"]
        table.append({
            "run": run["id"], "status": run["status"], "sweep": run["parent_id"],
            "objective": results.setting_text(cfg, "objective"), "labels": cfg["label_source"],
            # label-only runs have no rationale task: these settings do not apply ("—")
            "alpha": str(results.setting_text(cfg, "alpha")),
            "rationale_fraction": str(results.setting_text(cfg, "rationale_fraction")),
            "rationale_loss": str(results.setting_text(cfg, "rationale_missing")),
            "seed": cfg["seed"], "steps": cfg["max_steps"], "student": cfg["student"],
            "finishes in": (results.duration_text(results.training_eta_s(cfg, latest))
                            if run["status"] in jobs.ACTIVE else ""),
            "train_loss": latest.get("train_loss"), "val_accuracy": latest.get("val_accuracy"),
            "test_accuracy": latest.get("test_accuracy"),
            "error": run["error"],
        })
    config = {key: st.column_config.Column(label, help=text) for key, (label, text) in RUN_COLUMNS.items()}
    st.dataframe(pd.DataFrame(table), hide_index=True, column_config=config)
    for sweep in sweeps:
        if sweep["status"] in jobs.ACTIVE or sweep["status"] in jobs.RESUMABLE:
            job_controls(store, sweep, f"Sweep {sweep['id']}: {sweep['done']}/{sweep['total']} runs done",
                         sweep["done"] / max(1, sweep["total"]))
    for run in runs:
        if run["parent_id"] is None and (run["status"] in jobs.ACTIVE or run["status"] in jobs.RESUMABLE):
            step = latest_of[run["id"]].get("step", 0)
            total = run["config"]["max_steps"]
            job_controls(store, run, f"{run['id']}: step {step}/{total} ({run['status']})", step / total)
    if active:
        live_curves(store, name, active)


@st.cache_data(ttl=600, show_spinner=False)
def _reference(_store, db: str, name: str, run_ids: tuple[str, ...]) -> dict | None:
    """What the live runs must beat; it depends on their split, not their progress, so it is
    computed once, not at every refresh."""
    return results.baselines(_store, name, list(run_ids))


def live_curves(store, name: str, active: list[dict]) -> None:
    """Loss per task (and accuracy at each evaluation, when there is one yet) of the runs
    training now, from the metrics they write."""
    ids = [r["id"] for r in active]
    st.subheader("Live training curves", help="Updated every few seconds from the metrics the running job writes.")
    loss = charts.loss_chart(store, ids)
    if loss is None:
        st.caption(plain(f"{', '.join(ids)}: waiting for the first logged step…"))
        return
    st.caption(plain(f"Live: {', '.join(ids)}, refreshed every {REFRESH_S} s while training. Accuracy points appear "
                     "at each evaluation on held-out rows (about five per run)."))
    accuracy = charts.accuracy_steps_chart(store, ids, _reference(store, str(store.path), name, tuple(ids)))
    cols = st.columns(2) if accuracy is not None else [st.container()]
    cols[0].altair_chart(loss, width="stretch")
    if accuracy is not None:
        cols[1].altair_chart(accuracy, width="stretch")


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
            objectives = cols[0].multiselect("Objectives", OBJECTIVES, list(OBJECTIVES), key="sweep_objectives",
                                             format_func=results.objective_name, help=HELP["objective"])
            fractions = cols[1].multiselect("Rationale fractions", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0], [0.25, 0.5, 1.0],
                                            key="sweep_fractions", help=HELP["rationale_fraction"]
                                            + " A label-only run is made once, not once per fraction.")
            seeds = cols[2].multiselect("Seeds", list(range(10)), [0], key="sweep_seeds", help=HELP["seed"])
            label_source = cols[3].selectbox("Labels from", LABEL_SOURCES, LABEL_SOURCES.index(TrainConfig.label_source),
                                             key="sweep_labels", help=HELP["label_source"])
            cols = st.columns(2)
            steps = cols[0].number_input("Steps per run", 1, 100000, TrainConfig.max_steps, key="sweep_steps",
                                         help=HELP["steps"])
            batch = cols[1].number_input("Batch size", 1, 256, TrainConfig.batch_size, key="sweep_batch",
                                         help=HELP["batch_size"])
            go = st.form_submit_button("Start sweep")
        if go:
            try:
                base = {"project": name, "student": student, "label_source": label_source,
                        "max_steps": int(steps), "batch_size": int(batch)}
                grid = {"objective": objectives, "rationale_fraction": fractions, "seed": seeds}
                sweep_id = start_sweep(store, name, base, grid)
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
                                  format_func=OBJECTIVE_LABELS.get, help=HELP["objective"])
        label_source = cols[1].selectbox("Labels from", LABEL_SOURCES, LABEL_SOURCES.index(TrainConfig.label_source),
                                         help=HELP["label_source"])
        cols = st.columns(4)
        alpha = cols[0].slider("α (label weight)", 0.0, 1.0, TrainConfig.alpha, 0.05, help=HELP["alpha"])
        fraction = cols[1].slider("Rationale fraction", 0.0, 1.0, TrainConfig.rationale_fraction, 0.05,
                                  help=HELP["rationale_fraction"])
        steps = cols[2].number_input("Steps", 1, 100000, TrainConfig.max_steps, key="steps", help=HELP["steps"])
        batch = cols[3].number_input("Batch size", 1, 256, TrainConfig.batch_size, help=HELP["batch_size"])
        cols = st.columns(2)
        missing = cols[0].radio("Rows without a rationale", ["mask", "empty"], ["mask", "empty"].index(TrainConfig.rationale_missing),
                                horizontal=True, key="rationale_missing", help=HELP["rationale_loss"],
                                format_func={"mask": "masked: no rationale loss",
                                             "empty": "empty target: learn to explain nothing (the seed paper's code)"}.get)
        approved = cols[1].checkbox("Use only rationales a reviewer approved", key="approved_only",
                                    help="Rationales no reviewer accepted or corrected are left out (the label is kept); "
                                         "not used by label-only runs.")
        start = st.form_submit_button("Start training", type="primary")
    st.caption("Multi-task: loss = α·label_loss + (1−α)·rationale_loss, with task prefixes [label] and [rationale]. "
               "Label-only runs ignore α, the rationale fraction and the rationale settings (shown as \"—\"). "
               f"With {int(steps)} steps a run scores its validation rows at step"
               f"{'s' * (len(results.evaluation_steps(int(steps))) > 1)} "
               f"{', '.join(map(str, results.evaluation_steps(int(steps))))} (the points of its accuracy curve) "
               "and keeps the best; the test rows are scored once, at the end. "
               "Runs checkpoint every 50 steps and resume after a crash, a kill or a pause.")
    st.caption(plain(describe_split(store.count_items(name)["by_split"], TrainConfig.test_fraction,
                                    TrainConfig.val_fraction, TrainConfig.split_seed)), help=HELP["held_out"])
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
    runs_section(store, name)


main()
