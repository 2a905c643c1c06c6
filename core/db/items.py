"""The rows to label: import, sampling, lookup, export. Owns the table `items`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from core.kernel.errors import DataImportError, NotFound

ITEM_COLUMNS = (
    "row_id, idx, split, inputs, choices, gold, status, teacher_label, teacher_rationale, "
    "flag, error, label, rationale, label_source, reviewed, reviewer, version, request_hash, verdict, verdict_reason, "
    "teacher_confidence"
)


class ItemTables:
    def import_items(
        self,
        project: str,
        task: str,
        input_fields: list[str],
        label_set: list[str] | None,
        records: Any,  # pandas DataFrame with the items columns, or core.ingest.items.Items (a Parquet file)
        template: str,
        model: str,
        replace: bool = False,
    ) -> int:
        """Create or extend a project and insert rows, all in one transaction. Items from core.ingest.items
        are inserted straight from their Parquet file (INSERT ... SELECT, no Python object per row),
        under the import's memory cap so that DuckDB spills rather than grows. The table's key index
        cannot spill and grows with its rows: when the cap is too small for it, the transaction is
        rolled back and run again with twice the cap, up to the items' max_memory_mb (the rows were
        already checked against the import's limits, so a bomb never reaches this)."""
        memory_mb = getattr(records, "memory_mb", None)
        ceiling = max(memory_mb or 0, getattr(records, "max_memory_mb", 0) or 0)
        while True:
            try:
                return self._import_once(project, task, input_fields, label_set, records, template, model, replace,
                                         memory_mb)
            except duckdb.OutOfMemoryException as exc:
                if not memory_mb or memory_mb >= ceiling:
                    raise DataImportError(f"Inserting the rows needed more than {memory_mb or 'the'} MB of memory."
                                          ) from exc
                memory_mb = min(memory_mb * 2, ceiling)

    def _import_once(self, project: str, task: str, input_fields: list[str], label_set: list[str] | None,
                     records: Any, template: str, model: str, replace: bool, memory_mb: int | None) -> int:
        from core.kernel.names import check_project_name

        project = check_project_name(project)
        restore: str | None = None
        try:
            with self.transaction() as con:
                if memory_mb:
                    restore = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
                    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
                start = self._project_for_import(con, project, task, input_fields, label_set, template, model)
                rows = self._import_rows(con, records, start)
                try:
                    dupes = con.execute(
                        f"SELECT i.row_id FROM items i JOIN ({rows}) r ON i.row_id = r.row_id WHERE i.project = ? "
                        "LIMIT 5", [project],
                    ).fetchall()
                    if dupes:
                        raise DataImportError(
                            "These ids already exist in the project: " + ", ".join(str(d[0]) for d in dupes)
                        )
                    n = con.execute(
                        "INSERT INTO items(project, row_id, idx, split, inputs, choices, gold) "
                        f"SELECT ?, row_id, idx, split, inputs, choices, gold FROM ({rows})",
                        [project],
                    ).fetchall()[0][0]
                except duckdb.OutOfMemoryException:
                    raise  # import_items runs it again with more memory
                if restore is not None:  # settings are not transactional: put it back before COMMIT
                    self._restore_memory_limit(con, restore)
                    restore = None
                return n
        finally:
            if restore is not None:  # the insert failed; an aborted transaction refuses SET, so after ROLLBACK
                with self.connect() as con:
                    self._restore_memory_limit(con, restore)

    @staticmethod
    def _restore_memory_limit(con, old: str) -> None:
        """current_setting() rounds, so RESET first: that is exact when the limit was DuckDB's
        default (the store sets none); a limit set elsewhere comes back as DuckDB shows it."""
        con.execute("RESET memory_limit")
        if con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] != old:
            con.execute(f"SET memory_limit = '{old}'")

    @staticmethod
    def _project_for_import(con, project: str, task: str, input_fields: list[str], label_set: list[str] | None,
                            template: str, model: str) -> int:
        """Create the project or check and extend it; the first idx for the new rows."""
        existing = con.execute("SELECT task, input_fields FROM projects WHERE name = ?", [project]).fetchone()
        if existing is None:
            con.execute(
                "INSERT INTO projects(name, task, input_fields, label_set, template, model) VALUES (?,?,?,?,?,?)",
                [project, task, json.dumps(input_fields), json.dumps(label_set) if label_set else None, template, model],
            )
            return 0
        if existing[0] != task:
            raise DataImportError(f"Project {project!r} is a {existing[0]} project; this import says {task}.")
        if label_set:
            old = con.execute("SELECT label_set FROM projects WHERE name = ?", [project]).fetchone()[0]
            merged = sorted(set(json.loads(old) if old else []) | set(label_set))
            con.execute("UPDATE projects SET label_set = ? WHERE name = ?", [json.dumps(merged), project])
        return con.execute("SELECT coalesce(max(idx) + 1, 0) FROM items WHERE project = ?", [project]).fetchall()[0][0]

    @staticmethod
    def _import_rows(con, records: Any, start: int) -> str:
        """SQL for the rows to insert (row_id, idx, split, inputs, choices, gold)."""
        path = getattr(records, "path", None)
        if path is not None:  # core.ingest.items.Items: _ord is the row's place in the source (idx only orders rows)
            quoted = str(path).replace("'", "''")
            return (f"SELECT row_id, {int(start)} + _ord - 1 AS idx, split, inputs, choices, gold "
                    f"FROM read_parquet('{quoted}')")
        frame = records.copy()
        frame["idx"] = range(start, start + len(frame))
        con.register("records", frame)
        return "SELECT row_id, idx, split, inputs, choices, gold FROM records"

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

    def count_to_label(self, project: str) -> int:
        """Rows a labeling run would still ask: never answered, or their call failed."""
        return self.scalar("SELECT count(*) FROM items WHERE project = ? AND status IN ('unlabeled', 'error')",
                           [project])

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

    def get_items(self, project: str, row_ids: Sequence[str]) -> list[dict]:
        if not row_ids:
            return []
        # a semi-join on the ids (8 ms for 25 of a million rows), not list_contains per row (26 ms)
        return self._items("WHERE project = ? AND row_id IN (SELECT unnest(?::VARCHAR[]))", [project, list(row_ids)])

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

    def unread_items(self, project: str, row_ids: Sequence[str] | None = None) -> list[dict]:
        """Rows whose stored teacher answer could not be read (unparseable or ambiguous, not cut
        off), not reviewed: what a second reading may settle. In import order."""
        where = ("WHERE project = ? AND status = 'flagged' AND flag IN ('unparseable', 'ambiguous') "
                 "AND request_hash IS NOT NULL AND NOT reviewed")
        if row_ids is not None:
            return self._items(where + " AND list_contains(?, row_id) ORDER BY idx", [project, list(row_ids)])
        return self._items(where + " ORDER BY idx", [project])

    def items_by_order(self, project: str, split: str | None) -> list[dict]:
        if split:
            return self._items("WHERE project = ? AND split = ? ORDER BY idx", [project, split])
        return self._items("WHERE project = ? ORDER BY idx", [project])

    def rows_without_label(self, project: str) -> dict[str, int]:
        """Rows an export leaves out (no label yet), counted by why: their status."""
        rows = self.query("SELECT status, count(*) AS n FROM items WHERE project = ? AND label IS NULL "
                          "GROUP BY status ORDER BY status", [project])
        return {r["status"]: r["n"] for r in rows}

    def rows_changed_since(self, project: str, versions: dict[str, int]) -> int:
        """How many of these rows (row id -> version then) are at another version now, or gone."""
        if not versions:
            return 0
        with self.connect() as con:
            con.register("seen_rows", pd.DataFrame({"row_id": list(versions), "version": list(versions.values())}))
            try:
                return con.execute(
                    "SELECT count(*) FROM seen_rows s LEFT JOIN items i ON i.project = ? AND i.row_id = s.row_id "
                    "WHERE i.version IS DISTINCT FROM s.version", [project]).fetchall()[0][0]
            finally:
                con.unregister("seen_rows")

    def export_to_file(self, project: str, fields: list[tuple[str, str]], fmt: str, path: str) -> tuple[int, list[str]]:
        """Write the labeled rows straight from DuckDB to a parquet, JSON Lines or CSV file
        (streamed: memory stays flat for a million rows), one column per input field: `fields`
        is (column name, input field). Returns (rows, columns)."""
        def ident(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        def json_path(key: str) -> str:  # any key, also one with quotes, dots or a leading $
            return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'

        inputs = ", ".join(f"json_extract_string(inputs, ?) AS {ident(column)}" for column, _ in fields)
        # choices: a list in parquet and JSON Lines, its JSON text in a CSV cell
        choices = "choices" if fmt == "csv" else "from_json(choices, '[\"VARCHAR\"]') AS choices"
        options = {"parquet": "FORMAT parquet", "jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER"}[fmt]
        select = (f"SELECT row_id, {inputs + ', ' if inputs else ''}split, {choices}, * EXCLUDE "
                  f"(row_id, split, choices, inputs, idx) FROM ({_EXPORT_ROWS}) ORDER BY idx")
        params = [json_path(field) for _, field in fields] + [project, project]
        with self.connect() as con:
            columns = [d[0] for d in con.execute(f"SELECT * FROM ({select}) LIMIT 0", params).description]
            con.execute(f"SET memory_limit = '{EXPORT_MEMORY_MB}MB'")  # the sort spills beyond it
            try:
                con.execute(f"COPY ({select}) TO '{path.replace(chr(39), chr(39) * 2)}' ({options})", params)
            finally:
                con.execute("RESET memory_limit")
            rows = con.execute(f"SELECT count(*) FROM ({_EXPORT_ROWS})", [project, project]).fetchall()[0][0]
        return rows, columns


EXPORT_MEMORY_MB = 512  # DuckDB's memory while writing an export (a million rows sort in it, spilling)

# The labeled rows with provenance, in import order (idx): what an export writes.
_EXPORT_ROWS = """
SELECT i.idx, i.row_id, i.split, i.inputs, i.choices, i.gold, i.label, i.rationale,
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
"""
