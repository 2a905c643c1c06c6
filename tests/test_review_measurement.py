"""Review that measures itself: blind calibration, independent double review, adjudication,
automation bias, expert time and cost per accepted label (issue 15)."""

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from core.review import rules as review
from core.kernel.errors import AppError
from core.review.stats import (
    accepted_labels,
    active_seconds,
    automation_bias,
    cost_per_label,
    review_stats,
)
from tests.helpers import REPO


def teacher_label(store, row_id):
    return store.get_item("tickets", row_id)["teacher_label"]


def other_label(store, row_id):
    return next(x for x in store.get_project("tickets").label_set if x != teacher_label(store, row_id))


def test_blind_rows_hide_the_teacher_until_the_experts_own_label_is_saved(labeled):
    made = labeled.create_spot_check("tickets", 4, stratified=False, blind_share=0.5)
    blind = labeled.review_ids("tickets", ["blind (spot check)"])
    assert made == 4 and len(blind) == 2
    row_id = next(iter(blind))
    before = labeled.get_item("tickets", row_id)
    assert review.form_mode(labeled, "tickets", row_id, None) == "blind"  # no name yet: still blind
    assert review.form_mode(labeled, "tickets", row_id, "ana") == "blind"
    with pytest.raises(AppError, match="blind"):  # no verdict before the expert's own label
        review.save_review(labeled, "tickets", row_id, "ana", None, None, mode="blind")
    with pytest.raises(AppError, match="own label"):
        review.save_blind_label(labeled, "tickets", row_id, "ana", None)
    review.save_blind_label(labeled, "tickets", row_id, "ana", other_label(labeled, row_id))
    assert review.form_mode(labeled, "tickets", row_id, "ana") == "first"  # revealed for ana's verdict
    assert review.form_mode(labeled, "tickets", row_id, "ben") == "blind"  # still blind for ben
    after = labeled.get_item("tickets", row_id)
    assert (after["label"], after["version"], after["reviewed"]) == (before["label"], before["version"], False)
    unblind = next(r for r in labeled.review_ids("tickets", ["spot check"]) if r not in blind)
    assert review.form_mode(labeled, "tickets", unblind, "ana") == "first"


def test_automation_bias_on_a_constructed_example():
    def event(i, kind, label, teacher="a", reviewer="ana", shown="teacher"):
        return {"id": i, "row_id": f"r{i}", "reviewer": reviewer, "kind": kind, "shown": shown, "label": label,
                "teacher_label": teacher}

    blind = [event(i, "blind", "a" if i < 5 else "b", shown="none") for i in range(10)]  # agrees 5 of 10
    shown = [event(100 + i, "review", "a" if i < 18 else "b") for i in range(20)]  # accepts 18 of 20
    bias = automation_bias(blind + shown, shown)
    assert bias["blind_agreement"] == 0.5 and bias["shown_acceptance"] == 0.9
    assert bias["difference"] == pytest.approx(0.4)
    assert bias["low"] < 0.4 < bias["high"] and bias["low"] > 0  # a real shift at these counts
    # a verdict after a blind label of the same row is anchored by that label: not "shown"
    anchored = [dict(e, id=200 + e["id"], kind="review", shown="teacher", label="a") for e in blind]
    again = automation_bias(blind + shown + anchored, shown + anchored)
    assert again["shown_rows"] == 20
    assert automation_bias(shown, shown) is None  # no blind rows yet


def test_kappa_counts_only_independent_current_pairs(labeled):
    rows = ["1", "2", "3"]
    for row_id in rows:
        review.save_review(labeled, "tickets", row_id, "ana", teacher_label(labeled, row_id), None, mode="first")
    for row_id in rows:
        assert review.form_mode(labeled, "tickets", row_id, "ben") == "independent"
        review.save_review(labeled, "tickets", row_id, "ben", teacher_label(labeled, row_id), None,
                           mode="independent")
    assert sum(n for _, _, n in labeled.agreement_counts("tickets")["reviewers"]) == 3
    review.undo_last(labeled, "tickets", "ben")  # ben's review of row 3 no longer counts
    assert sum(n for _, _, n in labeled.agreement_counts("tickets")["reviewers"]) == 2
    # carl saves from the command line, where the form is not ours: not an independent pair
    review.save_review(labeled, "tickets", "1", "carl", teacher_label(labeled, "1"), None)
    # dan's form showed ana's label (an older form): not independent either
    review.save_review(labeled, "tickets", "2", "dan", teacher_label(labeled, "2"), None, mode="own-after-others")
    assert sum(n for _, _, n in labeled.agreement_counts("tickets")["reviewers"]) == 2
    stats = review_stats(labeled, "tickets")
    assert stats["independent_pairs"] == 2 and stats["kappa_independent"] == 1.0


