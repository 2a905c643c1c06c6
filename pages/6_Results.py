"""Results: compare runs, see what decides (curves, rationale fraction, teacher spend),
inspect one run's predictions, and export charts, reports and the student."""

import pandas as pd
import streamlit as st

from core import jobs, results
from ui import auth_configured, page_setup, plain, project_picker, show_error

CHARTS = {
    "Training loss per task": lambda store, ids, table: results.loss_chart(store, ids),
    "Accuracy over steps": lambda store, ids, table: results.accuracy_steps_chart(store, ids),
    "Accuracy against rationale fraction": lambda store, ids, table: results.fraction_chart(table),
    "Accuracy against teacher spend": lambda store, ids, table: results.cost_chart(table),
}


def comparison(store, table: list[dict], chosen: list[str]) -> None:
    picked = [r for r in table if r["run"] in chosen]
    charts = {title: make(store, chosen, picked) for title, make in CHARTS.items()}  # built once per rerun
    for title, chart in charts.items():
        st.subheader(title)
        if chart is None:
            st.caption("Nothing to plot yet: no finished evaluation among the chosen runs.")
        else:
            st.altair_chart(chart, width="stretch")
    with st.expander("Export a chart (PNG or SVG)"):
        cols = st.columns([3, 1, 2])
        name = cols[0].selectbox("Chart", list(CHARTS), key="export_chart")
        fmt = cols[1].radio("Format", ["svg", "png"], horizontal=True, key="export_format")
        chart = charts[name]
        if chart is not None and cols[2].button("Prepare file", key="export_prepare"):
            st.session_state["chart_file"] = (f"{name.lower().replace(' ', '_')}.{fmt}",
                                              results.chart_bytes(chart, fmt), fmt)
        if st.session_state.get("chart_file"):
            filename, data, kind = st.session_state["chart_file"]
            st.download_button(f"Download {filename}", data, file_name=filename,
                               mime="image/svg+xml" if kind == "svg" else "image/png", key="export_download")


def run_detail(store, run: dict) -> None:
    matrix = results.confusion(run)
    if matrix:
        cols = st.columns([2, 1])
        chart = results.confusion_chart(matrix)
        if chart is not None:
            cols[0].altair_chart(chart, width="stretch")
        cols[1].dataframe(pd.DataFrame({"class": list(matrix["per_class_accuracy"]),
                                        "accuracy": list(matrix["per_class_accuracy"].values())}), hide_index=True)
    st.subheader("Predictions on held-out rows")
    cols = st.columns([2, 1])
    only = cols[0].radio("Show", ["all", "wrong", "disagrees"], horizontal=True, key="pred_filter",
                         format_func={"all": "all", "wrong": "wrong (against gold)",
                                      "disagrees": "student ≠ teacher"}.get)
    page = cols[1].number_input("Page", 1, 10000, 1, key="pred_page") - 1
    rows = store.predictions(run["id"], only, limit=25, offset=page * 25)
    if not rows:
        st.caption("No predictions (the run has not finished its evaluation).")
    else:
        frame = pd.DataFrame(rows)
        frame["inputs"] = frame["inputs"].map(lambda d: " | ".join(f"{k}: {v}" for k, v in d.items()))
        st.dataframe(frame, hide_index=True)  # cells are plain text
    st.subheader("Report and export")
    cols = st.columns(3)
    fmt = cols[0].radio("Report format", ["md", "html"], horizontal=True, key="report_format")
    try:
        report = results.run_report(store, run["id"], fmt)
        cols[0].download_button(f"Download run report (.{fmt})", report, file_name=f"{run['id']}.{fmt}",
                                mime="text/markdown" if fmt == "md" else "text/html", key="report_download")
    except Exception as exc:
        show_error(exc)
    target = cols[1].text_input("Save the student to folder", value=f"workspace/models/{run['id']}", key="export_dir")
    push = cols[2].text_input("Push to Hub repo (optional, needs HF_TOKEN)", key="push_to")
    public = cols[2].checkbox("Public repo (default: private)", key="push_public")
    if cols[1].button("Save student", key="export_model"):
        try:
            # a shared (signed-in) app writes only under its workspace; a local one where its user says
            folder = results.models_folder(store, target) if auth_configured() else target
            done = results.export_model(store, run["id"], folder, push_to=push.strip() or None, public=public)
            st.success(plain(f"Saved {len(done['files'])} files to {done['out']}"
                             + (f" and pushed to {done['pushed']}" if done["pushed"] else "")))
        except Exception as exc:
            show_error(exc)


def main() -> None:
    store = page_setup("Results")
    name = project_picker(store)
    if not name:
        return
    runs = jobs.jobs_for(store, name, "train")
    if not runs:
        st.info("No training runs yet. Start one on the Train page.")
        return
    table = results.run_table(store, name)
    st.subheader("Run comparison")
    st.dataframe(pd.DataFrame(table), hide_index=True)
    st.caption("teacher_usd: cost of the teacher answers behind the run's training rows (its labels or rationales).")
    ids = [r["id"] for r in runs]
    chosen = st.multiselect("Runs to plot", ids, default=ids[:8], key="runs_chosen")
    if chosen:
        comparison(store, table, chosen)
    st.divider()
    st.header("One run")
    run_id = st.selectbox("Run", ids, key="detail_run")
    run_detail(store, next(r for r in runs if r["id"] == run_id))


main()
