"""Review workspace: queues, verdicts, undo, bulk actions, sampling plans, agreement."""

import pytest

from core.review import rules as review
from core.kernel.errors import AppError
from core.review.rules import (
    cohen_kappa,
    error_estimate,
    kappa_from_counts,
    sample_size,
    wilson_interval,
)
from core.label.teacher import label_project
from tests.helpers import import_csv


def test_sample_size_matches_the_textbook():
    # Cochran: 95% confidence, ±5%, p = 0.5 -> 384.16 -> 385; with N = 1,000 -> 278
    assert sample_size(0.05, 0.95) == 385
    assert sample_size(0.05, 0.95, population=1000) == 278
    assert sample_size(0.03, 0.99) == 1844
    with pytest.raises(ValueError):
        sample_size(0, 0.95)


def test_cohen_kappa_matches_a_known_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0 and cohen_kappa([]) is None


def test_wilson_interval_and_error_estimate():
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)
    est = error_estimate([{"teacher_label": "a", "label_error": True, "rationale_error": False},
                          {"teacher_label": "a", "label_error": False, "rationale_error": False},
                          {"teacher_label": "b", "label_error": False, "rationale_error": True}])
    assert est["label_error"]["rate"] == pytest.approx(1 / 3) and est["per_label"]["a"]["label_error_rate"] == 0.5


def test_filters_combine_sort_and_search(labeled):
    review.save_review(labeled, "tickets", "1", "ana", "technical", "Long " * 30, verdict="correct")
    rows, total = labeled.review_page("tickets", ["reviewed", "label after review ≠ gold"])
    assert total == 1 and rows[0]["row_id"] == "1"
    rows, _ = labeled.review_page("tickets", "all", sort="longest rationale")
    assert rows[0]["row_id"] == "1"
    assert labeled.review_page("tickets", "all", search="courier")[1] == 1
    assert labeled.neighbour("tickets", "1", "all") == "2" and labeled.neighbour("tickets", "2", "all", step=-1) == "1"
    with pytest.raises(AppError, match="Unknown filter"):
        labeled.review_page("tickets", "nonsense")


def test_undo_reverts_the_last_change_and_keeps_history(labeled):
    before = labeled.get_item("tickets", "2")
    review.save_review(labeled, "tickets", "2", "ana", "billing", "Changed my mind.")
    review.save_review(labeled, "tickets", "3", "ben", "billing", None)  # another reviewer's change stays
    out = review.undo_last(labeled, "tickets", "ana")
    after = labeled.get_item("tickets", "2")
    assert (after["label"], after["rationale"], after["reviewed"]) == (before["label"], before["rationale"], False)
    assert labeled.get_item("tickets", "3")["label"] == "billing"
    trail = labeled.audit_trail("tickets", "2")
    assert sum(a["reason"] == "undo" for a in trail) == out["fields"] and len(trail) == 2 * out["fields"]
    with pytest.raises(AppError, match="no change left"):
        review.undo_last(labeled, "tickets", "ana")


def test_bulk_action_is_audited_per_row_and_undoable_as_one(labeled):
    out = review.bulk_review(labeled, "tickets", "unreviewed", "ana", "flag", reason="unclear input")
    assert (out["applied"], out["skipped"]) == (6, [])
    audit = labeled.query("SELECT DISTINCT change_id, reason FROM audit_log WHERE field = 'verdict'")
    assert len(audit) == 1 and audit[0]["reason"] == "bulk flag: unclear input"
    assert labeled.review_page("tickets", "flagged by a reviewer")[1] == 6
    review.undo_last(labeled, "tickets", "ana")
    assert labeled.review_page("tickets", "flagged by a reviewer")[1] == 0
    with pytest.raises(AppError, match="reason"):
        review.bulk_review(labeled, "tickets", "all", "ana", "flag")


def test_spot_check_plan_and_live_error_estimate(store, fake):
    lines = "id,text,label\n" + "".join(f"{i},Ticket {i} charged twice,billing\n" for i in range(40)) \
        + "".join(f"{i + 40},Ticket {i} app crash,technical\n" for i in range(20))
    import_csv(store, lines)
    label_project(store, "tickets", api_key="k", base_url=fake.url)
    n = store.create_spot_check("tickets", 15)
    assert 14 <= n <= 16
    rows, total = store.review_page("tickets", "spot check", page_size=100)
    assert total == n and {r["teacher_label"] for r in rows} == {"billing", "technical"}
    other = next(x for x in ("billing", "technical") if x != rows[0]["teacher_label"])  # the project's labels
    review.save_review(store, "tickets", rows[0]["row_id"], "ana", other, None)
    review.save_review(store, "tickets", rows[1]["row_id"], "ana", None, None, verdict="reject_rationale")
    planned, outcomes = store.spot_check_outcomes("tickets")
    est = error_estimate(outcomes)
    assert planned == n and est["reviewed"] == 2 and est["label_error"]["errors"] == 1
    assert est["rationale_error"]["errors"] == 1


