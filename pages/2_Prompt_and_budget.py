"""Prompt & budget: pick a prompt mode, edit and preview the exact request, forecast the
bill (P50/P90), run a pilot, compare models and modes, and set the project's budget cap."""

import json

import pandas as pd
import streamlit as st

from core import answers, jobs
from core.errors import AppError
from core.forecast import cost_table, count_tokens_sample, forecast, pilot_rows
from core.prices import load_prices, prices_path, save_prices
from core.prompts import (
    MODES,
    OUTPUT_FORMATS,
    demonstrations,
    mode_template,
    request_for,
    validate_template,
)
from core.tasks import get_task
from core.teacher import LabelConfig
from ui import api_key, job_env, page_setup, plain, project_picker, show_error

MODE_HELP = {
    "zero-shot": "label + one-sentence rationale, no examples (cheapest with rationales)",
    "explain-label": "the gold label is given; the teacher explains why (rows with gold only)",
    "few-shot": "chain-of-thought with k demonstrations, for comparison",
    "label-only": "a label without rationale",
}


def prompt_editor(store, name, project, prices):
    models = sorted(prices.models) if prices else []
    model_options = models + ([project.model] if project.model and project.model not in models else [])
    left, right = st.columns([3, 2])
    with right:
        mode = st.selectbox("Prompt mode", MODES, index=MODES.index(project.mode), key="prompt_mode",
                            format_func=lambda m: f"{m}: {MODE_HELP[m]}")
        output_format = st.radio("Output", OUTPUT_FORMATS, index=OUTPUT_FORMATS.index(project.output_format),
                                 horizontal=True, key="output_format",
                                 help="json: structured output through the API's output_config")
        shots = st.number_input("Demonstrations (few-shot)", 1, 16, int(project.shots), key="shots")
        model = st.selectbox("Teacher model", model_options or ["claude-haiku-4-5"],
                             index=(model_options.index(project.model) if project.model in model_options else 0))
        max_tokens = st.number_input("max_tokens", min_value=16, max_value=4096, value=int(project.max_tokens))
    with left:
        if st.button(f"Load the {project.task} preset for {mode}"):
            st.session_state["template_text"] = mode_template(project.task, project.input_fields, mode)
        template = st.text_area("Template", value=st.session_state.get("template_text", project.template or ""),
                                height=260, key="template_text")
        extra = {"explain-label": ", {gold}", "few-shot": ", {examples}"}.get(mode, "")
        words_text = ""
        if get_task(project.task).enum_labels:  # a label set the prompt may name in other words
            words_text = st.text_input(
                "Label words (optional)", value=answers.format_label_words(project.label_words), key="label_words",
                help="When the prompt asks for other words than the labels, map them: "
                     "true=entailment, false=contradiction, inconclusive=neutral. Answers are read through them; "
                     "{label_words} lists the words in the prompt.")
        st.caption("Placeholders: " + ", ".join("{" + f + "}" for f in project.input_fields) + ", {labels}"
                   + (", {label_words}" if words_text else "")
                   + (", {choices}" if get_task(project.task).needs_choices else "") + extra)
    if st.button("Save prompt", type="primary"):
        save_prompt(store, name, project, template, words_text, model=model, max_tokens=int(max_tokens), mode=mode,
                    output_format=output_format, shots=int(shots))
    return template, mode, output_format, int(shots), model, int(max_tokens)


def save_prompt(store, name, project, template, words_text, **settings):
    try:
        words = answers.label_words_from(project, words_text)
        validate_template(template, project.input_fields, project.task, settings["mode"], words)
        store.update_project(name, template=template, label_words=words, **settings)
        st.success(f"Saved as template version {store.template_version(name)}. Rows labeled with an older "
                   "version keep their answers and record which version produced them.")
        if words != project.label_words:
            out = answers.reparse_answers(store, name)
            st.info(f"Read {out['answers']} stored answers again with the new label words (no calls, no cost): "
                    f"{out['parsed_after']} now parse, {out['parsed_before']} did before.")
    except Exception as exc:
        show_error(exc)


