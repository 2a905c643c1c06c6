"""Review: filter and page through teacher labels in DuckDB, correct label and rationale.

Keyboard: 1-9 give the row that label and open the next row (in a blind row: save it as your
own label), A accepts and opens the next row, X rejects the rationale, F flags, U undoes,
J / K open the next / previous row. Each key is one whole decision."""

import html
import json

import pandas as pd
import streamlit as st

from core.db import REVIEW_FILTERS, REVIEW_SORTS
from core.db.review_events import utc_now
from core.label.rationale_flags import shared_word_segments
from core.review import rules as review
from core.review.rules import FORM_MODES, REASON_CODES, VERDICTS
from ui import page_setup, plain, project_picker, show_error, signed_in_user
from ui.review_panels import (
    bulk_panel,
    checks_panel,
    explain_panel,
    export_panel,
    fixes_panel,
    flash,
    quality_panel,
    sampling_panel,
    show_flash,
)

PAGE_SIZE = 25
KEYED_LABELS = 9  # labels 1-9 get a key each
HIDDEN = "({})"  # why a cell is hidden: blind, or independent
FOCUS_CSS = """<style>
.focus-text {font-size: 1.45rem; line-height: 1.6; white-space: pre-wrap;}
.focus-text mark {background: #ffe58a; padding: 0 .1em;}
</style>"""


def row_table(rows: list[dict], hidden: dict[str, str]) -> pd.DataFrame:
    """The queue page. Rows still blind for this reviewer show nothing of the teacher's answer;
    rows another reviewer decided show nothing of that decision until this reviewer's own."""
    def cell(r, key):
        why = hidden.get(r["row_id"])
        covered = why == "blind" or (why == "independent" and key in ("label", "rationale"))
        return HIDDEN.format(why) if covered else r[key]

    return pd.DataFrame([{
        "row_id": r["row_id"], "input": " | ".join(r["inputs"].values())[:160],
        "gold": cell(r, "gold"), "label": cell(r, "label"), "rationale": cell(r, "rationale"),
        "state": HIDDEN.format(hidden[r["row_id"]]) if r["row_id"] in hidden else review.row_state(r),
        "flag": cell(r, "flag"),
        "confidence": cell(r, "teacher_confidence"),
    } for r in rows])


def form_version(row: dict, mode: str) -> tuple[int, str]:
    """The row version the reviewer's form was filled from, and the suffix of its widget keys.

    The version is pinned while the reviewer works on the row: a save is checked against it, so
    an edit made on a copy that someone else has since changed is refused as a conflict
    instead of overwriting theirs. Another row or form mode, the reviewer's own save, undo or
    bulk action, or a refused save mounts fresh widgets showing the stored values (Streamlit would otherwise
    keep showing the text typed for the previous row). The mode is part of the keys: a blind
    row revealed, or another reviewer's form, starts from its own defaults."""
    seen = st.session_state.get("_form_row")
    if seen is None or seen[0] != row["row_id"] or (len(seen) > 2 and seen[2] != mode):
        st.session_state["_form_row"] = (row["row_id"], row["version"], mode)
    row_id, version = st.session_state["_form_row"][:2]
    suffix = f"{row_id}:{version}" if mode in ("first", "own") else f"{row_id}:{version}:{mode}"
    return version, suffix


def label_picker(options: list[str], stored: str | None, suffix: str, key: str = "review_label") -> str | None:
    """The label selectbox. A missing or out-of-set label leaves it empty: defaulting to the
    first option would let a quick save store that option as the reviewer's correction. Saving
    without a pick is then refused by core.review.rules (unless the row is flagged)."""
    help_text = "The right label for this row; change it when the teacher got it wrong (keys 1-9 save one)."
    if stored in options:
        return st.selectbox("Label", options, index=options.index(stored), key=f"{key}:{suffix}", help=help_text)
    if stored is not None:
        st.caption(plain(f"The stored label {stored!r} is not one of the options; pick one."))
    return st.selectbox("Label", options, index=None, placeholder="Pick a label", key=f"{key}:{suffix}",
                        help=help_text)


