"""Rationale checks (core.label.rationale_checks): each check on hand-written rows that must be flagged
and on rows that must not (the tricky ones included), and check_rows on a small mixed project."""

import pytest

from core.label.rationale_checks import (
    CHECK_HELP,
    CHECKS,
    Thresholds,
    check_rows,
    grounding,
    length_bounds,
    stem,
)

LABELS = ["billing", "shipping", "technical"]
WHALE = ["desert", "wooded area", "ocean", "city", "space"]
DEER_Q = {"question": "Where would you expect to find deer?"}
TICKET = {"text": "My card was charged twice for one order."}


def one(rationale, label, *, inputs=None, choices=None, label_set=None, th=None):
    """The result for a single row checked alone."""
    row = {"row_id": "r", "inputs": inputs if inputs is not None else TICKET, "choices": choices,
           "label": label, "rationale": rationale}
    return check_rows([row], label_set, thresholds=th)["r"]


def flags(*args, **kw):
    return one(*args, **kw)["flags"]


# ---- the API --------------------------------------------------------------------------------------
def test_every_check_has_a_one_line_help():
    assert CHECKS == ("leakage", "contradiction", "ungrounded", "boilerplate", "length")
    assert set(CHECK_HELP) == set(CHECKS)
    assert all(text and "\n" not in text for text in CHECK_HELP.values())


def test_thresholds_from_project_settings_ignore_unknown_keys():
    th = Thresholds.from_dict({"boilerplate_min_rows": 9, "colour": "red"})
    assert th.boilerplate_min_rows == 9 and th.ungrounded_max_share == Thresholds().ungrounded_max_share
    assert Thresholds.from_dict(None) == Thresholds()


def test_stemmer_meets_plurals_and_verb_forms():
    assert stem("churches") == stem("church")
    assert stem("making") == stem("make") == stem("made")
    assert stem("bathing") == stem("bathe")
    assert stem("studies") == stem("study") == stem("studied")
    assert stem("running") == stem("run")
    assert stem("bus") == "bus" and stem("class") == "class"


# ---- leakage ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rationale", ["The answer is billing.", "Because it is billing.",
                                       "It is clearly billing, the correct category."])
def test_leakage_flags_a_restated_class(rationale):
    result = one(rationale, "billing", label_set=LABELS)
    assert "leakage" in result["flags"], result
    assert result["detail"]["leakage"]


@pytest.mark.parametrize("rationale", ["b) bank is correct.", "Of the above choices, only bank makes sense.",
                                       "The answer is (b)."])
def test_leakage_flags_a_restated_choice(rationale):
    assert "leakage" in flags(rationale, "bank", inputs={"question": "Where do you keep money?"},
                              choices=["river", "bank", "mattress"])


def test_leakage_flags_a_restated_number():
    assert "leakage" in flags("The answer is 42.", "42", inputs={"problem": "Luke scored 84 points in 2 rounds."})


@pytest.mark.parametrize("rationale, label", [
    ("Charged twice, so billing.", "billing"),                        # short but it gives a reason
    ("The customer was charged twice for one order.", "billing"),      # a reason, the class never named
    ("It is billing because the card shows two charges.", "billing"),
    ("b) bank, because people keep money safe there.", "bank"),
])
def test_leakage_leaves_a_rationale_with_a_reason(rationale, label):
    choices = ["river", "bank", "mattress"] if label == "bank" else None
    assert "leakage" not in flags(rationale, label, choices=choices, label_set=None if choices else LABELS)


def test_leakage_leaves_a_numeric_rationale_that_computes():
    assert "leakage" not in flags("84 / 2 = 42.", "42", inputs={"problem": "Luke scored 84 points in 2 rounds."})


def test_leakage_and_contradiction_need_a_label():
    result = one("The answer is billing.", None, label_set=LABELS)
    assert "leakage" not in result["flags"] and "contradiction" not in result["flags"]


