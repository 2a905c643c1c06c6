"""The automatic rationale checks (core.label.rationale_checks) applied to a project: run over its
stored answers and kept in `rationale_checks`, where each check is a review queue and a sort,
and summarised against what experts then did with the flagged rows."""

from __future__ import annotations

import logging

from core.db.review import RATIONALE_CHECK_FILTERS as CHECKS

log = logging.getLogger("distill.checks")


def refresh_rationale_checks(store, project: str) -> dict:
    """Check every answered row of the project (one pass: boilerplate and length outliers
    depend on the whole project) and replace the stored results. Returns counts per check."""
    from core.label.rationale_checks import check_rows

    spec = store.get_project(project)
    rows = store.check_inputs(project)
    results = check_rows(rows, spec.label_set)
    store.replace_rationale_checks(project, results, {r["row_id"]: r["rationale"] for r in rows})
    counts = {check: sum(check in r["flags"] for r in results.values()) for check in CHECKS}
    return {"rows": len(rows), "flagged": sum(bool(r["flags"]) for r in results.values()), "per_check": counts}


def refresh_quietly(store, project: str) -> dict | None:
    """After a labeling run or an import: the checks must never fail the work they follow."""
    try:
        return refresh_rationale_checks(store, project)
    except Exception:  # logged for the operator; the rows stay unchecked and show as such
        log.exception("rationale checks failed for project %s", project)
        return None


def flag_rejection(outcomes: list[dict]) -> dict:
    """Per check: how often experts did not take the teacher's answer as is (corrected,
    rejected the rationale, or flagged) on reviewed rows it flagged, against rows it did not."""
    out = {}
    for check in CHECKS:
        flagged = [o for o in outcomes if check in (o["flags"] or [])]
        clean = [o for o in outcomes if check not in (o["flags"] or [])]
        out[check] = {
            "flagged_reviewed": len(flagged),
            "flagged_rejected_rate": sum(o["rejected"] for o in flagged) / len(flagged) if flagged else None,
            "unflagged_reviewed": len(clean),
            "unflagged_rejected_rate": sum(o["rejected"] for o in clean) / len(clean) if clean else None,
        }
    return out


def shared_word_segments(text: str, rationale: str | None) -> list[tuple[str, bool]]:
    """`text` cut into (segment, shared) pieces, shared marking the content words the
    rationale also uses (compared as stems, stopwords left out): what focus mode highlights.
    Joined, the segments give back `text` exactly."""
    import re

    from core.label.rationale_words import STOPWORDS, stem

    def content(word: str) -> str | None:
        word = word.lower()
        return None if word in STOPWORDS or not word.isalpha() else stem(word)

    shared = {content(w) for w in re.findall(r"[A-Za-z]+", rationale or "")} - {None}
    return [(part, bool(part) and content(part) in shared) for part in re.split(r"([A-Za-z]+)", text) if part]