def show_inputs(row: dict, rationale: str | None, focus: bool) -> None:
    """The row's input as plain text; in focus mode large, with the words the rationale shares
    with it highlighted (every piece of data is HTML-escaped: it shows as typed)."""
    texts = list(row["inputs"].items()) + ([("choices", "\n".join(row["choices"]))] if row["choices"] else [])
    for field, value in texts:
        st.caption(plain(field))
        if not focus:
            st.text(value)  # plain text, never HTML or markdown
            continue
        marked = "".join(f"<mark>{html.escape(part)}</mark>" if shared else html.escape(part)
                         for part, shared in shared_word_segments(str(value), rationale))
        st.html(f'<div class="focus-text">{marked}</div>')


# ---- actions (callbacks: they run before the page reruns, so one rerun shows their result) ----
def acting_reviewer(ctx: dict) -> str:
    """Who saves: the signed-in user, else the name in the Reviewer field as it is now (typed in
    the same interaction as the save, it is in session state before the callback runs)."""
    return ctx["signed_in"] or st.session_state.get("reviewer_name", "").strip()


def open_next(current: str, step: int = 1) -> None:
    held = st.session_state.get("_review_order")
    order = held[1] if held else []
    if current in order:
        at = order.index(current) + step
        if 0 <= at < len(order):
            st.session_state["review_row"] = order[at]


def save_clicked(store, name: str, project, row: dict, ctx: dict, verdict: str | None = None,
                 advance: bool = False, use_form_verdict: bool = True, label: str | None = None) -> None:
    """Save review (button, Ctrl+Enter) or a quick action (1-9 with `label`, A, X, F): the
    widget values are in session state when this runs. A key is one whole decision: a label
    picked by one key press and saved by the next could lose the pick when both arrive within
    one rerun, and the save would then store the old label."""
    state, suffix = st.session_state, ctx["suffix"]
    reviewer = acting_reviewer(ctx)
    if label is None:
        label = state.get(f"review_label:{suffix}") if ctx["has_options"] else state.get(f"review_label_text:{suffix}")
    rationale = state.get(f"review_rationale:{suffix}")
    chosen = state.get(f"review_verdict:{suffix}") if use_form_verdict else verdict
    reason = state.get(f"review_reason:{suffix}") or None
    if chosen == "flag" and not reason:
        reason = "other"  # F flags at once; the reason code can be refined in the form
    try:
        result = review.save_review(
            store, name, row["row_id"], reviewer, label,
            rationale if rationale != ctx["shown_rationale"] else None,  # unchanged: not an edit
            verdict=chosen, reason=reason, comment=state.get(f"review_comment:{suffix}") or None,
            expected_version=ctx["version"], row=row, spec=project, mode=ctx["mode"], opened_at=ctx["opened_at"])
    except Exception as exc:
        state.pop("_form_row", None)  # a conflict: the next run shows the row as stored now
        flash("save", "error", exc)
        return
    # the form now stands for the saved version: a second save of this row is not a conflict with itself
    state["_form_row"] = (row["row_id"], result["version"], ctx["mode"])
    flash("save", "success", f"Saved ({result['changes']} change(s)).")
    if advance:
        open_next(row["row_id"])


def blind_clicked(store, name: str, row: dict, ctx: dict, label: str | None = None) -> None:
    state = st.session_state
    key = "review_blind_label" if ctx["has_options"] else "review_blind_text"
    try:
        review.save_blind_label(store, name, row["row_id"], acting_reviewer(ctx),
                                label if label is not None else state.get(f"{key}:{ctx['suffix']}"),
                                opened_at=ctx["opened_at"])
    except Exception as exc:
        flash("save", "error", exc)
        return
    flash("save", "success", "Your label is saved. The teacher's answer is shown now: give your verdict.")


def undo_clicked(store, name: str, reviewer: str) -> None:
    try:
        out = review.undo_last(store, name, reviewer)
        st.session_state.pop("_form_row", None)  # show the undone row as stored
        flash("top", "success", review.undo_text(out))
    except Exception as exc:
        flash("top", "error", exc)