def preview(store, name, project, template, mode, output_format, shots, model, max_tokens):
    st.subheader("Preview: the exact request body")
    draft = _draft(project, template, mode, output_format, shots, max_tokens)
    examples = demonstrations(store, draft)
    n = st.slider("Sampled rows", 1, 5, 2)
    for item in store.sample_items(name, n):
        st.caption(plain(f"Row {item['row_id']}"))
        st.code(json.dumps(request_for(draft, item, model, examples), indent=2, ensure_ascii=False), language="json")


def _draft(project, template, mode, output_format, shots, max_tokens):
    from dataclasses import replace

    return replace(project, template=template, mode=mode, output_format=output_format, shots=shots,
                   max_tokens=max_tokens)


def budget_panel(store, name, project, prices, model):
    st.subheader("Forecast for the rows still unlabeled")
    cols = st.columns(3)
    batch = cols[0].checkbox("Batch API (50% off)", key="forecast_batch")
    fraction = cols[1].slider("Rationale fraction", 0.0, 1.0, 1.0, 0.05, key="rationale_fraction",
                              help="Share of rows that get a rationale; the rest get a label-only prompt.")
    fc = forecast(store, name, prices, model=model, batch=batch, rationale_fraction=fraction)
    m = st.columns(5)
    m[0].metric("Rows to label", f"{fc.rows:,}")
    m[1].metric("Input tokens (P50)", f"{fc.input_tokens_p50:,}", help=f"{fc.input_tokens_per_row} per row, {fc.input_source}")
    m[2].metric("Output tokens (P50)", f"{fc.output_tokens_p50:,}", help=f"{fc.output_tokens_per_row} per row, {fc.output_source}")
    m[3].metric("Cost P50", "unknown" if fc.cost_usd_p50 is None else f"${fc.cost_usd_p50:,.4f}")
    m[4].metric("Cost P90", "unknown" if fc.cost_usd_p90 is None else f"${fc.cost_usd_p90:,.4f}")
    st.markdown("**Assumptions**\n" + "\n".join(f"- {plain(a)}" for a in fc.assumptions))
    if fc.parse_failure_rate is not None:
        st.caption(f"Observed so far: parse failures {fc.parse_failure_rate:.1%}, "
                   f"SDK retries per call {fc.retry_rate or 0:.2f}.")

    st.subheader("Budget")
    spent, reserved = store.spend(name), store.reserved_spend(name)
    b = st.columns([2, 1, 1, 1])
    b[0].number_input("Project budget cap, USD (0 = none)", 0.0, 1e6, float(project.budget_usd or 0.0),
                      key="budget_cap")
    # saved in a callback, before the page reruns, so the budget bar below shows the new cap at once
    b[1].button("Save cap", key="save_cap", on_click=save_cap, args=(store, name))
    saved = st.session_state.pop("_cap_saved", None)
    if saved is True:
        st.success("Budget saved. Labeling refuses to start when its P90 forecast exceeds what is left.")
    elif saved is not None:
        show_error(saved)
    b[2].metric("Spent", f"${spent:.4f}", help="billed teacher calls in this project")
    b[3].metric("Reserved", f"${reserved:.4f}",
                help="the worst case of requests in flight and of batches still running, in every process; "
                     "the cap counts it until the real cost is known")
    if project.budget_usd:
        st.progress(min(1.0, (spent + reserved) / project.budget_usd),
                    text=f"${spent:.4f} spent + ${reserved:.4f} reserved of ${project.budget_usd:.2f}")

    st.subheader("Pilot")
    p = st.columns([1, 1, 2])
    pct = p[0].number_input("Pilot share, %", 0.1, 50.0, 2.0, 0.5, key="pilot_pct")
    floor = p[1].number_input("At least rows", 1, 10_000, 20, key="pilot_floor")
    if p[2].button("Label a stratified pilot", help="Then this forecast uses the pilot's observed usage."):
        try:
            jobs.ensure_labeling_free(store, name)  # a pilot is a labeling run: one at a time per project
            rows = pilot_rows(store, name, pct / 100, int(floor))
            cfg = LabelConfig(name, model=model, row_ids=rows).validate()
            job_id = jobs.start_job(store, name, "label", cfg.as_job_config(), env=job_env())
            st.success(f"Pilot job {job_id} started on {len(rows)} rows; follow it on the Label page.")
        except Exception as exc:
            show_error(exc)
            if isinstance(exc, jobs.LabelingBusy):
                st.page_link("pages/3_Label.py", label=f"Open job {exc.job_id}", icon="▶",
                             query_params={"job": exc.job_id})
    if api_key():  # counted in a callback, before the page reruns: the forecast above uses the counts at once
        st.button("Calibrate with exact count_tokens (20 rows, free)", key="count_tokens", on_click=calibrate,
                  args=(store, name, model))
        counted = st.session_state.pop("_calibrated", None)
        if isinstance(counted, Exception):
            show_error(counted)
        elif counted is not None:
            st.success(f"Counted {counted} requests." if counted else
                       "Every sampled request was counted already; the forecast uses those counts.")


