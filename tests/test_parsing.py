import pytest

from core.kernel.errors import DataImportError
from core.kernel.labels import numeric_value
from core.label.parsing import (
    check_label_words,
    labels_equal,
    parse_label_words,
    parse_response,
)

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
    assert two.label is None and two.flag == "unparseable"


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


# ---- prose answers ---------------------------------------------------------------
PLACES = ["bank", "library", "wooded area", "city or town", "knowing how to read"]


@pytest.mark.parametrize("text, expected", [
    ("The correct answer is d) city or town because cities and towns have many people.", "city or town"),
    ("The correct answer is option e) knowing how to read because a map has words on it.", "knowing how to read"),
    ("Deer need cover from hunters. The best choice would be (c).", "wooded area"),
    ("Deer need cover, so it would be (c) here.", "wooded area"),
    ("I would choose wooded area, since deer hide among trees.", "wooded area"),
    ("I'd pick C. Deer hide among trees.", "wooded area"),
    ("Deer hide among trees, so I choose (c)", "wooded area"),
    ("The final answer is: library", "library"),
    ("The answer is **c) wooded area**.", "wooded area"),
    ("Deer hide among trees.\n\n**(c) wooded area**", "wooded area"),
    ("The answer is option d.", "city or town"),
    ("The answer is (c).", "wooded area"),
    ("The answer is c).", "wooded area"),
    ("The answer is C. Deer hide among trees.", "wooded area"),
    ("The answer is c", "wooded area"),
    ("The answer is wooded area.", "wooded area"),
    ("Final Answer:\n(b) library", "library"),
])
def test_prose_answer_statements(text, expected):
    result = parse_response(text, "multiple-choice", PLACES)
    assert result.ok and result.label == expected, result


def test_the_because_clause_is_the_rationale_not_the_answer_statement():
    result = parse_response("The correct answer is d) city or town because cities and towns have many people.",
                            "multiple-choice", PLACES)
    assert result.label == "city or town"
    assert "cities and towns have many people" in result.rationale.lower()
    assert "correct answer is" not in result.rationale.lower()
    around = parse_response("Deer avoid open ground. So the answer is (c) wooded area, as trees hide them. "
                            "Banks are for money.", "multiple-choice", PLACES)
    assert around.label == "wooded area"
    assert around.rationale == "Deer avoid open ground. Trees hide them. Banks are for money."
    labelled = parse_response("The text points most clearly to neutral. Answer: neutral", "nli")
    assert (labelled.label, labelled.rationale) == ("neutral", "The text points most clearly to neutral.")


def test_a_bare_article_is_not_option_a():
    # "a place ..." once read as option (a); an unmarked letter followed by words is an article
    result = parse_response("The answer would be a place with many trees.", "multiple-choice",
                            ["desert", "wooded area", "ocean"])
    assert result.flag == "unparseable" and result.label is None
    assert parse_response("I would choose a desert.", "multiple-choice", ["ocean", "desert"]).label == "desert"


def test_a_later_statement_wins_but_a_denial_or_a_hedge_does_not():
    text = "The answer is not (a) desert. Deer need trees, so the answer is (b)."
    assert parse_response(text, "multiple-choice", CHOICES).label == "wooded area"
    alone = parse_response("The answer is not (a) desert.", "multiple-choice", CHOICES)
    assert alone.flag == "unparseable"
    hedged = parse_response("The answer is (c) ocean. Another option would be (a) desert, but it is dry.",
                            "multiple-choice", CHOICES)
    assert hedged.label == "ocean"


@pytest.mark.parametrize("text", [
    "The customer was charged twice. Answer: billing",
    "Answer: 'billing'",
    "The answer is \"billing\" because the card was charged twice.",
    "**Answer:** billing\n**Rationale:** The card was charged twice.",
    "I'd classify this as billing because the card was charged twice.",
    "Billing.",
])
def test_classification_answer_styles(text):
    result = parse_response(text, "classification", labels=["billing", "shipping", "returns"])
    assert result.ok and result.label == "billing", result
    assert result.rationale is None or "billing" not in result.rationale.lower()


@pytest.mark.parametrize("text", [
    "The correct answer is (a) or (b).",
    "The correct answer is either desert or ocean, because both are empty.",
    "The answer is a or c.",
    "I would choose desert or ocean.",
    "Answer: (a) desert or (c) ocean",
])
def test_answers_naming_two_options_stay_ambiguous(text):
    result = parse_response(text, "multiple-choice", CHOICES)
    assert result.flag == "ambiguous" and result.label is None


def test_a_choice_that_contains_or_or_because_is_one_option():
    assert parse_response("The answer is (d) city or town.", "multiple-choice", PLACES).label == "city or town"
    naps = ["run", "take a nap because you're broke", "eat"]
    assert parse_response("So the answer is take a nap because you're broke.", "multiple-choice",
                          naps).label == "take a nap because you're broke"


def test_nli_answers_naming_two_relations_are_ambiguous_and_quoted_labels_read():
    assert parse_response("Answer: entailment or neutral", "nli").flag == "ambiguous"
    assert parse_response('The answer is "neutral" because nothing is said about rain.', "nli").label == "neutral"


