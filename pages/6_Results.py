"""Results: training-loss curves and test accuracy per run, read from DuckDB."""

import pandas as pd
import streamlit as st

from core import jobs
from ui import page_setup, project_picker


def main() -> None:
    store = page_setup("Results")
    name = project_picker(store)
    if not name:
        return
    runs = jobs.jobs_for(store, name, "train")
    if not runs:
        st.info("No training runs yet. Start one on the Train page.")
        return
    ids = [r["id"] for r in runs]
    chosen = st.multiselect("Runs", ids, default=ids[:5])
    if not chosen:
        return
    metrics = pd.DataFrame(store.metrics(chosen))
    if metrics.empty:
        st.caption("No metrics yet.")
        return
    for metric, title in [("train_loss", "Training loss"), ("label_loss", "Label loss"), ("rationale_loss", "Rationale loss")]:
        part = metrics[metrics["name"] == metric]
        if not part.empty:
            st.subheader(title)
            st.line_chart(part.pivot_table(index="step", columns="job_id", values="value"))
    rows = []
    for run in runs:
        if run["id"] not in chosen:
            continue
        latest = store.latest_metrics(run["id"])
        cfg = run["config"]
        rows.append({"run": run["id"], "status": run["status"], "objective": cfg["objective"],
                     "labels": cfg["label_source"], "alpha": cfg["alpha"], "rationale_fraction": cfg["rationale_fraction"],
                     "steps": cfg["max_steps"], "student": cfg["student"],
                     "test_accuracy": latest.get("test_accuracy"), "teacher_agreement": latest.get("teacher_agreement"),
                     "final_loss": latest.get("train_loss")})
    table = pd.DataFrame(rows)
    st.subheader("Test accuracy")
    scored = table.dropna(subset=["test_accuracy"]) if "test_accuracy" in table else table.iloc[0:0]
    if not scored.empty:
        st.bar_chart(scored.set_index("run")["test_accuracy"])
    else:
        st.caption("No run has finished its evaluation yet.")
    st.dataframe(table, hide_index=True)


main()