def test_disagreements_queue_for_adjudication(labeled):
    review.save_review(labeled, "tickets", "1", "ana", teacher_label(labeled, "1"), None, mode="first")
    review.save_review(labeled, "tickets", "1", "ben", other_label(labeled, "1"), None, mode="independent")
    assert list(labeled.review_ids("tickets", ["reviewers disagree"])) == ["1"]
    assert review.form_mode(labeled, "tickets", "1", "carl") == "adjudicate"
    review.save_review(labeled, "tickets", "1", "carl", teacher_label(labeled, "1"), None, mode="adjudicate")
    assert list(labeled.review_ids("tickets", ["reviewers disagree"])) == []
    assert labeled.get_item("tickets", "1")["label"] == teacher_label(labeled, "1")
    # adjudication is not a third independent opinion
    assert sum(n for _, _, n in labeled.agreement_counts("tickets")["reviewers"]) == 1


def test_active_time_excludes_idle_gaps():
    t0 = datetime(2026, 11, 30, 9, 0, 0)

    def event(i, seconds, opened=None, kind="review"):
        return {"id": i, "reviewer": "ana", "kind": kind, "decided_at": t0 + timedelta(seconds=seconds),
                "opened_at": None if opened is None else t0 + timedelta(seconds=opened)}

    events = [event(1, 30, opened=0),        # 30 s from opening the form
              event(2, 50),                  # 20 s after the previous decision
              event(3, 50 + 3600),           # an hour later: idle, costed at the median (25 s)
              event(4, 3700, opened=3690),   # 10 s from opening (the previous decision was earlier)
              event(5, 3700, kind="bulk")]   # bulk actions take no per-row time
    out = active_seconds(events, idle_gap_s=300)["ana"]
    assert out == {"decisions": 4, "timed": 3, "seconds": 30 + 20 + 20 + 10}


def test_cost_per_accepted_label_arithmetic():
    # $2 of teacher calls, 90 expert minutes at $40/h = $60, over 31 kept labels -> $2 each
    assert cost_per_label(2.0, 90, 40, 31) == pytest.approx(2.0)
    assert cost_per_label(1.0, 10, 60, 0) is None
    current = [{"id": 1, "row_id": "1", "verdict": "accept"}, {"id": 2, "row_id": "1", "verdict": "flag"},
               {"id": 3, "row_id": "2", "verdict": "reject_rationale"}, {"id": 4, "row_id": "3", "verdict": "correct"}]
    assert accepted_labels(current) == 2  # row 1's latest decision flags it


def test_review_stats_from_the_command_line(labeled, tmp_path):
    t = teacher_label
    review.save_review(labeled, "tickets", "1", "ana", t(labeled, "1"), None, mode="first")
    review.save_review(labeled, "tickets", "2", "ana", other_label(labeled, "2"), None, mode="first")
    review.save_review(labeled, "tickets", "3", "ana", None, None, verdict="reject_rationale", mode="first")
    review.save_review(labeled, "tickets", "4", "ana", None, None, verdict="accept", mode="first")
    review.undo_last(labeled, "tickets", "ana")
    billed = labeled.scalar("SELECT sum(billed_usd) FROM teacher_calls WHERE project = 'tickets' "
                            "AND row_id IN ('1', '2', '3')")
    out = subprocess.run([sys.executable, "-m", "core", "review-stats", "--db", str(labeled.path), "--project",
                          "tickets", "--json", "--expert-rate", "30"], cwd=REPO, capture_output=True, text=True,
                         check=True)
    stats = json.loads(out.stdout)
    assert (stats["reviews"], stats["accepted"], stats["corrected"], stats["rejected"]) == (3, 1, 1, 1)
    assert stats["accepted_labels"] == 3 and stats["automation_bias"] is None and stats["kappa_independent"] is None
    assert stats["teacher_usd_reviewed_rows"] == pytest.approx(billed) and billed > 0
    expected = (billed + stats["expert_minutes"] / 60 * 30) / 3
    assert stats["cost_per_accepted_label_usd"] == pytest.approx(expected, abs=1e-4)


def test_a_second_reviewer_who_accepts_takes_the_teachers_label_not_the_first_reviewers(labeled):
    teacher = teacher_label(labeled, "1")
    corrected = other_label(labeled, "1")
    review.save_review(labeled, "tickets", "1", "ana", corrected, None, mode="first")
    assert review.form_mode(labeled, "tickets", "1", "ben") == "independent"
    review.save_review(labeled, "tickets", "1", "ben", None, None, mode="independent")  # A on an empty form
    ben = next(d for d in labeled.row_decisions("tickets", "1") if d["reviewer"] == "ben")
    assert (ben["label"], ben["verdict"], ben["label_changed"]) == (teacher, "accept", False)
    assert list(labeled.review_ids("tickets", ["reviewers disagree"])) == ["1"]
    assert kappa_counts(labeled) == [(corrected, teacher, 1)]


def kappa_counts(store):
    return store.agreement_counts("tickets")["reviewers"]


