import duckdb
import pytest

from core.review import rules as review
from core.db import Store, TeacherWrites
from core.kernel.errors import AppError, DataImportError, NotFound
from tests.helpers import import_csv


def test_migrations_are_numbered_and_idempotent(tmp_path):
    path = tmp_path / "m.duckdb"
    from core.db import MIGRATIONS

    latest = max(v for v, _ in MIGRATIONS)
    assert [v for v, _ in MIGRATIONS] == list(range(1, latest + 1))
    assert Store(path).schema_version() == latest
    assert Store(path).schema_version() == latest  # second open applies nothing twice
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == latest
    con.close()


def test_import_is_one_transaction(store):
    assert import_csv(store) == 6
    # a second import that repeats an id must change nothing
    with pytest.raises(DataImportError, match="already exist"):
        import_csv(store, "id,text,label\n7,new row,billing\n1,dup,shipping\n")
    assert store.count_items("tickets")["total"] == 6
    assert store.scalar("SELECT count(*) FROM items WHERE row_id = '7'") == 0


def test_import_into_project_of_other_task_is_refused(store):
    import_csv(store)
    with pytest.raises(DataImportError, match="classification project"):
        import_csv(store, "id,text\n9,hello\n", task="numeric", label_field=None)


def test_review_edit_writes_audit_and_detects_stale_version(tickets):
    store = tickets
    row = store.get_item("tickets", "1")
    out = review.save_review(store, "tickets", "1", "ana", "technical", "It is about the app.", expected_version=row["version"])
    assert out["changes"] == 4  # label, rationale, verdict, reviewed
    item = store.get_item("tickets", "1")
    assert (item["label"], item["label_source"], item["reviewed"], item["reviewer"]) == ("technical", "reviewer", True, "ana")
    trail = store.audit_trail("tickets", "1")
    assert {(a["field"], a["before"], a["after"], a["reviewer"]) for a in trail} == {
        ("label", None, "technical", "ana"), ("rationale", None, "It is about the app.", "ana"),
        ("verdict", None, "correct", "ana"), ("reviewed", "false", "true", "ana")}
    # a second reviewer still holding the old version is told, not silently overwritten
    with pytest.raises(AppError, match="changed by someone else"):
        review.save_review(store, "tickets", "1", "ben", "billing", None, expected_version=row["version"])
    assert store.get_item("tickets", "1")["label"] == "technical"


def test_review_needs_reviewer_and_existing_row(tickets):
    with pytest.raises(AppError, match="reviewer"):
        review.save_review(tickets, "tickets", "1", " ", "billing", None)
    with pytest.raises(NotFound):
        review.save_review(tickets, "tickets", "nope", "ana", "billing", None)


def test_review_filters_and_pagination(tickets):
    store = tickets
    store.write_teacher("tickets", TeacherWrites(results=[
        {"row_id": "1", "status": "labeled", "label": "technical", "rationale": "r", "flag": None,
         "request_hash": None, "source": "teacher"},
        {"row_id": "2", "status": "flagged", "label": None, "rationale": "r", "flag": "unparseable",
         "request_hash": None, "source": "teacher"},
    ]))
    assert [r["row_id"] for r in store.review_page("tickets", "label after review ≠ gold")[0]] == ["1"]
    assert [r["row_id"] for r in store.review_page("tickets", "flagged or error")[0]] == ["2"]
    assert store.review_page("tickets", "unreviewed")[1] == 2
    page, total = store.review_page("tickets", "all", page=1, page_size=4)
    assert total == 6 and [r["row_id"] for r in page] == ["5", "6"]
    assert [r["row_id"] for r in store.review_page("tickets", "all", search="courier")[0]] == ["6"]


def test_connections_wait_for_a_lock_held_by_another_process(tmp_path):
    import subprocess
    import sys
    import time

    path = tmp_path / "lock.duckdb"
    Store(path)
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(1.5)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    assert Store(path, busy_timeout_s=20).schema_version() >= 1  # waited instead of failing
    assert time.monotonic() - started > 0.3
    holder.wait()


def test_a_held_store_shares_one_open_database_and_releases_it_when_idle(tmp_path):
    import subprocess
    import sys
    import time

    from core.db import Store

    held = Store(tmp_path / "held.duckdb", hold_s=0.3)
    held.create_job("p", "train", {})
    assert held._held is not None  # still open right after the query
    code = ("import duckdb, time, sys; t = time.monotonic()\n"
            "while True:\n"
            "    try:\n"
            "        duckdb.connect(sys.argv[1]).close(); break\n"
            "    except duckdb.IOException:\n"
            "        time.sleep(0.05)\n"
            "print(time.monotonic() - t)")
    start = time.monotonic()
    waited = float(subprocess.run([sys.executable, "-c", code, str(tmp_path / "held.duckdb")],
                                  capture_output=True, text=True, timeout=60).stdout)
    assert waited < 5 and held._held is None  # the other process got the file once it was released
    assert len(held.list_jobs("p")) == 1 and time.monotonic() - start < 10  # and the store reopens on demand


def test_latest_metrics_for_several_runs_in_one_query(tmp_path):
    from core.db import Store

    store = Store(tmp_path / "m.duckdb")
    store.add_metrics("a", [(1, "train_loss", 3.0), (2, "train_loss", 2.0), (2, "test_accuracy", 0.5)])
    store.add_metrics("b", [(1, "train_loss", 4.0)])
    latest = store.latest_metrics_for(["a", "b", "c"])
    assert latest == {"a": {"train_loss": 2.0, "test_accuracy": 0.5, "step": 2}, "b": {"train_loss": 4.0, "step": 1},
                      "c": {}}
