"""How good review is and what it costs, measured from the decisions in `review_events`.

- Automation bias: how much more often a reviewer takes the teacher's label when it is shown
  (acceptance when shown) than they pick it themselves when it is hidden (agreement when
  blind). A positive difference is labels shifted toward the teacher by seeing its answer.
- Expert time: active seconds per decision from the reviewer's own timestamps. A decision's
  time runs from the later of its form being opened and the reviewer's previous decision; a
  gap longer than `idle_gap_s` is idle time, not review, and that decision is costed at the
  reviewer's median timed decision instead. Bulk actions take no per-row time.
- Cost per accepted label: (teacher dollars billed for the reviewed rows + expert minutes at
  an hourly rate) / the rows whose label an expert stands behind (accepted, corrected, or
  kept with the rationale rejected).
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections import defaultdict
from pathlib import Path

from core.kernel.labels import canonical_text
from core.label.rationale_flags import flag_rejection
from core.review.rules import kappa_from_counts, wilson_interval

REVIEW_COSTS = Path(__file__).resolve().parents[2] / "data" / "review_costs.toml"
KEPT_VERDICTS = ("accept", "correct", "reject_rationale")  # the label stays in the training data


def review_costs(path: Path = REVIEW_COSTS) -> dict:
    """The default expert rate and idle gap, with the file's source and date."""
    doc = tomllib.loads(Path(path).read_text())
    return {"usd_per_hour": float(doc["expert"]["usd_per_hour"]), "idle_gap_s": float(doc["expert"]["idle_gap_s"]),
            "source": doc["meta"]["source"], "date": doc["meta"]["date"]}


def difference_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (two independent proportions), built from
    the two Wilson intervals; it stays inside [-1, 1] and behaves at small n."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def automation_bias(events: list[dict], current: list[dict], confidence: float = 0.95) -> dict | None:
    """Acceptance of the teacher's label when shown minus agreement with it when blind.

    `events`: every event (the blind labels are read from here); `current`: the current
    decisions. A shown decision counts when its form showed the teacher's label and the same
    reviewer did not label that row blind first (then their own label anchored the verdict).
    None until both blind and shown decisions exist."""
    blind = [e for e in events if e["kind"] == "blind" and e["teacher_label"] is not None]
    blind_keys = {(e["row_id"], e["reviewer"]) for e in blind}
    shown = [d for d in current if d["kind"] == "review" and d["shown"] == "teacher" and d["teacher_label"] is not None
             and (d["row_id"], d["reviewer"]) not in blind_keys]
    if not blind or not shown:
        return None
    agree = sum(e["label"] == e["teacher_label"] for e in blind)
    accept = sum(d["label"] == d["teacher_label"] for d in shown)
    low, high = difference_interval(accept, len(shown), agree, len(blind), confidence)
    return {"difference": accept / len(shown) - agree / len(blind), "low": low, "high": high,
            "confidence": confidence, "shown_rows": len(shown), "shown_acceptance": accept / len(shown),
            "blind_rows": len(blind), "blind_agreement": agree / len(blind)}


def active_seconds(events: list[dict], idle_gap_s: float) -> dict[str, dict]:
    """Per reviewer: decisions timed, decisions in all, and active seconds (see the module doc)."""
    by_reviewer: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        if e["kind"] != "bulk":
            by_reviewer[e["reviewer"]].append(e)
    out = {}
    for reviewer, rows in by_reviewer.items():
        rows.sort(key=lambda e: (e["decided_at"], e["id"]))
        timed, untimed, previous = [], 0, None
        for e in rows:
            starts = [t for t in (e.get("opened_at"), previous) if t is not None]
            seconds = (e["decided_at"] - max(starts)).total_seconds() if starts else None
            if seconds is None or seconds < 0 or seconds > idle_gap_s:
                untimed += 1
            else:
                timed.append(seconds)
            previous = e["decided_at"]
        typical = statistics.median(timed) if timed else 0.0
        out[reviewer] = {"decisions": len(rows), "timed": len(timed), "seconds": sum(timed) + untimed * typical}
    return out


OUTCOMES = ("accepted", "corrected", "rationale_edited", "rejected", "flagged")