def test_double_review_gives_kappa_between_reviewers_and_against_teacher(labeled):
    for row_id, (a, b) in {"1": ("billing", "billing"), "2": ("technical", "billing"),
                           "3": ("shipping", "shipping")}.items():
        review.save_review(labeled, "tickets", row_id, "ana", a, None, mode="first")
        review.save_review(labeled, "tickets", row_id, "ben", b, None, mode="independent")
    counts = labeled.agreement_counts("tickets")
    assert sum(n for _, _, n in counts["reviewers"]) == 3 and kappa_from_counts(counts["reviewers"]) < 1
    pairs = [(a, b) for a, b, n in counts["reviewers"] for _ in range(n)]
    assert kappa_from_counts(counts["reviewers"]) == pytest.approx(cohen_kappa(pairs))
    assert sum(n for _, _, n in counts["teacher"]) == 6


def test_a_corrected_label_does_not_keep_the_teachers_rationale_and_undo_brings_it_back(labeled):
    """The teacher's rationale argues for the teacher's label: saved with another label (form or
    CLI, single or bulk) it is cleared until the reviewer writes one; a rationale the reviewer wrote
    stays; undo restores the teacher's."""
    row = labeled.get_item("tickets", "1")  # billing, with the teacher's rationale about billing
    assert row["teacher_label"] == "billing" and row["teacher_rationale"]
    review.save_review(labeled, "tickets", "1", "ana", "shipping", row["teacher_rationale"])  # the form, pre-filled
    assert labeled.get_item("tickets", "1")["rationale"] == ""
    review.save_review(labeled, "tickets", "2", "ana", "billing", None)  # the CLI: no rationale given
    assert labeled.get_item("tickets", "2")["rationale"] == ""
    review.save_review(labeled, "tickets", "3", "ana", "billing", "The customer asks about a charge.")
    assert labeled.get_item("tickets", "3")["rationale"] == "The customer asks about a charge."
    review.save_review(labeled, "tickets", "4", "ana", "billing", None)  # the teacher's own label: kept as is
    assert labeled.get_item("tickets", "4")["rationale"] == labeled.get_item("tickets", "4")["teacher_rationale"]
    review.undo_last(labeled, "tickets", "ana")  # undoes row 4's accept; then row 3, row 2
    review.undo_last(labeled, "tickets", "ana")
    review.undo_last(labeled, "tickets", "ana")
    restored = labeled.get_item("tickets", "2")
    assert restored["rationale"] == restored["teacher_rationale"] and restored["label"] == restored["teacher_label"]

    out = review.bulk_review(labeled, "tickets", "unreviewed", "ben", "set_label", label="technical")
    shipping, technical = labeled.get_item("tickets", "3"), labeled.get_item("tickets", "5")  # the teacher's labels
    assert out["applied"] == 5  # rows 2-6
    assert shipping["rationale"] == "" and technical["rationale"] == technical["teacher_rationale"]
    review.undo_last(labeled, "tickets", "ben")
    assert labeled.get_item("tickets", "3")["rationale"] == shipping["teacher_rationale"]


def test_cli_lists_a_queue_applies_a_bulk_action_and_estimates_the_spot_check(labeled):
    import json

    from tests.helpers import start_cli

    labeled.create_spot_check("tickets", 3, stratified=False, blind_share=0.0)
    labeled.release()

    def cli(*args):
        proc = start_cli(args[0], "--db", labeled.path, "--project", "tickets", *args[1:])
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    page = cli("queue", "--filter", "unreviewed", "--page-size", "4")
    assert page["total"] == 6 and len(page["rows"]) == 4 and page["rows"][0]["row_id"] == "1"
    assert cli("bulk", "--reviewer", "ana", "--action", "flag", "--reason", "unclear input",
               "--filter", "spot check")["would_change"] == 3
    assert cli("queue", "--filter", "flagged by a reviewer")["total"] == 0  # counting changed nothing
    done = cli("bulk", "--reviewer", "ana", "--action", "accept", "--filter", "spot check", "--yes")
    assert done["applied"] == 3 and done["skipped"] == []
    estimate = cli("spot-check-estimate")
    assert estimate["planned"] == 3 and estimate["reviewed"] == 3 and estimate["complete"]
    assert estimate["label_error"]["rate"] == 0.0
