"""The schema: its committed snapshot, and migrations from numbered SQL files."""

import shutil

import duckdb
import pytest

import core.db.connection
from core.db import Store, migrations
from core.db.schema import SCHEMA_FILE, schema_file_text

LATEST = max(v for v, _ in migrations())


def _applied(path) -> list[tuple]:
    con = duckdb.connect(str(path))
    try:
        return con.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    finally:
        con.close()


def test_snapshot_of_fresh_database_is_committed(store):
    with store.connect() as con:
        current = schema_file_text(con)
    assert current == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "core/db/schema.sql is out of date with the migrations: run `python -m core.db.schema`")


def test_existing_workspace_database_opens_and_gets_new_migrations(tmp_path):
    """A database written by the previous release (migrations 1-6, kept as inline SQL then)."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version, sql in migrations():
        if version <= 6:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations(version) VALUES (?)", [version])
    con.execute("INSERT INTO projects(name, task, input_fields, label_set, template, model) "
                "VALUES ('tickets', 'classification', '[\"text\"]', '[\"billing\", \"shipping\"]', '{text}', 'm')")
    con.execute("INSERT INTO items(project, row_id, idx, split, inputs, gold, status, teacher_label, label, "
                "label_source) VALUES ('tickets', '1', 0, 'train', '{\"text\": \"charged twice\"}', 'billing', "
                "'labeled', 'billing', 'billing', 'teacher')")
    con.execute("INSERT INTO jobs(id, project, kind, config, status) "
                "VALUES ('label-1', 'tickets', 'label', '{\"limit\": 1}', 'completed')")
    con.execute("INSERT INTO audit_log(project, row_id, reviewer, field, before, after, change_id) "
                "VALUES ('tickets', '1', 'ana', 'verdict', NULL, 'accept', 'c1')")
    con.close()

    store = Store(path)
    assert store.schema_version() == LATEST
    assert store.get_project("tickets").label_set == ["billing", "shipping"]
    assert store.get_item("tickets", "1")["label"] == "billing"
    job = store.get_job("label-1")
    assert job["config"] == {"limit": 1} and job["stop_reason"] is None
    store.update_job("label-1", stop_reason="budget")
    assert store.get_job("label-1")["stop_reason"] == "budget"
    rows, total = store.review_page("tickets")
    assert total == 1 and rows[0]["inputs"] == {"text": "charged twice"}
    assert [(a["reviewer"], a["after"]) for a in store.audit_trail("tickets", "1")] == [("ana", "accept")]
    with store.connect() as con:  # upgraded, it has exactly the schema of a fresh database
        assert schema_file_text(con) == SCHEMA_FILE.read_text(encoding="utf-8")


def test_migrating_twice_changes_nothing(tmp_path):
    path = tmp_path / "twice.duckdb"
    store = Store(path)
    before = _applied(path)
    assert [v for v, _ in before] == [v for v, _ in migrations()]
    assert store.migrate() == LATEST
    Store(path)
    assert _applied(path) == before


def test_a_failing_migration_rolls_back_alone(tmp_path, monkeypatch):
    """Each file runs in its own transaction: the ones before a broken file stay applied, and
    nothing of the broken one remains."""
    folder = tmp_path / "migrations"
    shutil.copytree(core.db.connection.MIGRATIONS_DIR, folder)
    (folder / f"{LATEST + 1:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\n"
        "ALTER TABLE jobs ADD COLUMN half_column VARCHAR;\n"
        "SELECT * FROM no_such_table;\n", encoding="utf-8")
    monkeypatch.setattr(core.db.connection, "MIGRATIONS_DIR", folder)
    path = tmp_path / "broken.duckdb"
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        Store(path)
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_done'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'jobs' "
                           "AND column_name = 'half_column'").fetchone()[0] == 0
    finally:
        con.close()