def decision_outcome(d: dict) -> str:
    """What one decision did, against the teacher's answer it was about (one definition for the
    page, the CLI and the stats, so the outcomes add up to the reviews): flagged, rationale
    rejected, label corrected (the reviewer's label is not the teacher's, or the teacher gave
    none), only the rationale edited, or accepted."""
    if d["verdict"] == "flag":
        return "flagged"
    if d["verdict"] == "reject_rationale":
        return "rejected"
    if d["label"] is not None and (d["teacher_label"] is None
                                   or canonical_text(d["label"]) != canonical_text(d["teacher_label"])):
        return "corrected"
    return "rationale_edited" if d["verdict"] == "correct" else "accepted"


def verdict_counts(current: list[dict]) -> dict:
    """reviews = accepted + corrected + rationale_edited + rejected + flagged; bulk counts the
    decisions made by a bulk action (of any outcome)."""
    outcomes = [decision_outcome(d) for d in current]
    return {"reviews": len(current), **{o: outcomes.count(o) for o in OUTCOMES},
            "bulk": sum(d["kind"] == "bulk" for d in current)}


def accepted_labels(current: list[dict]) -> int:
    """Rows whose latest current decision keeps the label."""
    latest: dict[str, dict] = {}
    for d in current:
        if d["row_id"] not in latest or d["id"] > latest[d["row_id"]]["id"]:
            latest[d["row_id"]] = d
    return sum(d["verdict"] in KEPT_VERDICTS for d in latest.values())


def cost_per_label(teacher_usd: float, expert_minutes: float, usd_per_hour: float, labels: int) -> float | None:
    """Dollars per accepted label: teacher spend plus expert time at the hourly rate."""
    if labels <= 0:
        return None
    return (teacher_usd + expert_minutes / 60 * usd_per_hour) / labels


def per_reviewer(events: list[dict], current: list[dict], times: dict[str, dict], confidence: float) -> list[dict]:
    out = []
    for reviewer in sorted({e["reviewer"] for e in events}):
        mine = [d for d in current if d["reviewer"] == reviewer]
        seconds = times.get(reviewer, {}).get("seconds", 0.0)
        bias = automation_bias([e for e in events if e["reviewer"] == reviewer], mine, confidence)
        out.append({"reviewer": reviewer, "reviews": len(mine), "expert_minutes": round(seconds / 60, 2),
                    "reviews_per_hour": round(len(mine) / (seconds / 3600), 1) if seconds > 0 else None,
                    "automation_bias": bias})
    return out


def review_stats(store, project: str, usd_per_hour: float | None = None, idle_gap_s: float | None = None,
                 confidence: float = 0.95) -> dict:
    """Everything `core review-stats` prints and the Review page shows, for one project."""
    defaults = review_costs()
    rate = defaults["usd_per_hour"] if usd_per_hour is None else float(usd_per_hour)
    idle = defaults["idle_gap_s"] if idle_gap_s is None else float(idle_gap_s)
    events, current = store.review_events(project), store.current_decisions(project)
    times = active_seconds(events, idle)
    minutes = sum(t["seconds"] for t in times.values()) / 60
    teacher_usd = store.reviewed_teacher_usd(project)
    labels = accepted_labels(current)
    counts = store.agreement_counts(project)
    pairs = sum(n for _, _, n in counts["reviewers"])
    return {
        "project": project, **verdict_counts(current), "accepted_labels": labels,
        "teacher_usd_reviewed_rows": round(teacher_usd, 6),
        "teacher_billed": store.billed_calls(project) > 0,  # False: recorded or imported answers, no spend
        "expert_minutes": round(minutes, 4),
        "expert_usd_per_hour": rate, "idle_gap_s": idle, "expert_usd": round(minutes / 60 * rate, 4),
        "cost_per_accepted_label_usd": cost_per_label(teacher_usd, minutes, rate, labels),
        "kappa_independent": kappa_from_counts(counts["reviewers"]), "independent_pairs": pairs,
        "kappa_teacher": kappa_from_counts(counts["teacher"]),
        "disagreements": len(store.disagreement_rows(project)),
        "automation_bias": automation_bias(events, current, confidence),
        "per_reviewer": per_reviewer(events, current, times, confidence),
        "rationale_checks": flag_rejection(store.flag_outcomes(project)),
        "rate_source": defaults["source"], "rate_date": defaults["date"],
    }
