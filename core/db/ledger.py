"""The spend ledger: reservations that make a budget cap hold across processes. Owns the
table `spend_ledger`.

Settled spend is what `teacher_calls.billed_usd` records; what is in flight is the sum of
open reservations (not expired) plus the worst case of submitted batches. A reservation is
checked against both caps and inserted in one transaction, so two processes cannot both take
the last dollar."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

# Settled spend of a project, open live reservations, and the worst case of batches still running.
_SETTLED = "SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE project = ?"
_RESERVED = ("SELECT coalesce(sum(reserved_usd), 0) FROM spend_ledger WHERE project = ? AND state = 'reserved' "
             "AND expires_at > current_localtimestamp()")
# The same two, of one job (a server or a file's cascade, whose own cap is kept in the ledger too).
_JOB_SETTLED = "SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE project = ? AND job_id = ?"
_JOB_RESERVED = _RESERVED + " AND job_id = ?"
_BATCHES = ("SELECT coalesce(sum(r.worst_usd), 0) FROM teacher_batch_requests r JOIN teacher_batches b "
            "USING (batch_id) WHERE b.project = ? AND b.status IN ('intent', 'submitted')")


def _one(con, sql: str, params: list) -> float:
    return float(con.execute(sql, params).fetchall()[0][0])


class LedgerTables:
    def reserve_spend(self, project: str, job_id: str | None, worst: Sequence[float], expires_s: float,
                      run_room: float | None = None, request_hashes: Sequence[str | None] | None = None,
                      job_cap: float | None = None) -> list[int]:
        """Reserve each worst case in order while it fits under the project's cap (settled spend +
        every process's open reservations + running batches) and under `run_room` (what the
        calling run may still commit under its own cap, which only that process knows) and
        `job_cap` (a cap on everything `job_id` spent and has in flight, in any process).
        Returns the ids of the reservations made: a prefix of `worst`, shorter when the budget
        ran out."""
        if not worst:
            return []
        hashes = list(request_hashes or [None] * len(worst))
        expires = dt.datetime.now() + dt.timedelta(seconds=expires_s)
        with self.transaction() as con:
            cap = con.execute("SELECT budget_usd FROM projects WHERE name = ?", [project]).fetchall()
            cap = cap[0][0] if cap else None
            room = None if cap is None else (
                cap - _one(con, _SETTLED, [project]) - _one(con, _RESERVED, [project]) - _one(con, _BATCHES, [project]))
            if job_cap is not None:
                run_room = min(x for x in (run_room, job_cap - _one(con, _JOB_SETTLED, [project, job_id])
                                           - _one(con, _JOB_RESERVED, [project, job_id])) if x is not None)
            if run_room is not None:
                room = run_room if room is None else min(room, run_room)
            ids = []
            for amount, key in zip(worst, hashes):
                if room is not None and amount > room + 1e-12:
                    break
                room = None if room is None else room - amount
                ids.append(con.execute(
                    "INSERT INTO spend_ledger(project, job_id, pid, request_hash, reserved_usd, state, expires_at) "
                    "VALUES (?,?,?,?,?, 'reserved', ?) RETURNING id",
                    [project, job_id, os.getpid(), key, amount, expires]).fetchall()[0][0])
            return ids

    def release_spend(self, ids: Sequence[int]) -> None:
        """Give back reservations whose requests were never sent or failed unbilled."""
        if ids:
            with self.transaction() as con:
                close_reservations(con, ids, "released")

    def reserved_spend(self, project: str) -> float:
        """Dollars reserved by requests in flight and batches still running, in every process."""
        with self.connect() as con:
            return _one(con, _RESERVED, [project]) + _one(con, _BATCHES, [project])


def close_reservations(con, ids: Sequence[int], state: str, settled: Sequence[float | None] | None = None) -> None:
    """Settle (with the real cost) or release reservations, inside the caller's transaction:
    the teacher writer settles in the same transaction as the cost it writes."""
    if not ids:
        return
    costs = list(settled) if settled is not None else [None] * len(ids)
    con.executemany("UPDATE spend_ledger SET state = ?, settled_usd = ?, closed_at = current_localtimestamp() "
                    "WHERE id = ? AND state = 'reserved'", [[state, c, i] for i, c in zip(ids, costs)])
