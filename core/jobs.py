"""Jobs (labeling, training, sweeps) and their one lifecycle.

A job is a row in `jobs` plus the process that runs it: a detached `python -m core run-job`
(background), or the CLI process itself (foreground). Either way it goes through
`run_job`, so pause, cancel, a kill and resume behave the same. This module is the only
writer of a job's status, and every change goes through `_move`, which refuses a change
the state machine does not allow (the store applies it only from the allowed states, so
two processes cannot both win a race).

    queued ──▶ running ──▶ completed
       │          │  ╲──▶ stopped (stop_reason: budget, …)   resumable
       │          ▼   ╲─▶ failed                              resumable
       │       stopping ─▶ paused | cancelled                 resumable
       └──────────────────▶ paused | cancelled | failed
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from core.errors import AppError

ACTIVE = ("queued", "running", "stopping")
RESUMABLE = ("paused", "stopped", "failed", "cancelled")
STATUSES = ACTIVE + ("completed",) + RESUMABLE
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
REPO_ROOT = Path(__file__).resolve().parent.parent


def _now() -> dt.datetime:
    return dt.datetime.now()


# ---- where a job's files live (defined once) ---------------------------------------
def workspace_dir(store) -> Path:
    return Path(store.path).resolve().parent


def job_dir(store, job_id: str) -> Path:
    """A job's folder, next to the database: its log, and a run's outputs under output/."""
    return workspace_dir(store) / "jobs" / job_id


def run_dir(job: dict) -> Path | None:
    """The folder with a training run's model, predictions, checkpoint and saved config."""
    if job.get("message"):
        try:
            out = json.loads(job["message"]).get("out_dir")
            if out:
                return Path(out)
        except json.JSONDecodeError:
            pass
    if job["config"].get("out_dir"):
        return Path(job["config"]["out_dir"])
    return Path(job["out_dir"]) / "output" if job.get("out_dir") else None


# ---- the state machine -------------------------------------------------------------
def _move(store, job_id: str, status: str, **fields) -> bool:
    """Set a job's status if the state machine allows it from the status it has now.
    Returns False (and changes nothing) when the job is already elsewhere."""
    if status not in ALLOWED_FROM:
        raise AppError(f"unknown job status {status!r}")
    if status in ("completed", "stopped", "paused", "cancelled", "failed"):
        fields.setdefault("finished_at", _now())
    return store.transition_job(job_id, status, ALLOWED_FROM[status], **fields)


def create_job(store, project: str, kind: str, config: dict, parent_id: str | None = None) -> str:
    job_id = store.create_job(project, kind, config, parent_id=parent_id)
    store.update_job(job_id, out_dir=str(job_dir(store, job_id)))
    return job_id


# ---- starting, stopping, resuming ----------------------------------------------------
def start_job(store, project: str, kind: str, config: dict, env: dict | None = None) -> str:
    """Record a job and start its process. `env` adds variables (e.g. an API key from
    Streamlit secrets) to the child's environment only; they are never stored."""
    job_id = create_job(store, project, kind, config)
    _spawn(store, job_id, env)
    return job_id


def run_foreground(store, project: str, kind: str, config: dict, on_progress=None) -> tuple[str, dict]:
    """Record a job and run it in this process (the CLI without --background). It is a job
    like any other: `core pause|cancel` reach it, and a killed run shows as failed and resumes.
    `on_progress` also receives a labeling run's progress (the CLI's progress bar)."""
    job_id = create_job(store, project, kind, config)
    return job_id, run_job(store, job_id, on_progress)


def resume_job(store, job_id: str, env: dict | None = None) -> None:
    """Start a paused, stopped, failed or cancelled job again in a new process. Labeling picks
    up the rows still unanswered (and polls batches already submitted); training continues
    from its last checkpoint."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] not in RESUMABLE:
        raise AppError(f"Job {job_id} is {job['status']}; only a paused, stopped, failed or cancelled job "
                       "can be resumed.")
    if not _move(store, job_id, "queued", pid=None, pause_requested=False, cancel_requested=False, error=None,
                 stop_reason=None, finished_at=None):
        raise AppError(f"Job {job_id} was resumed by someone else meanwhile.")
    _spawn(store, job_id, env)


def pause_job(store, job_id: str) -> None:
    """Ask a running job to stop at the next safe point, keeping all its work."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] not in ACTIVE:
        raise AppError(f"Job {job_id} is {job['status']}, not running.")
    store.update_job(job_id, pause_requested=True)
    _move(store, job_id, "stopping")


