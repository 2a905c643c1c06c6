"""Prompt & budget: edit the zero-shot template, preview exact requests, estimate cost."""

import json

import streamlit as st

from core.cost import estimate_cost
from core.errors import AppError
from core.prices import load_prices, prices_path, save_prices
from core.prompts import build_request, preset_template, validate_template
from ui import page_setup, plain, project_picker, show_error


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

    models = sorted(prices.models) if prices else []
    model_options = models + ([project.model] if project.model and project.model not in models else [])
    left, right = st.columns([3, 2])
    with left:
        if st.button("Reset to the preset for " + project.task):
            st.session_state["template_text"] = preset_template(project.task, project.input_fields)
        template = st.text_area("Zero-shot template", value=st.session_state.get("template_text", project.template or ""),
                                height=260, key="template_text")
        placeholders = ", ".join("{" + f + "}" for f in project.input_fields) + ", {labels}" + (
            ", {choices}" if project.task == "multiple-choice" else "")
        st.caption(f"Placeholders: {placeholders}")
    with right:
        model = st.selectbox("Teacher model", model_options or ["claude-haiku-4-5"],
                             index=(model_options.index(project.model) if project.model in model_options else 0))
        max_tokens = st.number_input("max_tokens", min_value=16, max_value=4096, value=int(project.max_tokens))
        if st.button("Save prompt", type="primary"):
            try:
                validate_template(template, project.input_fields, project.task)
                store.update_project(name, template=template, model=model, max_tokens=int(max_tokens))
                st.success("Saved. Rows labeled with the old prompt keep their answers; new requests use this one.")
                project = store.get_project(name)
            except Exception as exc:
                show_error(exc)

    try:
        validate_template(template, project.input_fields, project.task)
    except AppError as exc:
        show_error(exc)
        return

    st.subheader("Preview")
    n = st.slider("Sampled rows", 1, 5, 2)
    sample = store.sample_items(name, 200)
    for item in sample[:n]:
        st.caption(plain(f"Row {item['row_id']}"))
        st.code(json.dumps(build_request(template, item, project.label_set, model, int(max_tokens)), indent=2,
                           ensure_ascii=False), language="json")

    st.subheader("Estimate for the whole dataset")
    if prices is None:
        return
    counts = store.count_items(name)
    stats = store.teacher_stats(name)
    est = estimate_cost(sample, template, project.label_set, project.task, model, int(max_tokens), prices,
                        observed_output_tokens=stats["mean_output_tokens"] if stats["billed_calls"] else None,
                        total_rows=counts["total"])
    cols = st.columns(4)
    cols[0].metric("Rows", est.rows)
    cols[1].metric("Input tokens", f"{est.input_tokens:,}", help=f"{est.input_tokens_per_row} per row")
    cols[2].metric("Output tokens", f"{est.output_tokens:,}", help=f"{est.output_tokens_per_row} per row ({est.output_source})")
    cols[3].metric("Estimated cost", "unknown" if est.cost_usd is None else f"${est.cost_usd:.4f}")
    price = prices.get(model)
    if price is None:
        st.warning(f"{model} has no price in the price file: its cost cannot be estimated or tracked. Add it below.")
    elif not price.confirmed:
        st.warning(f"The price of {model} (${price.input}/${price.output} per M tokens) is marked unconfirmed in the price file.")
    st.caption(
        f"Input tokens are estimated offline from a sample of {len(sample)} rows (about ±10% against Claude's tokenizer); "
        f"output tokens come from the {'observed mean of past calls' if est.output_source == 'observed' else 'preset answer length'}. "
        f"Prices: {prices.source}, as of {prices.date}. Cached rows are never billed again."
    )
    with st.expander("Price file"):
        text = st.text_area("data/prices.toml", value=prices_path().read_text(encoding="utf-8"), height=300)
        if st.button("Save price file"):
            try:
                save_prices(text)
                st.success("Price file saved.")
            except Exception as exc:
                show_error(exc)


main()