def calibrate(store, name, model):
    """The calibrate button's callback; a repeat click finds every sampled request counted (0)."""
    try:
        st.session_state["_calibrated"] = count_tokens_sample(store, name, api_key(), model=model)
    except Exception as exc:
        st.session_state["_calibrated"] = exc


def save_cap(store, name):
    """The "Save cap" button's callback: the cap typed in the number input, stored before the rerun."""
    try:
        store.update_project(name, budget_usd=float(st.session_state["budget_cap"]) or None)
        st.session_state["_cap_saved"] = True
    except Exception as exc:
        st.session_state["_cap_saved"] = exc


def table_panel(store, name, prices):
    """Six forecasts over all priced models: computed when asked for, not on every rerun."""
    with st.expander("Cost table: models x API x zero-shot vs few-shot x rationale fraction"):
        if st.button("Compute the cost table", key="compute_table"):
            st.session_state["cost_table"] = (name, cost_table(store, name, prices))
        stored = st.session_state.get("cost_table")
        if not stored or stored[0] != name:
            st.caption("Prices every model in the price file for this project's rows still unlabeled.")
            return
        frame = pd.DataFrame(stored[1])
        st.dataframe(frame, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="$%.4f") for c in frame.columns if c.endswith(("p50", "p90", "usd"))
        } | {"saving_pct": st.column_config.NumberColumn(format="%.1f%%")})


def price_file_panel(prices):
    with st.expander("Price file"):
        if prices:
            st.caption(plain(f"Source: {prices.source}, as of {prices.date}. Unconfirmed: "
                             + ", ".join(m for m, p in prices.models.items() if not p.confirmed)))
        text = st.text_area("data/prices.toml", value=prices_path().read_text(encoding="utf-8"), height=300)
        if st.button("Save price file"):
            try:
                save_prices(text)
                st.success("Price file saved.")
            except Exception as exc:
                show_error(exc)


def main() -> None:
    store = page_setup("Prompt & budget")
    name = project_picker(store)
    if not name:
        return
    project = store.get_project(name)
    try:
        prices = load_prices()
    except AppError as exc:
        show_error(exc)
        prices = None
    template, mode, output_format, shots, model, max_tokens = prompt_editor(store, name, project, prices)
    try:
        validate_template(template, project.input_fields, project.task, mode)
    except AppError as exc:
        show_error(exc)
        return
    preview(store, name, project, template, mode, output_format, shots, model, max_tokens)
    if prices is None:
        return
    price = prices.get(model)
    if price is None:
        st.warning(plain(f"{model} has no price in the price file: its cost cannot be estimated or tracked. "
                         "Add it below."))
    try:
        budget_panel(store, name, store.get_project(name), prices, model)
        table_panel(store, name, prices)
    except AppError as exc:
        show_error(exc)
    price_file_panel(prices)


main()
