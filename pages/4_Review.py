"""Review: filter and page through teacher labels in DuckDB, correct label and rationale."""

import json

import pandas as pd
import streamlit as st

from core.store import REVIEW_FILTERS
from ui import page_setup, plain, project_picker, show_error

PAGE_SIZE = 25


def row_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "row_id": r["row_id"],
        "input": " | ".join(r["inputs"].values())[:160],
        "gold": r["gold"], "label": r["label"], "rationale": r["rationale"],
        "status": r["status"], "flag": r["flag"], "reviewed": r["reviewed"],
    } for r in rows])


def edit_form(store, name: str, project, row: dict) -> None:
    st.subheader(plain(f"Row {row['row_id']}"))
    for field, value in row["inputs"].items():
        st.caption(plain(field))
        st.text(value)  # plain text, never HTML or markdown
    if row["choices"]:
        st.caption("choices")
        st.text("\n".join(row["choices"]))
    st.text(f"gold: {row['gold']} · teacher: {row['teacher_label']} · status: {row['status']}"
            + (f" · flag: {row['flag']}" if row["flag"] else "") + (f" · error: {row['error']}" if row["error"] else ""))
    options = project.label_set or row["choices"]
    with st.form(f"edit-{row['row_id']}"):
        reviewer = st.text_input("Reviewer", value=st.session_state.get("reviewer", ""), key="reviewer_name")
        if options:
            current = row["label"] if row["label"] in options else options[0]
            label = st.selectbox("Label", options, index=options.index(current), key="review_label")
        else:
            label = st.text_input("Label", value=row["label"] or "", key="review_label_text")
        rationale = st.text_area("Rationale", value=row["rationale"] or "", key="review_rationale")
        reason = st.text_input("Reason (optional)")
        saved = st.form_submit_button("Save review", type="primary")
    if saved:
        st.session_state["reviewer"] = reviewer
        try:
            result = store.save_review(name, row["row_id"], reviewer, label, rationale,
                                       expected_version=row["version"], reason=reason or None)
            st.success(f"Saved ({result['changes']} change(s)).")
        except Exception as exc:
            show_error(exc)
    with st.expander("Raw teacher response"):
        call = store.last_call_for_row(name, row["row_id"])
        if call and call.get("response"):
            st.caption(f"source: {call['source']}")
            st.code(json.dumps(json.loads(call["response"]), indent=2, ensure_ascii=False), language="json")
        else:
            st.caption("No response stored.")
    history = store.audit_trail(name, row["row_id"])
    if history:
        st.caption("History")
        st.dataframe(pd.DataFrame(history)[["changed_at", "reviewer", "field", "before", "after", "reason"]], hide_index=True)


def main() -> None:
    store = page_setup("Review")
    name = project_picker(store)
    if not name:
        return
    project = store.get_project(name)
    cols = st.columns([2, 3, 1])
    filter_name = cols[0].selectbox("Filter", list(REVIEW_FILTERS), index=1, key="review_filter")
    search = cols[1].text_input("Search inputs and rationales")
    try:
        _, total = store.review_page(name, filter_name, search, page=0, page_size=1)
        pages = max(1, -(-total // PAGE_SIZE))
        page = cols[2].number_input(f"Page (of {pages})", 1, pages, 1) - 1
        rows, total = store.review_page(name, filter_name, search, page=page, page_size=PAGE_SIZE)
    except Exception as exc:
        show_error(exc)
        return
    st.caption(f"{total} rows match.")
    if not rows:
        return
    st.dataframe(row_table(rows), hide_index=True)
    row_id = st.selectbox("Open row", [r["row_id"] for r in rows], key="review_row")
    row = store.get_item(name, row_id)
    edit_form(store, name, project, row)


main()
