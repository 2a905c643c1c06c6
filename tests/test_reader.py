"""The reader of free-text answers (core.label.reader, through parse_response): one method for
every task type. Each family holds several phrasings written for this test (not copied from the
corpus the benchmark reads), with negations, hedges and several options; bench/parsing.py measures
the same reader on the real answers in ../shared/data."""

import pytest

from core.label.parsing import parse_response

CHOICES = ["bank", "library", "department store", "mall", "new york"]
TICKETS = ["billing", "shipping", "account", "returns"]
NLI = ["entailment", "neutral", "contradiction"]


def read(text, task, **kw):
    return parse_response(text, task, **kw)


# ---- multiple choice: every marker style, the text alone, prose --------------------------------
MC_READ = [
    ("c) department store - they sell clothes and housewares under one roof.", "department store"),
    ("(c) department store, because it has many sections.", "department store"),
    ("C. Department store", "department store"),
    ("3) department store", "department store"),
    ("Option 3: department store. It sells many kinds of goods.", "department store"),
    ("You would most likely find it in a department store.", "department store"),
    ("The most sensible place would be the library, since books are kept there.", "library"),
    ("I'd go with the mall; it has lots of shops.", "mall"),
    ("A bank is where you keep money safe.", "bank"),
    ("The best choice is option b) library as it lends books.", "library"),
    ("Department store. Such stores carry a wide range of goods.", "department store"),
    ("While a mall also has shops, the department store is the best answer here.", "department store"),
    ("It is not the bank; the answer is the library.", "library"),
    ("The bank is unlikely, and so is the mall. New York is too vague. The library fits best.", "library"),
    ("People keep their savings in a bank rather than in a department store.", "bank"),
    ("Answer: (e) new york", "new york"),
    ("**Library** - it is the place that lends books.", "library"),
    ("Based on the options, the correct answer would be 2) library.", "library"),
]

MC_AMBIGUOUS = [
    "You could find it at a bank or at a library.",
    "So the answer is either (a) bank or (b) library.",
    "Library or mall, hard to say.",
    "Both the mall and the department store would work.",
]

MC_UNREAD = [
    "I'm sorry, but I cannot determine that from the question.",
    "None of the options seem right to me.",
    "It depends on the situation and on what you need.",
]


@pytest.mark.parametrize("text,label", MC_READ)
def test_multiple_choice_answers_are_read(text, label):
    parsed = read(text, "multiple-choice", choices=CHOICES)
    assert parsed.ok, (text, parsed)
    assert parsed.label == label


@pytest.mark.parametrize("text", MC_AMBIGUOUS)
def test_two_asserted_options_are_ambiguous_not_guessed(text):
    parsed = read(text, "multiple-choice", choices=CHOICES)
    assert parsed.label is None and parsed.flag == "ambiguous", parsed


@pytest.mark.parametrize("text", MC_UNREAD)
def test_a_reply_naming_no_option_is_unreadable(text):
    parsed = read(text, "multiple-choice", choices=CHOICES)
    assert parsed.label is None and parsed.flag == "unparseable", parsed


def test_only_option_named_under_negation_is_not_chosen():
    parsed = read("It is definitely not the bank.", "multiple-choice", choices=CHOICES)
    assert parsed.label is None and parsed.flag == "unparseable"


def test_the_rationale_is_the_reply_without_its_answer_statement():
    parsed = read("Books are lent there. The answer would be the library, because it lends books.",
                  "multiple-choice", choices=CHOICES)
    assert parsed.label == "library"
    assert "Books are lent there." in parsed.rationale
    assert "would be the library" not in parsed.rationale


def test_a_json_answer_is_never_read_as_prose():
    parsed = read('{"label": "nowhere", "rationale": "the library lends books"}', "multiple-choice", choices=CHOICES)
    assert parsed.label is None and parsed.flag == "unparseable"


# ---- classification ------------------------------------------------------------------------
CLS_READ = [
    ("This ticket is about billing: the customer was charged twice.", "billing"),
    ("Category: shipping. The parcel has not arrived.", "shipping"),
    ("I would classify this as an account issue, since the user cannot log in.", "account"),
    ("The customer wants to send the boots back, so it belongs under returns.", "returns"),
    ("Shipping. The package is late.", "shipping"),
    ("This is not a billing question; it is about the account password.", "account"),
    ("The best fit is returns rather than shipping.", "returns"),
    ("Although it mentions a charge, the main problem is shipping: the order never arrived.", "shipping"),
]


