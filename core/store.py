"""The one module that owns the DuckDB database: connection, schema, migrations, queries.

DuckDB lets only one *process* open a database file at a time. The app, the CLI and
background jobs (labeling, training) are separate processes, so nobody keeps the
file open: every operation opens a short-lived connection, runs inside a
transaction, and closes it. A process that finds the file locked retries with
backoff for up to `busy_timeout_s`. All SQL is parameterised.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from core.errors import AppError, DataImportError, NotFound, StoreBusy

_PROCESS_LOCK = threading.RLock()  # see Store.connect

DEFAULT_DB_ENV = "DISTILL_DB"
DEFAULT_DB_PATH = "workspace/distill.duckdb"

# Numbered migrations; each runs once, in order, inside one transaction.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE projects (
            name          VARCHAR PRIMARY KEY,
            task          VARCHAR NOT NULL,      -- classification | multiple-choice | nli | numeric
            input_fields  VARCHAR NOT NULL,      -- JSON list of field names
            label_set     VARCHAR,               -- JSON list, for classification and nli
            template      VARCHAR,               -- current prompt template
            model         VARCHAR,               -- teacher model
            max_tokens    INTEGER DEFAULT 200,
            demo_teacher  BOOLEAN DEFAULT FALSE, -- responses come from a recorded demo teacher
            created_at    TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE items (
            project           VARCHAR NOT NULL,
            row_id            VARCHAR NOT NULL,
            idx               INTEGER NOT NULL,  -- import order, used to align external teacher outputs
            split             VARCHAR NOT NULL,
            inputs            VARCHAR NOT NULL,  -- JSON object field -> text
            choices           VARCHAR,           -- JSON list, multiple-choice only
            gold              VARCHAR,
            status            VARCHAR NOT NULL DEFAULT 'unlabeled', -- unlabeled|labeled|flagged|error
            teacher_label     VARCHAR,
            teacher_rationale VARCHAR,
            flag              VARCHAR,           -- parse flag: unparseable|ambiguous|truncated
            error             VARCHAR,           -- last per-row API error
            request_hash      VARCHAR,
            label             VARCHAR,           -- current label: teacher's, or the reviewer's correction
            rationale         VARCHAR,
            label_source      VARCHAR,           -- teacher | reviewer | imported
            reviewed          BOOLEAN NOT NULL DEFAULT FALSE,
            reviewer          VARCHAR,
            version           INTEGER NOT NULL DEFAULT 0,  -- bumped on every edit (stale-edit check)
            updated_at        TIMESTAMP,
            PRIMARY KEY (project, row_id)
        );
        CREATE INDEX items_status ON items(project, status);
        CREATE TABLE teacher_cache (
            request_hash  VARCHAR PRIMARY KEY,
            model         VARCHAR NOT NULL,
            request       VARCHAR NOT NULL,  -- JSON body that was (or would be) sent
            response      VARCHAR NOT NULL,  -- JSON Message as returned by the API
            input_tokens  INTEGER,
            output_tokens INTEGER,
            cost_usd      DOUBLE,
            source        VARCHAR NOT NULL,  -- live | recorded-demo | imported
            created_at    TIMESTAMP DEFAULT current_timestamp
        );
        CREATE SEQUENCE teacher_calls_id;
        CREATE TABLE teacher_calls (
            id             BIGINT PRIMARY KEY DEFAULT nextval('teacher_calls_id'),
            project        VARCHAR NOT NULL,
            row_id         VARCHAR NOT NULL,
            job_id         VARCHAR,
            request_hash   VARCHAR,
            template_hash  VARCHAR,
            model          VARCHAR,
            cached         BOOLEAN NOT NULL,  -- served from teacher_cache, not billed
            billed_usd     DOUBLE NOT NULL DEFAULT 0,
            input_tokens   INTEGER,
            output_tokens  INTEGER,
            error_type     VARCHAR,
            error_message  VARCHAR,
            attempts       INTEGER,
            created_at     TIMESTAMP DEFAULT current_timestamp
        );
        CREATE SEQUENCE audit_id;
        CREATE TABLE audit_log (
            id        BIGINT PRIMARY KEY DEFAULT nextval('audit_id'),
            project   VARCHAR NOT NULL,
            row_id    VARCHAR NOT NULL,
            reviewer  VARCHAR NOT NULL,
            changed_at TIMESTAMP DEFAULT current_timestamp,
            field     VARCHAR NOT NULL,
            before    VARCHAR,
            after     VARCHAR,
            reason    VARCHAR
        );
        CREATE TABLE jobs (
            id           VARCHAR PRIMARY KEY,
            project      VARCHAR NOT NULL,
            kind         VARCHAR NOT NULL,   -- label | train
            config       VARCHAR NOT NULL,   -- resolved JSON config
            status       VARCHAR NOT NULL,   -- queued|running|completed|failed|cancelled
            pid          INTEGER,
            done         INTEGER DEFAULT 0,
            total        INTEGER DEFAULT 0,
            cost_usd     DOUBLE DEFAULT 0,
            message      VARCHAR,
            error        VARCHAR,
            out_dir      VARCHAR,
            cancel_requested BOOLEAN DEFAULT FALSE,
            created_at   TIMESTAMP DEFAULT current_timestamp,
            started_at   TIMESTAMP,
            finished_at  TIMESTAMP,
            heartbeat_at TIMESTAMP
        );
        CREATE TABLE run_metrics (
            job_id  VARCHAR NOT NULL,
            step    INTEGER NOT NULL,
            name    VARCHAR NOT NULL,
            value   DOUBLE,
            logged_at TIMESTAMP DEFAULT current_timestamp
        );
        """,
    ),
    (
        2,
        """
        -- Message Batches: a batch id is stored before polling, so a restart resumes it.
        CREATE TABLE teacher_batches (
            batch_id     VARCHAR PRIMARY KEY,
            project      VARCHAR NOT NULL,
            job_id       VARCHAR,
            model        VARCHAR,
            status       VARCHAR NOT NULL,   -- submitted | collected
            requests     INTEGER NOT NULL,
            submitted_at TIMESTAMP DEFAULT current_timestamp,
            collected_at TIMESTAMP
        );
        CREATE TABLE teacher_batch_requests (
            batch_id      VARCHAR NOT NULL,
            custom_id     VARCHAR NOT NULL,
            request_hash  VARCHAR NOT NULL,
            request       VARCHAR NOT NULL,  -- JSON params sent
            row_ids       VARCHAR NOT NULL,  -- JSON list of rows answered by this request
            worst_usd     DOUBLE,            -- budget reserved until the result is in
            PRIMARY KEY (batch_id, custom_id)
        );
        ALTER TABLE teacher_calls ADD COLUMN batch_id VARCHAR;
        ALTER TABLE jobs ADD COLUMN pause_requested BOOLEAN DEFAULT FALSE;
        """,
    ),
    (
        3,
        """
        -- Prompt modes, structured output, versioned templates, project budget, cached token counts.
        ALTER TABLE projects ADD COLUMN mode VARCHAR DEFAULT 'zero-shot';
        ALTER TABLE projects ADD COLUMN output_format VARCHAR DEFAULT 'text';
        ALTER TABLE projects ADD COLUMN shots INTEGER DEFAULT 6;
        ALTER TABLE projects ADD COLUMN demo_rows VARCHAR;      -- JSON list of row ids chosen as demonstrations
        ALTER TABLE projects ADD COLUMN budget_usd DOUBLE;      -- cap on teacher spend for the whole project
        CREATE TABLE prompt_templates (
            project       VARCHAR NOT NULL,
            version       INTEGER NOT NULL,
            template      VARCHAR NOT NULL,
            mode          VARCHAR NOT NULL,
            output_format VARCHAR NOT NULL,
            template_hash VARCHAR NOT NULL,
            created_at    TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (project, version)
        );
        ALTER TABLE teacher_calls ADD COLUMN template_version INTEGER;
        CREATE TABLE token_counts (
            request_hash   VARCHAR PRIMARY KEY,
            model          VARCHAR NOT NULL,
            input_tokens   INTEGER NOT NULL,   -- from the API's count_tokens endpoint
            offline_tokens INTEGER NOT NULL,   -- our offline estimate of the same request
            counted_at     TIMESTAMP DEFAULT current_timestamp
        );
        """,
    ),
    (
        4,
        """
        -- Review workspace: verdicts and reason codes, per-reviewer judgments (double review),
        -- grouped and undoable audit records, spot-check plans.
        ALTER TABLE items ADD COLUMN verdict VARCHAR;        -- accept|correct|reject_rationale|flag
        ALTER TABLE items ADD COLUMN verdict_reason VARCHAR; -- reason code when flagged
        ALTER TABLE audit_log ADD COLUMN change_id VARCHAR;  -- the fields of one save or bulk action
        ALTER TABLE audit_log ADD COLUMN undone_by VARCHAR;  -- change_id of the undo that reverted it
        CREATE TABLE reviews (
            project   VARCHAR NOT NULL,
            row_id    VARCHAR NOT NULL,
            reviewer  VARCHAR NOT NULL,
            label     VARCHAR,
            verdict   VARCHAR,
            reason    VARCHAR,
            comment   VARCHAR,
            reviewed_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (project, row_id, reviewer)
        );
        CREATE TABLE spot_checks (
            project  VARCHAR NOT NULL,
            plan     VARCHAR NOT NULL,
            row_id   VARCHAR NOT NULL,
            PRIMARY KEY (project, plan, row_id)
        );
        """,
    ),
    (
        5,
        """
        -- Training: student predictions on held-out rows (per-example browser, teacher != student
        -- queue), and sweeps (a parent job that runs its child training jobs one after another).
        CREATE TABLE student_predictions (
            job_id     VARCHAR NOT NULL,
            project    VARCHAR NOT NULL,
            row_id     VARCHAR NOT NULL,
            prediction VARCHAR,
            raw        VARCHAR,
            rationale  VARCHAR,   -- the student's generated rationale, when it was asked for one
            gold       VARCHAR,
            teacher    VARCHAR,
            correct    BOOLEAN,   -- prediction equals gold (NULL without gold)
            agrees_teacher BOOLEAN,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (job_id, row_id)
        );
        ALTER TABLE jobs ADD COLUMN parent_id VARCHAR;
        """,
    ),
    (
        6,
        """
        -- The teacher's own confidence in its label, when its (JSON) answer carries one.
        ALTER TABLE items ADD COLUMN teacher_confidence DOUBLE;
        """,
    ),
]

