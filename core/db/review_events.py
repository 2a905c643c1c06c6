"""Review measurement: every reviewer decision as an event (`review_events`), blind spot-check
rows, and the automatic rationale checks (`rationale_checks`). The rules and statistics built
on these rows live in core.review.stats; this module only reads and writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.db.connection import run_with_rows

# A reviewer's current decision on a row: their latest event that counts as a judgment of the
# row and was not undone. Blind labels are measurements, not decisions (the reveal follows).
CURRENT_DECISIONS = """
SELECT * FROM review_events
WHERE project = ? AND NOT undone AND kind IN ('review', 'bulk', 'adjudicate')
QUALIFY row_number() OVER (PARTITION BY row_id, reviewer ORDER BY id DESC) = 1
"""

# Rows two reviewers labeled differently (their current reviews) with no adjudication since.
DISAGREEMENTS = """
SELECT row_id FROM (
    SELECT row_id, reviewer, label, kind, id FROM review_events e
    WHERE e.project = {project} AND NOT e.undone AND e.kind IN ('review', 'adjudicate')
    QUALIFY row_number() OVER (PARTITION BY row_id, reviewer ORDER BY id DESC) = 1) c
GROUP BY row_id
HAVING count(DISTINCT coalesce(label, '')) FILTER (WHERE kind = 'review') > 1
   AND coalesce(max(id) FILTER (WHERE kind = 'adjudicate'), -1) < max(id) FILTER (WHERE kind = 'review')
"""


def record_event(con, project: str, row_id: str, reviewer: str, *, kind: str, shown: str, label: str | None,
                 teacher_label: str | None, verdict: str | None = None, reason: str | None = None,
                 comment: str | None = None, opened_at=None, change_id: str | None = None) -> None:
    """One decision, inside the caller's transaction (the same one that changes the row)."""
    con.execute(
        "INSERT INTO review_events(project, row_id, reviewer, kind, shown, label, teacher_label, verdict, reason, "
        "comment, label_changed, opened_at, change_id, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [project, row_id, reviewer, kind, shown, label, teacher_label, verdict, reason, comment,
         (label or "") != (teacher_label or ""), opened_at, change_id, utc_now()])


def utc_now() -> datetime:
    """Naive UTC, the convention of every review timestamp (the page's opened_at included)."""
    return datetime.now(UTC).replace(tzinfo=None)


