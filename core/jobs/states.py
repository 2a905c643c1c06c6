"""A job's statuses and the moves between them (the state machine core.jobs enforces).

    queued ──▶ running ──▶ completed
       │          │  ╲──▶ stopped (stop_reason: budget, …)   resumable
       │          ▼   ╲─▶ failed                              resumable
       │       stopping ─▶ paused | cancelled                 resumable
       └──────────────────▶ paused | cancelled | failed
"""

from __future__ import annotations

import datetime as dt

ACTIVE = ("queued", "running", "stopping")
RESUMABLE = ("paused", "stopped", "failed", "cancelled")
STATUSES = ACTIVE + ("completed",) + RESUMABLE
FINAL = ("completed",) + RESUMABLE  # entering one of these sets finished_at
# status -> the statuses it may be entered from
ALLOWED_FROM = {
    "queued": RESUMABLE,                               # resume
    "running": ("queued",),
    "stopping": ("queued", "running"),                 # pause or cancel asked
    "completed": ("running", "stopping"),
    "stopped": ("running", "stopping"),
    "paused": ("queued", "running", "stopping"),
    "cancelled": ("queued", "running", "stopping"),
    "failed": ("queued", "running", "stopping"),
}
STOP_REASON_TEXT = {"budget": "budget reached"}


def now() -> dt.datetime:
    return dt.datetime.now()
