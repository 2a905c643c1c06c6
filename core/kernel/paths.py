"""Where the workspace's files live, each computed in one place: the repository, the folder
next to the database, a job's folder, and a training run's output folder."""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


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
