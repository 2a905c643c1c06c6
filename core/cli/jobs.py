"""Background jobs (labeling, training, sweeps): pause, resume, cancel, and the worker's entry point."""

from __future__ import annotations

from core.cli.commands import command
from core.db import Store


def job_id_flag(p) -> None:
    p.add_argument("job_id")


# Decorators apply bottom up: pause, resume, cancel, as --help has always listed them.
@command("cancel", "Cancel a background job (label, train or sweep).", job_id_flag, project=False, action="cancel")
@command("resume", "Resume a background job (label, train or sweep).", job_id_flag, project=False, action="resume")
@command("pause", "Pause a background job (label, train or sweep).", job_id_flag, project=False, action="pause")
def cmd_job(args, store: Store) -> dict:
    """pause | resume | cancel one background job (labeling, training or sweep)."""
    from core import jobs

    action = {"pause": jobs.pause_job, "resume": jobs.resume_job, "cancel": jobs.cancel_job}[args.action]
    action(store, args.job_id)
    job = jobs.refresh(store, store.get_job(args.job_id))
    return {"job_id": args.job_id, "action": args.action, "status": job["status"]}


@command("run-job", "Internal: run a queued background job.", job_id_flag, project=False)
def cmd_run_job(args, store: Store) -> dict:
    from core.jobs import run_job

    return run_job(store, args.job_id)