def test_leakage_threshold_is_a_parameter():
    lenient = Thresholds(leakage_max_other_words=1)
    assert "leakage" not in flags("Refund, so billing.", "billing", label_set=LABELS)
    assert "leakage" in flags("Refund, so billing.", "billing", label_set=LABELS, th=lenient)


# ---- contradiction --------------------------------------------------------------------------------
@pytest.mark.parametrize("rationale", [
    "Deer need trees to hide. So the answer is (b) wooded area.",
    "Deer need cover. Of the above choices, only wooded area has cover.",
    "Deer live among trees, so wooded area is the best choice.",
    "Deer hide among trees; a wooded area makes the most sense.",
])
def test_contradiction_flags_a_rationale_for_another_choice(rationale):
    result = one(rationale, "desert", inputs=DEER_Q, choices=WHALE)
    assert "contradiction" in result["flags"], result
    assert "wooded area" in result["detail"]["contradiction"]


def test_contradiction_flags_a_rationale_for_another_class():
    result = one("The ticket is shipping because the parcel never arrived.", "billing", label_set=LABELS)
    assert "contradiction" in result["flags"]
    assert "shipping" in result["detail"]["contradiction"]


def test_contradiction_flags_a_rationale_that_rules_the_answer_out():
    result = one("This is not billing; the parcel was lost on the way.", "billing", label_set=LABELS)
    assert "contradiction" in result["flags"]
    assert "rules out" in result["detail"]["contradiction"]


@pytest.mark.parametrize("rationale", [
    "Not the desert or the ocean, so wooded area.",
    "Deer are not found in the desert, the ocean or space; they need trees, so wooded area.",
    "Wooded area is correct, not desert, because deer hide among trees.",
    "Deer hide among trees rather than in a city. So the answer is (b) wooded area.",
    "I would not choose the ocean: deer live among trees in a wooded area.",
])
def test_contradiction_leaves_other_options_that_are_ruled_out(rationale):
    assert "contradiction" not in flags(rationale, "wooded area", inputs=DEER_Q, choices=WHALE)


def test_contradiction_leaves_the_class_favoured_over_another():
    assert "contradiction" not in flags("It is billing rather than shipping, since the card was charged twice.",
                                        "billing", label_set=LABELS)
    assert "contradiction" not in flags("Although the parcel arrived late, the customer wants the double charge "
                                        "back, so billing.", "billing", label_set=LABELS)
    # the negation reaches "shipping", not past "but"
    assert "contradiction" not in flags("This is not shipping but billing: the card was charged twice.",
                                        "billing", label_set=LABELS)


def test_contradiction_leaves_a_negative_question_answered_negatively():
    # "what did he not need?" is answered by "he did not need X": the negation is the question's
    inputs = {"question": "Lance was cooling off. He didn't need what?"}
    choices = ["relaxation", "soap", "revenge"]
    assert "contradiction" not in flags("Lance didn't need revenge.", "revenge", inputs=inputs, choices=choices)
    # the same words with a positive question do rule the answer out
    assert "contradiction" in flags("Lance didn't need revenge.", "revenge",
                                    inputs={"question": "What did Lance need?"}, choices=choices)


def test_contradiction_leaves_options_listed_together_with_the_answer():
    rationale = "Of the above choices, only desert, ocean and wooded area have deer."
    assert "contradiction" not in flags(rationale, "wooded area", inputs=DEER_Q, choices=WHALE)


def test_contradiction_takes_options_spelt_alike_for_one_answer():
    # CQA has near-duplicate choices; the teacher's letter picks one, its rationale writes the other
    choices = ["fall asleep", "falling asleep", "sit", "theater", "theatre"]
    rationale = "Of the above choices, only falling asleep can be done while pretending to read."
    q = {"question": "q"}
    assert "contradiction" not in flags(rationale, "falling asleep", inputs=q, choices=choices)
    assert "contradiction" not in flags(rationale, "fall asleep", inputs=q, choices=choices)
    assert "contradiction" in flags(rationale, "sit", inputs=q, choices=choices)
    assert "contradiction" not in flags("Only a theatre has a stage.", "theater", inputs=q, choices=choices)
    assert "contradiction" in flags("Only a theatre has a stage.", "theater", inputs=q, choices=choices,
                                    th=Thresholds(near_miss=0.95))


