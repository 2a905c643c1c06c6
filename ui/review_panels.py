"""The Review page's panels around the row form: sampling plan and agreement, review quality
and cost, rationale checks, prompt fixes, bulk actions and export. Each reads its widgets,
calls core, and renders; the row form and the queue live in pages/4_Review.py."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import jobs
from core.kernel.errors import ConfigError
from core.kernel.prices import load_prices
from core.label.rationale_checks import CHECK_HELP, CHECKS
from core.label.rationale_flags import refresh_rationale_checks
from core.review import prompt_fixes
from core.review import rules as review
from core.review.dataset_export import FORMATS, export_bytes, left_out
from core.review.rules import (
    BULK_ACTIONS,
    REASON_CODES,
    error_estimate,
    kappa_from_counts,
    sample_size,
)
from core.review.stats import review_costs, review_stats
from ui import api_key, job_env, plain, quote_metrics, show_error


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


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


# ---- sampling plan and agreement ---------------------------------------------------------
def sampling_panel(store, name: str) -> None:
    with st.expander("Sampling plan and agreement", key="panel_sampling"):
        c = st.columns(5)
        margin = c[0].number_input("± margin", 0.01, 0.5, DEFAULT_MARGIN, 0.01, key="plan_margin",
                                   help="How close the estimated error rate should be to the true one: 0.05 "
                                        "means within 5 percentage points either way.")
        confidence = c[1].selectbox("Confidence", (0.9, 0.95, 0.99), index=1, key="plan_confidence",
                                    help="How sure you want to be that the true error rate lies within that "
                                         "margin; more certainty needs more rows.")
        stratified = c[2].checkbox("Stratify by teacher label", True, key="plan_stratified",
                                   help="Pick rows from every teacher label in proportion, so that rare labels "
                                        "are checked too.")
        blind = c[3].number_input("Blind share", 0.0, 1.0, 0.1, 0.05, key="plan_blind",
                                  help="The share of the spot-check rows shown blind: you label them from the "
                                       "input alone, then the teacher's answer is revealed for your verdict. "
                                       "Comparing the two measures how much seeing the teacher sways you.")
        population = store.review_count(name, "all")
        n = sample_size(margin, confidence, population=population)
        c[4].metric("Rows to review", n,
                    help="How many rows to check by hand to know the teacher's error rate within that margin "
                         "and confidence (Cochran's sample-size formula, adjusted for the project's size).")
        st.caption(plain(spot_check_tradeoff(population, margin, confidence)))
        if st.button(f"Create a spot-check set of {n} rows", key="plan_create",
                     help="A spot check is a random sample of the teacher's answers that you check by hand; "
                          "this picks the rows (replacing the previous set) and the 'spot check' filter lists them."):
            made = store.create_spot_check(name, n, stratified=stratified, blind_share=blind)
            blind_rows = store.review_count(name, "blind (spot check)")
            st.success(f"Spot-check set ready: {made} rows, {blind_rows} of them blind. Pick the 'spot check' "
                       "filter to review them.")
        planned, outcomes = store.spot_check_outcomes(name)
        if planned:
            _spot_check_estimate(planned, outcomes, confidence)
        counts = store.agreement_counts(name)
        kr, kt = kappa_from_counts(counts["reviewers"]), kappa_from_counts(counts["teacher"])
        rows = {k: sum(n for _, _, n in v) for k, v in counts.items()}
        st.text(f"Cohen's kappa, reviewer vs reviewer: {'n/a' if kr is None else f'{kr:.3f}'} "
                f"({rows['reviewers']} independent pairs) · reviewer vs teacher: "
                f"{'n/a' if kt is None else f'{kt:.3f}'} ({rows['teacher']} reviews)",
                help="Cohen's kappa says how often two reviewers (or a reviewer and the teacher) chose the same "
                     "label, beyond what chance alone would give: 1 is full agreement, 0 no better than chance. "
                     "Only independent pairs count (the second reviewer's form started empty), and undone "
                     "reviews do not.")


DEFAULT_MARGIN = 0.1  # ±10 points: a first spot check of a few dozen rows; narrow it when the estimate matters


def spot_check_tradeoff(population: int, margin: float, confidence: float) -> str:
    """The spot check's size in plain words, with what other margins would cost."""
    n = sample_size(margin, confidence, population=population)
    others = [(m, sample_size(m, confidence, population=population)) for m in (0.15, 0.1, 0.05, 0.03) if m != margin]
    return (f"Checking {n} of the {population} rows by hand tells you the teacher's error rate to within "
            f"±{margin:.0%} (say 12% ± {margin:.0%}), {confidence:.0%} sure. A narrower margin costs many more rows: "
            + ", ".join(f"±{m:.0%} needs {k}" for m, k in others)
            + ". Start wide; narrow it when the estimate decides something (a re-label, a budget).")