def key_bar(options: list[str], on_label, args: tuple, actions: list[tuple]) -> None:
    """The keyboard: a button per label (1-9: that label, saved, next row) and per action, each
    with its single-key shortcut."""
    if options:
        cols = st.columns(min(len(options), KEYED_LABELS))
        for i, (col, option) in enumerate(zip(cols, options[:KEYED_LABELS]), start=1):
            col.button(plain(f"{i} · {option[:28]}"), key=f"pick_{i}", shortcut=str(i), on_click=on_label,
                       args=args, kwargs={"label": option, **on_label_kwargs(on_label)}, width="stretch")
    cols = st.columns(len(actions))
    for col, (text, key, shortcut, callback, cb_args, kwargs) in zip(cols, actions):
        col.button(text, key=key, shortcut=shortcut, on_click=callback, args=cb_args, kwargs=kwargs, width="stretch")


def on_label_kwargs(callback) -> dict:
    """A label key saves the row and opens the next one; in a blind form it saves the blind label."""
    return {} if callback is blind_clicked else {"advance": True, "use_form_verdict": False}


# ---- the row form ----------------------------------------------------------------------------
def edit_form(store, name: str, project, row: dict, reviewer: str) -> None:
    mode = review.form_mode(store, name, row["row_id"], reviewer)
    version, suffix = form_version(row, mode)
    held = st.session_state.get("_opened")
    if held is None or held[0] != suffix:  # a new visit to this form: its time starts now
        held = st.session_state["_opened"] = (suffix, utc_now())
    opened_at = held[1]
    options = review.label_options(project, row)
    focus = st.session_state.get("focus_mode", False)
    st.subheader(plain(f"Row {row['row_id']}"))
    ctx = {"mode": mode, "suffix": suffix, "version": version, "opened_at": opened_at,
           "signed_in": st.session_state.get("signed_in_user"), "has_options": bool(options)}
    if mode == "blind":
        blind_form(store, name, row, options, ctx, focus)
        return
    independent = mode == "independent"
    shown_rationale = (row["teacher_rationale"] if independent else row["rationale"]) or ""
    ctx["shown_rationale"] = shown_rationale
    show_inputs(row, shown_rationale, focus)
    teacher_line(row, independent)
    if not independent:  # the checks read the current rationale: the first reviewer's, if edited
        row_checks(store, name, row["row_id"])
    if mode != "first":
        st.caption(plain(f"Your form shows {FORM_MODES.get(mode, FORM_MODES['own'])}."))
    mine_blind = store.blind_label(name, row["row_id"], reviewer) if reviewer else None
    if mine_blind is not None:
        st.text(f"Your own label, given blind: {mine_blind}")
    if mode == "adjudicate":
        st.dataframe(pd.DataFrame([{"reviewer": d["reviewer"], "label": d["label"], "verdict": d["verdict"],
                                    "comment": d["comment"]} for d in store.row_decisions(name, row["row_id"])]),
                     hide_index=True)
    mine = own_decision(store, name, row, reviewer, mode)
    stored = None if independent else (mine["label"] if mine else row["label"])
    if options:
        label_picker(options, stored, suffix)
    else:
        st.text_input("Label", value=stored or "", key=f"review_label_text:{suffix}",
                      help="The right answer for this row; change it when the teacher got it wrong.")
    st.text_area("Rationale", value=shown_rationale, key=f"review_rationale:{suffix}",
                 help="The teacher's one-sentence explanation; the student learns from it too, so fix it "
                      "when it is wrong.")
    st.radio("Verdict", VERDICTS, horizontal=True, key=f"review_verdict:{suffix}",
             index=VERDICTS.index(mine["verdict"]) if mine and mine["verdict"] in VERDICTS else 0,
             format_func=lambda v: v.replace("_", " "),
             help="Your judgment of the teacher's answer: accept (it is right), correct (you fixed the label "
                  "or the rationale), reject rationale (keep the label but do not train on the explanation), "
                  "or flag (something is wrong: pick a reason code).")
    reasons = ("",) + REASON_CODES
    st.selectbox("Reason code (for flags)", reasons, key=f"review_reason:{suffix}",
                 index=reasons.index(mine["reason"]) if mine and mine["reason"] in reasons else 0,
                 help="Why you flag the row: the label is wrong, the explanation does not match the answer "
                      "(unfaithful), the label is right for the wrong reason, the input is unclear, or other.")
    st.text_input("Comment (optional)", value=(mine or {}).get("comment") or "", key=f"review_comment:{suffix}")
    st.button("Save review", type="primary", key=f"review_save:{suffix}", shortcut="Ctrl+Enter",
              on_click=save_clicked, args=(store, name, project, row, ctx))
    key_bar(options, save_clicked, (store, name, project, row, ctx), [
        ("Accept & next", "quick_accept", "A", save_clicked, (store, name, project, row, ctx),
         {"verdict": None, "advance": True, "use_form_verdict": False}),
        ("Reject rationale", "quick_reject", "X", save_clicked, (store, name, project, row, ctx),
         {"verdict": "reject_rationale", "advance": True, "use_form_verdict": False}),
        ("Flag", "quick_flag", "F", save_clicked, (store, name, project, row, ctx),
         {"verdict": "flag", "advance": True, "use_form_verdict": False}),
    ])
    show_flash("save")
    if not independent:  # an independent reviewer sees neither the first reviewer's edits nor the history
        row_history(store, name, row["row_id"])


