"""Why answers were not read (Prompt page): the parse rate per template version, the unread
answers grouped by shape, and the one suggested fix, applied with one click."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import jobs
from core.kernel.prices import load_prices
from core.label.answers import format_label_words
from core.label.diagnosis import apply_fix, stored_diagnosis, trial_diagnosis, with_format_lines
from core.label.reread import DEFAULT_MODEL, quote_reread
from core.label.config import LabelConfig
from core.prompt.json_mode import json_mode_template
from ui import api_key, job_env, plain, quote_metrics, show_error


def versions_table(report: dict) -> None:
    rows = [{"template version": "imported" if v["template_version"] is None else f"v{v['template_version']}",
             "answers": v["answers"], "read": v["parsed"], "parse rate": v["parse_rate"]} for v in report["versions"]]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True,
                     column_config={"parse rate": st.column_config.NumberColumn(format="percent")})


def _answers(n: int) -> str:
    return f"{n} answer" + ("" if n == 1 else "s")


def why_unread(store, name: str, report: dict, key: str, dirty: bool = False) -> None:
    """The groups and the fix of one diagnosis (a try's, or the stored answers'). `dirty`: the
    prompt editor holds unsaved edits, which applying a fix would replace."""
    if not report["shapes"]:
        st.caption("Every answer was read.")
        return
    shown = report["read_again"]
    st.markdown("**Why answers were not read**")
    st.caption(plain(f"{_answers(report['unread'])} {'was' if report['unread'] == 1 else 'were'} not read"
                     + (f"; {shown} of them, a spread over the project, were read again to group them."
                        if shown < report["unread"] else ".")))
    st.dataframe(pd.DataFrame([{"shape": s["title"], "answers": s["count"], "example": s["examples"][0]}
                               for s in report["shapes"]]), hide_index=True)
    for s in report["shapes"]:
        with st.expander(f"{s['title']}: {s['count']}"):
            for example in s["examples"]:
                st.text(example)  # teacher text: shown as text, never Markdown
    fix = report["fix"]
    if fix is None:
        st.caption(plain(report["note"]))
        return
    st.info(plain("Suggested fix: " + fix.message))
    if fix.template is not None:
        st.code(fix.template, language=None)
    st.button(f"Apply the fix ({fix.kind.replace('_', ' ')})", key=f"{key}_apply", on_click=_apply,
              args=(store, name, fix), disabled=dirty,
              help="Save or undo your edits in the Template box first: the fix would replace them." if dirty else None)


def _apply(store, name: str, fix) -> None:
    """The apply button's callback: saves the fix, then puts it in the prompt editor's widgets
    before they render, so the editor shows the saved prompt (and a try does not save the old
    text back)."""
    try:
        out = apply_fix(store, name, fix)
    except Exception as exc:
        st.session_state["_fix_applied"] = exc
        return
    project = store.get_project(name)
    st.session_state["template_text"] = project.template or ""
    st.session_state["output_format"] = project.output_format
    st.session_state["label_words"] = format_label_words(project.label_words)
    st.session_state["_fix_applied"] = out


def fix_outcome() -> None:
    """What the last applied fix did (shown once)."""
    out = st.session_state.pop("_fix_applied", None)
    if isinstance(out, Exception):
        show_error(out)
    elif out is not None:
        what = {"label_words": "label words set", "format_line": "format lines added to the template",
                "json_output": "JSON output", "max_tokens": f"max_tokens {out.get('max_tokens')}"}[out["fix"]]
        text = f"Fix applied ({what}): the prompt is template version {out['template_version']}."
        if out.get("reread"):
            r = out["reread"]
            text += (f" {r['answers']} stored answers were read again (no calls, no cost): {r['parsed_after']} read, "
                     f"{r['parsed_before']} before.")
        st.success(plain(text))


def trial_why(store, name: str, trial_id: int, dirty: bool = False) -> None:
    why_unread(store, name, trial_diagnosis(store, trial_id), key=f"trial{trial_id}", dirty=dirty)


def stored_why(store, name: str, dirty: bool = False) -> None:
    """The stored answers (runs, tries, imports): parse rate per version and why some were not read."""
    # a checkbox, not an expander: an expander's body runs on every rerun, and this one reads answers again
    if not st.checkbox("Show the stored answers' parse rate per template version, and why some were not read",
                       key="stored_why"):
        return
    report = stored_diagnosis(store, name)
    if not report["versions"]:
        st.caption("No stored teacher answers yet.")
        return
    versions_table(report)
    why_unread(store, name, report, key="stored", dirty=dirty)
    if report["unread"]:
        reread_panel(store, name)


def reread_panel(store, name: str) -> None:
    """Ask a cheap model which label each unread answer chooses: its own cost line, refused over
    the cap unless overridden, sent only on the click."""
    st.markdown("**Ask a cheap model to read the unread answers**")
    prices = load_prices()
    models = sorted(prices.models)
    c = st.columns([2, 3])
    model = c[0].selectbox("Reader model", models, key="reread_model",
                           index=models.index(DEFAULT_MODEL) if DEFAULT_MODEL in models else 0)
    # priced on request, not on every rerun (it reads every unread answer); kept while nothing changed
    fingerprint = (name, model, tuple(store.change_counts(name).values()))
    if c[0].button("Price the re-read", key="reread_price"):
        st.session_state["reread_quote"] = (fingerprint, quote_reread(store, name, prices, model))
    kept = st.session_state.get("reread_quote")
    if not kept or kept[0] != fingerprint:
        c[1].caption("Prices a second reading of the unread answers by this model before anything is sent.")
        return
    quote = kept[1]
    c[1].caption(plain(f"{quote.rows} unread answers (not reviewed, not cut off, not read by {model} before): "
                       f"{quote.requests} requests to send, "
                       f"{quote.cache_hits} read before (from the cache, free). Each asks {model} which one label the "
                       "answer chooses, with structured output; the row keeps the teacher's words as its rationale "
                       "and is marked as read this way."))
    override = quote_metrics("Re-read", quote.requests, quote.cost_usd_p50, quote.cost_usd_p90, quote.over_budget,
                             key="reread_override")
    if not quote.rows:
        return
    if st.button(f"Re-read {_answers(quote.rows)}", key="reread_start", disabled=not api_key() and quote.requests > 0,
                 help=None if api_key() or not quote.requests else "Set ANTHROPIC_API_KEY to send re-reads."):
        if quote.over_budget and not override:
            st.error(plain(quote.over_budget))
            return
        try:
            cfg = LabelConfig(name, reread_model=model).validate()
            job_id = jobs.start_job(store, name, "label", cfg.as_job_config(), env=job_env())
            st.success(plain(f"Re-read job {job_id} started on {quote.rows} answers; follow it on the Label page."))
        except Exception as exc:
            show_error(exc)


# ---- editor callbacks (they rewrite the template editor's text before the rerun renders it) ----
def add_format_lines(project) -> None:
    """The format-lines button's callback: the preset's reply format appended to the editor's text."""
    st.session_state["template_text"] = with_format_lines(st.session_state.get("template_text") or "", project)


def json_field_hints() -> None:
    """The JSON-fields button's callback: rewrites the editor's text before the rerun renders it."""
    st.session_state["template_text"] = json_mode_template(st.session_state.get("template_text") or "")
