"""Message Batches in flight. Owns the tables `teacher_batches` and `teacher_batch_requests`.

A batch is recorded as an *intent* (its rows and request hashes, status 'intent') before it
is created at the API, and becomes 'submitted' under its real id in one transaction once the
id is known. An intent left without an id (the process died, or the creation response was
lost) is resolved before anything else is sent: adopted when the account lists a matching
batch, dropped when it does not. Both states count in the budget and keep their rows out of
other runs, so a batch is never paid for twice."""

from __future__ import annotations

import datetime as dt
import uuid

from core.db.connection import run_with_rows

OPEN = ("intent", "submitted")
_ENTRY_COLUMNS = ["custom_id", "request_hash", "request", "row_ids", "worst_usd"]


class BatchTables:
    def add_batch_intent(self, project: str, job_id: str | None, model: str, entries: list[dict]) -> str:
        """Record a batch about to be created; returns the intent's id (its placeholder batch id)."""
        intent = f"intent-{uuid.uuid4().hex}"
        now_utc = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # compared with the API's created_at (UTC)
        with self.transaction() as con:
            con.execute("INSERT INTO teacher_batches(batch_id, project, job_id, model, status, requests, submitted_at) "
                        "VALUES (?,?,?,?, 'intent', ?, ?)", [intent, project, job_id, model, len(entries), now_utc])
            run_with_rows(con, "batch_rows", entries, _ENTRY_COLUMNS,
                          "INSERT INTO teacher_batch_requests SELECT ?, custom_id, request_hash, request, row_ids, "
                          "worst_usd FROM batch_rows", [intent])
        return intent

    def confirm_batch(self, intent: str, batch_id: str) -> None:
        """The API created the intent's batch as `batch_id`: from now on it is polled, never resent."""
        with self.transaction() as con:
            con.execute("UPDATE teacher_batch_requests SET batch_id = ? WHERE batch_id = ?", [batch_id, intent])
            con.execute("UPDATE teacher_batches SET batch_id = ?, status = 'submitted' WHERE batch_id = ? "
                        "AND status = 'intent'", [batch_id, intent])

    def drop_batch_intent(self, intent: str) -> None:
        """The batch was certainly not created: its rows may be asked again."""
        with self.transaction() as con:
            con.execute("DELETE FROM teacher_batch_requests WHERE batch_id = ?", [intent])
            con.execute("DELETE FROM teacher_batches WHERE batch_id = ? AND status = 'intent'", [intent])

    def batch_intents(self, project: str) -> list[dict]:
        return self.query("SELECT batch_id, requests, submitted_at FROM teacher_batches WHERE project = ? "
                          "AND status = 'intent' ORDER BY submitted_at", [project])

    def known_batch_ids(self) -> set[str]:
        return {r["batch_id"] for r in self.query("SELECT batch_id FROM teacher_batches")}

    def open_batches(self, project: str) -> list[str]:
        rows = self.query("SELECT batch_id FROM teacher_batches WHERE project = ? AND status = 'submitted' "
                          "ORDER BY submitted_at", [project])
        return [r["batch_id"] for r in rows]

    def open_batch_hashes(self, project: str) -> set[str]:
        """Requests held by batches that may still be answered: other runs must not send them."""
        rows = self.query("SELECT r.request_hash FROM teacher_batch_requests r JOIN teacher_batches b USING (batch_id) "
                          "WHERE b.project = ? AND list_contains(?, b.status)", [project, list(OPEN)])
        return {r["request_hash"] for r in rows}

    def open_batch_worst_case(self, project: str, job_id: str | None = None) -> float:
        """The worst case of the project's batches that may still be answered (of one job's, given one)."""
        return self.scalar("SELECT coalesce(sum(r.worst_usd), 0) FROM teacher_batch_requests r "
                           "JOIN teacher_batches b USING (batch_id) WHERE b.project = ? AND list_contains(?, b.status) "
                           "AND (? IS NULL OR b.job_id IS NOT DISTINCT FROM ?)", [project, list(OPEN), job_id, job_id])

    def batch_requests(self, batch_id: str) -> list[dict]:
        return self.query("SELECT * FROM teacher_batch_requests WHERE batch_id = ?", [batch_id])

    def list_batches(self, project: str) -> list[dict]:
        return self.query("SELECT * FROM teacher_batches WHERE project = ? ORDER BY submitted_at DESC", [project])
