"""Review: filter and page through teacher labels in DuckDB, correct label and rationale."""

import json

import pandas as pd
import streamlit as st

from core import review
from core.db import REVIEW_FILTERS, REVIEW_SORTS
from core.export import FORMATS, export_bytes, left_out
from core.review import (
    BULK_ACTIONS,
    REASON_CODES,
    VERDICTS,
    error_estimate,
    kappa_from_counts,
    sample_size,
)
from ui import page_setup, plain, project_picker, show_error, signed_in_user

PAGE_SIZE = 25


def row_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "row_id": r["row_id"],
        "input": " | ".join(r["inputs"].values())[:160],
        "gold": r["gold"], "label": r["label"], "rationale": r["rationale"],
        "status": r["status"], "flag": r["flag"], "reviewed": r["reviewed"], "confidence": r["teacher_confidence"],
    } for r in rows])


def form_version(row: dict) -> tuple[int, str]:
    """The row version the reviewer's form was filled from, and the suffix of its widget keys.

    A submit is checked against that version, so an edit made on a copy that someone else
    has since changed is refused as a conflict instead of overwriting theirs. The widget keys
    carry row and version: another row, or the same row after a change (while no submit is
    pending), mounts fresh widgets showing the stored values; Streamlit would otherwise keep
    showing the text typed for the previous row."""
    seen = st.session_state.get("_form_row")
    submitting = seen is not None and bool(st.session_state.get(f"review_save:{seen[0]}:{seen[1]}"))
    if seen is None or seen[0] != row["row_id"] or (seen[1] != row["version"] and not submitting):
        st.session_state["_form_row"] = (row["row_id"], row["version"])
    row_id, version = st.session_state["_form_row"]
    return version, f"{row_id}:{version}"


def label_picker(options: list[str], stored: str | None, suffix: str) -> str | None:
    """The label selectbox. A missing or out-of-set label leaves it empty: defaulting to the
    first option would let Ctrl+Enter store that option as the reviewer's correction. Saving
    without a pick is then refused by core.review (unless the row is flagged)."""
    if stored in options:
        return st.selectbox("Label", options, index=options.index(stored), key=f"review_label:{suffix}",
                            help="The right label for this row; change it when the teacher got it wrong.")
    st.caption(plain("This row has no label; pick one." if stored is None else
                     f"The stored label {stored!r} is not one of the options; pick one."))
    return st.selectbox("Label", options, index=None, placeholder="Pick a label", key=f"review_label:{suffix}",
                        help="The right label for this row; change it when the teacher got it wrong.")


def flash(slot: str, kind: str, payload) -> None:
    """A message from a callback (which runs before the page), shown once where the page draws `slot`."""
    st.session_state[f"_flash_{slot}"] = (kind, payload)


def show_flash(slot: str) -> None:
    held = st.session_state.pop(f"_flash_{slot}", None)
    if held is None:
        return
    kind, payload = held
    if kind == "error":
        show_error(payload)
    else:
        st.success(payload)


def save_clicked(store, name: str, project, row: dict, expected_version: int, suffix: str, has_options: bool,
                 signed_in: str | None) -> None:
    """Save review: the form's values are in session state when this runs, before the rerun."""
    state = st.session_state
    reviewer = signed_in or state.get("reviewer_name", "")
    state["reviewer"] = reviewer
    label = state.get(f"review_label:{suffix}") if has_options else state.get(f"review_label_text:{suffix}")
    try:
        result = review.save_review(store, name, row["row_id"], reviewer, label, state.get(f"review_rationale:{suffix}"),
                                    verdict=state.get(f"review_verdict:{suffix}"),
                                    reason=state.get(f"review_reason:{suffix}") or None,
                                    comment=state.get(f"review_comment:{suffix}") or None,
                                    expected_version=expected_version, row=row, spec=project)
    except Exception as exc:
        flash("save", "error", exc)
        return
    # the form now stands for the saved version: a second save of this row is not a conflict with itself
    state["_form_row"] = (row["row_id"], result["version"])
    flash("save", "success", f"Saved ({result['changes']} change(s)).")


