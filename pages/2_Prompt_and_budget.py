"""Prompt & budget: pick a prompt mode, edit and preview the exact request, try the prompt on a
few rows (price first, then parse rate, accuracy and the answers side by side, two versions
compared), forecast the bill (P50/P90), run a pilot, compare models and modes, and set the
project's budget cap."""

import json
from dataclasses import replace

import pandas as pd
import streamlit as st

from core import jobs

from core.label import answers
from core.kernel.errors import AppError
from core.prompt.forecast import cost_table, count_tokens_sample, pilot_rows
from core.kernel.prices import load_prices, prices_path, save_prices
from core.prompt.templates import (
    MODES,
    OUTPUT_FORMATS,
    demonstrations,
    preset_template,
    request_for,
    validate_template,
)
from core.kernel.hashing import template_text
from core.kernel.tasks import get_task
from core.label.config import LabelConfig
from core.prompt.json_mode import format_conflict, has_format_lines
from core.label.trials import (
    DEFAULT_ROWS,
    MAX_ROWS,
    compare_trials,
    finish_trials,
    quote_trial,
    start_trial,
    summary_line,
    trial_summary,
    trial_table,
    wait_trial,
)
from ui.answer_panels import add_format_lines, fix_outcome, json_field_hints, stored_why, trial_why
from ui import (
    api_key,
    job_env,
    page_setup,
    plain,
    planned_forecast,
    project_picker,
    quote_metrics,
    show_error,
)

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
        output_format = st.radio("Output", OUTPUT_FORMATS, horizontal=True, key="output_format",
                                 **_initial("output_format", index=OUTPUT_FORMATS.index(project.output_format)),
                                 help="json: structured output through the API's output_config")
        shots = (st.number_input("Demonstrations (few-shot)", 1, 16, int(project.shots), key="shots")
                 if mode == "few-shot" else project.shots)  # zero-shot asks with none
        model = st.selectbox("Teacher model", model_options or ["claude-haiku-4-5"],
                             index=(model_options.index(project.model) if project.model in model_options else 0))
        max_tokens = st.number_input("max_tokens", min_value=16, max_value=4096, value=int(project.max_tokens))
    with left:
        if st.button(f"Load the {project.task} preset for {mode}"):
            # with JSON output the schema defines the reply: the preset without its format lines
            st.session_state["template_text"] = preset_template(project.task, project.input_fields, mode,
                                                                output_format)
        template = st.text_area("Template", height=260, key="template_text",
                                **_initial("template_text", value=project.template or ""))
        if output_format == "text" and template.strip() and not has_format_lines(template):
            st.warning("This template does not say how to reply (no \"Answer: …\" line), so the teacher answers in "
                       "prose and many answers cannot be read. Add the preset's reply format before trying it.")
            st.button("Add the reply format lines", key="format_lines", on_click=add_format_lines,
                      args=(replace(project, mode=mode),))
        if format_conflict(template, output_format):
            st.warning("With JSON output the structured output schema defines the reply, but this template also "
                       "asks for free-text format lines (Answer / Rationale). They contradict each other.")
            st.button("Turn the format lines into JSON field hints", key="json_fields", on_click=json_field_hints)
        extra = {"explain-label": ", {gold}", "few-shot": ", {examples}"}.get(mode, "")
        words_text = ""
        if get_task(project.task).enum_labels:  # a label set the prompt may name in other words
            words_text = st.text_input(
                "Label words (optional)", key="label_words",
                **_initial("label_words", value=answers.format_label_words(project.label_words)),
                help="When the prompt asks for other words than the labels, map them: "
                     "true=entailment, false=contradiction, inconclusive=neutral. Answers are read through them; "
                     "{label_words} lists the words in the prompt.")
        st.caption("Placeholders: " + ", ".join("{" + f + "}" for f in project.input_fields) + ", {labels}"
                   + (", {label_words}" if words_text else "")
                   + (", {choices}" if get_task(project.task).needs_choices else "") + extra)
    settings = {"model": model, "max_tokens": int(max_tokens), "mode": mode, "output_format": output_format,
                "shots": int(shots)}
    if st.button("Save prompt", type="primary"):
        save_prompt(store, name, project, template, words_text, **settings)
    return template, words_text, settings


def _initial(key: str, **default) -> dict:
    """A widget's starting value, given only while its key holds none: a value set through the key
    (a fix, a preset) is shown without Streamlit's warning about two sources."""
    return {} if key in st.session_state else default


def unsaved(project, template, words_text, settings) -> bool:
    """Whether the editor differs from the saved prompt."""
    saved = {"model": project.model, "max_tokens": project.max_tokens, "mode": project.mode,
             "output_format": project.output_format, "shots": project.shots}
    return (template_text(template) != (project.template or "") or settings != saved
            or words_text.strip() != answers.format_label_words(project.label_words).strip())


def save_prompt(store, name, project, template, words_text, **settings) -> bool:
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
        return True
    except Exception as exc:
        show_error(exc)
        return False


