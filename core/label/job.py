"""Labeling jobs: what core.jobs.runner runs for a job of kind "label", and how a finished
labeling run's result reads (its share of unparseable answers)."""

from __future__ import annotations

import json
import time

from core.jobs.states import now
from core.label.config import LabelConfig
from core.label.teacher import TeacherRun

# A labeling run with at least this share of its answers unparseable is shown as a problem.
PARSE_FAILURE_ALERT = 0.20


def answered(counts: dict) -> int:
    """Rows with a teacher answer, parsed (labeled) or not (flagged); failed calls are not
    answers. `counts`: a run's summary, or item counts by status."""
    return (counts.get("labeled") or 0) + (counts.get("flagged") or 0)


def live_rows(summary: dict) -> int:
    """Rows of this run answered by requests it sent, not served from the response cache."""
    return max(0, answered(summary) - summary["cache_hits"])


def run_label_job(store, job: dict, should_stop, observer=None) -> dict:
    cfg = LabelConfig.from_job(job)
    last = {"t": 0.0}

    def on_progress(p: dict) -> None:
        if observer is not None:
            observer(p)
        t = time.monotonic()
        if t - last["t"] > 0.5 or p["done"] >= p["total"]:
            last["t"] = t
            store.update_job(job["id"], done=answered(p), total=p["total"], live_rows=live_rows(p),
                             cost_usd=store.job_spend(job["id"]), heartbeat_at=now())

    if cfg.reread_model:  # a second reading of unread answers (core.label.reread)
        from core.label.reread import RereadRun

        run = RereadRun(store, cfg.project, model=cfg.reread_model, concurrency=cfg.concurrency, limit=cfg.limit,
                        budget_usd=cfg.budget_usd, row_ids=cfg.row_ids, job_id=job["id"], on_progress=on_progress,
                        should_stop=should_stop)
    elif cfg.explain_corrections:  # the teacher explains the labels reviewers corrected
        from core.label.explain import ExplainRun

        run = ExplainRun.from_config(store, cfg, job_id=job["id"], on_progress=on_progress, should_stop=should_stop)
    else:
        run = TeacherRun.from_config(store, cfg, job_id=job["id"], on_progress=on_progress, should_stop=should_stop)
    summary = run.run().as_dict()
    done = answered(summary)
    summary["parse_failure_share"] = round(summary["flagged"] / done, 4) if done else None
    summary["live_rows"] = live_rows(summary)
    store.update_job(job["id"], done=done, total=summary["rows"], live_rows=summary["live_rows"],
                     cost_usd=store.job_spend(job["id"]), heartbeat_at=now())
    stopped = summary["stopped"]
    if stopped in ("cancelled", "paused"):
        return {**summary, "status": stopped}
    if stopped:  # the budget, or another reason the run could not finish its rows
        return {**summary, "status": "stopped", "stop_reason": stopped}
    return {**summary, "status": "completed"}


def parse_failures(job: dict) -> tuple[float, str] | None:
    """(share, sentence) of a finished labeling run's answers that could not be parsed
    (flagged / answered), or None before there is a result with answers."""
    try:
        result = json.loads(job["message"]) if job.get("message") else {}
    except json.JSONDecodeError:
        result = {}
    share = result.get("parse_failure_share")
    if share is None:
        return None
    flagged = result.get("flagged", 0)
    return share, (f"{share:.0%} of the answers could not be parsed ({flagged} rows flagged)"
                   + (": check the prompt's answer format before labeling more." if share >= PARSE_FAILURE_ALERT
                      else "."))
