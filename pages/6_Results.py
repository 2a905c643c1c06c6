"""Results: compare runs, see what decides (curves, rationale fraction, teacher spend),
inspect one run's predictions, and export charts, reports and the student."""

import pandas as pd
import streamlit as st

from core import jobs

from core.results import runs as results

from core.results import cascade, charts, savings
from core.results.model_export import export_model, models_folder
from core.results.reports import run_report
from core.kernel.paths import run_dir
from core.results.runs import HELP
from ui import auth_configured, page_setup, plain, project_picker, show_error

CHARTS = {
    "Training loss per task": lambda store, ids, table, ref: charts.loss_chart(store, ids),
    "Accuracy over steps": lambda store, ids, table, ref: charts.accuracy_steps_chart(store, ids, ref),
    "Accuracy against rationale fraction": lambda store, ids, table, ref: charts.fraction_chart(table, ref),
    "Accuracy against teacher spend": lambda store, ids, table, ref: charts.cost_chart(table, ref),
}
CHART_HELP = {
    "Training loss per task": "How wrong the student still is on its training rows, step by step, for the label "
                              "task and the rationale task (lower is better).",
    "Accuracy over steps": "How often the student is right on held-out rows at each evaluation during training; "
                           "the dashed lines are what it must beat (always answering the commonest label) and "
                           "what it copies (the teacher).",
    "Accuracy against rationale fraction": "Does training on more of the teacher's explanations help? One point per "
                                           "multi-task run; label-only runs (no explanations) are the red line.",
    "Accuracy against teacher spend": "What accuracy each run bought: the teacher dollars behind its training rows "
                                      "against its held-out accuracy.",
}
# Column headers and their one-sentence meaning, for the run comparison table.
COLUMNS = {
    "objective": ("objective", HELP["objective"]),
    "label_source": ("labels from", HELP["label_source"]),
    "alpha": ("α", HELP["alpha"]),
    "rationale_fraction": ("rationale fraction", HELP["rationale_fraction"]),
    "rationale_loss": ("rows without rationale", HELP["rationale_loss"]),
    "seed": ("seed", HELP["seed"]),
    "student": ("student", HELP["student"]),
    "steps": ("steps", HELP["steps"]),
    "train_rows": ("training rows", HELP["train_rows"]),
    "rows_with_rationale": ("rows with rationale", HELP["rows_with_rationale"]),
    "test_accuracy": ("held-out accuracy", HELP["test_accuracy"]),
    "teacher_agreement": ("teacher agreement", HELP["teacher_agreement"]),
    "train_loss": ("training loss", HELP["train_loss"]),
    "teacher_usd": ("teacher $", HELP["teacher_usd"]),
}


def column_config() -> dict:
    config = {key: st.column_config.Column(label, help=text) for key, (label, text) in COLUMNS.items()}
    for key in ("test_accuracy", "teacher_agreement", "train_loss"):
        config[key] = st.column_config.NumberColumn(COLUMNS[key][0], help=COLUMNS[key][1], format="%.3f")
    config["teacher_usd"] = st.column_config.NumberColumn("teacher $", help=HELP["teacher_usd"], format="$%.4f")
    return config


def reference_metrics(reference: dict | None, container=st) -> None:
    """The two numbers every run must be read against, each with its meaning."""
    cols = container.columns(3)
    if reference is None:
        cols[0].metric("Majority-class baseline", "—", help=HELP["majority_baseline"] + " (needs gold labels)")
        cols[1].metric("Teacher accuracy (vs gold)", "—", help=HELP["teacher_accuracy"] + " (needs gold labels)")
        cols[2].metric("Held-out rows with gold", "0", help=HELP["held_out"])
        return
    always = f"always {reference['majority_label']!r}" if reference.get("majority_label") is not None else None
    cols[0].metric("Majority-class baseline", f"{reference['majority_baseline']:.3f}", help=HELP["majority_baseline"],
                   delta=always, delta_color="off", delta_arrow="off")
    teacher = reference.get("teacher_accuracy")
    cols[1].metric("Teacher accuracy (vs gold)", "—" if teacher is None else f"{teacher:.3f}",
                   help=HELP["teacher_accuracy"])
    rows = reference.get("rows")
    cols[2].metric("Held-out rows with gold", "varies" if rows is None else str(rows), help=HELP["held_out"])


