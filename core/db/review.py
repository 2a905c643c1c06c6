"""The review workspace: queue filters and sorts, reviewer judgments, undo, bulk actions,
spot checks and agreement. Owns the tables `audit_log` and `spot_checks`, writes the review
columns of `items`, and records each decision in `review_events` (core.db.review_events)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from core.db.connection import run_with_rows
from core.db.review_events import (
    CURRENT_DECISIONS,
    DISAGREEMENTS,
    record_event,
    utc_now,
)
from core.kernel.errors import AppError, NotFound
from core.kernel.tasks import get_task

# Rows of a blind spot-check plan: search, sorts and bulk actions must not reveal or decide them
# through the teacher's answer.
BLIND = "row_id IN (SELECT b.row_id FROM spot_checks b WHERE b.project = {project} AND b.blind)"

# Review filters: name -> SQL predicate, or a function of the project's task type giving one
# (label comparisons follow the task's own equality rule). Predicates are fixed strings;
# values are parameters: {project} stands for the project's (a subquery tied to the row's own
# project would be correlated, 250 ms over a million rows instead of 5).
REVIEW_FILTERS = {
    "all": "TRUE",
    "unreviewed": "NOT reviewed AND status IN ('labeled', 'flagged')",
    "parse errors": "flag IS NOT NULL",
    "API errors": "status = 'error'",
    "flagged or error": "(status IN ('flagged', 'error') OR flag IS NOT NULL)",
    # the teacher's first answer against gold, and the row's label now (a reviewer's correction wins)
    "teacher ≠ gold": lambda task: ("gold IS NOT NULL AND teacher_label IS NOT NULL AND NOT "
                                    + task.sql_equal("teacher_label", "gold")),
    "label after review ≠ gold": lambda task: "gold IS NOT NULL AND label IS NOT NULL AND NOT " + task.sql_equal("label", "gold"),
    "flagged by a reviewer": "verdict = 'flag'",
    "rationale rejected": "verdict = 'reject_rationale'",
    "spot check": "row_id IN (SELECT row_id FROM spot_checks s WHERE s.project = {project})",
    "low teacher confidence (< 0.7)": "teacher_confidence IS NOT NULL AND teacher_confidence < 0.7",
    "teacher ≠ student": (
        "row_id IN (SELECT p.row_id FROM student_predictions p WHERE p.project = {project} "
        "AND NOT p.agrees_teacher AND p.job_id = (SELECT arg_max(q.job_id, q.created_at) "
        "FROM student_predictions q WHERE q.project = {project}))"),
    "unlabeled": "status = 'unlabeled'",
    "reviewed": "reviewed",
    "blind (spot check)": BLIND,
    "reviewers disagree": f"row_id IN ({DISAGREEMENTS})",
    "rationale check flagged": ("row_id IN (SELECT c.row_id FROM rationale_checks c WHERE c.project = {project} "
                                "AND len(c.flags) > 0)"),
}
# One queue per automatic rationale check (core.label.rationale_checks.CHECKS).
RATIONALE_CHECK_FILTERS = ("leakage", "contradiction", "ungrounded", "boilerplate", "length")
for _check in RATIONALE_CHECK_FILTERS:
    REVIEW_FILTERS[f"rationale: {_check}"] = (
        "row_id IN (SELECT c.row_id FROM rationale_checks c WHERE c.project = {project} "
        f"AND list_contains(c.flags, '{_check}'))")

# What the sorts read besides the row: whether it is blind, and its rationale checks. Joined
# (hash joins: ~20 ms over a million rows), not looked up per row: a subquery in the ORDER BY
# cost 250 ms at a million rows. Parameters: the project, twice.
BLIND_JOIN = ("LEFT JOIN (SELECT DISTINCT row_id AS sort_blind FROM spot_checks WHERE project = ? AND blind) sb "
              "ON sb.sort_blind = items.row_id ")
CHECKS_JOIN = ("LEFT JOIN (SELECT row_id AS sort_row, grounding AS sort_grounding, len(flags) AS sort_flags "
               "FROM rationale_checks WHERE project = ?) sc ON sc.sort_row = items.row_id ")


def _sighted(expr: str) -> str:
    """A sort key that leaves blind rows unranked (last, in import order): ordering them by
    their rationale or the teacher's confidence would tell the teacher's answer."""
    return f"CASE WHEN sort_blind IS NOT NULL THEN NULL ELSE {expr} END"


REVIEW_SORTS = {
    "import order": "idx",
    "longest rationale": f"{_sighted('length(coalesce(rationale, %s))' % repr(''))} DESC NULLS LAST, idx",
    "shortest rationale": f"{_sighted('length(coalesce(rationale, %s))' % repr(''))} ASC NULLS LAST, idx",
    "recently changed": "updated_at DESC NULLS LAST, idx",
    "lowest teacher confidence": f"{_sighted('teacher_confidence')} ASC NULLS LAST, idx",
    "least grounded rationale": f"{_sighted('sort_grounding')} ASC NULLS LAST, idx",
    "most rationale check flags": f"{_sighted('sort_flags')} DESC NULLS LAST, idx",
}


def _sort_sql(project: str, sort: str) -> tuple[str, list[Any], str]:
    """(joins, their parameters, ORDER BY expression) of a sort."""
    order = REVIEW_SORTS.get(sort, "idx")
    joins = [j for j, used in ((BLIND_JOIN, "sort_blind" in order),
                               (CHECKS_JOIN, "sort_grounding" in order or "sort_flags" in order)) if used]
    return "".join(joins), [project] * len(joins), order


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
        if search:
            # a blind row is found by its input or id, never by the rationale it is blind to
            where += f" AND (inputs ILIKE ? OR (coalesce(rationale, '') ILIKE ? AND NOT {BLIND}) OR row_id = ?)"
        # every {project} is one more parameter, taken in the order the placeholders appear
        explicit = iter([project] + ([f"%{search}%", f"%{search}%", search] if search else []))
        params: list[Any] = [project if m.group() == "{project}" else next(explicit)
                             for m in re.finditer(r"\?|\{project\}", where)]
        return where.replace("{project}", "?"), params

    def review_count(self, project: str, filter_name="all", search: str = "") -> int:
        where, params = self._review_where(project, filter_name, search)
        return self.scalar(f"SELECT count(*) FROM items {where}", params)

    def review_ids(self, project: str, filters="all", search: str = "") -> dict[str, int]:
        """Every row of a queue as row id -> version, in import order: what the page counts and a
        bulk confirmation then applies to (the versions tell which rows changed in between).
        Fetched as columns: about 35 ms for 100,000 rows, against 70 ms row by row."""
        where, params = self._review_where(project, filters, search)
        with self.connect() as con:
            cols = con.execute(f"SELECT row_id, version FROM items {where} ORDER BY idx", params).fetchnumpy()
        return dict(zip(cols["row_id"].tolist(), cols["version"].tolist()))

    def review_page(
        self, project: str, filter_name="all", search: str = "", page: int = 0, page_size: int = 25,
        sort: str = "import order", total: int | None = None,
    ) -> tuple[list[dict], int]:
        """One page of the review queue plus the number of rows matching. `filter_name` may be
        one filter or a list of them (combined with AND). Pass `total` when it is already known."""
        where, params = self._review_where(project, filter_name, search)
        joins, join_params, order = _sort_sql(project, sort)
        if total is None:
            total = self.scalar(f"SELECT count(*) FROM items {where}", params)
        if not joins:
            return self._items(where + f" ORDER BY {order} LIMIT ? OFFSET ?", params + [page_size, page * page_size]), total
        # the page's ids through the joins first, then its rows: carrying every column through
        # the joins of a million rows costs 3x
        ids = [r["row_id"] for r in self.query(f"SELECT row_id FROM items {joins}{where} ORDER BY {order} LIMIT ? OFFSET ?",
                                               join_params + params + [page_size, page * page_size])]
        by_id = {r["row_id"]: r for r in self.get_items(project, ids)}
        return [by_id[i] for i in ids if i in by_id], total

    def neighbour(self, project: str, row_id: str, filters, search: str = "", step: int = 1,
                  sort: str = "import order") -> str | None:
        """The next (step=1) or previous (step=-1) row in the queue, for focus-view navigation."""
        where, params = self._review_where(project, filters, search)
        joins, join_params, order = _sort_sql(project, sort)
        rows = self.query(
            f"SELECT row_id, lead(row_id) OVER w AS nxt, lag(row_id) OVER w AS prv FROM items {joins}{where} "
            f"WINDOW w AS (ORDER BY {order})", join_params + params)
        for r in rows:
            if r["row_id"] == row_id:
                return r["nxt"] if step > 0 else r["prv"]
        return None

    def save_review(self, project: str, row_id: str, reviewer: str, label: str | None, rationale: str | None, *,
                    verdict: str, expected_version: int, reason: str | None = None,
                    comment: str | None = None, kind: str = "review", shown: str = "teacher",
                    opened_at=None) -> dict:
        """Apply a reviewer's judgment (decided by core.review.rules) with one audit record per changed
        field, and mark the row reviewed even when nothing changed (an accept). Raises AppError
        when the row's version is no longer `expected_version`."""
        change_id = uuid.uuid4().hex[:12]
        with self.transaction() as con:
            row = con.execute(
                "SELECT label, rationale, version, reviewed, verdict, teacher_label, reviewer FROM items "
                "WHERE project = ? AND row_id = ?", [project, row_id]).fetchone()
            if row is None:
                raise NotFound(f"No row {row_id!r} in project {project!r}.")
            before_label, before_rationale, version, was_reviewed, before_verdict, teacher_label, before_reviewer = row
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
            elif before_reviewer != reviewer:  # a second reviewer's decision: undoable like any other
                changes.append(("reviewer", before_reviewer, reviewer))
            note = " · ".join(x for x in (reason, comment) if x) or None
            for field, before, after in changes:  # row_version: the version this save leaves the row at
                con.execute(
                    "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, "
                    "row_version) VALUES (?,?,?,?,?,?,?,?,?)",
                    [project, row_id, reviewer, field, before, after, note, change_id, version + 1])
            con.execute(
                "UPDATE items SET label = coalesce(?, label), rationale = coalesce(?, rationale), "
                "label_source = CASE WHEN ? THEN 'reviewer' ELSE label_source END, verdict = ?, verdict_reason = ?, "
                "reviewed = TRUE, reviewer = ?, version = version + 1, updated_at = current_timestamp "
                "WHERE project = ? AND row_id = ?",
                [label, rationale, any(c[0] == "label" for c in changes), verdict, reason, reviewer, project, row_id],
            )
            record_event(con, project, row_id, reviewer, kind=kind, shown=shown,
                         label=before_label if label is None else label, teacher_label=teacher_label,
                         verdict=verdict, reason=reason, comment=comment, opened_at=opened_at,
                         change_id=change_id if changes else None)
            return {"row_id": row_id, "changes": len(changes), "version": version + 1, "change_id": change_id}

    def undo_last(self, project: str, reviewer: str) -> dict:
        """Revert the reviewer's most recent change that is not undone yet. The undo is itself
        an audit record; nothing is deleted. Refused, changing nothing, when any row of that
        change was changed since (see `_changed_since`): the undo would wipe out that change."""
        with self.transaction() as con:
            last = con.execute(
                "SELECT change_id FROM audit_log WHERE project = ? AND reviewer = ? AND undone_by IS NULL "
                "AND change_id IS NOT NULL AND coalesce(reason, '') <> 'undo' ORDER BY id DESC LIMIT 1",
                [project, reviewer]).fetchone()
            if last is None:
                raise AppError(f"{reviewer} has no change left to undo.")
            stale = _changed_since(con, project, last[0])
            if stale:
                raise AppError(_undo_refusal(reviewer, stale))
            entries = con.execute(
                "SELECT row_id, field, before, after FROM audit_log WHERE change_id = ? ORDER BY id DESC",
                [last[0]]).fetchall()
            undo_id = uuid.uuid4().hex[:12]
            rows = set()
            for row_id, field, before, after in entries:
                rows.add(row_id)
                if field in ("label", "rationale", "verdict", "reviewer"):
                    # field names come from our own audit records, checked against this fixed list
                    con.execute(f"UPDATE items SET {field} = ? WHERE project = ? AND row_id = ?", [before, project, row_id])
                    if field == "label":
                        con.execute("UPDATE items SET label_source = CASE WHEN label = teacher_label THEN 'teacher' "
                                    "ELSE label_source END WHERE project = ? AND row_id = ?", [project, row_id])
                elif field == "reviewed":
                    con.execute("UPDATE items SET reviewed = ? WHERE project = ? AND row_id = ?",
                                [before == "true", project, row_id])
                # the version is bumped once per row below, so this undo leaves the row at version + 1
                con.execute(
                    "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, "
                    "row_version) SELECT ?,?,?,?,?,?, 'undo', ?, version + 1 FROM items WHERE project = ? AND row_id = ?",
                    [project, row_id, reviewer, field, after, before, undo_id, project, row_id])
            con.execute("UPDATE audit_log SET undone_by = ? WHERE change_id = ?", [undo_id, last[0]])
            # the change's decisions, and re-saves of the same rows by the same reviewer since that
            # changed nothing (no audit record of their own): the row is back as it was before both
            con.execute(
                "UPDATE review_events SET undone = TRUE WHERE project = ? AND (change_id = ? OR (change_id IS NULL "
                "AND reviewer = ? AND list_contains(?, row_id) AND id > (SELECT coalesce(min(id), 0) "
                "FROM review_events WHERE project = ? AND change_id = ?)))",
                [project, last[0], reviewer, sorted(rows), project, last[0]])
            con.execute("UPDATE items SET version = version + 1, updated_at = current_timestamp "
                        "WHERE project = ? AND list_contains(?, row_id)", [project, sorted(rows)])
            return {"undone": last[0], "rows": len(rows), "row_ids": sorted(rows), "fields": len(entries),
                    "field_names": sorted({field for _, field, _, _ in entries})}

    def bulk_review(self, project: str, filters, reviewer: str, action: str, label: str | None = None,
                    reason: str | None = None, search: str = "",
                    row_ids: Mapping[str, int] | None = None) -> dict:
        """Apply a bulk action (checked by core.review.rules) in one transaction, with an audit record
        per row under one change id (so one undo reverts it).

        Without `row_ids`: every row matching the filters now. With `row_ids` (row id -> the
        version the user saw when confirming): exactly those rows, whatever the queue holds now;
        one whose version moved since (someone else's edit, a new teacher answer) is skipped and
        reported, never overwritten. Returns applied (rows changed), skipped (row ids), change_id."""
        where, params = self._review_where(project, filters, search) if row_ids is None else ("", [])
        change_id = uuid.uuid4().hex[:12]
        field, after = {"accept": ("verdict", "accept"), "set_label": ("label", label), "flag": ("verdict", "flag")}[action]
        with self.transaction() as con:
            if row_ids is None:
                con.execute("CREATE TEMP TABLE bulk AS SELECT row_id, label, verdict, reviewed, version "
                            f"FROM items {where}", params)
            else:
                _bulk_rows_unchanged(con, project, row_ids)
            blind = {r[0] for r in con.execute(
                "DELETE FROM bulk WHERE row_id IN (SELECT row_id FROM spot_checks WHERE project = ? AND blind) "
                "RETURNING row_id", [project]).fetchall()}  # blind rows are judged one by one
            applied = {r[0] for r in con.execute("SELECT row_id FROM bulk").fetchall()}
            con.execute(
                f"INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, row_version) "
                f"SELECT ?, row_id, ?, ?, {field}, ?, ?, ?, version + 1 FROM bulk",
                [project, reviewer, field, after, f"bulk {action}" + (f": {reason}" if reason else ""), change_id])
            con.execute(
                "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, row_version) "
                "SELECT ?, row_id, ?, 'reviewed', 'false', 'true', ?, ?, version + 1 FROM bulk WHERE NOT reviewed",
                [project, reviewer, f"bulk {action}", change_id])
            if action == "set_label":  # the teacher's rationale argues for its own label: not kept with another
                stale = ("i.project = ? AND i.row_id IN (SELECT row_id FROM bulk) AND i.teacher_rationale IS NOT NULL "
                         "AND i.rationale = i.teacher_rationale AND coalesce(i.teacher_label, '') <> ?")
                con.execute(
                    "INSERT INTO audit_log(project, row_id, reviewer, field, before, after, reason, change_id, "
                    f"row_version) SELECT i.project, i.row_id, ?, 'rationale', i.rationale, '', ?, ?, i.version + 1 "
                    f"FROM items i WHERE {stale}",
                    [reviewer, f"bulk {action}: the teacher's rationale argues for another label", change_id, project,
                     label])
                con.execute(f"UPDATE items i SET rationale = '' WHERE {stale}", [project, label])
            sets = {"accept": "verdict = 'accept'",
                    "set_label": "label = ?, label_source = 'reviewer', verdict = 'correct'",
                    "flag": "verdict = 'flag', verdict_reason = ?"}[action]
            extra = [label] if action == "set_label" else [reason] if action == "flag" else []
            con.execute(
                f"UPDATE items SET {sets}, reviewed = TRUE, reviewer = ?, version = version + 1, "
                "updated_at = current_timestamp WHERE project = ? AND row_id IN (SELECT row_id FROM bulk)",
                extra + [reviewer, project])
            con.execute(
                "INSERT INTO review_events(project, row_id, reviewer, kind, shown, label, teacher_label, verdict, "
                "reason, label_changed, change_id, decided_at) SELECT i.project, i.row_id, ?, 'bulk', 'teacher', "
                "i.label, i.teacher_label, i.verdict, ?, coalesce(i.label, '') <> coalesce(i.teacher_label, ''), ?, ? "
                "FROM items i WHERE i.project = ? AND i.row_id IN (SELECT row_id FROM bulk)",
                [reviewer, reason, change_id, utc_now(), project])
            con.execute("DROP TABLE bulk")
            skipped = [r for r in (row_ids or {}) if r not in applied and r not in blind]
            return {"applied": len(applied), "skipped": skipped, "blind_skipped": sorted(blind),
                    "change_id": change_id}

    def create_spot_check(self, project: str, n: int, stratified: bool = True, seed: int = 0,
                          plan: str = "default", blind_share: float = 0.0) -> int:
        """Choose n labeled rows to spot-check (replacing the plan's previous set). A seeded share
        `blind_share` of them is blind: reviewers label those before seeing the teacher's answer."""
        with self.transaction() as con:
            con.execute("DELETE FROM spot_checks WHERE project = ? AND plan = ?", [project, plan])
            if stratified:
                con.execute(
                    "INSERT INTO spot_checks(project, plan, row_id) SELECT ?, ?, row_id FROM (SELECT row_id, "
                    "row_number() OVER (PARTITION BY teacher_label ORDER BY hash(row_id || ?)) AS rank, count(*) OVER "
                    "(PARTITION BY teacher_label) AS size, count(*) OVER () AS total FROM items "
                    "WHERE project = ? AND status IN ('labeled', 'flagged')) "
                    "WHERE rank <= greatest(1, round(? * size / total))", [project, plan, str(seed), project, n])
            else:
                con.execute(
                    "INSERT INTO spot_checks(project, plan, row_id) SELECT ?, ?, row_id FROM items WHERE project = ? "
                    "AND status IN ('labeled', 'flagged') ORDER BY hash(row_id || ?) LIMIT ?",
                    [project, plan, project, str(seed), n])
            made = con.execute("SELECT count(*) FROM spot_checks WHERE project = ? AND plan = ?",
                               [project, plan]).fetchone()[0]
            if blind_share > 0:  # round(share * n) unreviewed rows in a second seeded order: a row
                # someone already judged with the teacher's answer shown can no longer be blind
                con.execute(
                    "UPDATE spot_checks SET blind = TRUE WHERE project = ? AND plan = ? AND row_id IN (SELECT s.row_id "
                    "FROM spot_checks s JOIN items i ON i.project = s.project AND i.row_id = s.row_id "
                    "WHERE s.project = ? AND s.plan = ? AND NOT i.reviewed ORDER BY hash(s.row_id || ? || 'blind') "
                    "LIMIT ?)", [project, plan, project, plan, str(seed), max(1, round(blind_share * made))])
            return made

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
        """Contingency counts (label a, label b, rows) for kappa, grouped in SQL. Reviewer vs
        reviewer: current reviews (undone ones excluded) on the same row, where the later
        reviewer's form did not show the earlier one's label (independent pairs only).
        Reviewer vs teacher: every current review."""
        current = f"({CURRENT_DECISIONS})"
        between = self.query(
            f"SELECT a.label AS a, b.label AS b, count(*) AS n FROM {current} a JOIN {current} b "
            "ON a.row_id = b.row_id AND a.id < b.id WHERE a.kind = 'review' AND b.kind = 'review' "
            "AND b.shown IN ('none', 'teacher') GROUP BY ALL", [project, project])
        teacher = self.query(
            f"SELECT label AS a, teacher_label AS b, count(*) AS n FROM {current} "
            "WHERE teacher_label IS NOT NULL AND kind <> 'adjudicate' GROUP BY ALL", [project])
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


