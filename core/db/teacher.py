"""Teacher answers, their cost and provenance. Owns the tables `teacher_cache`,
`teacher_calls`, `token_counts` and `answer_rereads`, and writes the teacher columns of `items`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.db.connection import run_with_rows
from core.db.ledger import close_reservations
from core.kernel.tasks import get_task

CACHE_COLUMNS = ["request_hash", "model", "request", "response", "input_tokens", "output_tokens", "cost_usd", "source"]

CALL_COLUMNS = ["row_id", "job_id", "request_hash", "template_hash", "model", "cached", "billed_usd",
                "input_tokens", "output_tokens", "error_type", "error_message", "attempts", "batch_id",
                "template_version"]

RESULT_COLUMNS = ["row_id", "status", "label", "rationale", "flag", "request_hash", "source", "confidence"]

REREAD_COLUMNS = ["row_id", "answer_hash", "reread_hash", "model", "label"]


@dataclass
class TeacherWrites:
    """Rows to write for a batch of teacher answers (see Store.write_teacher)."""

    cache: list[dict] = field(default_factory=list)    # CACHE_COLUMNS; request/response as JSON text
    calls: list[dict] = field(default_factory=list)    # CALL_COLUMNS
    results: list[dict] = field(default_factory=list)  # RESULT_COLUMNS
    errors: list[dict] = field(default_factory=list)   # row_id, error
    collected_batches: list[str] = field(default_factory=list)  # batch ids whose results these are
    settled: list[tuple[int, float]] = field(default_factory=list)  # (reservation id, real cost)
    released: list[int] = field(default_factory=list)  # reservations of calls that failed unbilled
    rereads: list[dict] = field(default_factory=list)   # REREAD_COLUMNS: answers read again by a second model
    explanations: list[dict] = field(default_factory=list)  # row_id, label, rationale: a reviewer's label explained


_PARSE_BY_VERSION = """
WITH versions AS (SELECT request_hash, max(template_version) AS version FROM teacher_calls
                  WHERE project = ? AND request_hash IS NOT NULL GROUP BY request_hash)
SELECT v.version AS template_version, count(*) AS answers,
       count(*) FILTER (WHERE i.status = 'labeled') AS parsed,
       count(*) FILTER (WHERE i.status = 'flagged') AS unread
FROM items i JOIN versions v ON v.request_hash = i.request_hash
WHERE i.project = ? AND i.status IN ('labeled', 'flagged')
GROUP BY v.version ORDER BY v.version NULLS FIRST
"""

_UNREAD_ANSWERS = """
WITH versions AS (SELECT request_hash, max(template_version) AS version FROM teacher_calls
                  WHERE project = ? AND request_hash IS NOT NULL GROUP BY request_hash)