@pytest.mark.parametrize("rationale, label", [
    ("828521 - 800059 = 284652 kids stayed home.", "28462"),
    ("Paige had 16 goldfish and 71 catfish. So 16 + 71 - 2 = 87.", "85"),
    ("He had 2 dollars and each bar costs 3. So 2 / 3 = 0.67 bars.", "6"),
])
def test_contradiction_flags_a_number_the_rationale_never_reaches(rationale, label):
    result = one(rationale, label, inputs={"problem": "p"})
    assert "contradiction" in result["flags"], result


@pytest.mark.parametrize("rationale, label", [
    ("84 / 2 = 42 points each.", "42"),
    ("Josh had 19 - 11 = 8 marbles. After finding 5 he had 8 + 5 = 13.", "13"),      # an intermediate result
    ("In 5 days he spends 5 * 6 = 30 hours on english and 5 * 7 = 35 on chinese.", "65"),  # the parts of the sum
    ("79 games means 79 * 191 points.", "15089"),                                     # no '=' at all
    ("So 100 / 3 = 33.33 each.", "33.333333"),                                       # rounded
    ("Dave has 7 more apps than files.", "7"),                                        # nothing computed
    ("He spent 99 x 3 = 297 dollars, so he is left with -293 dollars.", "-293"),     # a negative answer
])
def test_contradiction_leaves_numeric_rationales_that_agree(rationale, label):
    assert "contradiction" not in flags(rationale, label, inputs={"problem": "p"})


# ---- ungrounded -------------------------------------------------------------------------------
@pytest.mark.parametrize("rationale, inputs, choices", [
    ("Deep sea creatures glow because of bioluminescent bacteria living inside them.", TICKET, None),
    ("Penguins enjoy cold weather and catch fish near Antarctica.", DEER_Q, WHALE),
    ("Trains leave the central station every hour on weekdays.", {"problem": "Tom has 5 apples and eats 2."}, None),
])
def test_ungrounded_flags_a_rationale_about_something_else(rationale, inputs, choices):
    result = one(rationale, None, inputs=inputs, choices=choices)
    assert "ungrounded" in result["flags"], result
    assert result["grounding"] < 0.4


@pytest.mark.parametrize("rationale, inputs, choices, label", [
    ("The card was charged twice for one order.", TICKET, None, "billing"),
    ("Charged twice: a billing issue.", TICKET, None, "billing"),                      # short, the class is neutral
    ("Churches give sermons.", {"question": "Where is a sermon given?"}, ["church", "park"], "church"),  # stems
    ("Deer hide among trees in a wooded area.", {"question": "Where do deer hide among trees?"}, WHALE, "wooded area"),
])
def test_ungrounded_leaves_rationales_that_use_the_input(rationale, inputs, choices, label):
    result = one(rationale, label, inputs=inputs, choices=choices, label_set=None if choices else LABELS)
    assert "ungrounded" not in result["flags"], result
    assert result["grounding"] >= 0.99


def test_grounding_skips_numbers_the_rationale_computes():
    inputs = {"problem": "Luke scored 84 points after playing 2 rounds. How many points per round?"}
    assert grounding("Luke scored 84 points in 2 rounds, so 84 / 2 = 42 points per round.", inputs, label="42") == 1.0
    # an invented number is not grounded
    assert grounding("Luke scored 84 points in 7 rounds.", inputs, label="12") < 1.0