def test_search_sorts_and_bulk_actions_do_not_reveal_or_decide_blind_rows(labeled):
    labeled.create_spot_check("tickets", 6, stratified=False, blind_share=0.5)
    blind = set(labeled.review_ids("tickets", ["blind (spot check)"]))
    seen = set(labeled.review_ids("tickets", ["spot check"])) - blind
    assert len(blind) == 3
    # the teacher's rationales all read "The ticket mentions <label> problems."
    found = set(labeled.review_ids("tickets", ["all"], search="ticket mentions"))
    assert found == seen  # by its rationale, only a sighted row is found
    assert set(labeled.review_ids("tickets", ["all"], search=next(iter(blind)))) >= {next(iter(blind))}  # by id: yes
    for sort in ("longest rationale", "shortest rationale"):  # (no confidence without JSON output)
        order = [r["row_id"] for r in labeled.review_page("tickets", ["all"], sort=sort)[0]]
        assert set(order[-3:]) == blind and order[-3:] == sorted(order[-3:], key=int)  # unranked, last
    out = review.bulk_review(labeled, "tickets", ["spot check"], "ana", "accept",
                             row_ids=labeled.review_ids("tickets", ["spot check"]))
    assert out["applied"] == 3 and sorted(out["blind_skipped"]) == sorted(blind)
    assert not any(labeled.get_item("tickets", r)["reviewed"] for r in blind)


def test_rows_already_reviewed_are_never_made_blind(labeled):
    review.save_review(labeled, "tickets", "1", "ana", None, None, mode="first")  # seen with the teacher's answer
    labeled.create_spot_check("tickets", 6, stratified=False, blind_share=1.0)
    assert set(labeled.review_ids("tickets", ["blind (spot check)"])) == {"2", "3", "4", "5", "6"}


def test_review_outcomes_add_up_to_the_reviews():
    """One definition against the teacher's answer: each decision counts once (a second reviewer's
    accept of a row whose label differs from the teacher's is a correction, not also an accept)."""
    from core.review.stats import decision_outcome, verdict_counts

    def d(verdict, label, teacher, kind="review"):
        return {"verdict": verdict, "label": label, "teacher_label": teacher, "kind": kind, "label_changed": None}

    current = [d("accept", "billing", "billing"), d("accept", "shipping", "billing"), d("correct", "account", "billing"),
               d("correct", "billing", "Billing"), d("reject_rationale", "billing", "billing"),
               d("flag", None, "billing"), d("correct", "billing", None), d("accept", "billing", "billing", "bulk")]
    assert [decision_outcome(x) for x in current] == ["accepted", "corrected", "corrected", "rationale_edited",
                                                      "rejected", "flagged", "corrected", "accepted"]
    counts = verdict_counts(current)
    assert counts["reviews"] == 8 == sum(counts[k] for k in ("accepted", "corrected", "rationale_edited", "rejected",
                                                             "flagged"))
    assert counts["bulk"] == 1


def test_the_cli_follows_the_pages_review_rules(labeled):
    """Blind label first, a second reviewer counted as independent, reason codes from the list."""
    import json

    from tests.helpers import start_cli

    labeled.create_spot_check("tickets", 6, stratified=False, blind_share=0.5)
    blind = sorted(labeled.review_ids("tickets", ["blind (spot check)"]))
    open_rows = sorted({str(i) for i in range(1, 7)} - set(blind))
    labeled.release()

    def cli(*args):
        proc = start_cli("review", "--db", labeled.path, "--project", "tickets", *args)
        out, err = proc.communicate(timeout=300)
        return proc.returncode, (json.loads(out.strip().splitlines()[-1]) if out.strip() else {}), err

    code, out, _ = cli("--row-id", blind[0], "--reviewer", "ana", "--verdict", "accept")
    assert code != 0 and "--blind-label" in out["error"]
    mine = other_label(labeled, blind[0])
    code, out, _ = cli("--row-id", blind[0], "--reviewer", "ana", "--blind-label", mine)
    assert code == 0 and out["blind_label"] == mine and out["teacher_label"]  # revealed after the own label
    code, out, _ = cli("--row-id", blind[0], "--reviewer", "ana", "--verdict", "accept")
    assert code == 0
    code, _, err = cli("--row-id", open_rows[0], "--reviewer", "ana", "--verdict", "flag", "--reason", "meh")
    assert code != 0 and "invalid choice" in err
    for reviewer in ("ana", "ben"):  # ben's CLI decision after ana's is an independent second review
        code, out, _ = cli("--row-id", open_rows[1], "--reviewer", reviewer, "--verdict", "accept")
        assert code == 0, out
    events = labeled.query("SELECT reviewer, shown FROM review_events WHERE row_id = ? AND kind = 'review' "
                           "ORDER BY id", [open_rows[1]])
    assert [(e["reviewer"], e["shown"]) for e in events] == [("ana", "cli"), ("ben", "none")]
    assert review_stats(labeled, "tickets")["independent_pairs"] >= 1