class ReviewEventTables:
    def current_decisions(self, project: str) -> list[dict]:
        """Each reviewer's current decision on each row (undone ones excluded)."""
        return self.query(CURRENT_DECISIONS + " ORDER BY id", [project])

    def row_decisions(self, project: str, row_id: str) -> list[dict]:
        """The current decisions on one row, one per reviewer, oldest first."""
        return self.query(f"SELECT * FROM ({CURRENT_DECISIONS}) WHERE row_id = ? ORDER BY id", [project, row_id])

    def decisions_for(self, project: str, row_ids: list[str]) -> dict[str, list[dict]]:
        """The current decisions on these rows: row id -> decisions, oldest first."""
        out: dict[str, list[dict]] = {}
        if row_ids:
            for d in self.query(f"SELECT * FROM ({CURRENT_DECISIONS}) WHERE list_contains(?, row_id) ORDER BY id",
                                [project, list(row_ids)]):
                out.setdefault(d["row_id"], []).append(d)
        return out

    def blind_labeled(self, project: str, row_ids: list[str], reviewer: str) -> set[str]:
        """Which of these rows the reviewer has labeled blind."""
        if not row_ids or not reviewer:
            return set()
        rows = self.query("SELECT DISTINCT row_id FROM review_events WHERE project = ? AND reviewer = ? "
                          "AND kind = 'blind' AND list_contains(?, row_id)", [project, reviewer, list(row_ids)])
        return {r["row_id"] for r in rows}

    def review_events(self, project: str) -> list[dict]:
        """Every decision and blind label, undone ones included (time spent still counts)."""
        return self.query("SELECT * FROM review_events WHERE project = ? ORDER BY id", [project])

    def blind_label(self, project: str, row_id: str, reviewer: str) -> str | None:
        """The label this reviewer gave the row blind, or None when they have not yet."""
        rows = self.query("SELECT label FROM review_events WHERE project = ? AND row_id = ? AND reviewer = ? "
                          "AND kind = 'blind' ORDER BY id DESC LIMIT 1", [project, row_id, reviewer])
        return rows[0]["label"] if rows else None

    def is_blind_row(self, project: str, row_id: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM spot_checks WHERE project = ? AND row_id = ? AND blind",
                                [project, row_id]))

    def blind_rows(self, project: str, row_ids: list[str]) -> set[str]:
        if not row_ids:
            return set()
        rows = self.query("SELECT DISTINCT row_id FROM spot_checks WHERE project = ? AND blind "
                          "AND list_contains(?, row_id)", [project, list(row_ids)])
        return {r["row_id"] for r in rows}

    def save_blind_label(self, project: str, row_id: str, reviewer: str, label: str, opened_at=None) -> None:
        """The expert's own label for a blind row, recorded before the teacher's answer is shown.
        It changes nothing on the row: it is a measurement (the verdict that follows is the decision)."""
        with self.transaction() as con:
            teacher = con.execute("SELECT teacher_label FROM items WHERE project = ? AND row_id = ?",
                                  [project, row_id]).fetchone()
            record_event(con, project, row_id, reviewer, kind="blind", shown="none", label=label,
                         teacher_label=teacher[0] if teacher else None, opened_at=opened_at)

    def disagreement_rows(self, project: str) -> list[str]:
        return [r["row_id"] for r in self.query(DISAGREEMENTS.format(project="?"), [project])]

    def billed_calls(self, project: str) -> int:
        """Teacher calls that were billed (live answers), as opposed to cached, recorded or imported ones."""
        return int(self.scalar("SELECT count(*) FROM teacher_calls WHERE project = ? AND billed_usd > 0",
                               [project]) or 0)

    def reviewed_teacher_usd(self, project: str) -> float:
        """Teacher dollars billed for the rows that have a current decision."""
        return float(self.scalar(
            f"SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE project = ? AND row_id IN "
            f"(SELECT row_id FROM ({CURRENT_DECISIONS}))", [project, project]) or 0.0)

    # ---- rationale checks -----------------------------------------------------------------
    def check_inputs(self, project: str) -> list[dict]:
        """The rows to check: every row with a teacher label or a rationale."""
        rows = self.query("SELECT row_id, inputs, choices, coalesce(teacher_label, label) AS label, rationale "
                          "FROM items WHERE project = ? AND (rationale IS NOT NULL OR teacher_label IS NOT NULL) "
                          "ORDER BY idx", [project])
        for r in rows:
            r["inputs"] = json.loads(r["inputs"])
            r["choices"] = json.loads(r["choices"]) if r["choices"] else None
        return rows

    def replace_rationale_checks(self, project: str, results: dict[str, dict], checked: dict[str, Any]) -> int:
        """Store one project's check results (row id -> flags, grounding, detail), replacing the old
        ones in one transaction; `checked` maps row id -> the rationale text that was checked."""
        rows = [{"row_id": rid, "flags": r["flags"], "grounding": r.get("grounding"),
                 "detail": json.dumps(r.get("detail") or {}, ensure_ascii=False), "rationale": checked.get(rid)}
                for rid, r in results.items()]
        with self.transaction() as con:
            con.execute("DELETE FROM rationale_checks WHERE project = ?", [project])
            run_with_rows(con, "checked", rows, ["row_id", "flags", "grounding", "detail", "rationale"],
                          "INSERT INTO rationale_checks(project, row_id, flags, grounding, detail, rationale) "
                          "SELECT ?, row_id, flags, grounding, detail, rationale FROM checked", [project])
        return len(rows)

    def rationale_checks_for(self, project: str, row_id: str) -> dict | None:
        rows = self.query("SELECT flags, grounding, detail, rationale FROM rationale_checks "
                          "WHERE project = ? AND row_id = ?", [project, row_id])
        if not rows:
            return None
        row = rows[0]
        row["detail"] = json.loads(row["detail"] or "{}")
        return row

    def rationale_checks_stale(self, project: str) -> int:
        """Rows whose rationale changed (or appeared) since they were last checked."""
        return int(self.scalar(
            "SELECT count(*) FROM items i LEFT JOIN rationale_checks c ON c.project = i.project AND c.row_id = i.row_id "
            "WHERE i.project = ? AND (i.rationale IS NOT NULL OR i.teacher_label IS NOT NULL) "
            "AND (c.row_id IS NULL OR coalesce(c.rationale, '') <> coalesce(i.rationale, ''))", [project]) or 0)

    def flag_outcomes(self, project: str) -> list[dict]:
        """Per reviewed row: its check flags and whether the expert took the teacher's answer as is."""
        return self.query(
            "SELECT i.row_id, coalesce(c.flags, []) AS flags, i.verdict, "
            "i.verdict IN ('correct', 'reject_rationale', 'flag') AS rejected "
            "FROM items i LEFT JOIN rationale_checks c ON c.project = i.project AND c.row_id = i.row_id "
            "WHERE i.project = ? AND i.reviewed", [project])

    # ---- corrections, for prompt fixes --------------------------------------------------
    def corrections(self, project: str) -> list[dict]:
        """Current decisions that did not take the teacher's answer as is, with the row's input,
        the teacher's rationale and the row's rationale-check flags; newest first."""
        rows = self.query(
            f"SELECT d.row_id, d.reviewer, d.label, d.teacher_label, d.verdict, d.reason, d.comment, d.label_changed, "
            f"i.inputs, i.teacher_rationale, c.flags FROM ({CURRENT_DECISIONS}) d "
            "JOIN items i ON i.project = d.project AND i.row_id = d.row_id "
            "LEFT JOIN rationale_checks c ON c.project = d.project AND c.row_id = d.row_id "
            "WHERE d.verdict <> 'accept' OR d.label_changed ORDER BY d.id DESC", [project])
        for r in rows:
            r["inputs"] = json.loads(r["inputs"])
        return rows

    def corrected_without_rationale(self, project: str) -> list[dict]:
        """Rows whose label a reviewer set and that hold no rationale (the teacher's argued for
        another label and was cleared): the rows a teacher explanation would give one to."""
        return self._items("WHERE project = ? AND reviewed AND label IS NOT NULL AND label_source = 'reviewer' "
                           "AND coalesce(rationale, '') = '' ORDER BY idx", [project])

    def unreviewed_answered(self, project: str, teacher_labels: list[str] | None = None,
                            check: str | None = None) -> list[str]:
        """Unreviewed answered rows (in import order) whose teacher label is one of
        `teacher_labels`, or whose rationale check flagged `check`: the rows a prompt fix re-asks.
        Read as a column (a million rows: tenths of a second, not seconds as dicts)."""
        sql = ("SELECT i.row_id FROM items i WHERE i.project = ? AND NOT i.reviewed "
               "AND i.status IN ('labeled', 'flagged')")
        params: list = [project]
        if teacher_labels is not None:
            sql += " AND list_contains(?, i.teacher_label)"
            params.append(list(teacher_labels))
        if check is not None:
            sql += (" AND i.row_id IN (SELECT c.row_id FROM rationale_checks c WHERE c.project = ? "
                    "AND list_contains(c.flags, ?))")
            params += [project, check]
        with self.connect() as con:
            return con.execute(sql + " ORDER BY i.idx", params).fetchnumpy()["row_id"].tolist()