def undo_clicked(store, name: str, reviewer: str) -> None:
    try:
        out = review.undo_last(store, name, reviewer)
        flash("top", "success", f"Undid {out['fields']} field change(s) on {out['rows']} row(s).")
    except Exception as exc:
        flash("top", "error", exc)


def edit_form(store, name: str, project, row: dict) -> None:
    st.subheader(plain(f"Row {row['row_id']}"))
    for field, value in row["inputs"].items():
        st.caption(plain(field))
        st.text(value)  # plain text, never HTML or markdown
    if row["choices"]:
        st.caption("choices")
        st.text("\n".join(row["choices"]))
    sure = "" if row["teacher_confidence"] is None else f" (confidence {row['teacher_confidence']:.2f})"
    st.text(f"gold: {row['gold']} · teacher: {row['teacher_label']}{sure} · status: {row['status']}"
            + (f" · flag: {row['flag']}" if row["flag"] else "") + (f" · error: {row['error']}" if row["error"] else ""))
    options = review.label_options(project, row)
    expected_version, suffix = form_version(row)
    signed_in = st.session_state.get("signed_in_user")
    with st.form(f"edit-{row['row_id']}"):
        if signed_in:  # Streamlit login: the reviewer is who signed in, not a free-text name
            st.caption(plain(f"Reviewer: {signed_in}"))
        else:  # no login configured: a typed name (README: configure [auth] for accountable reviews)
            st.text_input("Reviewer", value=st.session_state.get("reviewer", ""), key="reviewer_name",
                          help="Your name; it is recorded with every change you make.")
        if options:
            label_picker(options, row["label"], suffix)
        else:
            st.text_input("Label", value=row["label"] or "", key=f"review_label_text:{suffix}",
                          help="The right answer for this row; change it when the teacher got it wrong.")
        st.text_area("Rationale", value=row["rationale"] or "", key=f"review_rationale:{suffix}",
                     help="The teacher's one-sentence explanation; the student learns from it too, so fix it "
                          "when it is wrong.")
        st.radio("Verdict", VERDICTS, horizontal=True, key=f"review_verdict:{suffix}",
                 format_func=lambda v: v.replace("_", " "),
                 help="Your judgment of the teacher's answer: accept (it is right), correct (you fixed the label "
                      "or the rationale), reject rationale (keep the label but do not train on the explanation), "
                      "or flag (something is wrong: pick a reason code).")
        st.selectbox("Reason code (for flags)", ("",) + REASON_CODES, key=f"review_reason:{suffix}",
                     help="Why you flag the row: the label is wrong, the explanation does not match the answer "
                          "(unfaithful), the label is right for the wrong reason, the input is unclear, or other.")
        st.text_input("Comment (optional)", key=f"review_comment:{suffix}")
        # saved in a callback, before the page reruns: counts, queues and kappa above show the save
        st.form_submit_button("Save review", type="primary", key=f"review_save:{suffix}", shortcut="Ctrl+Enter",
                              on_click=save_clicked,
                              args=(store, name, project, row, expected_version, suffix, bool(options), signed_in))
    show_flash("save")
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
        # st.dataframe, not st.table: st.table renders Markdown (links, remote images) in its cells
        st.dataframe(pd.DataFrame(history)[["changed_at", "reviewer", "field", "before", "after", "reason"]],
                     hide_index=True)


