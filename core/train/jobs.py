"""Training and sweep jobs: what core.jobs.runner runs for a job of kind "train" or "sweep".
A sweep is one process that runs its grid's training runs one after another; each run is its
own `train` job (parent_id = the sweep), so the Results page compares them."""

from __future__ import annotations

import itertools
import json
import os
import traceback
from dataclasses import asdict

from core.jobs import processes
from core.jobs.lifecycle import create_job, move
from core.jobs.runner import error_text, finish, requested_stop, spawn
from core.jobs.states import RESUMABLE, now
from core.kernel.errors import AppError
from core.kernel.paths import run_dir
from core.train.trainer import TrainConfig, train_project

SWEEP_AXES = ("objective", "rationale_fraction", "alpha", "label_source", "seed")


def sweep_configs(base: dict, grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values over the base config. Label-only runs ignore
    the rationale fraction, so they are not repeated per fraction."""
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
    """Record the sweep and one queued `train` job per config, and start the sweep's process."""
    configs = [asdict(TrainConfig(**c).validate()) for c in sweep_configs(base, grid)]
    sweep_id = create_job(store, project, "sweep", {"base": base, "grid": grid, "runs": len(configs)})
    for cfg in configs:
        create_job(store, project, "train", cfg, parent_id=sweep_id)
    store.update_job(sweep_id, total=len(configs))
    spawn(store, sweep_id, env)
    return sweep_id


def run_train_job(store, job: dict, should_stop, observer=None) -> dict:
    cfg = TrainConfig(**job["config"])
    if not cfg.out_dir:
        cfg.out_dir = str(run_dir(job))
    store.update_job(job["id"], total=cfg.max_steps)
    return train_project(store, cfg, job_id=job["id"], should_stop=should_stop)


def run_sweep_job(store, sweep: dict, should_stop, observer=None) -> dict:
    """Run the sweep's unfinished training runs in order. A failed run is recorded on its own
    row and the sweep goes on; a run cancelled on its own is skipped; cancel or pause of the
    sweep stops it at the current run."""
    outcomes = {}
    for child in store.child_jobs(sweep["id"]):
        if child["status"] == "completed" or (child["status"] == "cancelled" and child["cancel_requested"]):
            outcomes[child["id"]] = child["status"]  # done, or cancelled on its own: not run again
            continue
        ran = _run_child(store, child, should_stop)
        if ran is None:  # it could not start (it moved elsewhere meanwhile)
            outcomes[child["id"]] = store.get_job(child["id"])["status"]
            continue
        outcomes[child["id"]] = ran
        store.update_job(sweep["id"], done=sum(1 for s in outcomes.values() if s == "completed"), heartbeat_at=now())
        reason = should_stop()
        if reason:  # runs not started yet take the sweep's status, so each can be resumed
            for rest in store.child_jobs(sweep["id"]):
                if rest["status"] == "queued":
                    move(store, rest["id"], reason)
            return {"status": reason, "runs": outcomes}
    return {"status": "completed", "runs": outcomes}


def _run_child(store, child: dict, should_stop) -> str | None:
    """Run one training run of a sweep in this process: the status it ends in, or None when
    it could not be moved to running."""
    if child["status"] in RESUMABLE:
        move(store, child["id"], "queued", pause_requested=False, cancel_requested=False, error=None,
             stop_reason=None, finished_at=None)
    if not move(store, child["id"], "running", started_at=now(), heartbeat_at=now(),
                **processes.identity(os.getpid())):
        return None
    own_flags = requested_stop(store, child["id"])  # a run of the sweep can be stopped on its own

    def child_stop() -> str | None:
        return should_stop() or own_flags()

    try:
        result = run_train_job(store, store.get_job(child["id"]), child_stop)
        finish(store, child["id"], result)
        return result["status"]
    except Exception as exc:
        traceback.print_exc()
        move(store, child["id"], "failed", error=error_text(exc))
        return "failed"