def comparison(store, table: list[dict], chosen: list[str], reference: dict | None) -> None:
    picked = [r for r in table if r["run"] in chosen]
    built = {title: make(store, chosen, picked, reference) for title, make in CHARTS.items()}  # built once per rerun
    for title, chart in built.items():
        st.subheader(title, help=CHART_HELP[title])
        if chart is None:
            st.caption("Nothing to plot yet: no finished evaluation among the chosen runs.")
        else:
            st.altair_chart(chart, width="stretch")
    if reference and not reference["same_rows"]:
        st.caption("The chosen runs are graded on different held-out rows (different seeds or held-out shares), "
                   "so the dashed lines show the mean over them.")
    with st.expander("Export a chart (PNG or SVG)"):
        cols = st.columns([3, 1, 2])
        name = cols[0].selectbox("Chart", list(CHARTS), key="export_chart")
        fmt = cols[1].radio("Format", ["svg", "png"], horizontal=True, key="export_format")
        chart = built[name]
        if chart is not None and cols[2].button("Prepare file", key="export_prepare"):
            st.session_state["chart_file"] = (f"{name.lower().replace(' ', '_')}.{fmt}",
                                              charts.chart_bytes(chart, fmt), fmt)
        if st.session_state.get("chart_file"):
            filename, data, kind = st.session_state["chart_file"]
            st.download_button(f"Download {filename}", data, file_name=filename,
                               mime="image/svg+xml" if kind == "svg" else "image/png", key="export_download")


def run_detail(store, run: dict, row: dict, reference: dict | None) -> None:
    warned = len(results.run_warnings(store, row, reference))
    if warned:  # said once, above the comparison; here only a pointer to it
        st.caption(f"⚠️ {warned} warning{'s' * (warned != 1)} about this run: see above the run comparison.")
    mine = (reference or {}).get("runs", {}).get(run["id"])
    cols = st.columns(5)
    accuracy, agreement = row.get("test_accuracy"), row.get("teacher_agreement")
    cols[0].metric("Held-out accuracy", "—" if accuracy is None else f"{accuracy:.3f}", help=HELP["test_accuracy"])
    macro = row.get("test_macro_f1")
    cols[4].metric("Macro-F1", "—" if macro is None else f"{macro:.3f}", help=HELP["test_macro_f1"])
    cols[1].metric("Majority-class baseline", "—" if not mine else f"{mine['majority_baseline']:.3f}",
                   help=HELP["majority_baseline"])
    cols[2].metric("Teacher accuracy (vs gold)",
                   "—" if not mine or mine["teacher_accuracy"] is None else f"{mine['teacher_accuracy']:.3f}",
                   help=HELP["teacher_accuracy"])
    cols[3].metric("Teacher agreement", "—" if agreement is None else f"{agreement:.3f}", help=HELP["teacher_agreement"])
    matrix = results.confusion(run)
    if matrix:
        cols = st.columns([2, 1])
        chart = charts.confusion_chart(matrix)
        if chart is not None:
            cols[0].altair_chart(chart, width="stretch")
        per_class = matrix.get("per_class") or {}
        table = pd.DataFrame([{"class": c, "precision": s["precision"], "recall": s["recall"], "F1": s["f1"],
                               "rows": s["support"]} for c, s in per_class.items()] if per_class else
                             [{"class": c, "recall": a} for c, a in matrix["per_class_accuracy"].items()])
        number = lambda name, text: st.column_config.NumberColumn(name, format="%.3f", help=text)  # noqa: E731
        cols[1].dataframe(table, hide_index=True, column_config={
            "precision": number("precision", "Of the held-out rows the student gave this class, the share that are it."),
            "recall": number("recall", "Of the held-out rows of this gold class, the share the student labels correctly."),
            "F1": number("F1", "Precision and recall together (their harmonic mean).")})
        if row.get("chosen_step") is not None:
            cols[1].caption(f"Scored with the model of step {int(row['chosen_step'])}, the best on the validation rows.")
    st.subheader("Predictions on held-out rows", help=HELP["held_out"])
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
    savings_section(store, run)
    cascade_section(store, run)
    st.subheader("Report and export")
    cols = st.columns(3)
    fmt = cols[0].radio("Report format", ["md", "html"], horizontal=True, key="report_format")
    try:
        report = run_report(store, run["id"], fmt)
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
            folder = models_folder(store, target) if auth_configured() else target
            done = export_model(store, run["id"], folder, push_to=push.strip() or None, public=public)
            st.success(plain(f"Saved {len(done['files'])} files to {done['out']}"
                             + (f" and pushed to {done['pushed']}" if done["pushed"] else "")))
        except Exception as exc:
            show_error(exc)


