"""Starting a job's process and running a job inside it.

A job runs in a detached `python -m core run-job` (background) or in the CLI process itself
(foreground). Either way it goes through `run_job`, so pause, cancel, a kill and resume behave
the same. What a job of each kind does is a stage's business: KINDS names the function by
import string, resolved when the job runs, so core.jobs imports no stage.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from core.jobs import processes
from core.jobs.lease import LabelingBusy
from core.jobs.lifecycle import create_job, jobs_for, move, refresh
from core.jobs.states import RESUMABLE, now
from core.kernel.errors import AppError
from core.kernel.paths import REPO_ROOT, job_dir

# kind -> "module:function"; the function takes (store, job row, should_stop, on_progress)
# and returns the run's result (its "status", and what the job's message keeps).
KINDS = {
    "label": "core.label.job:run_label_job",
    "train": "core.train.jobs:run_train_job",
    "sweep": "core.train.jobs:run_sweep_job",
}


# ---- starting, resuming -------------------------------------------------------------
def start_job(store, project: str, kind: str, config: dict, env: dict | None = None) -> str:
    """Record a job and start its process. `env` adds variables (e.g. an API key from
    Streamlit secrets) to the child's environment only; they are never stored. A labeling
    job is refused (LabelingBusy) while another one runs on the project."""
    if kind == "label":
        jobs_for(store, project, "label")  # a dead holder shows as failed, not just taken over
    job_id = create_job(store, project, kind, config, lease=kind == "label")
    start_process(store, job_id, env)
    return job_id


def run_foreground(store, project: str, kind: str, config: dict, on_progress=None) -> tuple[str, dict]:
    """Record a job and run it in this process (the CLI without --background). It is a job
    like any other: `core pause|cancel` reach it, and a killed run shows as failed and resumes.
    `on_progress` also receives a labeling run's progress (the CLI's progress bar). A labeling
    job is refused (LabelingBusy) while another one runs on the project."""
    if kind == "label":
        jobs_for(store, project, "label")
    # this process runs it: recorded at once, so the lease is never held by a job without a process
    job_id = create_job(store, project, kind, config, lease=kind == "label", **processes.identity(os.getpid()))
    return job_id, run_job(store, job_id, on_progress)


def resume_job(store, job_id: str, env: dict | None = None) -> None:
    """Start a paused, stopped, failed or cancelled job again in a new process. Labeling picks
    up the rows still unanswered (and polls batches already submitted); training continues
    from its last checkpoint."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] not in RESUMABLE:
        raise AppError(f"Job {job_id} is {job['status']}; only a paused, stopped, failed or cancelled job "
                       "can be resumed.")
    if job["kind"] == "label":
        jobs_for(store, job["project"], "label")
    if not move(store, job_id, "queued", lease=job["kind"] == "label", pid=None, proc_start_ticks=None,
                proc_cmdline_sha=None, pause_requested=False, cancel_requested=False, error=None,
                stop_reason=None, finished_at=None):
        raise AppError(f"Job {job_id} was resumed by someone else meanwhile.")
    start_process(store, job_id, env)


def start_process(store, job_id: str, env: dict | None) -> None:
    """spawn, and a job whose process could not even start fails (dropping its lease)."""
    try:
        spawn(store, job_id, env)
    except Exception as exc:
        move(store, job_id, "failed", error=f"its process could not start: {error_text(exc)}")
        raise


def spawn(store, job_id: str, env: dict | None) -> None:
    """Start `python -m core run-job` for the job, detached, logging to its folder."""
    out_dir = job_dir(store, job_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = open(out_dir / "job.log", "ab")
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "run-job", "--db", str(Path(store.path).resolve()), job_id],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT),
        env=child_env, start_new_session=True,  # not killed with the app's process group
    )
    log.close()
    store.update_job(job_id, **processes.identity_of_child(proc.pid))
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it so it never lingers as a zombie


# ---- inside the job's process -------------------------------------------------------
def requested_stop(store, job_id: str):
    """A function returning 'cancelled' or 'paused' once the job's row asks for it, else None.
    The row is read at most twice a second: it is called before every request or step."""
    state = {"checked": 0.0, "reason": None}

    def check() -> str | None:
        t = time.monotonic()
        if state["reason"] is None and t - state["checked"] > 0.5:
            state["checked"] = t
            row = store.get_job(job_id)
            state["reason"] = "cancelled" if row["cancel_requested"] else "paused" if row["pause_requested"] else None
        return state["reason"]

    return check


def error_text(exc: BaseException) -> str:
    return (str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}")[:2000]


def finish(store, job_id: str, result: dict) -> None:
    """The final status a run's result asks for: completed, or why it stopped early."""
    status = result.get("status", "completed")
    reason = result.get("stop_reason")
    if status not in ("completed", "stopped", "paused", "cancelled", "failed"):
        status, reason = "stopped", status
    move(store, job_id, status, stop_reason=reason, message=json.dumps(result, default=str),
         error=result.get("error"))


def kind_runner(kind: str):
    """The function that runs a job of `kind` (KINDS), imported now."""
    if kind not in KINDS:
        raise AppError(f"unknown job kind {kind!r}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def run_job(store, job_id: str, on_progress=None) -> dict:
    job = store.get_job(job_id)
    try:  # a labeling job (re)takes its lease here: one queued by an old app version holds none
        started = move(store, job_id, "running", lease=job["kind"] == "label", started_at=now(),
                       heartbeat_at=now(), live_rows=0, **processes.identity(os.getpid()))
    except LabelingBusy as exc:
        move(store, job_id, "failed", error=str(exc))
        raise
    if not started:
        job = store.get_job(job_id)
        if job["status"] == "stopping":  # cancelled or paused before its process got going
            status = "cancelled" if job["cancel_requested"] else "paused"
            move(store, job_id, status)
            return {"status": status}
        raise AppError(f"Job {job_id} is {job['status']}; it cannot start.")
    signalled = {"term": False}
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: signalled.__setitem__("term", True))
    flags = requested_stop(store, job_id)

    def should_stop() -> str | None:
        """'cancelled' or 'paused' once asked (SIGTERM or a flag in the jobs row), else None."""
        return "cancelled" if signalled["term"] else flags()

    try:
        result = kind_runner(job["kind"])(store, job, should_stop, on_progress)
        finish(store, job_id, result)
        return result
    except BaseException as exc:
        traceback.print_exc()
        move(store, job_id, "failed", error=error_text(exc))
        raise