def cancel_job(store, job_id: str) -> None:
    """Ask a job to stop for good; a job whose process is gone is marked cancelled at once."""
    job = refresh(store, store.get_job(job_id))
    store.update_job(job_id, cancel_requested=True)
    if job["status"] not in ACTIVE:
        return
    if job["pid"] and _alive(job["pid"]):
        _move(store, job_id, "stopping")
        if job["parent_id"] is None:  # a sweep's run shares the sweep's process: its flag stops it alone
            try:
                os.kill(job["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
    elif job["status"] == "queued" and not job["pid"]:
        _move(store, job_id, "cancelled")


def _spawn(store, job_id: str, env: dict | None) -> None:
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
    store.update_job(job_id, pid=proc.pid)
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it so it never lingers as a zombie


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def refresh(store, job: dict) -> dict:
    """Mark a job failed if its process is gone without finishing."""
    if job["status"] in ACTIVE and job["pid"] and not _alive(job["pid"]):
        # Conditional on the pid: the process may have written its final status after we read the row.
        store.transition_job(job["id"], "failed", ALLOWED_FROM["failed"], expect_pid=job["pid"],
                             error="the job's process ended unexpectedly", finished_at=_now())
        job = store.get_job(job["id"])
    return job


def jobs_for(store, project: str, kind: str | None = None) -> list[dict]:
    return [refresh(store, j) for j in store.list_jobs(project, kind)]


def wait(store, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = refresh(store, store.get_job(job_id))
        if job["status"] not in ACTIVE:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")


def throughput(job: dict) -> float | None:
    """Rows per second since the job (last) started, from its own heartbeat."""
    start, beat = job.get("started_at"), job.get("heartbeat_at")
    if not (start and beat and job.get("done")):
        return None
    seconds = (beat - start).total_seconds()
    return job["done"] / seconds if seconds > 0 else None


# ---- sweeps -------------------------------------------------------------------------
SWEEP_AXES = ("objective", "rationale_fraction", "alpha", "label_source", "seed")


def sweep_configs(base: dict, grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values over the base config. Label-only runs ignore
    the rationale fraction, so they are not repeated per fraction."""
    import itertools

    bad = set(grid) - set(SWEEP_AXES)
    if bad:
        raise AppError(f"cannot sweep over {sorted(bad)}; choose from {', '.join(SWEEP_AXES)}.")
    axes = [k for k in SWEEP_AXES if grid.get(k)]
    configs, seen = [], set()
    for values in itertools.product(*(grid[k] for k in axes)):
        cfg = {**base, **dict(zip(axes, values))}
        if cfg.get("objective") == "standard":
            cfg["rationale_fraction"] = 0.0
        key = json.dumps(cfg, sort_keys=True)
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    if not configs:
        raise AppError("The sweep grid is empty: pick at least one value per axis.")
    return configs


def start_sweep(store, project: str, base: dict, grid: dict[str, list], env: dict | None = None) -> str:
    """One background process runs the grid's training runs one after another. Each run is
    its own `train` job (with parent_id = the sweep), so the Results page compares them."""
    from core.train import TrainConfig

    configs = [asdict(TrainConfig(**c).validate()) for c in sweep_configs(base, grid)]
    sweep_id = create_job(store, project, "sweep", {"base": base, "grid": grid, "runs": len(configs)})
    for cfg in configs:
        create_job(store, project, "train", cfg, parent_id=sweep_id)
    store.update_job(sweep_id, total=len(configs))
    _spawn(store, sweep_id, env)
    return sweep_id


# ---- inside the job's process -------------------------------------------------------
def requested_stop(store, job_id: str):
    """A function returning 'cancelled' or 'paused' once the job's row asks for it, else None.
    The row is read at most twice a second: it is called before every request or step."""
    state = {"checked": 0.0, "reason": None}

    def check() -> str | None:
        now = time.monotonic()
        if state["reason"] is None and now - state["checked"] > 0.5:
            state["checked"] = now
            row = store.get_job(job_id)
            state["reason"] = "cancelled" if row["cancel_requested"] else "paused" if row["pause_requested"] else None
        return state["reason"]

    return check


def _error_text(exc: BaseException) -> str:
    return (str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}")[:2000]


def _finish(store, job_id: str, result: dict) -> None:
    """The final status a run's result asks for: completed, or why it stopped early."""
    status = result.get("status", "completed")
    reason = result.get("stop_reason")
    if status not in ("completed", "stopped", "paused", "cancelled", "failed"):
        status, reason = "stopped", status
    _move(store, job_id, status, stop_reason=reason, message=json.dumps(result, default=str),
          error=result.get("error"))


def run_job(store, job_id: str, on_progress=None) -> dict:
    job = store.get_job(job_id)
    if not _move(store, job_id, "running", pid=os.getpid(), started_at=_now(), heartbeat_at=_now()):
        job = store.get_job(job_id)
        if job["status"] == "stopping":  # cancelled or paused before its process got going
            status = "cancelled" if job["cancel_requested"] else "paused"
            _move(store, job_id, status)
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
        runner = {"label": _run_label, "train": _run_train, "sweep": _run_sweep}.get(job["kind"])
        if runner is None:
            raise AppError(f"unknown job kind {job['kind']!r}")
        result = runner(store, job, should_stop, on_progress)
        _finish(store, job_id, result)
        return result
    except BaseException as exc:
        traceback.print_exc()
        _move(store, job_id, "failed", error=_error_text(exc))
        raise


def _run_label(store, job: dict, should_stop, observer=None) -> dict:
    from core.teacher import LabelConfig, TeacherRun

    cfg = LabelConfig.from_job(job)
    last = {"t": 0.0}

    def on_progress(p: dict) -> None:
        if observer is not None:
            observer(p)
        now = time.monotonic()
        if now - last["t"] > 0.5 or p["done"] >= p["total"]:
            last["t"] = now
            store.update_job(job["id"], done=p["done"], total=p["total"], cost_usd=store.job_spend(job["id"]),
                             heartbeat_at=_now())

    run = TeacherRun.from_config(store, cfg, job_id=job["id"], on_progress=on_progress, should_stop=should_stop)
    summary = run.run().as_dict()
    store.update_job(job["id"], done=summary["rows"] - summary["errors"], total=summary["rows"],
                     cost_usd=store.job_spend(job["id"]))
    stopped = summary["stopped"]
    if stopped in ("cancelled", "paused"):
        return {**summary, "status": stopped}
    if stopped:  # the budget, or another reason the run could not finish its rows
        return {**summary, "status": "stopped", "stop_reason": stopped}
    return {**summary, "status": "completed"}


def _run_train(store, job: dict, should_stop, observer=None) -> dict:
    from core.train import TrainConfig, train_project

    cfg = TrainConfig(**job["config"])
    if not cfg.out_dir:
        cfg.out_dir = str(run_dir(job))
    store.update_job(job["id"], total=cfg.max_steps)
    return train_project(store, cfg, job_id=job["id"], should_stop=should_stop)


def _run_sweep(store, sweep: dict, should_stop, observer=None) -> dict:
    """Run the sweep's unfinished training runs in order. A failed run is recorded on its own
    row and the sweep goes on; a run cancelled on its own is skipped; cancel or pause of the
    sweep stops it at the current run."""
    outcomes = {}
    for child in store.child_jobs(sweep["id"]):
        if child["status"] == "completed" or (child["status"] == "cancelled" and child["cancel_requested"]):
            outcomes[child["id"]] = child["status"]  # done, or cancelled on its own: not run again
            continue
        if child["status"] in RESUMABLE:
            _move(store, child["id"], "queued", pause_requested=False, cancel_requested=False, error=None,
                  stop_reason=None, finished_at=None)
        if not _move(store, child["id"], "running", pid=os.getpid(), started_at=_now(), heartbeat_at=_now()):
            outcomes[child["id"]] = store.get_job(child["id"])["status"]
            continue
        own_flags = requested_stop(store, child["id"])  # a run of the sweep can be stopped on its own

        def child_stop(own_flags=own_flags) -> str | None:
            return should_stop() or own_flags()

        try:
            result = _run_train(store, store.get_job(child["id"]), child_stop)
            _finish(store, child["id"], result)
            outcomes[child["id"]] = result["status"]
        except Exception as exc:
            traceback.print_exc()
            _move(store, child["id"], "failed", error=_error_text(exc))
            outcomes[child["id"]] = "failed"
        store.update_job(sweep["id"], done=sum(1 for s in outcomes.values() if s == "completed"), heartbeat_at=_now())
        reason = should_stop()
        if reason:  # runs not started yet take the sweep's status, so each can be resumed
            for rest in store.child_jobs(sweep["id"]):
                if rest["status"] == "queued":
                    _move(store, rest["id"], reason)
            return {"status": reason, "runs": outcomes}
    return {"status": "completed", "runs": outcomes}