def _spot_check_estimate(planned: int, outcomes: list[dict], confidence: float) -> None:
    est = error_estimate(outcomes, confidence)
    le, re_ = est["label_error"], est["rationale_error"]
    if est["reviewed"]:
        st.text(f"Reviewed {est['reviewed']} of {planned}. Teacher label error {le['rate']:.1%} "
                f"[{le['low']:.1%}, {le['high']:.1%}] · rationale error {re_['rate']:.1%} "
                f"[{re_['low']:.1%}, {re_['high']:.1%}] at {confidence:.0%} confidence.",
                help="How often the teacher's label (or explanation) was wrong in the rows checked so "
                     "far; the range in brackets (a Wilson interval) is where the true rate most likely lies.")
        st.dataframe(pd.DataFrame([{"teacher label": k, **v} for k, v in est["per_label"].items()]),
                     hide_index=True)
    if est["reviewed"] >= planned:
        st.success("The sampling plan is complete: the estimates above hold at the margin you chose. "
                   "You can stop spot-checking.")


# ---- review quality and cost -------------------------------------------------------------
def quality_panel(store, name: str) -> None:
    with st.expander("Review quality and cost", key="panel_quality"):
        costs = review_costs()
        rate = st.number_input("Expert rate, USD per hour", 0.0, 10_000.0, costs["usd_per_hour"], 5.0,
                               key="expert_rate",
                               help=f"What an hour of expert review costs you. Default: {costs['source']} "
                                    f"({costs['date']}).")
        stats = review_stats(store, name, usd_per_hour=rate)
        cost = stats["cost_per_accepted_label_usd"]
        c = st.columns(5)
        c[0].metric("Decisions", stats["reviews"], help="Current decisions, one per reviewer and row; undone "
                                                       "ones excluded.")
        c[1].metric("Accepted labels", stats["accepted_labels"],
                    help="Rows whose label an expert stands behind: accepted, corrected, or kept with the "
                         "rationale rejected.")
        c[2].metric("Expert minutes", f"{stats['expert_minutes']:.1f}",
                    help=f"Active time from review timestamps; gaps over {stats['idle_gap_s']:.0f} s are idle.")
        c[3].metric("Teacher $ (reviewed rows)", f"${stats['teacher_usd_reviewed_rows']:.4f}"
                    if stats["teacher_billed"] else "not measured",
                    help="What the teacher calls for the reviewed rows were billed. 'not measured': the answers "
                         "were recorded or imported, so no spend was measured (it is counted as $0 below).")
        c[4].metric("$ per accepted label", "n/a" if cost is None else f"${cost:.4f}",
                    help="(teacher dollars for the reviewed rows + expert minutes at your rate) / accepted labels.")
        st.text(f"Accepted {stats['accepted']} · label corrected {stats['corrected']} · only the rationale edited "
                f"{stats['rationale_edited']} · rationale rejected {stats['rejected']} · flagged {stats['flagged']} "
                f"(by bulk action: {stats['bulk']}) · reviewers disagree on {stats['disagreements']} row(s)")
        _bias_text(stats["automation_bias"])
        st.dataframe(pd.DataFrame([{
            "reviewer": r["reviewer"], "decisions": r["reviews"], "expert minutes": r["expert_minutes"],
            "reviews per hour": r["reviews_per_hour"],
            "automation bias": None if r["automation_bias"] is None else round(r["automation_bias"]["difference"], 3),
        } for r in stats["per_reviewer"]]), hide_index=True)
        st.caption("Rationale checks against what experts did: how often a reviewed row was corrected, rejected "
                   "or flagged when a check flagged it, and when it did not.")
        st.dataframe(pd.DataFrame([{
            "check": check, "flagged reviewed": v["flagged_reviewed"], "rejected when flagged": _pct(
                v["flagged_rejected_rate"]), "unflagged reviewed": v["unflagged_reviewed"],
            "rejected when not flagged": _pct(v["unflagged_rejected_rate"]),
        } for check, v in stats["rationale_checks"].items()]), hide_index=True)


