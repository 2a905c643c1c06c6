"""One labeling run per project. Queueing or starting a labeling job takes the project's
labeling lease in the same transaction that checks no other labeling job of the project is
alive (`label_leases`); a move to any non-active status drops it, and the lease of a job whose
process is gone is taken over. This module holds the rule; core.jobs.lifecycle applies it."""

from __future__ import annotations

import datetime as dt

from core.db.jobs import LeaseClaim
from core.jobs import processes
from core.jobs.states import ACTIVE, now
from core.kernel.errors import AppError

# A lease taken for a job whose process is still being started (no pid recorded yet) counts as
# held this long; spawning takes milliseconds, so only a starter that died leaves it that long.
LEASE_GRACE_S = 60.0


class LabelingBusy(AppError):
    """Another labeling job of the project is running; `job_id` names it (the pages link to it)."""

    kind = "busy"

    def __init__(self, job: dict):
        since = job.get("started_at") or job.get("created_at")
        when = f" since {since:%Y-%m-%d %H:%M:%S}" if since else ""
        super().__init__(
            f"Labeling job {job['id']} is already {job['status']} on project {job['project']!r}{when}. "
            "A project labels with one run at a time, so that two runs never spend its budget twice. "
            f"Open it on the Label page to follow, pause or cancel it (CLI: `python -m core pause {job['id']}` "
            f"or `python -m core cancel {job['id']}`), or start again once it has finished.")
        self.job_id = job["id"]


def holds_project(job: dict, lease_taken_at: dt.datetime | None) -> bool:
    """Whether an active labeling job still counts as labeling its project: its process is
    verified alive, or (no process recorded yet) its lease was taken moments ago."""
    if job["status"] not in ACTIVE:
        return False
    if job["pid"]:
        return processes.alive(job)
    return lease_taken_at is not None and (now() - lease_taken_at).total_seconds() < LEASE_GRACE_S


def claim() -> LeaseClaim:
    """What the store needs to take a lease: the active statuses and the liveness rule."""
    return LeaseClaim(active=ACTIVE, running=holds_project, now=now())