def savings_section(store, run: dict) -> None:
    """Student against teacher: cost per 1,000 rows, break-even, and quality on the same held-out rows."""
    st.subheader("What the student saves", help=savings.HELP["break_even"])
    try:
        prices = savings.load_compute_prices()
    except Exception as exc:
        show_error(exc)
        return
    measured = savings.stored_throughput(run_dir(run))
    cols = st.columns([1, 1, 2])
    price = cols[0].number_input("$ per CPU-hour", min_value=0.0, value=prices.usd_per_cpu_hour, step=0.005,
                                 format="%.4f", key="cpu_hour_usd", help=savings.HELP["cpu_price"])
    if cols[1].button("Measure CPU throughput" if measured is None else "Measure again", key="measure_throughput",
                      help="Times the student on this run's held-out rows (labels and confidence, batch 16) on this server's "
                           "CPU and keeps the result with the run."):
        try:
            with st.spinner("Timing the student on the held-out rows…"):
                savings.measure_throughput(store, run["id"])
        except Exception as exc:
            show_error(exc)
    try:
        s = savings.run_savings(store, run["id"], prices=prices,
                                usd_per_cpu_hour=None if price == prices.usd_per_cpu_hour else price)
    except Exception as exc:
        show_error(exc)
        return
    cols = st.columns(4)
    cols[0].metric("Student, per 1,000 rows", "not measured" if s["student_usd_per_1000"] is None
                   else savings.money(s["student_usd_per_1000"]), help=savings.HELP["student_per_1000"])
    cols[1].metric("Teacher, per 1,000 rows", "no measured spend" if s["teacher_usd_per_1000"] is None
                   else savings.money(s["teacher_usd_per_1000"]), help=savings.HELP["teacher_per_1000"])
    cols[2].metric("Saving per 1,000 rows", savings.money(s["saving_usd_per_1000"]),
                   help=savings.HELP["saving_per_1000"])
    cols[3].metric("Break-even (rows)", "—" if s["break_even_rows"] is None else f"{s['break_even_rows']:,}",
                   help=savings.HELP["break_even"])
    cols = st.columns(4)
    cols[0].metric("Student accuracy", "—" if s["accuracy"] is None else f"{s['accuracy']:.3f}",
                   help=savings.HELP["accuracy"] + f" ({s['graded_rows']} rows)")
    cols[1].metric("Agreement with the teacher", "—" if s["agreement"] is None else f"{s['agreement']:.3f}",
                   help=savings.HELP["agreement"] + f" ({s['agreement_rows']} rows)")
    cols[2].metric("Teacher spend / rows answered",
                   (f"{savings.money(s['teacher_spend_usd'])} / {s['teacher_rows_answered']:,}"
                    if s["teacher_spend_usd"] else f"none billed / {s['teacher_rows_answered']:,}"),
                   help="Everything billed for this project's teacher calls, and the rows that have a teacher answer.")
    cols[3].metric("Training compute", savings.money(s["training_compute_usd"]),
                   help="The training loop's time priced per CPU-hour at the measurement's thread count "
                        "(CPU runs; loading and evaluations left out).")
    st.caption(plain(f"Throughput: {savings.throughput_text(s['throughput'])}. "
                     f"CPU-hour price: {savings.money(s['usd_per_cpu_hour'])} ({s['price_source']}). "
                     "Break-even: " + savings.HELP["break_even"]))
    for note in s["notes"]:
        st.info(plain(note))