def blind_form(store, name: str, row: dict, options: list[str], ctx: dict, focus: bool) -> None:
    """Input and label set only: no teacher label, rationale, gold, confidence or history."""
    show_inputs(row, None, focus)
    st.info("Blind row: give your own label first. The teacher's answer is shown once you have saved it.")
    if options:
        label_picker(options, None, ctx["suffix"], key="review_blind_label")
    else:
        st.text_input("Label", key=f"review_blind_text:{ctx['suffix']}")
    st.button("Save my label", type="primary", key=f"blind_save:{ctx['suffix']}", shortcut="Ctrl+Enter",
              on_click=blind_clicked, args=(store, name, row, ctx))
    key_bar(options, blind_clicked, (store, name, row, ctx),
            [("Save my label", "quick_accept", "A", blind_clicked, (store, name, row, ctx), {})])
    show_flash("save")


def own_decision(store, name: str, row: dict, reviewer: str, mode: str) -> dict | None:
    """The reviewer's own current decision when re-opening a row: the form starts from it."""
    if mode not in ("own", "own-after-others"):
        return None
    mine = [d for d in store.row_decisions(name, row["row_id"]) if d["reviewer"] == reviewer]
    return mine[-1] if mine else None


def teacher_line(row: dict, independent: bool) -> None:
    sure = "" if row["teacher_confidence"] is None else f" (confidence {row['teacher_confidence']:.2f})"
    current = "" if independent else f" · current label: {row['label']}"
    state = "" if independent else f" · {review.row_state(row)}"
    st.text(f"gold: {row['gold']} · teacher: {row['teacher_label']}{sure}{current}{state}"
            + (f" · flag: {row['flag']}" if row["flag"] else "") + (f" · error: {row['error']}" if row["error"] else ""))


def row_checks(store, name: str, row_id: str) -> None:
    checked = store.rationale_checks_for(name, row_id)
    if checked and checked["flags"]:
        details = "; ".join(f"{c}: {checked['detail'].get(c, '')}" for c in checked["flags"])
        st.text(f"Rationale checks: {details}")


def row_history(store, name: str, row_id: str) -> None:
    with st.expander("Raw teacher response"):
        call = store.last_call_for_row(name, row_id)
        if call and call.get("response"):
            st.caption(f"source: {call['source']}")
            st.code(json.dumps(json.loads(call["response"]), indent=2, ensure_ascii=False), language="json")
        else:
            st.caption("No response stored.")
    history = store.audit_trail(name, row_id)
    if history:
        st.caption("History")
        # st.dataframe, not st.table: st.table renders Markdown (links, remote images) in its cells
        st.dataframe(pd.DataFrame(history)[["changed_at", "reviewer", "field", "before", "after", "reason"]],
                     hide_index=True)


