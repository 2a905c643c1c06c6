"""A readable snapshot of the database schema, read from DuckDB's catalog.

schema.sql, next to this module, is the snapshot of a freshly migrated database: the current
schema in one place, where the migrations only say how it grew. tests/test_schema.py checks
that it is up to date. After adding a migration, regenerate it with

    python -m core.db.schema
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.db.connection import Database

SCHEMA_FILE = Path(__file__).with_name("schema.sql")

HEADER = """\
-- Generated from a freshly migrated database; do not edit.
-- Regenerate after adding a migration to core/db/migrations/: python -m core.db.schema
-- Schema version {version}.
"""

# Only the app's own objects: not DuckDB's internal catalog, nor temporary tables.
_MINE = "database_name = current_database() AND schema_name = 'main'"


def schema_snapshot(con) -> str:
    """Sequences, tables (columns in column order, with type, NOT NULL and default, then
    constraints) and indexes, each sorted by name. Schema only: no rows, no counters."""
    out = []
    # No START: once a sequence has been used, DuckDB stores (and reports) its next value there.
    for name, increment, low, high, cycle in con.execute(
            f"SELECT sequence_name, increment_by, min_value, max_value, cycle "
            f"FROM duckdb_sequences() WHERE {_MINE} AND NOT temporary ORDER BY sequence_name").fetchall():
        out.append(f"CREATE SEQUENCE {name} INCREMENT BY {increment} MINVALUE {low} "
                   f"MAXVALUE {high}{' CYCLE' if cycle else ''};\n")
    tables = [r[0] for r in con.execute(
        f"SELECT table_name FROM duckdb_tables() WHERE {_MINE} AND NOT internal AND NOT temporary "
        "ORDER BY table_name").fetchall()]
    for table in tables:
        columns = con.execute(
            f"SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
            f"WHERE {_MINE} AND table_name = ? ORDER BY column_index", [table]).fetchall()
        # NOT NULL is already shown with its column
        constraints = [r[0] for r in con.execute(
            f"SELECT constraint_text FROM duckdb_constraints() WHERE {_MINE} AND table_name = ? "
            "AND constraint_type <> 'NOT NULL' ORDER BY constraint_text", [table]).fetchall()]
        width = max(len(c[0]) for c in columns)
        lines = [f"    {name.ljust(width)} {dtype}{'' if nullable else ' NOT NULL'}"
                 f"{'' if default is None else f' DEFAULT {default}'}".rstrip()
                 for name, dtype, nullable, default in columns]
        lines += [f"    {c}" for c in constraints]
        out.append(f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n);\n")
    for (sql,) in con.execute(
            f"SELECT sql FROM duckdb_indexes() WHERE {_MINE} ORDER BY index_name").fetchall():
        out.append(sql + "\n")  # DuckDB's own canonical CREATE INDEX
    return "\n".join(out)


def schema_file_text(con) -> str:
    """What schema.sql holds for the database behind `con`: the header, then the snapshot."""
    version = con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    return HEADER.format(version=version) + "\n" + schema_snapshot(con)


def write_schema_file(path: Path = SCHEMA_FILE) -> str:
    """Migrate a fresh temporary database and (re)write its snapshot to `path`."""
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "schema.duckdb").connect() as con:
        text = schema_file_text(con)
    path.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    write_schema_file()
    print(f"wrote {SCHEMA_FILE}")