def review_stats(store, name: str) -> None:
    with st.expander("Sampling plan and agreement"):
        c = st.columns(4)
        margin = c[0].number_input("± margin", 0.01, 0.5, 0.05, 0.01, key="plan_margin",
                                   help="How close the estimated error rate should be to the true one: 0.05 "
                                        "means within 5 percentage points either way.")
        confidence = c[1].selectbox("Confidence", (0.9, 0.95, 0.99), index=1, key="plan_confidence",
                                    help="How sure you want to be that the true error rate lies within that "
                                         "margin; more certainty needs more rows.")
        stratified = c[2].checkbox("Stratify by teacher label", True, key="plan_stratified",
                                   help="Pick rows from every teacher label in proportion, so that rare labels "
                                        "are checked too.")
        population = store.review_count(name, "all")
        n = sample_size(margin, confidence, population=population)
        c[3].metric("Rows to review", n,
                    help="How many rows to check by hand to know the teacher's error rate within that margin "
                         "and confidence (Cochran's sample-size formula, adjusted for the project's size).")
        if st.button(f"Create a spot-check set of {n} rows", key="plan_create",
                     help="A spot check is a random sample of the teacher's answers that you check by hand; "
                          "this picks the rows (replacing the previous set) and the 'spot check' filter lists them."):
            made = store.create_spot_check(name, n, stratified=stratified)
            st.success(f"Spot-check set ready: {made} rows. Pick the 'spot check' filter to review them.")
        planned, outcomes = store.spot_check_outcomes(name)
        if planned:
            est = error_estimate(outcomes, confidence)
            le, re_ = est["label_error"], est["rationale_error"]
            if est["reviewed"]:
                st.text(f"Reviewed {est['reviewed']} of {planned}. Teacher label error {le['rate']:.1%} "
                        f"[{le['low']:.1%}, {le['high']:.1%}] · rationale error {re_['rate']:.1%} "
                        f"[{re_['low']:.1%}, {re_['high']:.1%}] at {confidence:.0%} confidence.",
                        help="How often the teacher's label (or explanation) was wrong in the rows checked so "
                             "far; the range in brackets (a Wilson interval) is where the true rate most "
                             "likely lies.")
                st.dataframe(pd.DataFrame([{"teacher label": k, **v} for k, v in est["per_label"].items()]),
                             hide_index=True)
            if est["reviewed"] >= planned:
                st.success("The sampling plan is complete: the estimates above hold at the margin you chose. "
                           "You can stop spot-checking.")
        counts = store.agreement_counts(name)
        kr, kt = kappa_from_counts(counts["reviewers"]), kappa_from_counts(counts["teacher"])
        rows = {k: sum(n for _, _, n in v) for k, v in counts.items()}
        st.text(f"Cohen's kappa, reviewer vs reviewer: {'n/a' if kr is None else f'{kr:.3f}'} "
                f"({rows['reviewers']} double-reviewed rows) · reviewer vs teacher: "
                f"{'n/a' if kt is None else f'{kt:.3f}'} ({rows['teacher']} reviews)",
                help="Cohen's kappa says how often two reviewers (or a reviewer and the teacher) chose the same "
                     "label, beyond what chance alone would give: 1 is full agreement, 0 no better than chance.")


def confirmed_rows(name: str, filters, search: str, queue: dict[str, int]) -> dict[str, int]:
    """The rows (id -> version) the bulk confirmation counts: the queue as rendered while the box
    is unchecked, frozen from the rerun in which it gets checked. So Apply changes exactly the
    rows the user saw counted, not rows that entered the queue since. Another queue (project,
    filters or search changed), or no rows kept from when it was checked, unchecks the box: it
    was confirmed for other rows."""
    query = (name, tuple(filters), search)
    held = st.session_state.get("_bulk_rows")
    if held is None or held[0] != query:
        st.session_state["bulk_confirm"] = False  # before the checkbox is drawn in this run
    if not st.session_state.get("bulk_confirm"):
        held = (query, queue)
        st.session_state["_bulk_rows"] = held
    return held[1]


