"""Message Batches in flight: a batch id is stored before polling, so a restart resumes it.
Owns the tables `teacher_batches` and `teacher_batch_requests`."""

from __future__ import annotations

from core.db.connection import run_with_rows


class BatchTables:
    def add_batch(self, project: str, batch_id: str, job_id: str | None, model: str, entries: list[dict]) -> None:
        with self.transaction() as con:
            con.execute("INSERT INTO teacher_batches(batch_id, project, job_id, model, status, requests) "
                        "VALUES (?,?,?,?, 'submitted', ?)", [batch_id, project, job_id, model, len(entries)])
            run_with_rows(con, "batch_rows", entries, ["custom_id", "request_hash", "request", "row_ids", "worst_usd"],
                          "INSERT INTO teacher_batch_requests SELECT ?, custom_id, request_hash, request, row_ids, "
                          "worst_usd FROM batch_rows", [batch_id])

    def open_batches(self, project: str) -> list[str]:
        rows = self.query("SELECT batch_id FROM teacher_batches WHERE project = ? AND status = 'submitted' "
                          "ORDER BY submitted_at", [project])
        return [r["batch_id"] for r in rows]

    def open_batch_hashes(self, project: str) -> set[str]:
        rows = self.query("SELECT r.request_hash FROM teacher_batch_requests r JOIN teacher_batches b USING (batch_id) "
                          "WHERE b.project = ? AND b.status = 'submitted'", [project])
        return {r["request_hash"] for r in rows}

    def open_batch_worst_case(self, project: str) -> float:
        return self.scalar("SELECT coalesce(sum(r.worst_usd), 0) FROM teacher_batch_requests r "
                           "JOIN teacher_batches b USING (batch_id) WHERE b.project = ? AND b.status = 'submitted'",
                           [project])

    def batch_requests(self, batch_id: str) -> list[dict]:
        return self.query("SELECT * FROM teacher_batch_requests WHERE batch_id = ?", [batch_id])

    def list_batches(self, project: str) -> list[dict]:
        return self.query("SELECT * FROM teacher_batches WHERE project = ? ORDER BY submitted_at DESC", [project])