def test_grounding_is_a_score_between_0_and_1_and_none_without_content_words():
    half = grounding("The card was stolen yesterday.", {"text": "My card was charged."})
    assert 0 < half < 1
    assert grounding("It is so.", TICKET) is None
    assert one("It is so.", "billing", label_set=LABELS)["grounding"] is None


def test_ungrounded_needs_enough_content_words():
    # one unmatched word of one: a share, but not enough words to flag on
    result = one("Fraud.", "billing", label_set=LABELS)
    assert result["grounding"] == 0.0 and "ungrounded" not in result["flags"]


# ---- boilerplate ------------------------------------------------------------------------------
def project(rationales, labels=None, inputs=None):
    return [{"row_id": str(i), "inputs": inputs[i] if inputs else {"text": f"ticket number {i} about thing {i}"},
             "choices": None, "label": (labels or LABELS)[i % len(labels or LABELS)], "rationale": r}
            for i, r in enumerate(rationales)]


def tag(i):
    """A distinct word for each i (numbers are masked, so they cannot tell rationales apart)."""
    return "".join("abcdefghij"[int(d)] for d in str(i))


def boiler_ids(rows, label_set=LABELS, th=None):
    result = check_rows(rows, label_set, thresholds=th)
    return {rid for rid, r in result.items() if "boilerplate" in r["flags"]}


def test_boilerplate_flags_one_text_repeated_with_the_label_masked():
    rows = project([f"The text is about {LABELS[i % 3]}." for i in range(8)]
                   + [f"Unique reason {w}." for w in "abcdefgh"])
    assert boiler_ids(rows) == {str(i) for i in range(8)}
    detail = check_rows(rows, LABELS)["0"]["detail"]["boilerplate"]
    assert "8 of 16" in detail


def test_boilerplate_masks_numbers_case_and_punctuation():
    texts = ["So 3 + 4 = 7 apples.", "so 10 + 2 = 12 apples", "SO 1 + 1 = 2 APPLES!", "So 5 + 5 = 10, apples.",
             "So 8 + 9 = 17 apples...", "So 6+6=12 apples."]
    rows = [{"row_id": str(i), "inputs": {"problem": f"problem {i}"}, "choices": None, "label": "1", "rationale": t}
            for i, t in enumerate(texts)]
    assert boiler_ids(rows, None) == {str(i) for i in range(6)}


def test_boilerplate_masks_the_rows_own_choices():
    rows = [{"row_id": str(i), "inputs": {"question": f"question {i}"}, "choices": [f"thing{i}", f"other{i}"],
             "label": f"thing{i}", "rationale": f"Of the above choices, only thing{i} makes sense."} for i in range(5)]
    assert boiler_ids(rows, None) == {str(i) for i in range(5)}


def test_boilerplate_leaves_few_repeats():
    rows = project(["The text is about billing."] * 4 + [f"Reason number {w} here." for w in "abcdefg"])
    assert boiler_ids(rows) == set()


def test_boilerplate_needs_a_share_of_the_project_and_the_share_is_a_parameter():
    rows = project(["The text is about billing."] * 6 + [f"Reason {tag(i)}." for i in range(994)])
    # 6 of 1,000 is 0.6%, under the default 2%
    assert boiler_ids(rows) == set()
    assert boiler_ids(rows, th=Thresholds(boilerplate_min_share=0.005)) == {str(i) for i in range(6)}
    assert boiler_ids(rows, th=Thresholds(boilerplate_min_share=0.005, boilerplate_min_rows=7)) == set()


def test_boilerplate_leaves_the_same_rationale_on_duplicated_inputs():
    same = [{"text": "My card was charged twice."}] * 6
    rows = project(["The customer was charged twice."] * 6, labels=["billing"], inputs=same)
    assert boiler_ids(rows) == set()


def test_boilerplate_leaves_different_rationales_with_the_same_opening():
    rows = project([f"The text is about billing because the {w} was charged twice." for w in
                    ["card", "account", "invoice", "order", "bank", "wallet"]])
    assert boiler_ids(rows) == set()


