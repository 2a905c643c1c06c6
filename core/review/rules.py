"""Review rules and statistics.

Rules: what a verdict means, who may save, bulk and undo; the Review page and the CLI both
go through `save_review`, `bulk_review` and `undo_last` here, and storage (core.db.review)
only applies the result. Statistics: sample sizes for spot checks, error-rate estimates
with confidence intervals, and agreement (Cohen's kappa), as pure functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from statistics import NormalDist

from core.kernel.errors import AppError
from core.kernel.labels import canonical_text
from core.kernel.tasks import get_task

VERDICTS = ("accept", "correct", "reject_rationale", "flag")
REASON_CODES = ("wrong label", "unfaithful rationale", "right label, wrong reason", "unclear input", "other")
BULK_ACTIONS = ("accept", "set_label", "flag")


# ---- rules ----------------------------------------------------------------------------
def require_reviewer(reviewer: str | None) -> str:
    """Every change names who made it (the signed-in user, or the name typed in)."""
    name = (reviewer or "").strip()
    if not name:
        raise AppError("Enter a reviewer name before saving.")
    return name


def decide_verdict(chosen: str | None, label_changed: bool, rationale_changed: bool) -> str:
    """The verdict stored for a save. An edit is a correction: "accept" with a changed label
    or rationale is stored as "correct"; no verdict means accept, or correct after an edit."""
    if chosen is not None and chosen not in VERDICTS:
        raise AppError(f"Unknown verdict {chosen!r}; choose one of {', '.join(VERDICTS)}.")
    edited = label_changed or rationale_changed
    if chosen in (None, "accept"):
        return "correct" if edited else "accept"
    return chosen


def label_options(project, row: dict | None = None) -> list[str]:
    """The labels a reviewer may choose from: the project's label set, else the row's answer
    choices; empty when any answer goes (numeric tasks). The Review page offers the same list."""
    return list(project.label_set or (row or {}).get("choices") or [])


def checked_label(project, label: str | None, row: dict | None = None) -> str | None:
    """A label a reviewer gave, as the canonical option it names (a choice letter or a case
    variant becomes the option's text). Anything that names no option is refused: a typo must
    not become a label the student is trained on."""
    options = label_options(project, row)
    if label is None or not options:
        return label
    canonical = get_task(project.task).normalize(label, (row or {}).get("choices"), project.label_set)
    if canonical not in options:
        raise AppError(f"{label!r} is not one of the labels: {', '.join(options)}.")
    return canonical


def require_label_choice(project, row: dict, label: str | None, verdict: str | None) -> None:
    """A row whose label is missing or outside the options cannot be accepted or corrected
    without a label picked explicitly (nothing may stand in for one). Flagging needs no label:
    that is how a reviewer says the row cannot be decided."""
    options = label_options(project, row)
    if label is None and options and row["label"] not in options and verdict != "flag":
        current = "has no label" if row["label"] is None else f"has the label {row['label']!r}, not an option"
        raise AppError(f"Pick a label for row {row['row_id']}: it {current}. Choose one of "
                       f"{', '.join(options)}, or flag the row with a reason. Nothing was saved.")


def save_review(store, project: str, row_id: str, reviewer: str | None, label: str | None,
                rationale: str | None, *, verdict: str | None = None, reason: str | None = None,
                comment: str | None = None, expected_version: int | None = None,
                row: dict | None = None, spec=None, mode: str = "cli", opened_at=None) -> dict:
    """Save one reviewer's judgment of one row (page and CLI alike).

    The verdict is decided against the row as read (`row` and `spec`, the row and its project,
    when the caller has just read them, as the page has), and the save is pinned to that
    row's version: if someone changed the row in between, it is refused as a conflict
    instead of being judged on stale text. `mode` is what the reviewer's form showed
    (`form_mode`; "cli" when there was no form) and `opened_at` when it was drawn: both are
    recorded with the decision so that agreement and expert time can be measured."""
    reviewer = require_reviewer(reviewer)
    if mode == "blind":
        raise AppError("This row is blind for you: give your own label first (save_blind_label); the teacher's "
                       "answer is shown after that.")
    if verdict == "flag" and not reason:
        raise AppError("Flagging needs a reason code.")
    check_reason(reason)
    row = row if row is not None and row["row_id"] == row_id else store.get_item(project, row_id)
    spec = spec if spec is not None else store.get_project(project)
    version = row["version"] if expected_version is None else expected_version
    seen = row
    if mode == "independent":  # judged against the teacher's answer it showed, not the first decision
        seen = {**row, "label": row["teacher_label"], "rationale": row["teacher_rationale"]}
        label = row["teacher_label"] if label is None else label  # accepting takes the teacher's label
    label = checked_label(spec, label, row)
    require_label_choice(spec, seen, label, verdict)
    rationale = _without_stale_rationale(row, label, rationale)
    final = decide_verdict(verdict, label is not None and label != seen["label"],
                           rationale is not None and rationale != (seen["rationale"] or ""))
    kind, shown = FORM_RECORDS[mode]
    return store.save_review(project, row_id, reviewer, label, rationale, expected_version=version,
                             reason=reason, verdict=final, comment=comment, kind=kind, shown=shown,
                             opened_at=opened_at)


def _without_stale_rationale(row: dict, label: str | None, rationale: str | None) -> str | None:
    """A corrected label does not keep the teacher's rationale, which argues for the teacher's
    label: left as the teacher wrote it, it is cleared ("" is no rationale: the student learns the
    label alone) until the reviewer writes one for the corrected label."""
    teacher = (row.get("teacher_rationale") or "").strip()
    kept = (row.get("rationale") if rationale is None else rationale) or ""
    corrected = label is not None and canonical_text(label) != canonical_text(row.get("teacher_label") or "")
    return "" if corrected and teacher and kept.strip() == teacher else rationale


# What a reviewer's form shows, by mode, and how the decision is recorded (kind, shown).
FORM_MODES = {
    "first": "the teacher's answer, pre-filled",
    "own": "your own earlier decision",
    "own-after-others": "your own earlier decision (others have decided this row since)",
    "independent": "an empty form: another reviewer decided this row, and you decide it without seeing how",
    "adjudicate": "every reviewer's label: they disagree, and your decision settles the row",
    "blind": "the input and the label set only: give your label, then the teacher's answer is shown",
}
FORM_RECORDS = {"first": ("review", "teacher"), "own": ("review", "teacher"),
                "own-after-others": ("review", "reviewer"), "independent": ("review", "none"),
                "adjudicate": ("adjudicate", "reviewer"), "cli": ("review", "cli")}


def form_mode(store, project: str, row_id: str, reviewer: str | None) -> str:
    """Which form a reviewer gets for a row. Blind comes first: a blind spot-check row shows
    nothing of the teacher's answer until this reviewer's own label is saved (also before a
    name is given). A second reviewer decides independently, on an empty form; rows whose
    reviewers disagree go to adjudication."""
    decisions = store.row_decisions(project, row_id)
    mine = [d for d in decisions if d["reviewer"] == (reviewer or "")]
    others = [d for d in decisions if d["reviewer"] != (reviewer or "")]
    if not mine and store.is_blind_row(project, row_id) and (
            not reviewer or store.blind_label(project, row_id, reviewer) is None):
        return "blind"
    if len({d["label"] for d in decisions if d["kind"] == "review"}) > 1 and row_id in store.disagreement_rows(project):
        return "adjudicate"
    if mine:
        own_last = max(d["id"] for d in mine)
        return "own-after-others" if any(d["id"] > own_last for d in others) else "own"
    return "independent" if others else "first"


def hidden_rows(store, project: str, row_ids: list[str], reviewer: str | None) -> dict[str, str]:
    """The rows of a queue page whose answers this reviewer must not see yet, with why: "blind"
    (the teacher's answer, before their own label) or "independent" (another reviewer's
    decision, before their own). The page masks those cells of the queue table; one query each."""
    reviewer = reviewer or ""
    decisions = store.decisions_for(project, row_ids)
    blind, labeled = store.blind_rows(project, row_ids), store.blind_labeled(project, row_ids, reviewer)
    out = {}
    for row_id in row_ids:
        mine = [d for d in decisions.get(row_id, []) if d["reviewer"] == reviewer]
        if not mine and row_id in blind and row_id not in labeled:
            out[row_id] = "blind"
        elif not mine and decisions.get(row_id):
            out[row_id] = "independent"
    return out


def check_reason(reason: str | None) -> None:
    """A reason is one of the codes (they group corrections into prompt fixes), never free text:
    free text goes in the comment."""
    if reason is not None and reason not in REASON_CODES:
        raise AppError(f"Unknown reason {reason!r}: use one of {', '.join(repr(r) for r in REASON_CODES)} "
                       "(free text goes in the comment).")


def save_blind_label(store, project: str, row_id: str, reviewer: str | None, label: str | None,
                     opened_at=None) -> None:
    """Record a reviewer's own label for a blind row, before its teacher answer is revealed."""
    reviewer = require_reviewer(reviewer)
    spec = store.get_project(project)
    row = store.get_item(project, row_id)
    if label is None or not str(label).strip():
        raise AppError("Give your own label for this blind row first; nothing was saved.")
    store.save_blind_label(project, row_id, reviewer, checked_label(spec, label, row), opened_at=opened_at)


def bulk_review(store, project: str, filters, reviewer: str | None, action: str, *, label: str | None = None,
                reason: str | None = None, search: str = "", row_ids: Mapping[str, int] | None = None) -> dict:
    """Accept, set the label of, or flag rows of a queue, as one undoable change.

    `row_ids` (row id -> version seen) are the rows the user confirmed: the action applies to
    exactly those, not to rows that entered the queue since; a row among them that changed
    since it was counted (its version moved) is skipped and reported in `skipped`, so a bulk
    action never overwrites an edit its user did not see. Without `row_ids`, every row that
    matches the filters when it runs (one transaction). Returns applied, skipped, change_id."""
    check_reason(reason)
    reviewer = require_reviewer(reviewer)
    if action not in BULK_ACTIONS:
        raise AppError(f"Unknown bulk action {action!r}.")
    if action == "set_label":
        label = bulk_label(store.get_project(project), label)
    if action == "flag" and not reason:
        raise AppError("Flagging needs a reason code.")
    return store.bulk_review(project, filters, reviewer, action, label=label, reason=reason, search=search,
                             row_ids=row_ids)


def bulk_label(project, label: str | None) -> str:
    """The label a bulk action sets: one of the project's label set. Multiple-choice rows each
    have their own choices, so one label cannot be right for all of them."""
    if not label:
        raise AppError("Choose the label to set.")
    if get_task(project.task).needs_choices:
        raise AppError("Set labels one row at a time in a multiple-choice project: each row has its own choices.")
    return checked_label(project, label)


def undo_text(out: dict) -> str:
    """What an undo did, naming the row (or the first rows of a bulk change) and the fields."""
    shown = ", ".join(out["row_ids"][:5]) + (f" and {len(out['row_ids']) - 5} more" if len(out["row_ids"]) > 5 else "")
    fields = ", ".join(f for f in out["field_names"] if f != "reviewed")
    return (f"Undid your last change on row{'s' * (out['rows'] != 1)} {shown}: {fields or 'the review'} back as "
            f"{'they were' if out['rows'] != 1 else 'it was'} ({out['fields']} field change(s)).")


def row_state(row: dict) -> str:
    """Where a row stands, in words: the teacher's side (not answered, call failed, answer not
    read, answered) or the review's (accepted, corrected, rationale edited or rejected, flagged,
    by whom)."""
    if not row.get("reviewed"):
        return {"unlabeled": "not answered yet", "error": "teacher call failed",
                "flagged": "answer not read"}.get(row["status"], "answered, not reviewed")
    from core.review.stats import decision_outcome  # stats builds on this module

    by = f" by {row['reviewer']}" if row.get("reviewer") else ""
    outcome = decision_outcome(row)  # one definition of what a decision did, for the row as for the stats
    return {"rejected": "rationale rejected", "rationale_edited": "rationale edited"}.get(outcome, outcome) + by


def undo_last(store, project: str, reviewer: str | None) -> dict:
    """Revert the reviewer's own most recent change that is not undone yet; nobody undoes
    someone else's work, and an undo is refused (changing nothing) when a row of that change
    was changed since by anyone, a new teacher answer included."""
    return store.undo_last(project, require_reviewer(reviewer))


# ---- statistics -------------------------------------------------------------------------


def z_score(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def sample_size(margin: float, confidence: float = 0.95, p: float = 0.5, population: int | None = None) -> int:
    """Rows to review to estimate an error rate within ±margin at this confidence
    (Cochran's formula, with the finite-population correction when N is known)."""
    if not 0 < margin < 1 or not 0 < confidence < 1:
        raise ValueError("margin and confidence must be between 0 and 1")
    n0 = z_score(confidence) ** 2 * p * (1 - p) / margin ** 2
    if population:
        n0 = n0 / (1 + (n0 - 1) / population)
        return min(population, math.ceil(n0))
    return math.ceil(n0)


def wilson_interval(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = z_score(confidence)
    phat = errors / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def error_estimate(outcomes: list[dict], confidence: float = 0.95) -> dict:
    """outcomes: reviewed spot-check rows with teacher_label, label_error, rationale_error."""
    n = len(outcomes)
    out = {"reviewed": n}
    for key in ("label_error", "rationale_error"):
        k = sum(bool(o[key]) for o in outcomes)
        low, high = wilson_interval(k, n, confidence)
        out[key] = {"rate": k / n if n else None, "low": low, "high": high, "errors": k}
    per_label: dict[str, list] = {}
    for o in outcomes:
        per_label.setdefault(o["teacher_label"] or "(none)", []).append(o)
    out["per_label"] = {
        label: {"reviewed": len(rows), "label_error_rate": sum(bool(r["label_error"]) for r in rows) / len(rows)}
        for label, rows in sorted(per_label.items())
    }
    return out


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Agreement of two raters beyond chance: (p_o - p_e) / (1 - p_e)."""
    return kappa_from_counts([(a, b, n) for (a, b), n in Counter(pairs).items()])


def kappa_from_counts(counts: list[tuple[str, str, int]]) -> float | None:
    """Cohen's kappa from a contingency table given as (label a, label b, count) rows."""
    n = sum(c for _, _, c in counts)
    if not n:
        return None
    observed = sum(c for a, b, c in counts if a == b) / n
    left, right = Counter(), Counter()
    for a, b, c in counts:
        left[a] += c
        right[b] += c
    expected = sum(left[k] * right[k] for k in set(left) | set(right)) / (n * n)
    if expected == 1:
        return 1.0
    return (observed - expected) / (1 - expected)
