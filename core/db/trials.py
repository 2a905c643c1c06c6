"""Prompt trials: a template tried on a few rows before labeling everything. Owns the tables
`prompt_trials` and `prompt_trial_rows`; reads a try's calls from `teacher_calls`, its raw
answers from `teacher_cache` and its rows from `items`. The rules (which rows, pricing,
parsing, comparing) are in core/label/trials.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.db.connection import run_with_rows
from core.kernel.errors import NotFound

TRIAL_ROW_COLUMNS = ["row_id", "request_hash", "label", "rationale", "flag", "correct", "output_tokens",
                     "billed_usd", "error"]
_TOTALS = ("answered", "parsed", "correct", "with_gold", "output_tokens", "cost_usd", "cache_hits")


class TrialTables:
    def create_trial(self, project: str, *, template_version: int, mode: str, output_format: str, model: str,
                     row_ids: Sequence[str], job_id: str | None) -> int:
        with self.transaction() as con:
            return con.execute(
                "INSERT INTO prompt_trials(project, template_version, mode, output_format, model, job_id, row_ids, "
                "rows) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                [project, template_version, mode, output_format, model, job_id, json.dumps(list(row_ids)),
                 len(row_ids)]).fetchone()[0]

    def finish_trial(self, trial_id: int, status: str, totals: dict, rows: list[dict],
                     version: dict | None = None) -> None:
        """A try's results, in one transaction: its rows and its totals. `version` (template_version,
        mode, output_format) corrects what was recorded at the start when the job ran another one."""
        fields = {k: totals[k] for k in _TOTALS} | (version or {})
        with self.transaction() as con:
            con.execute("DELETE FROM prompt_trial_rows WHERE trial_id = ?", [trial_id])
            run_with_rows(
                con, "trial_rows", rows, TRIAL_ROW_COLUMNS,
                f"INSERT INTO prompt_trial_rows(trial_id, {', '.join(TRIAL_ROW_COLUMNS)}) "
                f"SELECT ?, {', '.join(TRIAL_ROW_COLUMNS)} FROM trial_rows", [trial_id])
            # keys from the fixed lists above, never from user input
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE prompt_trials SET status = ?, finished_at = current_timestamp, {sets} WHERE id = ?",
                        [status, *fields.values(), trial_id])

    def get_trial(self, trial_id: int) -> dict:
        rows = self.query("SELECT * FROM prompt_trials WHERE id = ?", [trial_id])
        if not rows:
            raise NotFound(f"No prompt trial {trial_id}.")
        return _decoded(rows[0])

    def list_trials(self, project: str) -> list[dict]:
        """A project's tries, newest first."""
        return [_decoded(r) for r in self.query("SELECT * FROM prompt_trials WHERE project = ? ORDER BY id DESC",
                                                [project])]

    def open_trials(self, project: str) -> list[dict]:
        return [_decoded(r) for r in self.query(
            "SELECT * FROM prompt_trials WHERE project = ? AND status = 'running' ORDER BY id", [project])]

    def trial_calls(self, job_id: str) -> list[dict]:
        """The last call of each row a job asked (a resumed job may have asked a row twice), with
        its raw answer and what the job billed for the row over all its attempts."""
        return self.query(
            "SELECT c.row_id, c.request_hash, c.error_type, c.error_message, c.output_tokens, c.cached, "
            "c.template_version, sum(c.billed_usd) OVER (PARTITION BY c.row_id) AS billed_usd, t.response "
            "FROM teacher_calls c LEFT JOIN teacher_cache t ON t.request_hash = c.request_hash "
            "WHERE c.job_id = ? QUALIFY row_number() OVER (PARTITION BY c.row_id ORDER BY c.id DESC) = 1",
            [job_id])

    def trial_row_results(self, trial_id: int) -> list[dict]:
        """A try's rows, in row order: the row's inputs, choices and gold, the parsed answer, and
        the raw answer (the cached response, JSON text) it was parsed from."""
        rows = self.query(
            "SELECT r.*, i.inputs, i.choices, i.gold, t.response FROM prompt_trial_rows r "
            "JOIN prompt_trials p ON p.id = r.trial_id "
            "LEFT JOIN items i ON i.project = p.project AND i.row_id = r.row_id "
            "LEFT JOIN teacher_cache t ON t.request_hash = r.request_hash "
            "WHERE r.trial_id = ? ORDER BY i.idx, r.row_id", [trial_id])
        for r in rows:
            r["inputs"] = json.loads(r["inputs"]) if r["inputs"] else {}
            r["choices"] = json.loads(r["choices"]) if r["choices"] else None
        return rows


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["row_ids"] = json.loads(row["row_ids"]) if row.get("row_ids") else []
    return row