def test_truncated_prose_answer_is_flagged():
    result = parse_response("The correct answer is (c) wooded area because deer", "multiple-choice", CHOICES,
                            stop_reason="max_tokens")
    assert result.flag == "truncated" and result.label is None


# ---- label words -------------------------------------------------------------------
NLI_WORDS = {"true": "entailment", "false": "contradiction", "inconclusive": "neutral"}
YES_NO = {"yes": "complaint", "no": "not complaint"}


@pytest.mark.parametrize("text, expected", [
    ("Answer: Inconclusive\nRationale: The premise says nothing of it.", "neutral"),
    ("The premise states it outright. Answer: TRUE.", "entailment"),
    ("The answer is **false** because the premise says the opposite.", "contradiction"),
    ('{"label": "inconclusive", "rationale": "x"}', "neutral"),
    ("Answer: entailment", "entailment"),  # a label itself still reads
])
def test_nli_label_words(text, expected):
    assert parse_response(text, "nli", label_words=NLI_WORDS).label == expected


def test_nli_label_words_the_synonyms_do_not_know():
    words = {"follows": "entailment", "clashes": "contradiction", "unclear": "neutral"}
    assert parse_response("Answer: follows", "nli").flag == "unparseable"
    assert parse_response("Answer: follows", "nli", label_words=words).label == "entailment"
    assert parse_response("The answer is 'clashes' because it says the opposite.", "nli",
                          label_words=words).label == "contradiction"
    assert parse_response("Unclear: the premise says nothing of rain.", "nli", label_words=words).label == "neutral"


def test_yes_no_label_words_for_a_binary_classification():
    labels = ["complaint", "not complaint"]
    assert parse_response("Answer: Yes\nRationale: angry", "classification", labels=labels,
                          label_words=YES_NO).label == "complaint"
    opening = parse_response("No, the customer is only asking a question.", "classification", labels=labels,
                             label_words={"Yes": "complaint", "No": "not complaint"})
    assert (opening.label, opening.rationale) == ("not complaint", "The customer is only asking a question.")
    assert parse_response("Yesterday it was fine.", "classification", labels=labels, label_words=YES_NO).label is None
    assert parse_response("The answer is 'no'.", "classification", labels=labels,
                          label_words=YES_NO).label == "not complaint"
    # without the words "yes" names no label; "yes or no" names two: neither is guessed
    assert parse_response("Answer: yes", "classification", labels=labels).flag == "unparseable"
    assert parse_response("Answer: yes or no", "classification", labels=labels, label_words=YES_NO).label is None


def test_label_words_do_not_touch_choices_or_numbers():
    assert parse_response("Answer: yes", "multiple-choice", CHOICES, label_words={"yes": "ocean"}).label is None
    assert parse_response("The answer is (3 * 4).", "numeric", label_words={"yes": "1"}).label == "12"


def test_parse_label_words():
    assert parse_label_words("true=entailment,false=contradiction, Inconclusive = neutral,") == NLI_WORDS
    assert parse_label_words("") == {}


@pytest.mark.parametrize("spec, message", [
    ("true", "word=label"),
    ("true=entailment=x", "word=label"),
    ("=entailment", "needs a word on the left"),
    ("true=", "a label on the right"),
    ("true=entailment, TRUE=neutral", "mapped to both"),
])
def test_parse_label_words_rejects_malformed_entries(spec, message):
    with pytest.raises(DataImportError, match=message):
        parse_label_words(spec)


def test_check_label_words_against_the_label_set():
    assert check_label_words({"True": "Entailment"}, "nli", None) == {"true": "entailment"}
    assert check_label_words({"Yes": "Billing"}, "classification", ["billing", "shipping"]) == {"yes": "billing"}
    with pytest.raises(DataImportError, match="not a label"):
        check_label_words({"maybe": "unsure"}, "nli", None)
    with pytest.raises(DataImportError, match="not a label"):
        check_label_words({"yes": "refund"}, "classification", ["billing", "shipping"])
    with pytest.raises(DataImportError, match="itself the label"):
        check_label_words({"neutral": "contradiction"}, "nli", None)
    with pytest.raises(DataImportError, match="classification and NLI"):
        check_label_words({"yes": "ocean"}, "multiple-choice", None)


# ---- classification near misses ------------------------------------------------------
def test_classification_near_misses_map_but_ties_and_short_labels_are_not_guessed():
    labels = ["billing", "shipping", "returns"]
    assert parse_response("Answer: biling\nRationale: x", "classification", labels=labels).label == "billing"
    assert parse_response("The answer is shiping.", "classification", labels=labels).label == "shipping"
    tie = parse_response("Answer: iilling", "classification", labels=["billing", "filling"])
    assert tie.flag == "unparseable" and tie.label is None
    for typo in ("noo", "on", "ys"):
        short = parse_response(f"Answer: {typo}", "classification", labels=["yes", "no"])
        assert short.flag == "unparseable" and short.label is None, typo
    assert parse_response("Answer: bananas", "classification", labels=labels).flag == "unparseable"


def test_gold_labels_are_never_fuzzy_matched():
    from core.kernel.tasks import get_task
    assert get_task("classification").normalize_gold(" biling ", None, 1, "label") == "biling"