def bulk_message(action: str, out: dict, confirmed: dict[str, int], queue: dict[str, int]) -> str:
    text = (f"Applied to {out['applied']} of the {len(confirmed)} rows you confirmed ('{action}'; one audit "
            "record each; one undo reverts it).")
    if out["skipped"]:
        shown = ", ".join(plain(r) for r in out["skipped"][:10]) + (" …" if len(out["skipped"]) > 10 else "")
        text += (f" Skipped {len(out['skipped'])} row(s) changed since you confirmed (someone else's edit or "
                 f"a new teacher answer), left as they are: {shown}.")
    entered = len(queue.keys() - confirmed.keys())
    if entered:
        text += f" {entered} row(s) that entered this queue after you confirmed were left alone."
    return text


def bulk_panel(store, name: str, project, filters, search: str, queue: dict[str, int]) -> None:
    confirmed = confirmed_rows(name, filters, search, queue)
    with st.expander(f"Bulk action on the {len(queue)} rows of this queue"):
        c = st.columns(3)
        action = c[0].selectbox("Action", BULK_ACTIONS, key="bulk_action",
                                help="What to do with every row of this queue: accept the teacher's answers, "
                                     "set one label on all of them, or flag them with a reason code.")
        options = project.label_set or []
        label = c[1].selectbox("Label", options, key="bulk_label") if options else c[1].text_input("Label", key="bulk_label_text")
        reason = c[2].selectbox("Reason code", REASON_CODES, key="bulk_reason",
                                help="Why the rows are flagged (used by the flag action only).")
        confirm = st.checkbox(f"Yes, apply '{action}' to these {len(confirmed)} rows", key="bulk_confirm",
                              help="The rows counted when you tick this; rows entering the queue later are left "
                                   "out, and rows someone changes meanwhile are skipped.")
        # applied in a callback, before the page reruns: the counts and queues drawn show its result
        st.button("Apply", disabled=not confirm, key="bulk_apply", on_click=bulk_clicked,
                  args=(store, name, filters, search, action, label, reason, confirmed))
        show_flash("bulk")


def bulk_clicked(store, name: str, filters, search: str, action: str, label, reason, confirmed: dict[str, int]) -> None:
    try:
        out = review.bulk_review(store, name, filters, st.session_state.get("reviewer", ""), action,
                                 label=label if action == "set_label" else None,
                                 reason=reason if action == "flag" else None, search=search, row_ids=confirmed)
        queue = store.review_ids(name, filters, search)
        st.session_state.pop("_bulk_rows", None)  # done: this rerun unchecks the box
        flash("bulk", "success", bulk_message(action, out, confirmed, queue))
    except Exception as exc:
        flash("bulk", "error", exc)


def export_panel(store, name: str) -> None:
    with st.expander("Export the reviewed dataset"):
        st.caption("Labeled rows with provenance: label source, reviewer, verdict, teacher model, "
                   "template version, teacher cost. hf = a Hugging Face datasets folder (zipped).")
        cols = st.columns([2, 1])
        fmt = cols[0].radio("Format", FORMATS, horizontal=True, key="dataset_format")
        if cols[1].button("Prepare export", key="dataset_prepare"):
            import tempfile

            try:
                with tempfile.TemporaryDirectory() as tmp:
                    st.session_state["dataset_file"] = export_bytes(store, name, fmt, tmp)
            except Exception as exc:
                show_error(exc)
        if st.session_state.get("dataset_file"):
            filename, data = st.session_state["dataset_file"]
            st.download_button(plain(f"Download {filename}"), data, file_name=filename, key="dataset_download")
        for gap in left_out(store, name):  # an export never drops rows silently
            st.caption(f"Left out: {gap['rows']:,} row{'' if gap['rows'] == 1 else 's'} ({gap['why']}).")


