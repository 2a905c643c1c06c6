"""Background jobs (labeling, training) in their own OS process.

A job is a row in `jobs` plus a detached `python -m core run-job` process. It outlives
the Streamlit script run and the browser tab; pages only read its row. The process
writes progress through short DuckDB transactions (see core.store), so the app can read
while it writes."""

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
from core.store import Store

ACTIVE = ("queued", "running")
RESUMABLE = ("paused", "failed", "cancelled")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _now() -> dt.datetime:
    return dt.datetime.now()


def workspace_dir(store: Store) -> Path:
    return Path(store.path).resolve().parent


def job_dir(store: Store, job_id: str) -> Path:
    """Where a job's log and outputs live, next to the database."""
    return workspace_dir(store) / "jobs" / job_id


def start_job(store: Store, project: str, kind: str, config: dict, env: dict | None = None) -> str:
    """Record a job and start its process. `env` adds variables (e.g. an API key from
    Streamlit secrets) to the child's environment only; they are never stored."""
    job_id = store.create_job(project, kind, config)
    out_dir = job_dir(store, job_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.update_job(job_id, out_dir=str(out_dir))
    _spawn(store, job_id, env)
    return job_id


def resume_job(store: Store, job_id: str, env: dict | None = None) -> None:
    """Start a paused, failed or cancelled job again in a new process. Labeling picks up
    the rows still unanswered (and polls batches already submitted); training continues
    from its last checkpoint."""
    job = refresh(store, store.get_job(job_id))
    if job["status"] not in RESUMABLE:
        raise AppError(f"Job {job_id} is {job['status']}; only a paused, failed or cancelled job can be resumed.")
    store.update_job(job_id, status="queued", pid=None, pause_requested=False, cancel_requested=False,
                     error=None, finished_at=None)
    _spawn(store, job_id, env)


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


def start_sweep(store: Store, project: str, base: dict, grid: dict[str, list], env: dict | None = None) -> str:
    """One background process runs the grid's training runs one after another. Each run is
    its own `train` job (with parent_id = the sweep), so the Results page compares them."""
    from core.train import TrainConfig

    configs = [asdict(TrainConfig(**c).validate()) for c in sweep_configs(base, grid)]
    sweep_id = store.create_job(project, "sweep", {"base": base, "grid": grid, "runs": len(configs)})
    for cfg in configs:
        child = store.create_job(project, "train", cfg, parent_id=sweep_id)
        store.update_job(child, out_dir=str(job_dir(store, child)))
    store.update_job(sweep_id, out_dir=str(job_dir(store, sweep_id)), total=len(configs))
    _spawn(store, sweep_id, env)
    return sweep_id


def pause_job(store: Store, job_id: str) -> None:
    """Ask a running job to stop at the next safe point, keeping all its work."""
    job = store.get_job(job_id)
    if job["status"] not in ACTIVE:
        raise AppError(f"Job {job_id} is {job['status']}, not running.")
    store.update_job(job_id, pause_requested=True)


def _spawn(store: Store, job_id: str, env: dict | None) -> None:
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


def refresh(store: Store, job: dict) -> dict:
    """Mark a job failed if its process is gone without finishing."""
    if job["status"] in ACTIVE and job["pid"] and not _alive(job["pid"]):
        # Conditional: the process may have written its final status after we read the row.
        store.fail_job_if_active(job["id"], job["pid"], "the job's process ended unexpectedly")
        job = store.get_job(job["id"])
    return job


def throughput(job: dict) -> float | None:
    """Rows per second since the job (last) started, from its own heartbeat."""
    start, beat = job.get("started_at"), job.get("heartbeat_at")
    if not (start and beat and job.get("done")):
        return None
    seconds = (beat - start).total_seconds()
    return job["done"] / seconds if seconds > 0 else None


def jobs_for(store: Store, project: str, kind: str | None = None) -> list[dict]:
    return [refresh(store, j) for j in store.list_jobs(project, kind)]


def cancel_job(store: Store, job_id: str) -> None:
    job = store.get_job(job_id)
    store.update_job(job_id, cancel_requested=True)
    if job["status"] in ACTIVE and _alive(job["pid"]):
        try:
            os.kill(job["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass


def wait(store: Store, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = refresh(store, store.get_job(job_id))
        if job["status"] not in ACTIVE:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")


# ---- inside the job process -------------------------------------------------------
def requested_stop(store: Store, job_id: str):
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


def run_job(store: Store, job_id: str) -> dict:
    job = store.get_job(job_id)
    store.update_job(job_id, status="running", pid=os.getpid(), started_at=_now(), heartbeat_at=_now())
    signalled = {"term": False}
    signal.signal(signal.SIGTERM, lambda *_: signalled.__setitem__("term", True))
    flags = requested_stop(store, job_id)

    def should_stop() -> str | None:
        """'cancelled' or 'paused' once asked (SIGTERM or a flag in the jobs row), else None."""
        return "cancelled" if signalled["term"] else flags()

    try:
        if job["kind"] == "label":
            result = _run_label(store, job, should_stop)
        elif job["kind"] == "train":
            result = _run_train(store, job, should_stop)
        elif job["kind"] == "sweep":
            result = _run_sweep(store, job, should_stop)
        else:
            raise AppError(f"unknown job kind {job['kind']!r}")
        status = result.get("status", "completed")
        store.update_job(job_id, status=status, finished_at=_now(), message=json.dumps(result))
        return result
    except Exception as exc:
        message = str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        store.update_job(job_id, status="failed", error=message[:2000], finished_at=_now())
        raise


def _run_label(store: Store, job: dict, should_stop) -> dict:
    from core.teacher import TeacherRun

    cfg = job["config"]
    last = {"t": 0.0}

    def on_progress(p: dict) -> None:
        now = time.monotonic()
        if now - last["t"] > 0.5 or p["done"] >= p["total"]:
            last["t"] = now
            store.update_job(job["id"], done=p["done"], total=p["total"], cost_usd=store.job_spend(job["id"]),
                             heartbeat_at=_now())

    run = TeacherRun(
        store, job["project"], model=cfg.get("model"), concurrency=cfg.get("concurrency", 8),
        limit=cfg.get("limit"), budget_usd=cfg.get("budget_usd"), job_id=job["id"],
        on_progress=on_progress, should_stop=should_stop, batch=bool(cfg.get("batch")),
        poll_interval_s=cfg.get("poll_interval_s", 10.0), row_ids=cfg.get("row_ids"),
    )
    summary = run.run().as_dict()
    store.update_job(job["id"], done=summary["rows"] - summary["errors"], total=summary["rows"],
                     cost_usd=store.job_spend(job["id"]))
    summary["status"] = summary["stopped"] if summary["stopped"] in ("cancelled", "paused") else "completed"
    return summary


def _run_train(store: Store, job: dict, should_stop) -> dict:
    from core.train import TrainConfig, train

    cfg = TrainConfig(**job["config"])
    if not cfg.out_dir:
        cfg.out_dir = str(Path(job["out_dir"]) / "output")
    store.update_job(job["id"], total=cfg.max_steps)
    return train(store, cfg, job_id=job["id"], should_stop=should_stop)


def _run_sweep(store: Store, sweep: dict, should_stop) -> dict:
    """Run the sweep's unfinished training runs in order. A failed run is recorded on its own
    row and the sweep goes on; cancel or pause stops the sweep at the current run."""
    outcomes = {}
    for child in store.child_jobs(sweep["id"]):
        if child["status"] == "completed":
            outcomes[child["id"]] = "completed"
            continue
        store.update_job(child["id"], status="running", pid=os.getpid(), started_at=_now(), heartbeat_at=_now(),
                         error=None, finished_at=None)
        own_flags = requested_stop(store, child["id"])  # a run of the sweep can be stopped on its own

        def child_stop(own_flags=own_flags) -> str | None:
            return should_stop() or own_flags()

        try:
            result = _run_train(store, store.get_job(child["id"]), child_stop)
            store.update_job(child["id"], status=result["status"], finished_at=_now(), message=json.dumps(result))
            outcomes[child["id"]] = result["status"]
        except Exception as exc:
            message = str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            store.update_job(child["id"], status="failed", error=message[:2000], finished_at=_now())
            outcomes[child["id"]] = "failed"
        store.update_job(sweep["id"], done=sum(1 for s in outcomes.values() if s == "completed"), heartbeat_at=_now())
        reason = should_stop()
        if reason:  # runs not started yet take the sweep's status, so each can be resumed
            for rest in store.child_jobs(sweep["id"]):
                if rest["status"] == "queued":
                    store.update_job(rest["id"], status=reason)
            return {"status": reason, "runs": outcomes}
    return {"status": "completed", "runs": outcomes}
