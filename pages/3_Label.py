"""Label: run the teacher over unlabeled rows in a background job; progress and spend live."""

import pandas as pd
import streamlit as st

from core import jobs
from core.prompt.forecast import preflight
from core.kernel.prices import load_prices
from core.prompt.planner import RELABEL
from core.label.job import PARSE_FAILURE_ALERT, parse_failures
from core.label.config import LabelConfig
from ui import (
    api_key,
    job_env,
    page_setup,
    plain,
    planned_forecast,
    project_picker,
    show_error,
)

RELABEL_HELP = {None: "rows not answered yet (and failed calls)",
                "failed": "also rows whose answer did not parse",
                "stale": "also rows answered by an older prompt",
                "all": "every row"}


def show_job(job_id: str) -> None:
    st.query_params["job"] = job_id


def show_start_error(exc: Exception) -> None:
    """The error, and for a refusal because a labeling job runs already, a button that shows
    that job below (the page's view of a job follows ?job=…)."""
    show_error(exc)
    if isinstance(exc, jobs.LabelingBusy):
        st.button(f"Open job {exc.job_id}", key="open-running-job", on_click=show_job, args=(exc.job_id,))


@st.fragment(run_every=1.0)
def live_status(store, name: str) -> None:
    """Re-renders every second without rerunning the page. Shows the job a link asked for
    (?job=…), else the one running, else the latest."""
    label_jobs = jobs.jobs_for(store, name, "label")
    job = jobs.job_to_show(label_jobs, st.query_params.get("job"))
    active = job is not None and job["status"] in jobs.ACTIVE
    was_active, st.session_state["_label_live"] = st.session_state.get("_label_live"), active
    if was_active and not active:
        st.rerun()  # the job ended: the whole page (the stage line, the next run's plan) shows the state after it
    failures = parse_failures(job) if job else None
    stats = store.teacher_stats(name)
    counts = store.count_items(name)
    cols = st.columns(6)
    budget = store.get_project(name).budget_usd
    cols[0].metric("Spend (billed)", f"${stats['spend_usd']:.4f}",
                   help=f"of a ${budget:.2f} project budget" if budget else "no project budget set")
    cols[1].metric("Requests billed", stats["billed_calls"])
    cols[2].metric("Served from cache", stats["cache_hits"])
    cols[3].metric("Unlabeled", counts["by_status"].get("unlabeled", 0))
    cols[4].metric("Errors", counts["by_status"].get("error", 0))
    cols[5].metric("Unparseable answers", f"{failures[0]:.0%}" if failures else "–",
                   help="share of the shown job's answers that could not be parsed (flagged for review)")
    if job is None:
        st.caption("No labeling job yet.")
        return
    total = job["total"] or 0
    st.progress(min(1.0, (job["done"] or 0) / total) if total else 0.0, text=plain(jobs.progress_text(job)))
    if failures and failures[0] >= PARSE_FAILURE_ALERT:
        st.error(plain(failures[1]))
    elif failures and failures[0] > 0:
        st.caption(plain(failures[1]))
    if job["status"] == "failed":
        st.error(plain(f"The job failed: {job['error']}"))
    batches = store.list_batches(name)
    if batches:
        st.caption(f"Message Batches: {sum(b['status'] == 'submitted' for b in batches)} being processed, "
                   f"{sum(b['status'] == 'collected' for b in batches)} collected.")
    cols = st.columns(3)
    if job["status"] in jobs.ACTIVE:
        if cols[0].button("Pause", key=f"pause-{job['id']}", help="Finish the requests in flight, then stop."):
            jobs.pause_job(store, job["id"])
            st.toast("Pause requested")
        if cols[1].button("Cancel", key=f"cancel-{job['id']}"):
            jobs.cancel_job(store, job["id"])
            st.toast("Cancel requested")
    elif job["status"] in jobs.RESUMABLE:
        if cols[0].button("Resume", key=f"resume-{job['id']}", type="primary",
                          help="Continue with the rows still unanswered; answered rows are never requested again."):
            try:
                jobs.resume_job(store, job["id"], env=job_env())
                st.toast("Resumed")
            except Exception as exc:
                show_start_error(exc)