def _bulk_rows_unchanged(con, project: str, row_ids: Mapping[str, int]) -> None:
    """The temp table `bulk`: the confirmed rows still at the version the user saw."""
    con.execute("CREATE TEMP TABLE bulk AS SELECT row_id, label, verdict, reviewed, version FROM items WHERE FALSE")
    run_with_rows(con, "seen", [{"row_id": r, "version": v} for r, v in row_ids.items()], ["row_id", "version"],
                  "INSERT INTO bulk SELECT i.row_id, i.label, i.verdict, i.reviewed, i.version FROM items i "
                  "JOIN seen s ON s.row_id = i.row_id AND s.version = i.version WHERE i.project = ?", [project])


# Which rows of a change were changed after it, and by whom. Every write bumps a row's version
# by one: a save, one row of a bulk action, an undo, a teacher answer. A later change that was
# itself undone (with its undo) leaves the row as this change left it, two versions on; anything
# else is a change that the undo would wipe out. `after` is NULL for records older than
# migration 8: for them only the audit trail is checked.
_CHANGED_SINCE = """
WITH mine AS (
    SELECT row_id, max(id) AS last_id, max(row_version) AS after
    FROM audit_log WHERE project = ? AND change_id = ? GROUP BY row_id),
later AS (
    SELECT a.row_id, a.change_id, any_value(a.reviewer) AS reviewer,
           bool_or(coalesce(a.reason, '') = 'undo') AS is_undo, any_value(a.undone_by) AS undone_by
    FROM audit_log a JOIN mine m ON a.row_id = m.row_id AND a.id > m.last_id
    WHERE a.project = ? GROUP BY a.row_id, a.change_id),
judged AS (
    SELECT *, NOT is_undo AND undone_by IS NOT NULL AS reverted,
           CASE WHEN is_undo THEN NOT EXISTS (SELECT 1 FROM later d WHERE d.row_id = later.row_id
                                              AND d.undone_by = later.change_id)
                ELSE undone_by IS NULL END AS live
    FROM later),
per_row AS (
    SELECT m.row_id, i.version - m.after AS moved,
           count(j.change_id) FILTER (WHERE j.reverted) AS reverted,
           count(j.change_id) FILTER (WHERE j.live) AS live,
           coalesce(list(DISTINCT j.reviewer ORDER BY j.reviewer) FILTER (WHERE j.live), []) AS reviewers
    FROM mine m JOIN items i ON i.project = ? AND i.row_id = m.row_id
    LEFT JOIN judged j ON j.row_id = m.row_id
    GROUP BY m.row_id, i.version, m.after)
SELECT row_id, reviewers, coalesce(moved - 2 * reverted - live <> 0, FALSE) AS unaudited
FROM per_row WHERE live > 0 OR moved <> 2 * reverted ORDER BY row_id
"""


def _changed_since(con, project: str, change_id: str) -> list[tuple[str, list[str], bool]]:
    """(row id, reviewers whose later changes are in effect, whether writes without an audit
    record moved the version too) for each row of the change that was changed after it."""
    return con.execute(_CHANGED_SINCE, [project, change_id, project, project]).fetchall()


def _undo_refusal(reviewer: str, stale: list[tuple[str, list[str], bool]], shown: int = 5) -> str:
    def who(reviewers: list[str], unaudited: bool) -> str:
        # writes without an audit record: a teacher answer, or a save that changed no field
        parts = ([", ".join(reviewers)] if reviewers else []) + (
            ["a new teacher answer or a save that changed no field"] if unaudited else [])
        return " and ".join(parts)

    listed = "; ".join(f"row {row_id} by {who(names, unaudited)}" for row_id, names, unaudited in stale[:shown])
    more = f"; and {len(stale) - shown} more row(s)" if len(stale) > shown else ""
    return (f"Cannot undo {reviewer}'s last change: it would overwrite later changes ({listed}{more}). "
            "Nothing was undone; open those rows and edit them directly.")