def _bias_text(bias: dict | None) -> None:
    if bias is None:
        st.caption("Automation bias: not measured yet. It needs blind spot-check rows (see the sampling plan) "
                   "and reviews made with the teacher's answer shown.")
        return
    st.text(f"Automation bias: {bias['difference']:+.1%} [{bias['low']:+.1%}, {bias['high']:+.1%}] — reviewers "
            f"took the teacher's label in {bias['shown_acceptance']:.0%} of {bias['shown_rows']} rows when it was "
            f"shown, and chose it themselves in {bias['blind_agreement']:.0%} of {bias['blind_rows']} blind rows.",
            help="Positive: seeing the teacher's answer pulls reviewers toward it (the interval is Newcombe's, "
                 "at 95% confidence).")


# ---- rationale checks --------------------------------------------------------------------
def run_checks(store, name: str) -> None:
    try:
        out = refresh_rationale_checks(store, name)
        flash("checks", "success", f"Checked {out['rows']} rows; {out['flagged']} flagged.")
    except Exception as exc:
        flash("checks", "error", exc)


def checks_panel(store, name: str) -> None:
    stale = store.rationale_checks_stale(name)
    with st.expander("Rationale checks" + (f" ({stale} rows not checked yet)" if stale else ""), key="panel_checks"):
        st.caption("Cheap automatic checks of every rationale; each is a queue filter ('rationale: …') and "
                   "the sort 'most rationale check flags' puts the worst first.")
        st.dataframe(pd.DataFrame([{"check": c, "rows flagged": store.review_count(name, f"rationale: {c}"),
                                    "what it means": CHECK_HELP[c]} for c in CHECKS]), hide_index=True)
        # run in a callback, before the page reruns: the counts above show the new checks
        st.button("Run the checks now", key="checks_run", on_click=run_checks, args=(store, name),
                  help="They run by themselves after each labeling run and import; run them here after "
                       "editing rationales.")
        show_flash("checks")


# ---- the teacher explains corrected labels ------------------------------------------------------
def explain_panel(store, name: str) -> None:
    """Corrected labels hold no rationale (the teacher's argued for its own label): the teacher may
    explain the reviewer's label, priced first."""
    from core.label.config import LabelConfig
    from core.label.explain import check_quote, quote_explanations

    waiting = len(store.corrected_without_rationale(name))
    with st.expander(f"Corrected labels without a rationale ({waiting})", key="panel_explain"):
        st.caption("When a reviewer changes a label, the teacher's rationale (which argued for the teacher's label) "
                   "is cleared: the row trains on its label alone until it has a rationale that fits. Write one in "
                   "the review form, or ask the teacher to explain the corrected label; an explanation that argues "
                   "for another label is not kept.")
        if not waiting:
            return
        if st.button(f"Price the teacher's explanations of {waiting} row(s)", key="explain_price"):
            try:
                st.session_state["_explain_quote"] = quote_explanations(store, name, load_prices())
            except Exception as exc:
                show_error(exc)
        quote = st.session_state.get("_explain_quote")
        if quote is None or quote.project != name or quote.rows != waiting:
            return
        override = quote_metrics("Explanation", quote.requests, quote.cost_usd_p50, quote.cost_usd_p90,
                                 quote.over_budget, key="explain_override")
        if st.button("Ask the teacher", key="explain_start", type="primary"):
            try:
                check_quote(quote, override)
                if quote.requests and not api_key():
                    raise ConfigError(f"{quote.requests} request(s) to send, and no API key is set. Set "
                                      "ANTHROPIC_API_KEY in the environment or in Streamlit secrets.")
                cfg = LabelConfig(name, explain_corrections=True).validate()
                job_id = jobs.start_job(store, name, "label", cfg.as_job_config(), env=job_env())
                st.session_state.pop("_explain_quote", None)
                st.success(f"Job {job_id} asks the teacher to explain {quote.rows} corrected label(s). "
                           "Follow it on the Label page.")
            except Exception as exc:
                show_error(exc)


