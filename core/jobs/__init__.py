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

A job's process is identified by its pid, its start time and a fingerprint of its command
line (from /proc), recorded when the process takes the job: a pid the kernel gave to another
process since never makes a dead job look alive, nor gets that process signalled.

Labeling jobs of one project run one at a time: queueing or starting one takes the project's
labeling lease in the same transaction that checks no other labeling job of the project is
alive (`label_leases`); a move to any non-active status drops it, and the lease of a job whose
process is gone is taken over.
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

from core.jobs import processes
from core.db.runs import LeaseClaim, LeaseHeld
from core.kernel.errors import AppError

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
REPO_ROOT = Path(__file__).resolve().parents[2]
# A lease taken for a job whose process is still being started (no pid recorded yet) counts as
# held this long; spawning takes milliseconds, so only a starter that died leaves it that long.
LEASE_GRACE_S = 60.0
# A labeling run with at least this share of its answers unparseable is shown as a problem.
PARSE_FAILURE_ALERT = 0.20
STOP_REASON_TEXT = {"budget": "budget reached"}


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
def _move(store, job_id: str, status: str, lease: bool = False, **fields) -> bool:
    """Set a job's status if the state machine allows it from the status it has now.
    Returns False (and changes nothing) when the job is already elsewhere. `lease`: the move
    also takes the project's labeling lease (LabelingBusy while another labeling job is alive);
    a move to a non-active status releases it."""
    if status not in ALLOWED_FROM:
        raise AppError(f"unknown job status {status!r}")
    if status in ("completed", "stopped", "paused", "cancelled", "failed"):
        fields.setdefault("finished_at", _now())
    try:
        return store.transition_job(job_id, status, ALLOWED_FROM[status], lease=_claim() if lease else None,
                                    release_lease=status not in ACTIVE, **fields)
    except LeaseHeld as exc:
        raise LabelingBusy(exc.holder) from None


def create_job(store, project: str, kind: str, config: dict, parent_id: str | None = None,
               lease: bool = False, **fields) -> str:
    """Record a queued job. `lease`: it takes its project's labeling lease in the same
    transaction, or nothing is recorded and LabelingBusy names the labeling job still alive."""
    try:
        job_id = store.create_job(project, kind, config, parent_id=parent_id, lease=_claim() if lease else None,
                                  **fields)
    except LeaseHeld as exc:
        raise LabelingBusy(exc.holder) from None
    store.update_job(job_id, out_dir=str(job_dir(store, job_id)))
    return job_id


# ---- one labeling run per project -----------------------------------------------------
def _holds_project(job: dict, lease_taken_at: dt.datetime | None) -> bool:
    """Whether an active labeling job still counts as labeling its project: its process is
    verified alive, or (no process recorded yet) its lease was taken moments ago."""
    if job["status"] not in ACTIVE:
        return False
    if job["pid"]:
        return processes.alive(job)
    return lease_taken_at is not None and (_now() - lease_taken_at).total_seconds() < LEASE_GRACE_S


def _claim() -> LeaseClaim:
    return LeaseClaim(active=ACTIVE, running=_holds_project, now=_now())


def running_label_job(store, project: str) -> dict | None:
    """The labeling job now running on `project`, if any (jobs whose process is gone are
    marked failed on the way)."""
    lease = store.label_lease(project)
    for job in jobs_for(store, project, "label"):
        if _holds_project(job, lease["taken_at"] if lease and lease["job_id"] == job["id"] else None):
            return job
    return None


def ensure_labeling_free(store, project: str) -> None:
    """Refuse early (LabelingBusy) when a labeling job runs on the project, before a caller
    does other work (a preflight, a pilot sample). Not atomic: starting the job still takes
    the lease, which is."""
    job = running_label_job(store, project)
    if job is not None:
        raise LabelingBusy(job)


# ---- starting, stopping, resuming ----------------------------------------------------
def start_job(store, project: str, kind: str, config: dict, env: dict | None = None) -> str:
    """Record a job and start its process. `env` adds variables (e.g. an API key from
    Streamlit secrets) to the child's environment only; they are never stored. A labeling
    job is refused (LabelingBusy) while another one runs on the project."""
    if kind == "label":
        jobs_for(store, project, "label")  # a dead holder shows as failed, not just taken over
    job_id = create_job(store, project, kind, config, lease=kind == "label")
    _start_process(store, job_id, env)
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
    if not _move(store, job_id, "queued", lease=job["kind"] == "label", pid=None, proc_start_ticks=None,
                 proc_cmdline_sha=None, pause_requested=False, cancel_requested=False, error=None,
                 stop_reason=None, finished_at=None):
        raise AppError(f"Job {job_id} was resumed by someone else meanwhile.")
    _start_process(store, job_id, env)


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
    if job["status"] in ACTIVE and job["pid"] and processes.alive(job):
        _move(store, job_id, "stopping")
        if job["parent_id"] is None:  # a sweep's run shares the sweep's process: its flag stops it alone
            # The signal goes before the flag: a process that saw the flag first could finish and
            # be shutting down (Python's default SIGTERM action restored) when the signal lands.
            processes.signal_verified(job, signal.SIGTERM)
        store.update_job(job_id, cancel_requested=True)
        return
    store.update_job(job_id, cancel_requested=True)
    if job["status"] == "queued" and not job["pid"]:
        _move(store, job_id, "cancelled")