# ---- length -----------------------------------------------------------------------------------
def words(n, seed=0):
    vocab = ["card", "order", "parcel", "charged", "refund", "login", "error", "courier", "twice", "late"]
    return " ".join(vocab[(seed + i) % len(vocab)] for i in range(n)) + "."


def length_flags(counts):
    rows = project([words(n, i) for i, n in enumerate(counts)])
    result = check_rows(rows, LABELS)
    return {int(rid): r["detail"]["length"] for rid, r in result.items() if "length" in r["flags"]}


def test_length_flags_outliers_of_the_project():
    counts = [15 + (i % 9) for i in range(40)] + [2, 4, 200]
    flagged = length_flags(counts)
    assert set(flagged) == {40, 41, 42}
    assert flagged[40].startswith("2 words, short") and flagged[42].startswith("200 words, long")


def test_length_leaves_ordinary_variation():
    counts = [10 + (i * 7) % 25 for i in range(60)]    # 10 to 34 words, a normal spread
    assert length_flags(counts) == {}


def test_length_with_nearly_equal_lengths_has_a_minimum_spread():
    # MAD is 0: without the minimum spread a rationale one word longer would be an outlier
    counts = [20] * 30 + [21, 19, 24, 16]
    assert length_flags(counts) == {}
    lo, hi = length_bounds(counts)
    assert lo < 16 and hi > 24


def test_length_in_a_tiny_project_uses_only_the_absolute_bounds():
    assert length_flags([5, 40, 12]) == {}                 # no distribution to judge by
    flagged = length_flags([1, 12, 300, 15])
    assert set(flagged) == {0, 2}


# ---- check_rows on a small mixed project --------------------------------------------------------
def test_check_rows_on_a_mixed_project():
    rows = [
        {"row_id": "good", "inputs": {"text": "My card was charged twice for one order."}, "choices": None,
         "label": "billing", "rationale": "The card was charged twice for the same order."},
        {"row_id": "leak", "inputs": {"text": "Where is my parcel?"}, "choices": None,
         "label": "shipping", "rationale": "The answer is shipping."},
        {"row_id": "contra", "inputs": {"text": "The app crashes when I open settings."}, "choices": None,
         "label": "billing", "rationale": "The app crashes on the settings page, so this is technical."},
        {"row_id": "offtopic", "inputs": {"text": "I was billed after cancelling."}, "choices": None,
         "label": "billing", "rationale": "Volcanic eruptions release ash clouds into the stratosphere."},
        {"row_id": "empty", "inputs": {"text": "Hello"}, "choices": None, "label": "billing", "rationale": "  "},
        {"row_id": "none", "inputs": {"text": "Hello"}, "choices": None, "label": None, "rationale": None},
    ]
    result = check_rows(rows, LABELS)
    assert set(result) == {r["row_id"] for r in rows}
    assert result["good"] == {"flags": [], "grounding": 1.0, "detail": {}}
    assert result["leak"]["flags"] == ["leakage"]
    assert result["contra"]["flags"] == ["contradiction"]
    assert "technical" in result["contra"]["detail"]["contradiction"]
    assert result["offtopic"]["flags"] == ["ungrounded"] and result["offtopic"]["grounding"] == 0.0
    for rid in ("empty", "none"):
        assert result[rid] == {"flags": [], "grounding": None, "detail": {}}
    for r in result.values():
        assert r["flags"] == [c for c in CHECKS if c in r["detail"]]


def test_flags_come_in_checks_order_and_each_has_a_reason():
    # a 2-word leak in a project of long rationales is leakage and length at once
    rows = project([words(20, i) for i in range(30)] + ["Billing, clearly."])
    result = check_rows(rows, LABELS)[str(30)]
    assert result["flags"] == ["leakage", "length"]
    assert set(result["detail"]) == {"leakage", "length"}


def test_check_rows_accepts_an_empty_project():
    assert check_rows([]) == {}