ITEM_COLUMNS = (
    "row_id, idx, split, inputs, choices, gold, status, teacher_label, teacher_rationale, "
    "flag, error, label, rationale, label_source, reviewed, reviewer, version, request_hash, verdict, verdict_reason, "
    "teacher_confidence"
)

# Review filters: name -> SQL predicate. Predicates are fixed strings; values are parameters.
REVIEW_FILTERS = {
    "all": "TRUE",
    "unreviewed": "NOT reviewed AND status IN ('labeled', 'flagged')",
    "parse errors": "flag IS NOT NULL",
    "API errors": "status = 'error'",
    "flagged or error": "(status IN ('flagged', 'error') OR flag IS NOT NULL)",
    "teacher ≠ gold": "gold IS NOT NULL AND teacher_label IS NOT NULL AND lower(trim(teacher_label)) <> lower(trim(gold))",
    "disagrees with gold": "gold IS NOT NULL AND label IS NOT NULL AND lower(trim(label)) <> lower(trim(gold))",
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


CACHE_COLUMNS = ["request_hash", "model", "request", "response", "input_tokens", "output_tokens", "cost_usd", "source"]
CALL_COLUMNS = ["row_id", "job_id", "request_hash", "template_hash", "model", "cached", "billed_usd",
                "input_tokens", "output_tokens", "error_type", "error_message", "attempts", "batch_id",
                "template_version"]
RESULT_COLUMNS = ["row_id", "status", "label", "rationale", "flag", "request_hash", "source", "confidence"]


@dataclass
class TeacherWrites:
    """Rows to write for a batch of teacher answers (see Store.write_teacher)."""

    cache: list[dict] = field(default_factory=list)    # CACHE_COLUMNS; request/response as JSON text
    calls: list[dict] = field(default_factory=list)    # CALL_COLUMNS
    results: list[dict] = field(default_factory=list)  # RESULT_COLUMNS
    errors: list[dict] = field(default_factory=list)   # row_id, error
    collected_batches: list[str] = field(default_factory=list)  # batch ids whose results these are


def _run_with_rows(con, name: str, rows: list[dict], columns: list[str], sql: str,
                   params: Sequence[Any] = ()) -> None:
    """Run one set-based statement over `rows`, visible to the SQL as the view `name`.
    Nothing happens for no rows. The result is fetched so that the next register() works
    (DuckDB refuses it while a result is pending)."""
    if not rows:
        return
    con.register(name, pd.DataFrame(rows, columns=columns))
    try:
        con.execute(sql, list(params)).fetchall()
    finally:
        con.unregister(name)


def default_db_path() -> str:
    return os.environ.get(DEFAULT_DB_ENV, DEFAULT_DB_PATH)


@dataclass
class Project:
    name: str
    task: str
    input_fields: list[str]
    label_set: list[str] | None
    template: str | None
    model: str | None
    max_tokens: int
    demo_teacher: bool
    mode: str = "zero-shot"
    output_format: str = "text"
    shots: int = 6
    demo_rows: list[str] | None = None
    budget_usd: float | None = None


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set" in text or "conflicting" in text)


class Store:
    """Owns one DuckDB file. Cheap to create; connections are opened per operation."""

    def __init__(self, path: str | os.PathLike | None = None, busy_timeout_s: float = 60.0, hold_s: float = 0.0):
        """hold_s > 0 (the app process): keep the database open that long after the last use,
        so the queries of one page rerun share it; other processes (jobs) wait and retry
        meanwhile. 0 (jobs, CLI): open and close per operation."""
        self.path = str(path or default_db_path())
        self.busy_timeout_s = busy_timeout_s
        self.hold_s = hold_s
        self._held: duckdb.DuckDBPyConnection | None = None
        self._last_used = time.monotonic()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._migrated = False
        self.migrate()

    # ---- connections -------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting (with jittered backoff) while another process holds it."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    if _is_lock_error(exc):
                        raise StoreBusy(
                            f"The database {self.path} stayed locked by another process for "
                            f"{self.busy_timeout_s:.0f} s."
                        ) from exc
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # One database operation at a time per process: DuckDB 2.0 intermittently lost its
        # pandas_scan function ("Table Function with name pandas_scan does not exist") when a
        # labeling job's writer thread registered rows while its main thread opened and closed
        # another connection to the same file. Operations are milliseconds; threads queue.
        with _PROCESS_LOCK:
            if self.hold_s <= 0:
                con = self._open()
                try:
                    yield con
                finally:
                    con.close()
                return
            if self._held is None:
                self._held = self._open()
                threading.Thread(target=self._release_when_idle, daemon=True).start()
            con = self._held.cursor()  # a fresh connection per operation, sharing the open database
            try:
                yield con
            finally:
                con.close()
                self._last_used = time.monotonic()

    def _release_when_idle(self) -> None:
        while True:
            time.sleep(self.hold_s / 2)
            with _PROCESS_LOCK:
                if time.monotonic() - self._last_used >= self.hold_s:
                    self._held.close()
                    self._held = None
                    return

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        with self.connect() as con:
            cur = con.execute(sql, list(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.connect() as con:
            row = con.execute(sql, list(params)).fetchone()
            return row[0] if row else None

    def migrate(self) -> int:
        with self.connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            applied = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, sql in MIGRATIONS:
                if version in applied:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations(version) VALUES (?)", [version])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        return max(v for v, _ in MIGRATIONS)

    def schema_version(self) -> int:
        return self.scalar("SELECT max(version) FROM schema_migrations")

    # ---- projects ----------------------------------------------------------------
    def list_projects(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM projects ORDER BY created_at, name")]

    def get_project(self, name: str) -> Project:
        rows = self.query("SELECT * FROM projects WHERE name = ?", [name])
        if not rows:
            raise NotFound(f"No project named {name!r}. Import data first.")
        r = rows[0]
        return Project(
            name=r["name"],
            task=r["task"],
            input_fields=json.loads(r["input_fields"]),
            label_set=json.loads(r["label_set"]) if r["label_set"] else None,
            template=r["template"],
            model=r["model"],
            max_tokens=r["max_tokens"] or 200,
            demo_teacher=bool(r["demo_teacher"]),
            mode=r["mode"] or "zero-shot",
            output_format=r["output_format"] or "text",
            shots=r["shots"] if r["shots"] is not None else 6,
            demo_rows=json.loads(r["demo_rows"]) if r["demo_rows"] else None,
            budget_usd=r["budget_usd"],
        )

    def update_project(self, name: str, **fields: Any) -> None:
        allowed = {"template", "model", "max_tokens", "label_set", "demo_teacher", "mode", "output_format", "shots",
                   "demo_rows", "budget_usd"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        for key in ("label_set", "demo_rows"):
            if key in fields and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        with self.transaction() as con:
            for key, value in fields.items():
                # key is from the fixed allow-list above, never from user input
                con.execute(f"UPDATE projects SET {key} = ? WHERE name = ?", [value, name])
            if "template" in fields or "mode" in fields or "output_format" in fields:
                self._version_template(con, name)

    def _version_template(self, con, name: str) -> int:
        """Record the project's current template as a new version when it changed."""
        from core.prompts import template_hash

        template, mode, fmt = con.execute(
            "SELECT template, mode, output_format FROM projects WHERE name = ?", [name]).fetchone()
        if not template:
            return 0
        key = template_hash(f"{mode}|{fmt}|{template}")
        last = con.execute("SELECT version, template_hash FROM prompt_templates WHERE project = ? "
                           "ORDER BY version DESC LIMIT 1", [name]).fetchone()
        if last and last[1] == key:
            return last[0]
        version = (last[0] if last else 0) + 1
        con.execute("INSERT INTO prompt_templates(project, version, template, mode, output_format, template_hash) "
                    "VALUES (?,?,?,?,?,?)", [name, version, template, mode or "zero-shot", fmt or "text", key])
        return version

    def template_version(self, name: str) -> int:
        with self.transaction() as con:
            return self._version_template(con, name)

    def template_versions(self, name: str) -> list[dict]:
        return self.query("SELECT * FROM prompt_templates WHERE project = ? ORDER BY version DESC", [name])

    def import_items(
        self,
        project: str,
        task: str,
        input_fields: list[str],
        label_set: list[str] | None,
        records: Any,  # pandas DataFrame with the items columns
        template: str,
        model: str,
        replace: bool = False,
    ) -> int:
        """Create or extend a project and insert rows, all in one transaction."""
        with self.transaction() as con:
            existing = con.execute("SELECT task, input_fields FROM projects WHERE name = ?", [project]).fetchone()
            if existing is None:
                con.execute(
                    "INSERT INTO projects(name, task, input_fields, label_set, template, model) VALUES (?,?,?,?,?,?)",
                    [project, task, json.dumps(input_fields), json.dumps(label_set) if label_set else None, template, model],
                )
                start = 0
            else:
                if existing[0] != task:
                    raise DataImportError(
                        f"Project {project!r} is a {existing[0]} project; this import says {task}."
                    )
                if label_set:
                    old = con.execute("SELECT label_set FROM projects WHERE name = ?", [project]).fetchone()[0]
                    merged = sorted(set(json.loads(old) if old else []) | set(label_set))
                    con.execute("UPDATE projects SET label_set = ? WHERE name = ?", [json.dumps(merged), project])
                start = con.execute("SELECT coalesce(max(idx) + 1, 0) FROM items WHERE project = ?", [project]).fetchall()[0][0]
            records = records.copy()
            records["idx"] = range(start, start + len(records))
            con.register("records", records)
            dupes = con.execute(
                "SELECT i.row_id FROM items i JOIN records r ON i.row_id = r.row_id WHERE i.project = ? LIMIT 5",
                [project],
            ).fetchall()
            if dupes:
                raise DataImportError(
                    "These ids already exist in the project: " + ", ".join(str(d[0]) for d in dupes)
                )
            con.execute(
                "INSERT INTO items(project, row_id, idx, split, inputs, choices, gold) "
                "SELECT ?, row_id, idx, split, inputs, choices, gold FROM records",
                [project],
            )
            return len(records)

    def count_items(self, project: str) -> dict:
        rows = self.query(
            "SELECT split, status, count(*) AS n FROM items WHERE project = ? GROUP BY ALL ORDER BY ALL", [project]
        )
        out: dict = {"total": 0, "by_split": {}, "by_status": {}}
        for r in rows:
            out["total"] += r["n"]
            out["by_split"][r["split"]] = out["by_split"].get(r["split"], 0) + r["n"]
            out["by_status"][r["status"]] = out["by_status"].get(r["status"], 0) + r["n"]
        out["with_gold"] = self.scalar("SELECT count(*) FROM items WHERE project = ? AND gold IS NOT NULL", [project])
        out["reviewed"] = self.scalar("SELECT count(*) FROM items WHERE project = ? AND reviewed", [project])
        return out

    def sample_items(self, project: str, n: int, seed: int = 0, unlabeled_only: bool = False) -> list[dict]:
        # Deterministic sample: order by a hash of (seed, row_id).
        status = " AND status IN ('unlabeled', 'error')" if unlabeled_only else ""
        rows = self._items(f"WHERE project = ?{status} ORDER BY hash(row_id || ?) LIMIT ?", [project, str(seed), n])
        if not rows and unlabeled_only:  # everything labeled: estimate from all rows
            return self.sample_items(project, n, seed)
        return rows

    def _items(self, where_sql: str, params: Sequence[Any]) -> list[dict]:
        rows = self.query(f"SELECT {ITEM_COLUMNS} FROM items {where_sql}", params)
        for r in rows:
            r["inputs"] = json.loads(r["inputs"])
            r["choices"] = json.loads(r["choices"]) if r["choices"] else None
        return rows

    def get_item(self, project: str, row_id: str) -> dict:
        rows = self._items("WHERE project = ? AND row_id = ?", [project, row_id])
        if not rows:
            raise NotFound(f"No row {row_id!r} in project {project!r}.")
        return rows[0]

    def items_to_label(self, project: str, limit: int | None = None, row_ids: Sequence[str] | None = None) -> list[dict]:
        sql = "WHERE project = ? AND status IN ('unlabeled', 'error')"
        params: list[Any] = [project]
        if row_ids is not None:
            sql += " AND list_contains(?, row_id)"
            params.append(list(row_ids))
        sql += " ORDER BY idx"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._items(sql, params)

    def demo_candidates(self, project: str, k: int, seed: int = 0) -> list[dict]:
        """k rows with a gold label to use as demonstrations, those with a rationale first."""
        return self._items("WHERE project = ? AND gold IS NOT NULL "
                           "ORDER BY (coalesce(rationale, teacher_rationale) IS NULL), hash(row_id || ?) LIMIT ?",
                           [project, str(seed), k])

    def stratified_sample(self, project: str, n: int, seed: int = 0, unlabeled_only: bool = True) -> list[str]:
        """About n row ids, spread over gold labels in proportion (random when there is no gold)."""
        where = "project = ?" + (" AND status IN ('unlabeled', 'error')" if unlabeled_only else "")
        rows = self.query(
            f"SELECT row_id FROM (SELECT row_id, row_number() OVER (PARTITION BY coalesce(gold, '') "
            f"ORDER BY hash(row_id || ?)) AS rank, count(*) OVER (PARTITION BY coalesce(gold, '')) AS size, "
            f"count(*) OVER () AS total FROM items WHERE {where}) WHERE rank <= greatest(1, round(? * size / total)) "
            "ORDER BY row_id", [str(seed), project, n])
        return [r["row_id"] for r in rows]

    def items_by_order(self, project: str, split: str | None) -> list[dict]:
        if split:
            return self._items("WHERE project = ? AND split = ? ORDER BY idx", [project, split])
        return self._items("WHERE project = ? ORDER BY idx", [project])

    # ---- review ------------------------------------------------------------------
    def _review_where(self, project: str, filters, search: str = "") -> tuple[str, list[Any]]:
        names = [filters] if isinstance(filters, str) else list(filters or ["all"])
        unknown = [n for n in names if n not in REVIEW_FILTERS]
        if unknown:
            raise AppError(f"Unknown filter {unknown[0]!r}; choose from {', '.join(REVIEW_FILTERS)}.")
        where = "WHERE project = ? AND " + " AND ".join(f"({REVIEW_FILTERS[n]})" for n in names)
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

    def save_review(
        self,
        project: str,
        row_id: str,
        reviewer: str,
        label: str | None,
        rationale: str | None,
        expected_version: int | None = None,
        reason: str | None = None,
        verdict: str | None = None,
        comment: str | None = None,
    ) -> dict:
        """Save a reviewer's judgment with one audit record per changed field.

        verdict: accept | correct | reject_rationale | flag (reason = reason code). Marks the
        row reviewed even when nothing changed (an accept). Raises AppError when
        `expected_version` is given and the row was edited since it was read."""
        if not reviewer.strip():
            raise AppError("Enter a reviewer name before saving.")
        if verdict == "flag" and not reason:
            raise AppError("Flagging needs a reason code.")
        change_id = uuid.uuid4().hex[:12]
        with self.transaction() as con:
            row = con.execute(
                "SELECT label, rationale, version, reviewed, verdict FROM items WHERE project = ? AND row_id = ?",
                [project, row_id]).fetchone()
            if row is None:
                raise NotFound(f"No row {row_id!r} in project {project!r}.")
            before_label, before_rationale, version, was_reviewed, before_verdict = row
            if expected_version is not None and expected_version != version:
                raise AppError(
                    f"Conflict: row {row_id} was changed by someone else since you opened it "
                    f"(version {version}, you had {expected_version}). Reload it and redo your edit."
                )
            changes = []
            if label is not None and label != before_label:
                changes.append(("label", before_label, label))
            if rationale is not None and rationale != before_rationale:
                changes.append(("rationale", before_rationale, rationale))
            verdict = verdict or ("correct" if changes else "accept")
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
        """Accept, set the label of, or flag every row matching the filters, in one transaction,
        with an audit record per row under one change id (so one undo reverts it)."""
        if not reviewer.strip():
            raise AppError("Enter a reviewer name before a bulk action.")
        if action not in ("accept", "set_label", "flag"):
            raise AppError(f"Unknown bulk action {action!r}.")
        if action == "set_label" and not label:
            raise AppError("Choose the label to set.")
        if action == "flag" and not reason:
            raise AppError("Flagging needs a reason code.")
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

    # ---- teacher cache and calls -------------------------------------------------
    def cached_responses(self, hashes: Sequence[str]) -> dict[str, dict]:
        if not hashes:
            return {}
        with self.connect() as con:
            con.execute("CREATE TEMP TABLE wanted(h VARCHAR)")
            con.executemany("INSERT INTO wanted VALUES (?)", [[h] for h in set(hashes)])
            rows = con.execute(
                "SELECT request_hash, response, source, cost_usd FROM teacher_cache JOIN wanted ON request_hash = h"
            ).fetchall()
        return {h: {"response": json.loads(resp), "source": src, "cost_usd": cost} for h, resp, src, cost in rows}

    def write_teacher(self, project: str, writes: TeacherWrites) -> None:
        """Write one batch of teacher results in a single transaction, with set-based SQL
        (one statement per table, not one per row)."""
        with self.transaction() as con:
            _run_with_rows(
                con, "cache_rows", writes.cache, CACHE_COLUMNS,
                f"INSERT INTO teacher_cache({', '.join(CACHE_COLUMNS)}) SELECT {', '.join(CACHE_COLUMNS)} "
                "FROM (SELECT DISTINCT ON (request_hash) * FROM cache_rows) ON CONFLICT DO NOTHING")
            _run_with_rows(
                con, "call_rows", writes.calls, CALL_COLUMNS,
                f"INSERT INTO teacher_calls(project, {', '.join(CALL_COLUMNS)}) "
                f"SELECT ?, {', '.join(CALL_COLUMNS)} FROM call_rows", [project])
            # A reviewed row keeps the reviewer's label; the teacher columns are still updated.
            _run_with_rows(
                con, "result_rows", writes.results, RESULT_COLUMNS,
                "UPDATE items SET status = r.status, teacher_label = r.label, teacher_rationale = r.rationale, "
                "flag = r.flag, error = NULL, request_hash = r.request_hash, teacher_confidence = r.confidence, "
                "label = CASE WHEN items.reviewed THEN items.label ELSE r.label END, "
                "rationale = CASE WHEN items.reviewed THEN items.rationale ELSE r.rationale END, "
                "label_source = CASE WHEN items.reviewed THEN items.label_source ELSE r.source END, "
                "updated_at = current_timestamp "
                "FROM result_rows r WHERE items.project = ? AND items.row_id = r.row_id", [project])
            _run_with_rows(
                con, "error_rows", writes.errors, ["row_id", "error"],
                "UPDATE items SET status = 'error', error = r.error, updated_at = current_timestamp "
                "FROM error_rows r WHERE items.project = ? AND items.row_id = r.row_id "
                "AND items.status IN ('unlabeled', 'error')", [project])
            for batch_id in writes.collected_batches:
                # in the same transaction as the results: a batch is collected exactly once
                con.execute("UPDATE teacher_batches SET status = 'collected', collected_at = current_timestamp "
                            "WHERE batch_id = ?", [batch_id]).fetchall()

    # ---- message batches -----------------------------------------------------------
    def add_batch(self, project: str, batch_id: str, job_id: str | None, model: str, entries: list[dict]) -> None:
        with self.transaction() as con:
            con.execute("INSERT INTO teacher_batches(batch_id, project, job_id, model, status, requests) "
                        "VALUES (?,?,?,?, 'submitted', ?)", [batch_id, project, job_id, model, len(entries)])
            _run_with_rows(con, "batch_rows", entries, ["custom_id", "request_hash", "request", "row_ids", "worst_usd"],
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

    def get_items(self, project: str, row_ids: Sequence[str]) -> list[dict]:
        if not row_ids:
            return []
        return self._items("WHERE project = ? AND list_contains(?, row_id)", [project, list(row_ids)])

    def spend(self, project: str) -> float:
        return self.scalar("SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE project = ?", [project])

    def save_token_counts(self, model: str, counts: list[tuple[str, int, int]]) -> None:
        """(request_hash, counted input tokens, offline estimate) from count_tokens."""
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

    def job_spend(self, job_id: str) -> float:
        """Dollars billed by a job over all its runs (a resumed job keeps its total)."""
        return self.scalar("SELECT coalesce(sum(billed_usd), 0) FROM teacher_calls WHERE job_id = ?", [job_id])

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
        """Share of gold-labeled rows the teacher got right, computed in DuckDB. Labels are
        stored canonical (choice text, label-set member, formatted number), so numeric
        tasks compare by value and the others by case-insensitive text."""
        task = self.get_project(project).task
        same = ("abs(try_cast(teacher_label AS DOUBLE) - try_cast(gold AS DOUBLE)) < 1e-6" if task == "numeric"
                else "lower(trim(teacher_label)) = lower(trim(gold))")
        return self.scalar(
            f"SELECT avg(CASE WHEN coalesce({same}, FALSE) THEN 1.0 ELSE 0.0 END) FROM items "
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

    # ---- jobs and runs -----------------------------------------------------------
    def create_job(self, project: str, kind: str, config: dict, out_dir: str | None = None,
                   parent_id: str | None = None) -> str:
        job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.transaction() as con:
            con.execute(
                "INSERT INTO jobs(id, project, kind, config, status, out_dir, parent_id) "
                "VALUES (?,?,?,?, 'queued', ?, ?)",
                [job_id, project, kind, json.dumps(config), out_dir, parent_id],
            )
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

    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {
            "status", "pid", "done", "total", "cost_usd", "message", "error", "out_dir",
            "cancel_requested", "pause_requested", "started_at", "finished_at", "heartbeat_at",
        }
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in fields)  # keys from the allow-list only
        with self.transaction() as con:
            con.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])

    def fail_job_if_active(self, job_id: str, pid: int, error: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = current_timestamp "
                        "WHERE id = ? AND pid = ? AND status IN ('queued', 'running')", [error, job_id, pid]).fetchall()

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
                _run_with_rows(con, "new_predictions", rows, columns,
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

    # ---- export ------------------------------------------------------------------
    def export_frame(self, project: str):
        """Labeled rows with provenance: label source, reviewer, template, teacher model, cost."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT i.row_id, i.split, i.inputs, i.choices, i.gold, i.label, i.rationale,
                       i.teacher_label, i.teacher_rationale, i.flag, i.label_source, i.reviewed, i.reviewer,
                       i.verdict, i.verdict_reason, i.version AS row_version, i.teacher_confidence,
                       c.model AS teacher_model, c.template_version, c.template_hash, t.source AS teacher_source,
                       coalesce(t.cost_usd, 0) AS teacher_cost_usd
                FROM items i
                LEFT JOIN teacher_cache t ON t.request_hash = i.request_hash
                LEFT JOIN (SELECT row_id, arg_max(model, id) AS model, arg_max(template_hash, id) AS template_hash,
                                  arg_max(template_version, id) AS template_version
                           FROM teacher_calls WHERE project = ? AND error_type IS NULL GROUP BY row_id) c
                       ON c.row_id = i.row_id
                WHERE i.project = ? AND i.label IS NOT NULL
                ORDER BY i.idx
                """,
                [project, project],
            ).df()