# ---- prompt fixes --------------------------------------------------------------------------
def fixes_panel(store, name: str) -> None:
    with st.expander("Prompt fixes from corrections", key="panel_fixes"):
        clusters = prompt_fixes.correction_clusters(store, name)
        if not clusters:
            st.caption("No corrections yet: clusters appear once reviewers correct, reject or flag answers.")
            return
        st.dataframe(pd.DataFrame([{"cluster": c.key, "corrections": c.count, "unreviewed rows affected":
                                    len(c.affected)} for c in clusters]), hide_index=True)
        keys = [c.key for c in clusters]
        key = st.selectbox("Cluster", keys, key="fix_cluster")
        cluster = clusters[keys.index(key)]
        st.dataframe(pd.DataFrame(cluster.examples), hide_index=True)
        amendment = st.text_area("Amendment to the prompt", cluster.amendment, key=f"fix_text:{key}",
                                 help="Added at the end of the prompt. Edit it; then price and re-ask.")
        if not cluster.affected:
            st.caption("No unreviewed rows share this mistake: nothing to re-ask.")
            return
        # priced on request: planning every affected row's request is too slow for each rerun
        priced = st.session_state.get("_fix_price")
        wanted = (name, key, amendment, store.template_version(name))
        if st.button(f"Price re-asking {len(cluster.affected)} row(s) with this amendment", key="fix_price"):
            try:
                priced = (wanted, prompt_fixes.price_reask(store, name, amendment, cluster.affected, load_prices()))
                st.session_state["_fix_price"] = priced
            except Exception as exc:
                show_error(exc)
                return
        if priced is None or priced[0] != wanted:
            return
        fc = priced[1]
        price = "unknown (no price)" if fc.cost_usd_p50 is None else f"${fc.cost_usd_p50:.4f} (P90 ${fc.cost_usd_p90:.4f})"
        st.text(f"Re-asking {len(cluster.affected)} unreviewed row(s) sends {fc.rows} request(s) (rows with the "
                f"same input share one request); expected cost {price}.")
        if st.button(f"Amend the prompt and re-ask {len(cluster.affected)} row(s)", key="fix_apply", type="primary"):
            _apply_fix(store, name, amendment, cluster, fc)


def _apply_fix(store, name: str, amendment: str, cluster, fc) -> None:
    try:
        jobs.ensure_labeling_free(store, name)
        prompt_fixes.check_reask(fc, api_key())
        version = prompt_fixes.apply_amendment(store, name, amendment)
        cfg = prompt_fixes.reask_config(name, cluster.affected)
        job_id = jobs.start_job(store, name, "label", cfg.as_job_config(), env=job_env())
        st.success(f"Prompt version {version} saved; job {job_id} re-asks {len(cluster.affected)} row(s). "
                   "Follow it on the Label page.")
    except Exception as exc:
        show_error(exc)