def _start_process(store, job_id: str, env: dict | None) -> None:
    """_spawn, and a job whose process could not even start fails (dropping its lease)."""
    try:
        _spawn(store, job_id, env)
    except Exception as exc:
        _move(store, job_id, "failed", error=f"its process could not start: {_error_text(exc)}")
        raise


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
    store.update_job(job_id, **processes.identity_of_child(proc.pid))
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it so it never lingers as a zombie


# ---- which process runs a job -------------------------------------------------------
def refresh(store, job: dict) -> dict:
    """Mark a job failed if its process is gone without finishing (or its pid now belongs to
    another process)."""
    if job["status"] in ACTIVE and job["pid"] and not processes.alive(job):
        reused = processes.pid_running(job["pid"])
        # Conditional on the pid: the process may have written its final status after we read the row.
        store.transition_job(job["id"], "failed", ALLOWED_FROM["failed"], expect_pid=job["pid"], release_lease=True,
                             error="the job's process ended unexpectedly"
                                   + (" (its pid now belongs to another process)" if reused else ""),
                             finished_at=_now())
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


def _result(job: dict) -> dict:
    try:
        return json.loads(job["message"]) if job.get("message") else {}
    except json.JSONDecodeError:
        return {}


def progress_text(job: dict) -> str:
    """A labeling job's one-line progress: its status (with why it stopped), rows, spend, rate.
    Only a completed job says "completed"."""
    status = job["status"]
    if job.get("stop_reason"):
        status += ": " + STOP_REASON_TEXT.get(job["stop_reason"], job["stop_reason"])
    rate = throughput(job)
    return (f"Job {job['id']}: {status} · {job['done'] or 0}/{job['total'] or 0} rows · ${job['cost_usd'] or 0:.4f}"
            + (f" · {rate:.1f} rows/s" if rate else ""))


def parse_failures(job: dict) -> tuple[float, str] | None:
    """(share, sentence) of a finished labeling run's answers that could not be parsed
    (flagged / answered), or None before there is a result with answers."""
    result = _result(job)
    share = result.get("parse_failure_share")
    if share is None:
        return None
    flagged = result.get("flagged", 0)
    return share, (f"{share:.0%} of the answers could not be parsed ({flagged} rows flagged)"
                   + (": check the prompt's answer format before labeling more." if share >= PARSE_FAILURE_ALERT
                      else "."))


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
    from core.train.trainer import TrainConfig

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
    try:  # a labeling job (re)takes its lease here: one queued by an old app version holds none
        started = _move(store, job_id, "running", lease=job["kind"] == "label", started_at=_now(),
                        heartbeat_at=_now(), live_rows=0, **processes.identity(os.getpid()))
    except LabelingBusy as exc:
        _move(store, job_id, "failed", error=str(exc))
        raise
    if not started:
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
    from core.label.teacher import LabelConfig, TeacherRun

    cfg = LabelConfig.from_job(job)
    last = {"t": 0.0}

    def on_progress(p: dict) -> None:
        if observer is not None:
            observer(p)
        now = time.monotonic()
        if now - last["t"] > 0.5 or p["done"] >= p["total"]:
            last["t"] = now
            store.update_job(job["id"], done=_answered(p), total=p["total"], live_rows=_live_rows(p),
                             cost_usd=store.job_spend(job["id"]), heartbeat_at=_now())

    run = TeacherRun.from_config(store, cfg, job_id=job["id"], on_progress=on_progress, should_stop=should_stop)
    summary = run.run().as_dict()
    answered = _answered(summary)
    summary["parse_failure_share"] = round(summary["flagged"] / answered, 4) if answered else None
    summary["live_rows"] = _live_rows(summary)
    store.update_job(job["id"], done=answered, total=summary["rows"], live_rows=summary["live_rows"],
                     cost_usd=store.job_spend(job["id"]), heartbeat_at=_now())
    stopped = summary["stopped"]
    if stopped in ("cancelled", "paused"):
        return {**summary, "status": stopped}
    if stopped:  # the budget, or another reason the run could not finish its rows
        return {**summary, "status": "stopped", "stop_reason": stopped}
    return {**summary, "status": "completed"}


def _answered(summary: dict) -> int:
    """Rows of this run with an answer (parsed or flagged); failed calls are not answers."""
    return summary["labeled"] + summary["flagged"]


def _live_rows(summary: dict) -> int:
    """Rows of this run answered by requests it sent, not served from the response cache."""
    return max(0, _answered(summary) - summary["cache_hits"])


def _run_train(store, job: dict, should_stop, observer=None) -> dict:
    from core.train.trainer import TrainConfig, train_project

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
        if not _move(store, child["id"], "running", started_at=_now(), heartbeat_at=_now(), **processes.identity(os.getpid())):
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