def cascade_section(store, run: dict) -> None:
    """How sure the student is (calibration), and what a student-then-teacher cascade buys."""
    st.subheader("Confidence and the cascade", help=CASCADE_HELP)
    try:
        calibration = cascade.run_calibration(store, run["id"])
    except Exception as exc:
        show_error(exc)
        return
    if calibration is None:
        st.caption("This run has no confidence calibration (it was trained before runs calibrated themselves, "
                   "or it has not finished).")
        if run["status"] == "completed" and st.button("Calibrate on its validation rows", key="calibrate_run"):
            try:
                with st.spinner("Scoring the validation and held-out rows…"):
                    cascade.run_calibration(store, run["id"], compute=True)
                st.rerun()
            except Exception as exc:
                show_error(exc)
        return
    cols = st.columns([1, 1, 1, 3])
    cols[0].metric("Temperature", f"{calibration['temperature']:.2f}",
                   help=f"Fitted on {calibration['fitted_on_rows']} validation rows (1 = not rescaled).")
    for col, key, when in ((cols[1], "ece_before", "before"), (cols[2], "ece_after", "after")):
        value = calibration[key]
        col.metric(f"Calibration error {when}", "—" if value is None else f"{value:.3f}",
                   help=f"Expected calibration error on {calibration['test_rows']} held-out rows {when} temperature "
                        "scaling: the gap between how sure the student is and how often it is right (0 is perfect).")
    chart = charts.reliability_chart(calibration)
    if chart is not None:
        cols[3].altair_chart(chart, width="stretch")
    cols = st.columns([1, 2])
    how = cols[0].radio("Choose the threshold", ["for a target accuracy", "by hand"], key="cascade_how")
    price = st.session_state.get("cpu_hour_usd")
    try:
        if how == "by hand":
            threshold = cols[1].slider("Confidence threshold: rows under it go to the teacher", 0.0, 1.0, 0.5, 0.01,
                                       key="cascade_threshold")
            report = cascade.cascade_report(store, run["id"], threshold=threshold, usd_per_cpu_hour=price)
        else:
            target = cols[1].number_input("Held-out accuracy to keep (empty: 98% of the teacher's)", 0.0, 1.0,
                                          value=None, step=0.01, format="%.3f", key="cascade_target")
            report = cascade.cascade_report(store, run["id"], target_accuracy=target, usd_per_cpu_hour=price)
    except Exception as exc:
        show_error(exc)
        return
    share_chart, cost_chart = charts.frontier_charts(report["frontier"], report["chosen"])
    cols = st.columns(2)
    for col, chart in zip(cols, (share_chart, cost_chart)):
        if chart is not None:
            col.altair_chart(chart, width="stretch")
    if cost_chart is None:
        cols[1].caption("No cost chart: this project has no teacher price per row (nothing billed and nothing "
                        "to estimate it from).")
    (st.success if report["chosen"] else st.warning)(plain(report["sentence"]))
    chosen = report["chosen"]
    threshold = "THRESHOLD" if chosen is None else f"{min(1.0, chosen['threshold']):.2f}"
    st.caption(plain(f"Teacher per row: {report['teacher_price']}. Student per row: {report['student_price']}."))
    st.code(f"python -m core serve --run {run['id']} --cascade {threshold}", language="bash")


CASCADE_HELP = ("The student answers every row with a confidence: the probability it gives its label over the label "
                "set, calibrated on the validation rows. Rows under a threshold go to the teacher. The charts replay "
                "that on the held-out rows, whose teacher answers are already stored.")


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
    reference = results.baselines(store, name)
    st.subheader("Run comparison")
    reference_metrics(reference)
    if reference is None:
        st.caption("No held-out row has a gold label, so accuracy, the majority-class baseline and the teacher's "
                   "accuracy cannot be measured; teacher agreement still can.")
    st.dataframe(pd.DataFrame(results.display_table(table)), hide_index=True, column_config=column_config())
    st.caption("Hover a column header for what it means. α, rationale fraction and rows without rationale are "
               "\"—\" for label-only runs: they learn the label alone, so these settings do not apply.")
    for row in table:
        for warning in results.run_warnings(store, row, reference):
            st.warning(plain(warning), icon="⚠️")
    ids = [r["id"] for r in runs]
    chosen = st.multiselect("Runs to plot", ids, default=ids[:8], key="runs_chosen")
    if chosen:
        comparison(store, table, chosen, results.baselines_of(reference, chosen))
    st.divider()
    st.header("One run")
    run_id = st.selectbox("Run", ids, key="detail_run")
    run_detail(store, next(r for r in runs if r["id"] == run_id), next(r for r in table if r["run"] == run_id),
               reference)


main()
