"""Background jobs and what training runs record. Owns the tables `jobs`, `label_leases`,
`run_metrics` and `student_predictions`."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.db.connection import run_with_rows
from core.kernel.errors import AppError, NotFound


@dataclass(frozen=True)
class LeaseClaim:
    """What taking a project's labeling lease needs from the job lifecycle (core.jobs owns
    both rules: which statuses are active, and whether a job's process is verifiably alive)."""

    active: Sequence[str]                                   # statuses of a job that may still label
    running: Callable[[dict, dt.datetime | None], bool]     # (job row, its lease's taken_at or None)
    now: dt.datetime


class LeaseHeld(AppError):
    """Another labeling job of the project is alive; `holder` is its jobs row. (core.jobs turns
    it into the message users see.)"""

    kind = "busy"

    def __init__(self, holder: dict):
        super().__init__(f"Labeling job {holder['id']} is {holder['status']} on project {holder['project']!r}.")
        self.holder = holder


def _dicts(cur) -> list[dict]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


class JobTables:
    def create_job(self, project: str, kind: str, config: dict, out_dir: str | None = None,
                   parent_id: str | None = None, lease: LeaseClaim | None = None, **fields: Any) -> str:
        """Insert a queued job (with `fields`, e.g. the pid of a foreground run). With `lease`,
        the job also takes its project's labeling lease in the same transaction, or nothing is
        written and LeaseHeld names the labeling job still alive."""
        self._check_fields(fields)
        job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.transaction() as con:
            con.execute(
                "INSERT INTO jobs(id, project, kind, config, status, out_dir, parent_id) "
                "VALUES (?,?,?,?, 'queued', ?, ?)",
                [job_id, project, kind, json.dumps(config), out_dir, parent_id],
            )
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)  # keys from the allow-list only
                con.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])
            if lease is not None:
                self._take_label_lease(con, project, job_id, lease)
        return job_id

    def get_job(self, job_id: str) -> dict:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise NotFound(f"No job {job_id!r}.")
        job = rows[0]
        job["config"] = json.loads(job["config"])
        return job

    def list_jobs(self, project: str, kind: str | None = None) -> list[dict]:
        if kind:
            rows = self.query("SELECT * FROM jobs WHERE project = ? AND kind = ? ORDER BY created_at DESC", [project, kind])
        else:
            rows = self.query("SELECT * FROM jobs WHERE project = ? ORDER BY created_at DESC", [project])
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    def child_jobs(self, parent_id: str) -> list[dict]:
        rows = self.query("SELECT * FROM jobs WHERE parent_id = ? ORDER BY created_at, id", [parent_id])
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    # Columns a job's own process or its controls may set; `status` is not among them:
    # it changes only through transition_job, which core.jobs alone calls.
    JOB_FIELDS = frozenset({
        "pid", "done", "total", "cost_usd", "message", "error", "out_dir", "cancel_requested",
        "pause_requested", "started_at", "finished_at", "heartbeat_at", "stop_reason",
        "proc_start_ticks", "proc_cmdline_sha", "live_rows",
    })

    def _check_fields(self, fields: dict) -> None:
        bad = set(fields) - self.JOB_FIELDS
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")

    def update_job(self, job_id: str, **fields: Any) -> None:
        self._check_fields(fields)
        sets = ", ".join(f"{k} = ?" for k in fields)  # keys from the allow-list only
        with self.transaction() as con:
            con.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])

    def transition_job(self, job_id: str, status: str, allowed_from: Sequence[str], expect_pid: int | None = None,
                       lease: LeaseClaim | None = None, release_lease: bool = False, **fields: Any) -> bool:
        """Set status (and fields) only if the job is in one of `allowed_from` (and, when given,
        still belongs to `expect_pid`), in one transaction: two processes cannot both win.
        With `lease`, the move also takes the project's labeling lease (LeaseHeld, and nothing
        changes, while another labeling job is alive); `release_lease` drops the job's lease
        (a move to a non-active status). True when the row changed."""
        self._check_fields(fields)
        sets = "".join(f", {k} = ?" for k in fields)  # keys from the allow-list only
        sql = f"UPDATE jobs SET status = ?{sets} WHERE id = ? AND list_contains(?, status)"
        params = [status, *fields.values(), job_id, list(allowed_from)]
        if expect_pid is not None:
            sql += " AND pid = ?"
            params.append(expect_pid)
        with self.transaction() as con:
            changed = con.execute(sql + " RETURNING project", params).fetchall()
            if not changed:
                return False
            if lease is not None:
                self._take_label_lease(con, changed[0][0], job_id, lease)
            if release_lease:
                con.execute("DELETE FROM label_leases WHERE job_id = ?", [job_id])
            return True

    def _take_label_lease(self, con, project: str, job_id: str, claim: LeaseClaim) -> None:
        """Inside a transaction: give `project`'s labeling lease to `job_id`, unless another
        labeling job of the project is active and `claim.running` says it is alive (then
        LeaseHeld). A lease whose job is gone is taken over."""
        lease = con.execute("SELECT job_id, taken_at FROM label_leases WHERE project = ?", [project]).fetchone()
        holder_id, taken_at = lease if lease else (None, None)
        others = _dicts(con.execute(
            "SELECT * FROM jobs WHERE project = ? AND kind = 'label' AND id <> ? AND list_contains(?, status) "
            "ORDER BY id = ? DESC, created_at DESC", [project, job_id, list(claim.active), holder_id]))
        for other in others:  # every active one, not only the holder: jobs queued before leases existed
            if claim.running(other, taken_at if other["id"] == holder_id else None):
                raise LeaseHeld(other)
        if lease is None:
            con.execute("INSERT INTO label_leases(project, job_id, taken_at) VALUES (?, ?, ?)",
                        [project, job_id, claim.now])
        else:
            con.execute("UPDATE label_leases SET job_id = ?, taken_at = ? WHERE project = ?",
                        [job_id, claim.now, project])

    def label_lease(self, project: str) -> dict | None:
        """The project's labeling lease (job_id, taken_at), if any job holds one."""
        rows = self.query("SELECT job_id, taken_at FROM label_leases WHERE project = ?", [project])
        return rows[0] if rows else None

    def add_metrics(self, job_id: str, rows: Sequence[tuple[int, str, float]]) -> None:
        if not rows:
            return
        with self.transaction() as con:
            con.executemany(
                "INSERT INTO run_metrics(job_id, step, name, value) VALUES (?,?,?,?)",
                [[job_id, step, name, float(value)] for step, name, value in rows],
            )
            con.execute("UPDATE jobs SET heartbeat_at = current_timestamp WHERE id = ?", [job_id])

    def metrics(self, job_ids: Sequence[str]) -> list[dict]:
        if not job_ids:
            return []
        marks = ", ".join("?" * len(job_ids))
        return self.query(
            f"SELECT job_id, step, name, value FROM run_metrics WHERE job_id IN ({marks}) ORDER BY job_id, step",
            list(job_ids),
        )

    def truncate_metrics(self, job_id: str, after_step: int) -> None:
        """Drop metrics logged after a checkpoint: a resumed run logs those steps again."""
        with self.transaction() as con:
            con.execute("DELETE FROM run_metrics WHERE job_id = ? AND step > ?", [job_id, after_step])

    def save_predictions(self, job_id: str, project: str, rows: list[dict]) -> None:
        """Replace a run's held-out predictions in one transaction."""
        columns = ["row_id", "prediction", "raw", "rationale", "gold", "teacher", "correct", "agrees_teacher"]
        with self.transaction() as con:
            con.execute("DELETE FROM student_predictions WHERE job_id = ?", [job_id])
            if rows:
                run_with_rows(con, "new_predictions", rows, columns,
                              f"INSERT INTO student_predictions(job_id, project, {', '.join(columns)}) "
                              f"SELECT ?, ?, {', '.join(columns)} FROM new_predictions", [job_id, project])

    def predictions(self, job_id: str, only: str = "all", limit: int = 50, offset: int = 0) -> list[dict]:
        """A page of a run's held-out predictions with the row's inputs; `only` is all, wrong or
        disagrees (with the teacher)."""
        where = {"all": "TRUE", "wrong": "p.correct = FALSE", "disagrees": "p.agrees_teacher = FALSE"}[only]
        rows = self.query(
            f"""SELECT p.row_id, i.inputs, p.prediction, p.rationale AS student_rationale, p.gold, p.teacher,
                       i.teacher_rationale, p.correct, p.agrees_teacher
                FROM student_predictions p JOIN items i ON i.project = p.project AND i.row_id = p.row_id
                WHERE p.job_id = ? AND {where} ORDER BY i.idx LIMIT ? OFFSET ?""",
            [job_id, limit, offset])
        for r in rows:
            r["inputs"] = json.loads(r["inputs"])
        return rows

    def latest_metrics_for(self, job_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Latest value of every metric of several runs in one query, plus "step": the last
        training step logged (pages that list runs call this once per rerun)."""
        if not job_ids:
            return {}
        marks = ", ".join("?" * len(job_ids))
        rows = self.query(
            f"SELECT job_id, name, arg_max(value, step) AS value, max(step) AS step FROM run_metrics "
            f"WHERE job_id IN ({marks}) GROUP BY job_id, name", list(job_ids))
        out: dict[str, dict[str, float]] = {j: {} for j in job_ids}
        for r in rows:
            out[r["job_id"]][r["name"]] = r["value"]
            if r["name"] == "train_loss":
                out[r["job_id"]]["step"] = r["step"]
        return out

    def latest_metrics(self, job_id: str) -> dict[str, float]:
        rows = self.query(
            "SELECT name, arg_max(value, step) AS value FROM run_metrics WHERE job_id = ? GROUP BY name", [job_id]
        )
        return {r["name"]: r["value"] for r in rows}
