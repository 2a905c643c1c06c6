"""Review concurrency: undo against later edits, teacher answers against open forms, labels
outside the label set, bulk actions against rows that moved after the confirmation."""

import json

import duckdb
import pytest

from core.cli import main as cli

from core.review import rules as review
from core.db import Store, TeacherWrites, migrations
from core.kernel.errors import AppError
from core.ingest.files import ColumnMapping, import_source, open_bytes
from core.prompt.templates import preset_template
from core.label.teacher import label_project
from tests.helpers import import_csv


@pytest.fixture
def labeled(tickets, fake):
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    return tickets


def teacher_answer(store: Store, row_id: str, label: str, rationale: str = "A fresh teacher answer.") -> None:
    """What a labeling job writes when a new answer for the row arrives."""
    store.write_teacher("tickets", TeacherWrites(results=[{
        "row_id": row_id, "status": "labeled", "label": label, "rationale": rationale, "flag": None,
        "request_hash": None, "source": "teacher", "confidence": None}]))


def audit_rows(store: Store) -> list[tuple]:
    return [tuple(r.values()) for r in store.query("SELECT * FROM audit_log ORDER BY id")]


def item_rows(store: Store) -> list[tuple]:
    return [tuple(r.values()) for r in store.query("SELECT * FROM items ORDER BY idx")]


# ---- 1. undo checks versions ---------------------------------------------------------------
def test_undo_refuses_to_wipe_out_another_reviewers_later_edit(labeled):
    review.save_review(labeled, "tickets", "2", "ana", "billing", "Ana's rationale.")
    review.save_review(labeled, "tickets", "2", "ben", None, "Ben's later rationale.")
    items, audit = item_rows(labeled), audit_rows(labeled)
    with pytest.raises(AppError, match=r"row 2 by ben") as refused:
        review.undo_last(labeled, "tickets", "ana")
    assert "Nothing was undone" in str(refused.value)
    assert (item_rows(labeled), audit_rows(labeled)) == (items, audit)  # a refused undo changes nothing
    assert labeled.get_item("tickets", "2")["rationale"] == "Ben's later rationale."


def test_undo_refuses_after_a_new_teacher_answer(labeled):
    review.save_review(labeled, "tickets", "2", "ana", None, "Ana's rationale.", verdict="reject_rationale")
    teacher_answer(labeled, "2", "technical", "The teacher's new rationale.")
    with pytest.raises(AppError, match="row 2 by a new teacher answer"):
        review.undo_last(labeled, "tickets", "ana")
    assert labeled.get_item("tickets", "2")["verdict"] == "reject_rationale"


def test_a_refused_undo_of_a_bulk_change_leaves_every_row_as_it_is(labeled):
    review.bulk_review(labeled, "tickets", "unreviewed", "ana", "flag", reason="unclear input")
    review.save_review(labeled, "tickets", "4", "ben", "billing", None, verdict="accept")
    items, audit = item_rows(labeled), audit_rows(labeled)
    with pytest.raises(AppError, match=r"row 4 by ben"):
        review.undo_last(labeled, "tickets", "ana")
    assert (item_rows(labeled), audit_rows(labeled)) == (items, audit)
    assert labeled.review_count("tickets", "flagged by a reviewer") == 5  # ben's accept on row 4 stands


def test_undo_of_an_unchanged_row_still_works_after_later_changes_were_undone(labeled):
    """Undo stays a stack: after undoing a later change (own or someone else's), the earlier
    change can be undone too, since the row is again as that change left it."""
    before = labeled.get_item("tickets", "2")
    review.save_review(labeled, "tickets", "2", "ana", "billing", "First edit.")
    review.save_review(labeled, "tickets", "2", "ana", None, "Second edit.")
    review.save_review(labeled, "tickets", "2", "ben", "shipping", None)
    review.undo_last(labeled, "tickets", "ben")
    review.undo_last(labeled, "tickets", "ana")
    assert labeled.get_item("tickets", "2")["rationale"] == "First edit."
    review.undo_last(labeled, "tickets", "ana")
    after = labeled.get_item("tickets", "2")
    assert (after["label"], after["rationale"], after["reviewed"]) == (before["label"], before["rationale"], False)
    assert after["version"] == before["version"] + 6  # every write moved it on


