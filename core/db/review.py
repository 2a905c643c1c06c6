"""The review workspace: queue filters and sorts, reviewer judgments, undo, bulk actions,
spot checks and agreement. Owns the tables `audit_log`, `reviews` and `spot_checks`, and
writes the review columns of `items`."""

from __future__ import annotations

import uuid
from typing import Any

from core.errors import AppError, NotFound
from core.tasks import get_task

# Review filters: name -> SQL predicate, or a function of the project's task type giving one
# (label comparisons follow the task's own equality rule). Predicates are fixed strings;
# values are parameters.
REVIEW_FILTERS = {
    "all": "TRUE",
    "unreviewed": "NOT reviewed AND status IN ('labeled', 'flagged')",
    "parse errors": "flag IS NOT NULL",
    "API errors": "status = 'error'",
    "flagged or error": "(status IN ('flagged', 'error') OR flag IS NOT NULL)",
    "teacher ≠ gold": lambda task: ("gold IS NOT NULL AND teacher_label IS NOT NULL AND NOT "
                                    + task.sql_equal("teacher_label", "gold")),
    "disagrees with gold": lambda task: "gold IS NOT NULL AND label IS NOT NULL AND NOT " + task.sql_equal("label", "gold"),
    "flagged by a reviewer": "verdict = 'flag'",
    "rationale rejected": "verdict = 'reject_rationale'",
    "spot check": "row_id IN (SELECT row_id FROM spot_checks s WHERE s.project = items.project)",
    "low teacher confidence (< 0.7)": "teacher_confidence IS NOT NULL AND teacher_confidence < 0.7",
    "teacher ≠ student": (
        "row_id IN (SELECT p.row_id FROM student_predictions p WHERE p.project = items.project "
        "AND NOT p.agrees_teacher AND p.job_id = (SELECT arg_max(q.job_id, q.created_at) "
        "FROM student_predictions q WHERE q.project = items.project))"),
    "unlabeled": "status = 'unlabeled'",
    "reviewed": "reviewed",
}

REVIEW_SORTS = {
    "import order": "idx",
    "longest rationale": "length(coalesce(rationale, '')) DESC, idx",
    "shortest rationale": "length(coalesce(rationale, '')), idx",
    "recently changed": "updated_at DESC NULLS LAST, idx",
    "lowest teacher confidence": "teacher_confidence ASC NULLS LAST, idx",
}