# ---- the page ----------------------------------------------------------------------------------
def reviewer_name() -> str:
    """The signed-in user, or the name typed in (README: configure [auth] for accountable reviews)."""
    signed_in = st.session_state["signed_in_user"] = signed_in_user()
    if signed_in:
        st.caption(plain(f"Reviewer: {signed_in}"))
        st.session_state["reviewer"] = signed_in
        return signed_in
    typed = st.text_input("Reviewer", value=st.session_state.get("reviewer", ""), key="reviewer_name",
                          help="Your name; it is recorded with every change you make.").strip()
    st.session_state["reviewer"] = typed
    return typed


def main() -> None:
    store = page_setup("Review")
    name = project_picker(store)
    if not name:
        return
    project = store.get_project(name)
    top = st.columns([3, 2, 1])
    with top[0]:
        reviewer = reviewer_name()
    focus = top[1].toggle("Focus mode", key="focus_mode",
                          help="Large text, the words the rationale shares with the input highlighted, and the "
                               "panels hidden. Keys: 1-9 label & next · A accept & next · X reject rationale · F flag · "
                               "U undo · J / K next / previous.")
    if reviewer:  # undone in a callback, before the page reruns: the counts below are current
        top[2].button(plain(f"Undo {reviewer}'s last change"), key="undo", shortcut="U",
                      help="Reverts your most recent save or bulk action; refused when someone changed "
                           "those rows since.", on_click=undo_clicked, args=(store, name, reviewer))
    show_flash("top")
    cols = st.columns([3, 2, 2, 1])
    filters = cols[0].multiselect("Queue filters (combined)", list(REVIEW_FILTERS), default=["unreviewed"],
                                  key="review_filter",
                                  help="Show only the rows that match every filter picked here.")
    sort = cols[1].selectbox("Sort", list(REVIEW_SORTS), key="review_sort",
                             help="The order in which the rows of the queue are listed.")
    search = cols[2].text_input("Search inputs and rationales",
                                help="Find rows whose input or rationale contains this text, or a row by its id.")
    try:
        total = store.review_count(name, filters, search)
        pages = max(1, -(-total // PAGE_SIZE))
        page = cols[3].number_input(f"Page (of {pages})", 1, pages, 1) - 1
        rows, _ = store.review_page(name, filters, search, page=page, page_size=PAGE_SIZE, sort=sort, total=total)
    except Exception as exc:
        show_error(exc)
        return
    st.caption(f"{total} rows match.")
    if not focus:
        for panel in (sampling_panel, quality_panel, checks_panel, explain_panel, fixes_panel, export_panel):
            panel(store, name)
        if rows:
            bulk_panel(store, name, project, filters, search, total)
            hidden = review.hidden_rows(store, name, [r["row_id"] for r in rows], reviewer)
            st.dataframe(row_table(rows, hidden), hide_index=True)
    else:
        st.html(FOCUS_CSS)
    show_flash("bulk")  # a bulk action that emptied the queue still says what it did
    focus_view(store, name, project, reviewer, [r["row_id"] for r in rows], (name, tuple(filters), search, sort, page))
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


def focus_view(store, name: str, project, reviewer: str, ids: list[str], query: tuple) -> None:
    held = st.session_state.get("_review_order")
    seen = held[1] if held and held[0] == query else list(ids)
    current = st.session_state.get("review_row")
    if current not in ids and current not in seen:
        current = ids[0] if ids else None
    if current is None:
        return
    nav = st.columns([1, 1, 4])
    for col, text, key, shortcut, step in ((nav[0], "◀ Previous", "prev_row", "K", -1),
                                           (nav[1], "Next ▶", "next_row", "J", 1)):
        if col.button(text, key=key, shortcut=shortcut):
            current = next_in(seen, ids, current, step) or current
    options = with_focus(ids, seen, current)
    st.session_state["_review_order"] = (query, options)
    st.session_state["review_row"] = current  # before the selectbox is drawn in this run
    row_id = nav[2].selectbox("Open row", options, key="review_row")
    edit_form(store, name, project, store.get_item(name, row_id), reviewer)


main()