SELECT i.row_id, i.choices, i.gold, i.error, c.response, v.version AS template_version
FROM items i LEFT JOIN teacher_cache c ON c.request_hash = i.request_hash
LEFT JOIN versions v ON v.request_hash = i.request_hash
WHERE i.project = ? AND i.status IN ('flagged', 'error')
ORDER BY hash(i.row_id) LIMIT ?
"""


class TeacherTables:
    def cached_responses(self, hashes: Sequence[str]) -> dict[str, dict]:
        if not hashes:
            return {}
        with self.connect() as con:
            # a registered frame, not executemany: 20,000 hashes in ~0.05 s instead of 2.4 s
            con.register("wanted", pd.DataFrame({"h": list(set(hashes))}))
            try:
                rows = con.execute("SELECT request_hash, response, source, cost_usd FROM teacher_cache "
                                   "JOIN wanted ON request_hash = h").fetchall()
            finally:
                con.unregister("wanted")
        return {h: {"response": json.loads(resp), "source": src, "cost_usd": cost} for h, resp, src, cost in rows}

    def cached_keys(self, hashes: Sequence[str]) -> set[str]:
        """Which of these requests the cache answers (without reading the answers): what a
        forecast needs to know, for every due row."""
        if not hashes:
            return set()
        with self.connect() as con:
            con.register("wanted", pd.DataFrame({"h": list(set(hashes))}))
            try:
                return {h for (h,) in con.execute(
                    "SELECT request_hash FROM teacher_cache JOIN wanted ON request_hash = h").fetchall()}
            finally:
                con.unregister("wanted")

    def write_teacher(self, project: str, writes: TeacherWrites) -> None:
        """Write one batch of teacher results in a single transaction, with set-based SQL
        (one statement per table, not one per row)."""
        with self.transaction() as con:
            run_with_rows(
                con, "cache_rows", writes.cache, CACHE_COLUMNS,
                f"INSERT INTO teacher_cache({', '.join(CACHE_COLUMNS)}) SELECT {', '.join(CACHE_COLUMNS)} "
                "FROM (SELECT DISTINCT ON (request_hash) * FROM cache_rows) ON CONFLICT DO NOTHING")
            run_with_rows(
                con, "call_rows", writes.calls, CALL_COLUMNS,
                f"INSERT INTO teacher_calls(project, {', '.join(CALL_COLUMNS)}) "
                f"SELECT ?, {', '.join(CALL_COLUMNS)} FROM call_rows", [project])
            # A reviewed row keeps the reviewer's label; the teacher columns are still updated.
            # Every row written gets a new version, so a review form opened on the previous
            # answer is refused as stale instead of being saved over this one.
            run_with_rows(
                con, "result_rows", writes.results, RESULT_COLUMNS,
                "UPDATE items SET status = r.status, teacher_label = r.label, teacher_rationale = r.rationale, "
                "flag = r.flag, error = NULL, request_hash = r.request_hash, teacher_confidence = r.confidence, "
                "label = CASE WHEN items.reviewed THEN items.label ELSE r.label END, "
                "rationale = CASE WHEN items.reviewed THEN items.rationale ELSE r.rationale END, "
                "label_source = CASE WHEN items.reviewed THEN items.label_source ELSE r.source END, "
                "version = items.version + 1, updated_at = current_timestamp "
                "FROM result_rows r WHERE items.project = ? AND items.row_id = r.row_id", [project])
            run_with_rows(
                con, "reread_rows", writes.rereads, REREAD_COLUMNS,
                f"INSERT OR REPLACE INTO answer_rereads(project, {', '.join(REREAD_COLUMNS)}) "
                f"SELECT ?, {', '.join(REREAD_COLUMNS)} FROM reread_rows", [project])
            # the teacher's explanation of a reviewer's label becomes the row's rationale only while
            # the row still holds that label with no rationale (a reviewer's edit meanwhile wins)
            fits = ("i.project = ? AND i.row_id = e.row_id AND i.reviewed AND i.label = e.label "
                    "AND coalesce(i.rationale, '') = ''")
            run_with_rows(
                con, "explained_rows", writes.explanations, ["row_id", "label", "rationale"],
                "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, row_version) "
                "SELECT i.project, i.row_id, 'teacher', 'rationale', i.rationale, e.rationale, "
                "'the teacher explained the corrected label', 'explain-' || i.row_id || '-' || (i.version + 1), "
                f"i.version + 1 FROM items i, explained_rows e WHERE {fits}", [project])
            run_with_rows(
                con, "explained_rows", writes.explanations, ["row_id", "label", "rationale"],
                "UPDATE items i SET rationale = e.rationale, version = i.version + 1, updated_at = current_timestamp "
                f"FROM explained_rows e WHERE {fits}", [project])
            run_with_rows(
                con, "error_rows", writes.errors, ["row_id", "error"],
                "UPDATE items SET status = 'error', error = r.error, version = items.version + 1, "
                "updated_at = current_timestamp "
                "FROM error_rows r WHERE items.project = ? AND items.row_id = r.row_id "
                "AND items.status IN ('unlabeled', 'error')", [project])
            for batch_id in writes.collected_batches:
                # in the same transaction as the results: a batch is collected exactly once
                con.execute("UPDATE teacher_batches SET status = 'collected', collected_at = current_timestamp "
                            "WHERE batch_id = ?", [batch_id]).fetchall()
            # the reservations close in the transaction that writes their real cost: the cap never
            # sees a call as neither reserved nor spent
            close_reservations(con, [i for i, _ in writes.settled], "settled", [c for _, c in writes.settled])
            close_reservations(con, writes.released, "released")

    def spend(self, project: str) -> float:
        return self.scalar("SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE project = ?", [project])

    def save_token_counts(self, model: str, counts: list[tuple[str, int, int]]) -> None:
        """(request_hash, counted input tokens, offline estimate) from count_tokens. Nothing to
        save (every sampled request was counted before) is not an error: executemany refuses
        an empty list."""
        if not counts:
            return
        with self.transaction() as con:
            con.executemany("INSERT INTO token_counts(request_hash, model, input_tokens, offline_tokens) "
                            "VALUES (?,?,?,?) ON CONFLICT DO NOTHING", [[h, model, n, o] for h, n, o in counts])

    def token_counts(self, hashes: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not hashes:
            return {}
        rows = self.query("SELECT request_hash, input_tokens, offline_tokens FROM token_counts "
                          "WHERE list_contains(?, request_hash)", [list(hashes)])
        return {r["request_hash"]: (r["input_tokens"], r["offline_tokens"]) for r in rows}

    def observed_usage(self, project: str, template_version: int | None = None, limit: int = 1000) -> list[dict]:
        """Billed calls with their usage and request (for calibrating the estimator): a fixed
        sample of at most `limit`, so a large labeled project stays cheap to forecast."""
        sql = ("SELECT c.row_id, c.input_tokens, c.output_tokens, c.attempts, c.batch_id, t.request, i.status "
               "FROM teacher_calls c JOIN teacher_cache t USING (request_hash) "
               "JOIN items i ON i.project = c.project AND i.row_id = c.row_id "
               "WHERE c.project = ? AND NOT c.cached AND c.error_type IS NULL AND t.source IN ('live', 'batch')")
        params: list[Any] = [project]
        if template_version is not None:
            sql += " AND c.template_version = ?"
            params.append(template_version)
        return self.query(sql + " ORDER BY hash(c.id) LIMIT ?", params + [limit])

    def call_outcomes(self, project: str) -> dict:
        return self.query(
            "SELECT count(*) FILTER (WHERE error_type IS NULL AND NOT cached) AS ok, "
            "count(*) FILTER (WHERE error_type IS NOT NULL) AS failed, "
            "coalesce(sum(attempts - 1) FILTER (WHERE attempts > 1), 0) AS retries "
            "FROM teacher_calls WHERE project = ?", [project])[0]

    def answer_usage(self, project: str) -> dict:
        """Mean input and output tokens of the answers the project's rows hold (cached, recorded
        or billed alike), and how many: the price of an answer when nothing was billed."""
        return self.query(
            "SELECT count(*) AS answers, avg(t.input_tokens) AS input_tokens, avg(t.output_tokens) AS output_tokens "
            "FROM items i JOIN teacher_cache t USING (request_hash) WHERE i.project = ? "
            "AND t.input_tokens IS NOT NULL AND t.output_tokens IS NOT NULL", [project])[0]

    def job_spend(self, job_id: str) -> float:
        """Dollars billed by a job over all its runs (a resumed job keeps its total)."""
        return self.scalar("SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE job_id = ?", [job_id])

    def rereads(self, project: str) -> dict[str, dict]:
        """The project's re-read answers by row: {row_id: {answer_hash, label, model}}."""
        rows = self.query("SELECT row_id, answer_hash, label, model FROM answer_rereads WHERE project = ?", [project])
        return {r["row_id"]: r for r in rows}

    def parse_rates_by_version(self, project: str) -> list[dict]:
        """Stored answers per template version that produced them (None: imported): answers,
        parsed (read to a label) and unread."""
        return self.query(_PARSE_BY_VERSION, [project, project])

    def unread_answers(self, project: str, limit: int) -> list[dict]:
        """Up to `limit` unread rows (flagged, or a failed call), a stable spread over the
        project: row id, choices, gold, the stored error, the raw response when there is one, and
        the template version that asked for it (None: imported, or never answered)."""
        rows = self.query(_UNREAD_ANSWERS, [project, project, limit])
        for r in rows:
            r["choices"] = json.loads(r["choices"]) if r["choices"] else None
            r["response"] = json.loads(r["response"]) if r["response"] else None
        return rows

    def teacher_stats(self, project: str) -> dict:
        row = self.query(
            "SELECT count(*) AS calls, count(*) FILTER (WHERE NOT cached AND error_type IS NULL) AS billed_calls, "
            "count(*) FILTER (WHERE cached) AS cache_hits, count(*) FILTER (WHERE error_type IS NOT NULL) AS errors, "
            "coalesce(sum(billed_usd), 0) AS spend_usd, avg(output_tokens) FILTER (WHERE error_type IS NULL) AS mean_output_tokens "
            "FROM teacher_calls WHERE project = ?",
            [project],
        )[0]
        row["teacher_accuracy"] = self.teacher_accuracy(project)
        return row

    def teacher_accuracy(self, project: str) -> float | None:
        """Share of gold-labeled rows the teacher got right, computed in DuckDB with the task's
        own equality rule (the same one core.kernel.tasks applies in Python)."""
        same = get_task(self.get_project(project).task).sql_equal("teacher_label", "gold")
        return self.scalar(
            f"SELECT avg(CASE WHEN {same} THEN 1.0 ELSE 0.0 END) FROM items "
            "WHERE project = ? AND gold IS NOT NULL AND status IN ('labeled', 'flagged')",
            [project],
        )

    def recent_errors(self, project: str, limit: int = 20) -> list[dict]:
        return self.query(
            "SELECT row_id, error_type, error_message, attempts, created_at FROM teacher_calls "
            "WHERE project = ? AND error_type IS NOT NULL ORDER BY id DESC LIMIT ?",
            [project, limit],
        )

    def last_call_for_row(self, project: str, row_id: str) -> dict | None:
        rows = self.query(
            "SELECT c.*, t.response, t.request, t.source FROM teacher_calls c "
            "LEFT JOIN teacher_cache t USING (request_hash) WHERE c.project = ? AND c.row_id = ? ORDER BY c.id DESC LIMIT 1",
            [project, row_id],
        )
        return rows[0] if rows else None

    def teacher_provenance(self, project: str) -> dict:
        """Which teacher models and template versions produced the project's answers, at what cost."""
        calls = self.query(
            """SELECT model, template_version, count(*) AS calls, count(*) FILTER (WHERE cached) AS cached,
                      count(*) FILTER (WHERE error_type IS NOT NULL) AS errors, sum(billed_usd) AS billed_usd
               FROM teacher_calls WHERE project = ? GROUP BY ALL ORDER BY calls DESC""", [project])
        answers = self.query(
            """SELECT count(*) AS rows, coalesce(sum(t.cost_usd), 0) AS answer_cost_usd,
                      coalesce(avg(coalesce(t.cost_usd, 0)), 0) AS cost_per_row_usd,
                      any_value(t.source) AS source
               FROM items i JOIN teacher_cache t ON t.request_hash = i.request_hash
               WHERE i.project = ? AND i.teacher_label IS NOT NULL""", [project])[0]
        return {"calls": calls, **answers}