def preview(store, name, project, template, mode, output_format, shots, model, max_tokens):
    st.subheader("Preview: the exact request body")
    draft = _draft(project, template, mode, output_format, shots, max_tokens)
    examples = demonstrations(store, draft)
    n = st.slider("Sampled rows", 1, 5, 2)
    for item in store.sample_items(name, n):
        st.caption(plain(f"Row {item['row_id']}"))
        st.code(json.dumps(request_for(draft, item, model, examples), indent=2, ensure_ascii=False), language="json")


def _draft(project, template, mode, output_format, shots, max_tokens):
    return replace(project, template=template, mode=mode, output_format=output_format, shots=shots,
                   max_tokens=max_tokens)


TRIAL_WAIT_S = 120  # the page waits this long for a try; a longer one is recorded on a later rerun


def trial_panel(store, name, prices, template, words_text, words, settings):
    """Try the prompt on N rows: price first, run as a labeling job, then read the answers."""
    st.subheader("Try the prompt on a few rows")
    finish_trials(store, name)  # tries whose job ended since the last rerun
    project = store.get_project(name)
    dirty = unsaved(project, template, words_text, settings)
    draft = replace(_draft(project, template, settings["mode"], settings["output_format"], settings["shots"],
                           settings["max_tokens"]), label_words=words)
    c = st.columns([1, 3])
    n = int(c[0].number_input("Rows to try", 1, MAX_ROWS, DEFAULT_ROWS, key="trial_n",
                              help="The same rows for every try of this project (a seeded sample, stratified by "
                                   "gold label), so two versions of the prompt are compared on the same rows."))
    quote = quote_trial(store, name, prices, n, settings["model"], draft=draft)
    fc = quote.forecast
    c[1].caption(plain(
        f"{len(quote.row_ids)} rows: {quote.requests} requests to send, {quote.cache_hits} rows answered by the "
        "cache (identical requests asked before, free). Every row is asked with the full prompt; the answers stay "
        "with the try (and in the cache: labeling with this prompt later gets them free), and the rows keep the "
        "answers they have unless you tick below." + (" Unsaved edits are saved first, as a new template version."
                                                       if dirty else "")))
    override = quote_metrics("Try", quote.requests, fc.cost_usd_p50, fc.cost_usd_p90, quote.over_budget,
                             key="trial_override")
    replace_answers = st.checkbox("Store the try's answers as these rows' teacher answers (reviewed labels stay)",
                                  key="trial_replace")
    if st.button(f"Try on {len(quote.row_ids)} rows", key="trial_start", type="primary"):
        run_try(store, name, prices, n, template, words_text, settings, dirty, (override, replace_answers))
    fix_outcome()
    trials = store.list_trials(name)
    if trials:
        show_trial(store, trials, dirty)
    else:
        st.caption("No tries yet.")
    if len(trials) > 1:
        compare_panel(store, trials)
    stored_why(store, name, dirty)


def run_try(store, name, prices, n, template, words_text, settings, dirty, choices):
    override, replace_answers = choices
    if dirty and not save_prompt(store, name, store.get_project(name), template, words_text, **settings):
        return
    try:
        previous = next((t["id"] for t in store.list_trials(name) if t["status"] != "running"), None)
        trial_id = start_trial(store, name, prices, n, settings["model"], env=job_env(), override=override,
                               replace_answers=replace_answers)
        with st.spinner(f"Asking the teacher about {n} rows..."):
            trial = wait_trial(store, trial_id, timeout_s=TRIAL_WAIT_S)
        # the pickers below (not rendered yet in this rerun) show the new try, compared with the one before
        st.session_state["trial_pick"] = trial_id
        if trial["status"] != "running":
            st.session_state["trial_b"] = trial_id
            if previous is not None:
                st.session_state["trial_a"] = previous
        if trial["status"] == "running":
            st.info(f"Try #{trial_id} is still running as job {trial['job_id']}; its answers show here once it "
                    "ends (follow it on the Label page).")
    except Exception as exc:
        show_error(exc)
        if isinstance(exc, jobs.LabelingBusy):
            st.page_link("pages/3_Label.py", label=f"Open job {exc.job_id}", icon="▶",
                         query_params={"job": exc.job_id})