# ---- bulk actions and export ----------------------------------------------------------------
def confirmed_rows(store, name: str, filters, search: str) -> dict[str, int] | None:
    """The rows (id -> version) the bulk confirmation holds: read in the rerun in which the box
    gets checked, and frozen from then on, so Apply changes exactly the rows counted, not rows
    that entered the queue since. None while the box is unchecked (the page only counts the
    queue then: reading every id of a million-row queue on each rerun costs half a second).
    Another queue (project, filters or search changed) unchecks the box: it was confirmed for
    other rows."""
    query = (name, tuple(filters), search)
    held = st.session_state.get("_bulk_rows")
    if held is not None and held[0] != query:
        st.session_state["bulk_confirm"] = False  # before the checkbox is drawn in this run
        held = None
    if not st.session_state.get("bulk_confirm"):
        st.session_state.pop("_bulk_rows", None)
        return None
    if held is None:
        held = (query, store.review_ids(name, filters, search))
        st.session_state["_bulk_rows"] = held
    return held[1]


def bulk_message(action: str, out: dict, confirmed: dict[str, int], queue: dict[str, int]) -> str:
    text = (f"Applied to {out['applied']} of the {len(confirmed)} rows you confirmed ('{action}'; one audit "
            "record each; one undo reverts it).")
    if out["skipped"]:
        shown = ", ".join(plain(r) for r in out["skipped"][:10]) + (" …" if len(out["skipped"]) > 10 else "")
        text += (f" Skipped {len(out['skipped'])} row(s) changed since you confirmed (someone else's edit or "
                 f"a new teacher answer), left as they are: {shown}.")
    if out.get("blind_skipped"):
        text += (f" Left {len(out['blind_skipped'])} blind spot-check row(s) alone: they are judged one by one, "
                 "label first.")
    entered = len(queue.keys() - confirmed.keys())
    if entered:
        text += f" {entered} row(s) that entered this queue after you confirmed were left alone."
    return text


def bulk_panel(store, name: str, project, filters, search: str, total: int) -> None:
    confirmed = confirmed_rows(store, name, filters, search)
    with st.expander(f"Bulk action on the {total} rows of this queue", key="panel_bulk"):
        c = st.columns(3)
        action = c[0].selectbox("Action", BULK_ACTIONS, key="bulk_action",
                                help="What to do with every row of this queue: accept the teacher's answers, "
                                     "set one label on all of them, or flag them with a reason code.")
        options = project.label_set or []
        label = c[1].selectbox("Label", options, key="bulk_label") if options else c[1].text_input("Label", key="bulk_label_text")
        reason = c[2].selectbox("Reason code", REASON_CODES, key="bulk_reason",
                                help="Why the rows are flagged (used by the flag action only).")
        counted = total if confirmed is None else len(confirmed)
        confirm = st.checkbox(f"Yes, apply '{action}' to these {counted} rows", key="bulk_confirm",
                              help="The rows counted when you tick this; rows entering the queue later are left "
                                   "out, and rows someone changes meanwhile are skipped.")
        # applied in a callback, before the page reruns: the counts and queues drawn show its result
        st.button("Apply", disabled=not confirm or confirmed is None, key="bulk_apply", on_click=bulk_clicked,
                  args=(store, name, filters, search, action, label, reason, confirmed))
        show_flash("bulk")


def bulk_clicked(store, name: str, filters, search: str, action: str, label, reason, confirmed: dict[str, int]) -> None:
    try:
        out = review.bulk_review(store, name, filters, st.session_state.get("reviewer", ""), action,
                                 label=label if action == "set_label" else None,
                                 reason=reason if action == "flag" else None, search=search, row_ids=confirmed)
        queue = store.review_ids(name, filters, search)
        st.session_state["_bulk_rows"] = (None, {})  # done: held for no queue, so this rerun unchecks the box
        st.session_state.pop("_form_row", None)  # the open row may have changed: show it as stored
        flash("bulk", "success", bulk_message(action, out, confirmed, queue))
    except Exception as exc:
        flash("bulk", "error", exc)


def export_panel(store, name: str) -> None:
    with st.expander("Export the reviewed dataset", key="panel_export"):
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
