import pytest

from core.parsing import labels_equal, numeric_value, parse_response

CHOICES = ["desert", "wooded area", "ocean", "city", "space"]


@pytest.mark.parametrize("answer", ["(b) wooded area", "b)", "option B", "B.", "wooded area", "(b)", "Wooded Area."])
def test_choice_styles(answer):
    result = parse_response(f"Answer: {answer}\nRationale: Trees grow there.", "multiple-choice", CHOICES)
    assert result.ok and result.label == "wooded area" and result.rationale == "Trees grow there."


def test_chain_of_thought_run_on_is_cut_at_the_last_answer_before_new_question():
    text = ("Deer live among trees. So the answer is (b) wooded area.\n\nQ: Where do whales live?\n"
            "Answer Choices:\n(a) ocean\nA: So the answer is (a) ocean.")
    result = parse_response(text, "multiple-choice", CHOICES)
    assert result.label == "wooded area" and result.rationale == "Deer live among trees."


def test_ambiguous_and_unparseable_are_flagged_not_guessed():
    amb = parse_response("So the answer is either (a) desert or (c) ocean.", "multiple-choice", CHOICES)
    assert amb.flag == "ambiguous" and amb.label is None
    bad = parse_response("I am not sure about this one.", "multiple-choice", CHOICES)
    assert bad.flag == "unparseable" and bad.rationale == "I am not sure about this one."
    two = parse_response("Answer: billing or returns\nRationale: x", "classification", labels=["billing", "returns"])
    assert two.flag == "unparseable"


def test_truncated_response_is_flagged():
    result = parse_response("Rationale: The ticket talks about", "classification", labels=["billing"],
                            stop_reason="max_tokens")
    assert result.flag == "truncated"


def test_numeric_answers_compare_by_value_without_eval():
    result = parse_response("He has 84 / 2 = 42 points each. The answer is (84 / 2).", "numeric")
    assert result.label == "42" and labels_equal(result.label, "42.0", "numeric")
    assert numeric_value("__import__('os').system('x')") is None
    assert numeric_value("2 ** 1000000") is None
    assert numeric_value("(3 + 4) * 2") == 14


def test_nli_synonyms_and_json_output():
    assert parse_response("Answer: True\nRationale: stated", "nli").label == "entailment"
    assert parse_response("Answer: inconclusive\nRationale: x", "nli").label == "neutral"
    result = parse_response('{"label": "Billing", "rationale": "Double charge."}', "classification",
                            labels=["billing", "shipping"])
    assert (result.label, result.rationale) == ("billing", "Double charge.")


def test_letter_wins_over_a_paraphrase_or_typo_unless_the_text_names_another_option():
    assert parse_response("So the answer is (d) skyscraper.", "multiple-choice",
                          ["park", "desert", "ocean", "tall building", "space"]).label == "tall building"
    assert parse_response("So the answer is (b) wooded aera.", "multiple-choice", CHOICES).label == "wooded area"
    assert parse_response("So the answer is (b) ocean.", "multiple-choice", CHOICES).label == "ocean"
    assert parse_response("Answer: wooded aera\nRationale: x", "multiple-choice", CHOICES).label == "wooded area"


@pytest.mark.parametrize("text, expected", [
    ("So 87 * 58 / 2 = 2523. The answer is (87 * 58) / 2.", "2523"),
    ("The answer is ((8 action figures + 10 cabinets) * 4 shelves).", "72"),
    ("So Jake has 16 - 7 = 9 peaches.", "9"),
    ("He has 11,210 students. The answer is 11,210.", "11210"),
])
def test_numeric_expression_styles(text, expected):
    assert parse_response(text, "numeric").label == expected


@pytest.mark.parametrize("text", [
    "So 2 * x = 12. The answer is (2 * x).",
    "The answer is (some - 8).",
    "The answer is (53 + 17) and (14 - 10).",
    "The answer is (175, 5).",
])
def test_numeric_answers_with_unknowns_or_several_results_are_flagged(text):
    result = parse_response(text, "numeric")
    assert result.flag == "unparseable" and result.label is None