def main() -> None:
    store = page_setup("Label")
    name = project_picker(store)
    if not name:
        return
    project = store.get_project(name)
    if project.demo_teacher:
        st.info("This demo project is labeled by a **recorded demo teacher**: its responses are stored "
                "Messages-API replies served through the response cache, not a live model. Changing the prompt "
                "makes new requests that need an API key.")
    st.caption(plain(f"Teacher model: {project.model}. Key: {'set' if api_key() else 'not set'} "
                     "(ANTHROPIC_API_KEY in the environment or Streamlit secrets). "
                     "Rows with an identical request are answered from the cache and never billed twice."))
    relabel, fraction, seed = run_plan(store, name, project)
    with st.form("label"):
        cols = st.columns(3)
        concurrency = cols[0].number_input("Concurrent requests", 1, 64, LabelConfig.concurrency)
        limit = cols[1].number_input("Rows (0 = all unlabeled)", 0, 1_000_000, 0)
        budget = cols[2].number_input("Budget cap for this run, USD (0 = none)", 0.0, 100000.0, 0.0)
        batch = st.checkbox("Use the Message Batches API (50% cheaper, results within 24 h)", key="label_batch")
        override = st.checkbox("Start even if the P90 forecast exceeds the project's remaining budget",
                               key="override_budget")
        start = st.form_submit_button("Start labeling", type="primary")
    if start:
        try:
            jobs.ensure_labeling_free(store, name)  # before the preflight: the running job is the news
            if load_prices().get(project.model) is None:
                st.warning(plain(f"{project.model} has no price; the run will refuse to make live calls."))
            preflight(store, name, load_prices(), model=project.model, batch=bool(batch), override=override,
                      n_rows=int(limit) or None, relabel=relabel, rationale_fraction=fraction, seed=seed)
            cfg = LabelConfig(name, model=project.model, concurrency=int(concurrency), limit=int(limit) or None,
                              budget_usd=float(budget) or None, batch=bool(batch), relabel=relabel,
                              rationale_fraction=fraction, seed=seed).validate()
            job_id = jobs.start_job(store, name, "label", cfg.as_job_config(), env=job_env())
            st.query_params.pop("job", None)  # show the new job, not one an earlier link asked for
            st.success(f"Started job {job_id}. You can leave this page; the job keeps running.")
        except Exception as exc:
            show_start_error(exc)
    live_status(store, name)
    errors = store.recent_errors(name)
    if errors:
        st.subheader("Recent per-row errors")
        st.dataframe(pd.DataFrame(errors), hide_index=True)


def run_plan(store, name, project):
    """Which rows the run sends and with which prompt, priced before anything is sent."""
    cols = st.columns(3)
    relabel = cols[0].selectbox(
        "Rows to send", [None, *RELABEL], key="relabel", format_func=lambda r: RELABEL_HELP[r],
        help="Answered rows are re-sent only when you ask; an identical request is answered from the cache, free.")
    fraction = cols[1].slider(
        "Rationale fraction", 0.0, 1.0, LabelConfig.rationale_fraction, 0.05, key="label_fraction",
        help="The share of rows asked for a label and a rationale; the others are asked for the label only, "
             "which costs less. The student learns rationales from the share that has them.")
    seed = int(cols[2].number_input("Seed", 0, 10_000, LabelConfig.seed, key="label_seed",
                                    help="Which rows form the rationale share (the same seed picks the same rows)."))
    try:
        fc = planned_forecast(store, name, model=project.model, relabel=relabel, rationale_fraction=fraction,
                      seed=seed)
        price = "unknown (no price)" if fc.cost_usd_p50 is None else f"${fc.cost_usd_p50:.4f} (P90 ${fc.cost_usd_p90:.4f})"
        st.caption(f"This run would send {fc.rows:,} requests; {fc.cache_hits:,} rows are answered from the cache "
                   f"for free. Expected cost {price}.")
    except Exception as exc:
        show_error(exc)
    return relabel, fraction, seed


main()
