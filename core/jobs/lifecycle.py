"""A job's lifecycle, as its row in `jobs` records it. This module is the only writer of a
job's status, and every change goes through `move`, which refuses a change the state machine
(core.jobs.states) does not allow; the store applies it only from the allowed states, so two
processes cannot both win a race.

A job's process is identified by its pid, its start time and a fingerprint of its command
line (core.jobs.processes): a pid the kernel gave to another process since never makes a dead
job look alive, nor gets that process signalled.
"""

from __future__ import annotations

import signal
import time

from core.db.jobs import LeaseHeld
from core.jobs import lease as leases
from core.jobs import processes
from core.jobs.lease import LabelingBusy
from core.jobs.states import ACTIVE, ALLOWED_FROM, FINAL, STOP_REASON_TEXT, now
from core.kernel.errors import AppError
from core.kernel.paths import job_dir


def move(store, job_id: str, status: str, lease: bool = False, **fields) -> bool:
    """Set a job's status if the state machine allows it from the status it has now.
    Returns False (and changes nothing) when the job is already elsewhere. `lease`: the move
    also takes the project's labeling lease (LabelingBusy while another labeling job is alive);
    a move to a non-active status releases it."""
    if status not in ALLOWED_FROM:
        raise AppError(f"unknown job status {status!r}")
    if status in FINAL:
        fields.setdefault("finished_at", now())
    try:
        return store.transition_job(job_id, status, ALLOWED_FROM[status], lease=leases.claim() if lease else None,
                                    release_lease=status not in ACTIVE, **fields)
    except LeaseHeld as exc:
        raise LabelingBusy(exc.holder) from None


def create_job(store, project: str, kind: str, config: dict, parent_id: str | None = None,
               lease: bool = False, **fields) -> str:
    """Record a queued job. `lease`: it takes its project's labeling lease in the same
    transaction, or nothing is recorded and LabelingBusy names the labeling job still alive."""
    try:
        job_id = store.create_job(project, kind, config, parent_id=parent_id,
                                  lease=leases.claim() if lease else None, **fields)
    except LeaseHeld as exc:
        raise LabelingBusy(exc.holder) from None
    store.update_job(job_id, out_dir=str(job_dir(store, job_id)))
    return job_id


def refresh(store, job: dict) -> dict:
    """Mark a job failed if its process is gone without finishing (or its pid now belongs to
    another process)."""
    if job["status"] in ACTIVE and job["pid"] and not processes.alive(job):
        reused = processes.pid_running(job["pid"])
        # Conditional on the pid: the process may have written its final status after we read the row.
        store.transition_job(job["id"], "failed", ALLOWED_FROM["failed"], expect_pid=job["pid"], release_lease=True,
                             error="the job's process ended unexpectedly"
                                   + (" (its pid now belongs to another process)" if reused else ""),
                             finished_at=now())
        job = store.get_job(job["id"])
    return job


def jobs_for(store, project: str, kind: str | None = None) -> list[dict]:
    return [refresh(store, j) for j in store.list_jobs(project, kind)]


def job_to_show(jobs: list[dict], wanted: str | None = None) -> dict | None:
    """Of a project's jobs (newest first): the one asked for by id, else the one still active
    (a refused start links to it), else the newest."""
    return (next((j for j in jobs if j["id"] == wanted), None)
            or next((j for j in jobs if j["status"] in ACTIVE), None)
            or (jobs[0] if jobs else None))


def running_label_job(store, project: str) -> dict | None:
    """The labeling job now running on `project`, if any (jobs whose process is gone are
    marked failed on the way)."""
    held = store.label_lease(project)
    for job in jobs_for(store, project, "label"):
        if leases.holds_project(job, held["taken_at"] if held and held["job_id"] == job["id"] else None):
            return job
    return None


def ensure_labeling_free(store, project: str) -> None:
    """Refuse early (LabelingBusy) when a labeling job runs on the project, before a caller
    does other work (a preflight, a pilot sample). Not atomic: starting the job still takes
    the lease, which is."""
    job = running_label_job(store, project)
    if job is not None:
        raise LabelingBusy(job)


def pause_job(store, job_id: str) -> None:
    """Ask a running job to stop at the next safe point, keeping all its work."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] not in ACTIVE:
        raise AppError(f"Job {job_id} is {job['status']}, not running.")
    store.update_job(job_id, pause_requested=True)
    move(store, job_id, "stopping")


def cancel_job(store, job_id: str) -> None:
    """Ask a job to stop for good; a job whose process is gone is marked cancelled at once."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] in ACTIVE and job["pid"] and processes.alive(job):
        move(store, job_id, "stopping")
        if job["parent_id"] is None:  # a sweep's run shares the sweep's process: its flag stops it alone
            # The signal goes before the flag: a process that saw the flag first could finish and
            # be shutting down (Python's default SIGTERM action restored) when the signal lands.
            processes.signal_verified(job, signal.SIGTERM)
        store.update_job(job_id, cancel_requested=True)
        return
    store.update_job(job_id, cancel_requested=True)
    if job["status"] == "queued" and not job["pid"]:
        move(store, job_id, "cancelled")


def wait(store, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = refresh(store, store.get_job(job_id))
        if job["status"] not in ACTIVE:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")


def throughput(job: dict) -> float | None:
    """Rows per second answered by live requests in the job's current run, since it (last)
    started, from its own heartbeat. Cache hits (instant) and rows of a resumed job's earlier
    runs are not counted: they would flatter the rate."""
    start, beat = job.get("started_at"), job.get("heartbeat_at")
    if not (start and beat and job.get("live_rows")):
        return None
    seconds = (beat - start).total_seconds()
    return job["live_rows"] / seconds if seconds > 0 else None


def progress_text(job: dict) -> str:
    """A labeling job's one-line progress: its status (with why it stopped), rows, spend, rate.
    Only a completed job says "completed"."""
    status = job["status"]
    if job.get("stop_reason"):
        status += ": " + STOP_REASON_TEXT.get(job["stop_reason"], job["stop_reason"])
    rate = throughput(job)
    return (f"Job {job['id']}: {status} · {job['done'] or 0}/{job['total'] or 0} rows · ${job['cost_usd'] or 0:.4f}"
            + (f" · {rate:.1f} rows/s" if rate else ""))