@pytest.mark.parametrize("text,label", CLS_READ)
def test_classification_answers_are_read(text, label):
    parsed = read(text, "classification", labels=TICKETS)
    assert parsed.ok, (text, parsed)
    assert parsed.label == label


def test_classification_two_labels_asserted_is_ambiguous():
    parsed = read("It is both a billing and a shipping problem.", "classification", labels=TICKETS)
    assert parsed.flag == "ambiguous", parsed


def test_label_words_are_read_in_prose():
    words = {"money": "billing", "delivery": "shipping"}
    parsed = read("I think this is clearly a delivery problem.", "classification", labels=TICKETS,
                  label_words=words)
    assert parsed.label == "shipping", parsed


# ---- NLI ----------------------------------------------------------------------------------
NLI_READ = [
    ("The hypothesis follows from the premise, so this is entailment.", "entailment"),
    ("Contradiction: the premise says the man is asleep.", "contradiction"),
    ("The relationship is neutral; the premise says nothing about the weather.", "neutral"),
    ("The premise does not entail the hypothesis, which is neither supported nor refuted. Neutral.", "neutral"),
    ("This would be a contradiction because both cannot be true.", "contradiction"),
]


@pytest.mark.parametrize("text,label", NLI_READ)
def test_nli_answers_are_read(text, label):
    parsed = read(text, "nli", labels=NLI)
    assert parsed.ok, (text, parsed)
    assert parsed.label == label


def test_nli_label_words_with_a_quoted_claim():
    words = {"true": "entailment", "false": "contradiction", "inconclusive": "neutral"}
    text = 'The claim "the report was false and the minister lied to parliament about it" is inconclusive.'
    parsed = read(text, "nli", labels=NLI, label_words=words)
    assert parsed.label == "neutral", parsed


# ---- numeric ------------------------------------------------------------------------------
NUM_READ = [
    ("Tom had 12 apples and gave away 5. 12 - 5 = 7. So Tom has 7 apples left.", "7"),
    ("First, 3 boxes of 4 pens make 3 * 4 = 12 pens. Therefore, she has 12 pens in total.", "12"),
    ("She spent $4.50 and $3.25, which is $7.75 altogether.", "7.75"),
    ("The answer is 42.", "42"),
    ("He needs 1,200 more steps. Hope this helps!", "1200"),
    ("Each child gets 15 / 3 = 5 candies.", "5"),
    ("There were 8 birds and 3 flew away, leaving 5 birds. The final count is 5.", "5"),
]

NUM_UNREAD = [
    "So Steven has 18 - 26",                                   # cut inside a sum: no result stated
    "The answer is (2 * x).",                                  # a stated answer that is no number
    "We need to know how many apples Tom started with.",       # no number at all
]


@pytest.mark.parametrize("text,value", NUM_READ)
def test_a_number_stated_as_the_result_is_read(text, value):
    parsed = read(text, "numeric")
    assert parsed.ok, (text, parsed)
    assert parsed.label == value


@pytest.mark.parametrize("text", NUM_UNREAD)
def test_no_result_stated_is_unread_not_guessed(text):
    parsed = read(text, "numeric")
    assert parsed.label is None and not parsed.ok, parsed


def test_a_cut_answer_stays_truncated():
    parsed = read("The library lends books, so the answer would be", "multiple-choice", choices=CHOICES,
                  stop_reason="max_tokens")
    assert parsed.flag == "truncated"


# ---- hostile answers ----------------------------------------------------------------------
HOSTILE = ["\n" * 100_000, "option a or option b, " * 4_500, "(a) " * 25_000, "not " * 25_000 + "bank",
           "such as " * 12_000 + "bank", "\n\n Q" * 30_000]


@pytest.mark.timeout(120)  # not a speed claim: a backtracking pattern took hours on these before
@pytest.mark.parametrize("text", HOSTILE, ids=["newlines", "options", "markers", "negations", "examples", "run-ons"])
def test_hostile_answers_are_read_in_bounded_time_and_flagged_or_read(text):
    for task, kw in (("multiple-choice", {"choices": CHOICES}), ("numeric", {}), ("nli", {"labels": NLI})):
        parsed = read(text, task, **kw)
        assert parsed.ok or parsed.flag in ("unparseable", "ambiguous"), parsed