def main() -> None:
    store = page_setup("Review")
    name = project_picker(store)
    if not name:
        return
    st.session_state["signed_in_user"] = signed_in_user()
    if st.session_state["signed_in_user"]:
        st.session_state["reviewer"] = st.session_state["signed_in_user"]
    project = store.get_project(name)
    cols = st.columns([3, 2, 2, 1])
    filters = cols[0].multiselect("Queue filters (combined)", list(REVIEW_FILTERS), default=["unreviewed"],
                                  key="review_filter",
                                  help="Show only the rows that match every filter picked here.")
    sort = cols[1].selectbox("Sort", list(REVIEW_SORTS), key="review_sort",
                             help="The order in which the rows of the queue are listed.")
    search = cols[2].text_input("Search inputs and rationales",
                                help="Find rows whose input or rationale contains this text, or a row by its id.")
    try:
        queue = store.review_ids(name, filters, search)  # one read for the count and the bulk confirmation
        total = len(queue)
        pages = max(1, -(-total // PAGE_SIZE))
        page = cols[3].number_input(f"Page (of {pages})", 1, pages, 1) - 1
        rows, _ = store.review_page(name, filters, search, page=page, page_size=PAGE_SIZE, sort=sort, total=total)
    except Exception as exc:
        show_error(exc)
        return
    top = st.columns([4, 1])
    top[0].caption(f"{total} rows match.")
    reviewer = st.session_state.get("reviewer", "")
    if reviewer:  # undone in a callback, before the page reruns: the counts above are current
        top[1].button(plain(f"Undo {reviewer}'s last change"), key="undo", shortcut="Alt+U",
                      help="Reverts your most recent save or bulk action; refused when someone changed "
                           "those rows since.",
                      on_click=undo_clicked, args=(store, name, reviewer))
    show_flash("top")
    review_stats(store, name)
    export_panel(store, name)
    if rows:
        bulk_panel(store, name, project, filters, search, queue)
        st.dataframe(row_table(rows), hide_index=True)
    show_flash("bulk")  # a bulk action that emptied the queue still says what it did
    focus_view(store, name, project, [r["row_id"] for r in rows], (name, tuple(filters), search, sort, page))
    show_flash("save")  # a save whose row is no longer shown still says how it went


def next_in(seen: list[str], ids: list[str], current: str, step: int) -> str | None:
    """The row before or after `current` in the queue as the reviewer saw it (`seen`, the last
    render), skipping rows that have left it since (a saved row leaves "unreviewed")."""
    known = set(seen)
    order = seen + [r for r in ids if r not in known]  # rows that entered the page since come last
    if current not in order:
        return None
    at, present = order.index(current), set(ids)
    candidates = order[at + 1:] if step > 0 else reversed(order[:at])
    return next((r for r in candidates if r in present), None)


def with_focus(ids: list[str], seen: list[str], current: str) -> list[str]:
    """This page of the queue, plus the focused row where it stood when it has just left the
    queue (saved in an "unreviewed" queue): the reviewer stays on it, and Next goes on from it."""
    if current in ids or current not in seen:
        return list(ids)
    before = set(seen[:seen.index(current)])
    at = max((i + 1 for i, r in enumerate(ids) if r in before), default=0)
    return ids[:at] + [current] + ids[at:]


def focus_view(store, name: str, project, ids: list[str], query: tuple) -> None:
    held = st.session_state.get("_review_order")
    seen = held[1] if held and held[0] == query else list(ids)
    current = st.session_state.get("review_row")
    if current not in ids and current not in seen:
        current = ids[0] if ids else None
    if current is None:
        return
    nav = st.columns([1, 1, 4])
    for col, text, key, shortcut, step in ((nav[0], "◀ Previous", "prev_row", "Alt+P", -1),
                                           (nav[1], "Next ▶", "next_row", "Alt+N", 1)):
        if col.button(text, key=key, shortcut=shortcut):
            current = next_in(seen, ids, current, step) or current
    options = with_focus(ids, seen, current)
    st.session_state["_review_order"] = (query, options)
    st.session_state["review_row"] = current  # before the selectbox is drawn in this run
    row_id = nav[2].selectbox("Open row", options, key="review_row")
    edit_form(store, name, project, store.get_item(name, row_id))


main()