class ReviewTables:
    def _review_where(self, project: str, filters, search: str = "") -> tuple[str, list[Any]]:
        names = [filters] if isinstance(filters, str) else list(filters or ["all"])
        unknown = [n for n in names if n not in REVIEW_FILTERS]
        if unknown:
            raise AppError(f"Unknown filter {unknown[0]!r}; choose from {', '.join(REVIEW_FILTERS)}.")
        task = None
        if any(callable(REVIEW_FILTERS[n]) for n in names):
            task = get_task(self.get_project(project).task)
        predicates = [REVIEW_FILTERS[n](task) if callable(REVIEW_FILTERS[n]) else REVIEW_FILTERS[n] for n in names]
        where = "WHERE project = ? AND " + " AND ".join(f"({p})" for p in predicates)
        params: list[Any] = [project]
        if search:
            where += " AND (inputs ILIKE ? OR coalesce(rationale, '') ILIKE ? OR row_id = ?)"
            params += [f"%{search}%", f"%{search}%", search]
        return where, params

    def review_count(self, project: str, filter_name="all", search: str = "") -> int:
        where, params = self._review_where(project, filter_name, search)
        return self.scalar(f"SELECT count(*) FROM items {where}", params)

    def review_page(
        self, project: str, filter_name="all", search: str = "", page: int = 0, page_size: int = 25,
        sort: str = "import order", total: int | None = None,
    ) -> tuple[list[dict], int]:
        """One page of the review queue plus the number of rows matching. `filter_name` may be
        one filter or a list of them (combined with AND). Pass `total` when it is already known."""
        where, params = self._review_where(project, filter_name, search)
        order = REVIEW_SORTS.get(sort, "idx")
        if total is None:
            total = self.scalar(f"SELECT count(*) FROM items {where}", params)
        rows = self._items(where + f" ORDER BY {order} LIMIT ? OFFSET ?", params + [page_size, page * page_size])
        return rows, total

    def neighbour(self, project: str, row_id: str, filters, search: str = "", step: int = 1,
                  sort: str = "import order") -> str | None:
        """The next (step=1) or previous (step=-1) row in the queue, for focus-view navigation."""
        where, params = self._review_where(project, filters, search)
        order = REVIEW_SORTS.get(sort, "idx")
        rows = self.query(
            f"SELECT row_id, lead(row_id) OVER w AS nxt, lag(row_id) OVER w AS prv FROM items {where} "
            f"WINDOW w AS (ORDER BY {order})", params)
        for r in rows:
            if r["row_id"] == row_id:
                return r["nxt"] if step > 0 else r["prv"]
        return None

    def save_review(self, project: str, row_id: str, reviewer: str, label: str | None, rationale: str | None, *,
                    verdict: str, expected_version: int, reason: str | None = None,
                    comment: str | None = None) -> dict:
        """Apply a reviewer's judgment (decided by core.review) with one audit record per changed
        field, and mark the row reviewed even when nothing changed (an accept). Raises AppError
        when the row's version is no longer `expected_version`."""
        change_id = uuid.uuid4().hex[:12]
        with self.transaction() as con:
            row = con.execute(
                "SELECT label, rationale, version, reviewed, verdict FROM items WHERE project = ? AND row_id = ?",
                [project, row_id]).fetchone()
            if row is None:
                raise NotFound(f"No row {row_id!r} in project {project!r}.")
            before_label, before_rationale, version, was_reviewed, before_verdict = row
            if expected_version != version:
                raise AppError(
                    f"Conflict: row {row_id} was changed by someone else since you opened it "
                    f"(version {version}, you had {expected_version}). Reload it and redo your edit."
                )
            changes = []
            if label is not None and label != before_label:
                changes.append(("label", before_label, label))
            if rationale is not None and rationale != before_rationale:
                changes.append(("rationale", before_rationale, rationale))
            if verdict != before_verdict:
                changes.append(("verdict", before_verdict, verdict))
            if not was_reviewed:
                changes.append(("reviewed", "false", "true"))
            note = " · ".join(x for x in (reason, comment) if x) or None
            for field, before, after in changes:
                con.execute(
                    "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id) "
                    "VALUES (?,?,?,?,?,?,?,?)", [project, row_id, reviewer, field, before, after, note, change_id])
            con.execute(
                "UPDATE items SET label = coalesce(?, label), rationale = coalesce(?, rationale), "
                "label_source = CASE WHEN ? THEN 'reviewer' ELSE label_source END, verdict = ?, verdict_reason = ?, "
                "reviewed = TRUE, reviewer = ?, version = version + 1, updated_at = current_timestamp "
                "WHERE project = ? AND row_id = ?",
                [label, rationale, any(c[0] == "label" for c in changes), verdict, reason, reviewer, project, row_id],
            )
            con.execute(
                "INSERT OR REPLACE INTO reviews(project, row_id, reviewer, label, verdict, reason, comment) "
                "VALUES (?,?,?, coalesce(?, ?), ?,?,?)",
                [project, row_id, reviewer, label, before_label, verdict, reason, comment])
            return {"row_id": row_id, "changes": len(changes), "version": version + 1, "change_id": change_id}

    def undo_last(self, project: str, reviewer: str) -> dict:
        """Revert the reviewer's most recent change that is not undone yet. The undo is itself
        an audit record; nothing is deleted."""
        with self.transaction() as con:
            last = con.execute(
                "SELECT change_id FROM audit_log WHERE project = ? AND reviewer = ? AND undone_by IS NULL "
                "AND change_id IS NOT NULL AND coalesce(reason, '') <> 'undo' ORDER BY id DESC LIMIT 1",
                [project, reviewer]).fetchone()
            if last is None:
                raise AppError(f"{reviewer} has no change left to undo.")
            entries = con.execute(
                "SELECT row_id, field, before, after FROM audit_log WHERE change_id = ? ORDER BY id DESC",
                [last[0]]).fetchall()
            undo_id = uuid.uuid4().hex[:12]
            rows = set()
            for row_id, field, before, after in entries:
                rows.add(row_id)
                if field in ("label", "rationale", "verdict"):
                    # field names come from our own audit records, checked against this fixed list
                    con.execute(f"UPDATE items SET {field} = ? WHERE project = ? AND row_id = ?", [before, project, row_id])
                    if field == "label":
                        con.execute("UPDATE items SET label_source = CASE WHEN label = teacher_label THEN 'teacher' "
                                    "ELSE label_source END WHERE project = ? AND row_id = ?", [project, row_id])
                elif field == "reviewed":
                    con.execute("UPDATE items SET reviewed = ? WHERE project = ? AND row_id = ?",
                                [before == "true", project, row_id])
                con.execute(
                    "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id) "
                    "VALUES (?,?,?,?,?,?, 'undo', ?)", [project, row_id, reviewer, field, after, before, undo_id])
            con.execute("UPDATE audit_log SET undone_by = ? WHERE change_id = ?", [undo_id, last[0]])
            con.execute("UPDATE items SET version = version + 1, updated_at = current_timestamp "
                        "WHERE project = ? AND list_contains(?, row_id)", [project, sorted(rows)])
            return {"undone": last[0], "rows": len(rows), "fields": len(entries)}

    def bulk_review(self, project: str, filters, reviewer: str, action: str, label: str | None = None,
                    reason: str | None = None, search: str = "") -> int:
        """Apply a bulk action (checked by core.review) to every row matching the filters, in one
        transaction, with an audit record per row under one change id (so one undo reverts it)."""
        where, params = self._review_where(project, filters, search)
        change_id = uuid.uuid4().hex[:12]
        field, after = {"accept": ("verdict", "accept"), "set_label": ("label", label), "flag": ("verdict", "flag")}[action]
        with self.transaction() as con:
            con.execute(f"CREATE TEMP TABLE bulk AS SELECT row_id, label, verdict, reviewed FROM items {where}", params)
            n = con.execute("SELECT count(*) FROM bulk").fetchone()[0]
            con.execute(
                f"INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id) "
                f"SELECT ?, row_id, ?, ?, {field}, ?, ?, ? FROM bulk",
                [project, reviewer, field, after, f"bulk {action}" + (f": {reason}" if reason else ""), change_id])
            con.execute(
                "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id) "
                "SELECT ?, row_id, ?, 'reviewed', 'false', 'true', ?, ? FROM bulk WHERE NOT reviewed",
                [project, reviewer, f"bulk {action}", change_id])
            sets = {"accept": "verdict = 'accept'",
                    "set_label": "label = ?, label_source = 'reviewer', verdict = 'correct'",
                    "flag": "verdict = 'flag', verdict_reason = ?"}[action]
            extra = [label] if action == "set_label" else [reason] if action == "flag" else []
            con.execute(
                f"UPDATE items SET {sets}, reviewed = TRUE, reviewer = ?, version = version + 1, "
                "updated_at = current_timestamp WHERE project = ? AND row_id IN (SELECT row_id FROM bulk)",
                extra + [reviewer, project])
            con.execute("DROP TABLE bulk")
            return n

    def create_spot_check(self, project: str, n: int, stratified: bool = True, seed: int = 0,
                          plan: str = "default") -> int:
        """Choose n labeled rows to spot-check (replacing the plan's previous set)."""
        with self.transaction() as con:
            con.execute("DELETE FROM spot_checks WHERE project = ? AND plan = ?", [project, plan])
            if stratified:
                con.execute(
                    "INSERT INTO spot_checks SELECT ?, ?, row_id FROM (SELECT row_id, row_number() OVER "
                    "(PARTITION BY teacher_label ORDER BY hash(row_id || ?)) AS rank, count(*) OVER "
                    "(PARTITION BY teacher_label) AS size, count(*) OVER () AS total FROM items "
                    "WHERE project = ? AND status IN ('labeled', 'flagged')) "
                    "WHERE rank <= greatest(1, round(? * size / total))", [project, plan, str(seed), project, n])
            else:
                con.execute(
                    "INSERT INTO spot_checks SELECT ?, ?, row_id FROM items WHERE project = ? "
                    "AND status IN ('labeled', 'flagged') ORDER BY hash(row_id || ?) LIMIT ?",
                    [project, plan, project, str(seed), n])
            return con.execute("SELECT count(*) FROM spot_checks WHERE project = ? AND plan = ?",
                               [project, plan]).fetchone()[0]

    def spot_check_outcomes(self, project: str, plan: str = "default") -> tuple[int, list[dict]]:
        total = self.scalar("SELECT count(*) FROM spot_checks WHERE project = ? AND plan = ?", [project, plan])
        rows = self.query(
            "SELECT i.teacher_label, coalesce(i.label, '') <> coalesce(i.teacher_label, '') AS label_error, "
            "i.verdict IN ('reject_rationale') OR (i.verdict = 'flag' AND i.verdict_reason IN "
            "('unfaithful rationale', 'right label, wrong reason')) AS rationale_error "
            "FROM spot_checks s JOIN items i ON i.project = s.project AND i.row_id = s.row_id "
            "WHERE s.project = ? AND s.plan = ? AND i.reviewed", [project, plan])
        return total, rows

    def agreement_counts(self, project: str) -> dict:
        """Contingency counts (label a, label b, rows) for kappa, grouped in SQL so that no
        review rows are loaded: reviewer vs reviewer (double-reviewed rows), reviewer vs teacher."""
        between = self.query(
            "SELECT a.label AS a, b.label AS b, count(*) AS n FROM reviews a JOIN reviews b ON a.project = b.project "
            "AND a.row_id = b.row_id AND a.reviewer < b.reviewer WHERE a.project = ? GROUP BY ALL", [project])
        teacher = self.query(
            "SELECT r.label AS a, i.teacher_label AS b, count(*) AS n FROM reviews r JOIN items i "
            "ON i.project = r.project AND i.row_id = r.row_id "
            "WHERE r.project = ? AND i.teacher_label IS NOT NULL GROUP BY ALL", [project])
        return {"reviewers": [(r["a"], r["b"], r["n"]) for r in between],
                "teacher": [(r["a"], r["b"], r["n"]) for r in teacher]}

    def audit_trail(self, project: str, row_id: str | None = None, limit: int = 100) -> list[dict]:
        if row_id is None:
            return self.query(
                "SELECT * FROM audit_log WHERE project = ? ORDER BY id DESC LIMIT ?", [project, limit]
            )
        return self.query(
            "SELECT * FROM audit_log WHERE project = ? AND row_id = ? ORDER BY id DESC LIMIT ?",
            [project, row_id, limit],
        )