def _seed(key: str, options: list, default: int) -> None:
    """A picker's choice before it renders: kept while it is still an option, else options[default]."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[default]


def _trial_name(trial: dict) -> str:
    return (f"#{trial['id']} · v{trial['template_version']} · {trial['mode']}, {trial['output_format']} · "
            f"{trial['model']} · {trial['rows']} rows · {trial['created_at']:%Y-%m-%d %H:%M}"
            + (" · running" if trial["status"] == "running" else ""))


def show_trial(store, trials, dirty: bool = False):
    by_id = {t["id"]: t for t in trials}
    _seed("trial_pick", list(by_id), 0)
    picked = st.selectbox("Try", list(by_id), key="trial_pick", format_func=lambda i: _trial_name(by_id[i]))
    trial = by_id[picked]
    s = trial_summary(trial)
    if trial["status"] != "running":
        m = st.columns(4)
        m[0].metric("Parse rate", "n/a" if s["parse_rate"] is None else f"{s['parse_rate']:.0%}",
                    help="answers that parsed to a label, of the answers received")
        m[1].metric("Accuracy against gold", "no gold" if s["accuracy"] is None else f"{s['accuracy']:.0%}",
                    help="parsed labels equal to gold, of the answered rows with gold (unparsed counts as wrong)")
        tokens = s["mean_output_tokens"]
        m[2].metric("Mean output tokens", "n/a" if tokens is None else f"{tokens:.0f}")
        m[3].metric("Billed", f"${s['cost_usd'] or 0:.4f}")
    st.caption(plain(summary_line(trial)))
    if trial["status"] == "running":
        return
    st.dataframe(pd.DataFrame(trial_table(store, picked)), hide_index=True,
                 column_config={"correct": st.column_config.CheckboxColumn("correct")})
    trial_why(store, trial["project"], picked, dirty)


def compare_panel(store, trials):
    st.markdown("**Compare two tries**")
    done = {t["id"]: t for t in trials if t["status"] != "running"}
    ids = list(done)
    if len(ids) < 2:
        return
    _seed("trial_a", ids, 1)
    _seed("trial_b", ids, 0)
    c = st.columns(2)
    first = c[0].selectbox("Try A", ids, key="trial_a", format_func=lambda i: _trial_name(done[i]))
    second = c[1].selectbox("Try B", ids, key="trial_b", format_func=lambda i: _trial_name(done[i]))
    if first == second:
        st.caption("Pick two different tries.")
        return
    out = compare_trials(store, first, second)
    st.dataframe(pd.DataFrame(out["tries"]), hide_index=True, column_config={
        "parse rate": st.column_config.NumberColumn(format="percent"),
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "mean output tokens": st.column_config.NumberColumn(format="%.1f"),
        "cost usd": st.column_config.NumberColumn(format="$%.4f")})
    if not out["common"]:
        st.caption("These tries share no rows.")
    for key, text in (("differ", "get a different label"), ("read_once", "were read in one try only (an unread "
                                                                          "answer is no label, not another one)")):
        if out["common"] and out[key]:
            st.caption(f"{len(out[key])} of the {out['common']} rows both asked {text}:")
            st.dataframe(pd.DataFrame(out[key]), hide_index=True)
    if out["common"] and not out["differ"] and not out["read_once"]:
        st.caption(f"Both give the same label on all {out['common']} rows they share.")


def budget_panel(store, name, project, prices, model):
    st.subheader("Forecast for the rows still unlabeled")
    cols = st.columns(3)
    batch = cols[0].checkbox("Batch API (50% off)", key="forecast_batch")
    fraction = cols[1].slider("Rationale fraction", 0.0, 1.0, 1.0, 0.05, key="rationale_fraction",
                              help="Share of rows that get a rationale; the rest get a label-only prompt.")
    fc = planned_forecast(store, name, model=model, batch=batch, rationale_fraction=fraction)
    m = st.columns(5)
    m[0].metric("Rows to label", f"{fc.rows:,}")
    m[1].metric("Input tokens (P50)", f"{fc.input_tokens_p50:,}", help=f"{fc.input_tokens_per_row} per row, {fc.input_source}")
    m[2].metric("Output tokens (P50)", f"{fc.output_tokens_p50:,}", help=f"{fc.output_tokens_per_row} per row, {fc.output_source}")
    m[3].metric("Cost P50", "unknown" if fc.cost_usd_p50 is None else f"${fc.cost_usd_p50:,.4f}",
                help="The middle estimate: the bill is as likely to come in under it as over it.")
    m[4].metric("Cost P90", "unknown" if fc.cost_usd_p90 is None else f"${fc.cost_usd_p90:,.4f}",
                help="A cautious estimate: the bill should come in under it nine times out of ten.")
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
    template, words_text, settings = prompt_editor(store, name, project, prices)
    mode, model = settings["mode"], settings["model"]
    try:
        try:
            words = answers.label_words_from(project, words_text)
        except AppError:  # "Save prompt" names what is wrong with the typed words
            words = project.label_words
        validate_template(template, project.input_fields, project.task, mode, words)
    except AppError as exc:
        show_error(exc)
        return
    preview(store, name, project, template, mode, settings["output_format"], settings["shots"], model,
            settings["max_tokens"])
    if prices is None:
        return
    price = prices.get(model)
    if price is None:
        st.warning(plain(f"{model} has no price in the price file: its cost cannot be estimated or tracked. "
                         "Add it below."))
    try:
        trial_panel(store, name, prices, template, words_text, words, settings)
    except AppError as exc:
        show_error(exc)
    try:
        budget_panel(store, name, store.get_project(name), prices, model)
        table_panel(store, name, prices)
    except AppError as exc:
        show_error(exc)
    price_file_panel(prices)


main()
