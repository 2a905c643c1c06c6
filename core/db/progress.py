"""Aggregate counts across tables that tell how far a project has come and whether anything
changed: the workflow stage's counts, the project's active jobs, a forecast's change counts.
Read-only; the rules that interpret them live above the db (core.workflow, core.prompt.forecast)."""

from __future__ import annotations

_STAGE_COUNTS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'labeled') AS labeled,
       count(*) FILTER (WHERE status = 'flagged') AS flagged,
       count(*) FILTER (WHERE status = 'error') AS errors,
       count(*) FILTER (WHERE reviewed) AS reviewed,
       (SELECT count(*) FROM spot_checks s WHERE s.project = ?) AS spot_rows,
       (SELECT count(DISTINCT s.row_id) FROM spot_checks s JOIN items i ON i.project = s.project AND i.row_id = s.row_id
        WHERE s.project = ? AND i.reviewed) AS spot_reviewed,
       (SELECT count(*) FROM jobs j WHERE j.project = ? AND j.kind = 'train' AND j.status = 'completed') AS students
FROM items WHERE project = ?
"""

_JOBS_WITH_STATUS = """
SELECT j.id, j.kind, j.status, j.done, j.total, j.pid, j.proc_start_ticks, j.proc_cmdline_sha, j.parent_id,
       (SELECT max(m.step) FROM run_metrics m WHERE m.job_id = j.id) AS step
FROM jobs j WHERE j.project = ? AND list_contains(?, j.status) ORDER BY j.created_at
"""

_CHANGE_COUNTS = """
SELECT (SELECT count(*) FROM items WHERE project = ?) AS n,
       (SELECT coalesce(sum(version), 0) FROM items WHERE project = ?) AS versions,
       (SELECT count(*) FROM teacher_cache) AS cached,
       (SELECT count(*) FROM token_counts) AS counted,
       (SELECT count(*) FROM teacher_calls WHERE project = ?) AS calls
"""


class ProgressQueries:
    def stage_counts(self, project: str) -> dict:
        """Rows (total, labeled, flagged, errors, reviewed), spot-check rows and completed
        training runs of a project, in one query."""
        return self.query(_STAGE_COUNTS, [project] * 4)[0]

    def jobs_with_status(self, project: str, statuses: list[str]) -> list[dict]:
        """The project's jobs in one of `statuses`, oldest first, each with its last metric step."""
        return self.query(_JOBS_WITH_STATUS, [project, list(statuses)])

    def change_counts(self, project: str) -> dict:
        """Counts that change whenever a project's rows, the response cache, the token counts or
        the project's calls do (every write bumps a row's version)."""
        return self.query(_CHANGE_COUNTS, [project] * 3)[0]