def test_audit_records_keep_the_version_each_change_left(labeled):
    out = review.save_review(labeled, "tickets", "1", "ana", "technical", None)
    bulk = review.bulk_review(labeled, "tickets", "all", "ana", "accept")
    versions = {r["change_id"]: {r["row_version"]} for r in labeled.query("SELECT change_id, row_version FROM audit_log")}
    assert versions[out["change_id"]] == {out["version"]}
    row_versions = labeled.query("SELECT a.row_version = i.version AS same FROM audit_log a JOIN items i "
                                 "USING (project, row_id) WHERE a.change_id = ?", [bulk["change_id"]])
    assert row_versions and all(r["same"] for r in row_versions)


def test_migration_dates_only_the_latest_change_of_each_row(tmp_path):
    """Records from before migration 8 carry no version: the latest change of a row gets the row's
    current version, older ones none (undo then checks the audit trail alone)."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    for version, sql in migrations():
        if version <= 7:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations(version) VALUES (?)", [version])
    con.execute("INSERT INTO items(project, row_id, idx, split, inputs, label, version) "
                "VALUES ('p', '1', 0, 'train', '{}', 'b', 2)")
    for change, after in (("c1", "a"), ("c2", "b")):
        con.execute("INSERT INTO audit_log(project, row_id, reviewer, field, before, after, change_id) "
                    "VALUES ('p', '1', 'ana', 'label', NULL, ?, ?)", [after, change])
    con.close()
    store = Store(path)
    dated = {r["change_id"]: r["row_version"] for r in store.query("SELECT change_id, row_version FROM audit_log")}
    assert dated == {"c1": None, "c2": 2}


# ---- 2. teacher writes bump the row version -------------------------------------------------
def test_a_new_teacher_answer_makes_an_open_review_form_stale(labeled):
    seen = labeled.get_item("tickets", "1")  # the reviewer opens the form
    teacher_answer(labeled, "1", "technical", "The teacher changed its mind.")
    fresh = labeled.get_item("tickets", "1")
    assert fresh["version"] == seen["version"] + 1 and fresh["label"] == "technical"
    with pytest.raises(AppError, match="changed by someone else"):
        review.save_review(labeled, "tickets", "1", "ana", None, "Judged on the old answer.",
                           expected_version=seen["version"])
    assert labeled.get_item("tickets", "1")["rationale"] == "The teacher changed its mind."


def test_teacher_errors_bump_the_version_of_the_rows_they_change(tickets):
    before = tickets.get_item("tickets", "3")
    tickets.write_teacher("tickets", TeacherWrites(errors=[{"row_id": "3", "error": "overloaded"}]))
    after = tickets.get_item("tickets", "3")
    assert (after["status"], after["version"]) == ("error", before["version"] + 1)
    assert tickets.scalar("SELECT updated_at IS NOT NULL FROM items WHERE row_id = '3'")
    assert tickets.get_item("tickets", "4")["version"] == before["version"]  # other rows untouched


# ---- 3. labels must be one of the options ----------------------------------------------------
def test_a_case_variant_is_stored_as_the_label_and_anything_else_is_refused(labeled):
    review.save_review(labeled, "tickets", "2", "ana", "Billing", None)
    assert labeled.get_item("tickets", "2")["label"] == "billing"
    items, audit = item_rows(labeled), audit_rows(labeled)
    with pytest.raises(AppError, match="'billng please' is not one of the labels: billing, shipping, technical"):
        review.save_review(labeled, "tickets", "3", "ana", "billng please", None)
    assert (item_rows(labeled), audit_rows(labeled)) == (items, audit)


def test_a_choice_letter_becomes_the_choice_text(store):
    data = "\n".join(json.dumps({"id": f"q{i}", "q": f"Where do fish live? ({i})", "choices": ["desert", "water"],
                                 "answer": "water"}) for i in range(2)).encode()
    mapping = ColumnMapping(input_fields=["q"], id_field="id", label_field="answer", choices_field="choices")
    import_source(store, open_bytes(data, "q.jsonl"), "mc", "multiple-choice", mapping,
                  template=preset_template("multiple-choice", ["q"]), model="m")
    review.save_review(store, "mc", "q0", "ana", "(b)", None)
    assert store.get_item("mc", "q0")["label"] == "water"
    with pytest.raises(AppError, match="not one of the labels: desert, water"):
        review.save_review(store, "mc", "q1", "ana", "mountain", None)


def test_a_row_without_a_valid_label_cannot_be_accepted_without_one(tickets):
    """Unlabeled rows: accepting or correcting needs a label picked; a flag does not."""
    for verdict in (None, "accept", "reject_rationale"):
        with pytest.raises(AppError, match="Pick a label for row 1"):
            review.save_review(tickets, "tickets", "1", "ana", None, "Some rationale.", verdict=verdict)
    assert tickets.get_item("tickets", "1")["reviewed"] is False and not tickets.audit_trail("tickets", "1")
    review.save_review(tickets, "tickets", "1", "ana", None, None, verdict="flag", reason="unclear input")
    assert tickets.get_item("tickets", "1")["verdict"] == "flag"
    review.save_review(tickets, "tickets", "2", "ana", "technical", None)
    assert tickets.get_item("tickets", "2")["verdict"] == "correct"


def test_cli_review_refuses_a_label_outside_the_set(tickets, capsys):
    code = cli.main(["review", "--db", tickets.path, "--project", "tickets", "--row-id", "2", "--reviewer", "ana",
                     "--label", "refund"])
    assert code == 2 and "'refund' is not one of the labels" in capsys.readouterr().err
    assert tickets.get_item("tickets", "2")["label"] is None
    assert cli.main(["review", "--db", tickets.path, "--project", "tickets", "--row-id", "2", "--reviewer", "ana",
                     "--label", "TECHNICAL"]) == 0
    assert tickets.get_item("tickets", "2")["label"] == "technical"


def test_bulk_set_label_takes_a_label_of_the_set(labeled):
    with pytest.raises(AppError, match="not one of the labels"):
        review.bulk_review(labeled, "tickets", "all", "ana", "set_label", label="refunds")
    out = review.bulk_review(labeled, "tickets", "all", "ana", "set_label", label="Shipping")
    assert out["applied"] == 6 and {r["label"] for r in labeled.review_page("tickets", "all")[0]} == {"shipping"}


# ---- 4. bulk actions apply exactly to the confirmed rows -------------------------------------
def test_bulk_applies_to_the_confirmed_rows_only_and_skips_those_changed_since(labeled):
    confirmed = labeled.review_ids("tickets", "unreviewed")  # what the page counted: 6 rows
    assert list(confirmed) == ["1", "2", "3", "4", "5", "6"]
    # meanwhile: new rows enter the queue, and ben corrects one of the confirmed rows
    import_csv(labeled, "id,text,label\n7,Refund not received,billing\n8,Parcel damaged,shipping\n")
    teacher_answer(labeled, "7", "billing")
    teacher_answer(labeled, "8", "shipping")
    review.save_review(labeled, "tickets", "3", "ben", "billing", None)
    out = review.bulk_review(labeled, "tickets", "unreviewed", "ana", "flag", reason="unclear input",
                             row_ids=confirmed)
    assert (out["applied"], out["skipped"]) == (5, ["3"])
    flagged = {r["row_id"] for r in labeled.review_page("tickets", "flagged by a reviewer")[0]}
    assert flagged == {"1", "2", "4", "5", "6"}
    assert labeled.get_item("tickets", "3")["label"] == "billing"  # ben's correction stands
    assert {labeled.get_item("tickets", r)["reviewed"] for r in ("7", "8")} == {False}  # not confirmed
    review.undo_last(labeled, "tickets", "ana")  # the bulk change is one undoable change
    assert labeled.review_count("tickets", "flagged by a reviewer") == 0
