"""Task types: one rule for "is this label right?", the same in Python and in the store's SQL."""

import duckdb
import pytest

from core.kernel.tasks import TASK_TYPES, get_task

CHOICES = ["bank", "library", "wooded area", "city or town", "ocean"]

# (task, a, b, expected): stored labels as they meet in accuracy, filters and training
CASES = [
    ("numeric", "7", "7.0", True),
    ("numeric", "7", "7.00001", False),
    ("numeric", "1,000", "1000", True),
    ("numeric", "$7", "7", True),
    ("numeric", "-3", "-3.0", True),
    ("numeric", "0.1", "0.10000000001", True),
    ("numeric", "1000000", "1000000.5", True),   # relative tolerance 1e-6
    ("numeric", "seven", "7", False),
    ("numeric", "7", None, False),
    ("numeric", None, None, False),
    ("multiple-choice", "wooded area", "Wooded Area", True),
    ("multiple-choice", "wooded area", "wooded area.", True),
    ("multiple-choice", "c", "wooded area", False),             # a letter is not its text until normalised
    ("multiple-choice", "(c) wooded area", "wooded area", False),
    ("multiple-choice", "city or town", "city  or  town", True),
    ("nli", "entailment", "Entailment.", True),
    ("nli", "neutral", "contradiction", False),
    ("classification", "billing", "Billing", True),
    ("classification", "billing!", "billing", True),
    ("classification", "Café", "café", True),
    ("classification", "café", "cafe", False),
    ("classification", "tech-support", "tech support", False),
    ("classification", "a_b", "a b", False),
    ("classification", "shipping", None, False),
]


def sql_equal(task: str, a, b) -> bool:
    expr = get_task(task).sql_equal("a", "b")
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT {expr} FROM (SELECT ?::VARCHAR AS a, ?::VARCHAR AS b)", [a, b]).fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.parametrize("task,a,b,expected", CASES)
def test_python_and_sql_agree_on_label_equality(task, a, b, expected):
    kind = get_task(task)
    assert kind.labels_equal(a, b) is expected
    assert sql_equal(task, a, b) is expected
    assert kind.labels_equal(b, a) is expected and sql_equal(task, b, a) is expected  # symmetric


def test_a_choice_letter_equals_its_text_once_normalised():
    mc = get_task("multiple-choice")
    for answer in ("c", "(c)", "C.", "option c", "(c) wooded area", "Wooded area"):
        label = mc.normalize(answer, CHOICES)
        assert label == "wooded area", answer
        assert mc.labels_equal(label, "wooded area") and sql_equal("multiple-choice", label, "wooded area")


def test_every_task_type_owns_its_behaviour():
    for name, kind in TASK_TYPES.items():
        assert kind.name == name and kind.preset and kind.given and kind.help
        assert "{inputs}" in kind.preset and "{inputs}" in kind.given
    assert get_task("numeric").normalize_gold("3 + 4", None, 1, "a") == "7"
    assert get_task("nli").normalize_gold("Entails", None, 1, "a") == "entailment"
    assert get_task("multiple-choice").normalize_gold("b", CHOICES, 1, "a") == "library"
    assert get_task("numeric").fallback_answer("So 4 + 5 = 9 peaches.") == "9"
    assert get_task("classification").fallback_answer("So 4 + 5 = 9 peaches.") is None
    assert get_task("multiple-choice").is_ambiguous("either (a) or (e)", CHOICES)
    assert get_task("numeric").normalize_prediction("3 * 4", None, None) == "12"
    assert get_task("classification").normalize_prediction("Billing", None, ["billing", "shipping"]) == "billing"
