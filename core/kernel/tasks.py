"""Task types. One object per type owns everything that differs between them: how a gold
label is normalised, how an answer maps onto the label space, when two labels are the same
(in Python and as the SQL the store uses), parse hints, the prompt preset, and what the
student is trained on. Adding a task type means adding one class here (autolabel's
TASK_TYPE_TO_IMPLEMENTATION is the model).
"""

from __future__ import annotations

import re

from core.kernel.errors import DataImportError
from core.kernel.labels import (
    LETTERS,
    NLI_LABELS,
    canonical_text,
    format_number,
    match_choice,
    match_label,
    match_nli,
    names_two_choices,
    number_of_label,
    numbers_close,
    numeric_answer,
    numeric_value,
    sql_canonical_text,
    sql_number_of_label,
    sql_numbers_close,
)

__all__ = ["LETTERS", "NLI_LABELS", "TASKS", "TASK_TYPES", "TaskType", "format_choices", "get_task",
           "inputs_block", "normalize_gold", "student_input"]


def format_choices(choices: list[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def student_input(inputs: dict, choices: list[str] | None) -> str:
    """The text a student model sees for one row (before the task prefix)."""
    parts = [f"{k}: {v}" if len(inputs) > 1 else v for k, v in inputs.items()]
    if choices:
        parts.append("Answer Choices: " + " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)))
    return "\n".join(parts)


def inputs_block(input_fields: list[str]) -> str:
    """The input fields as template placeholders: one bare, several each on a labelled line."""
    if len(input_fields) == 1:
        return "{" + input_fields[0] + "}"
    return "\n".join(f"{f.replace('_', ' ').capitalize()}: {{{f}}}" for f in input_fields)


class TaskType:
    """The behaviour shared by every task type; subclasses override what differs."""

    name = ""
    help = ""
    needs_choices = False          # rows carry a list of answer choices
    enum_labels = False            # the JSON output schema enumerates the label set
    preset = ""                    # zero-shot template; {inputs} expands to the input fields
    given = ""                     # explain-label: how the given answer is shown
    expected_output_tokens = 45    # preset answer length before real usage is observed
    label_only_output_tokens = 8   # label-only answer length
    gold_error = "is not a valid label"
    accepts_label_words = False    # answers may use the prompt's own words for labels (a verbalizer)

    def preset_template(self, input_fields: list[str]) -> str:
        """The zero-shot preset for these input fields (`{inputs}` expanded)."""
        return self.preset.replace("{inputs}", inputs_block(input_fields))

    # ---- the label space -------------------------------------------------------------
    def normalize(self, answer: str, choices: list[str] | None = None,
                  labels: list[str] | None = None) -> str | None:
        """The canonical label an answer names, or None when it names none (never a guess)."""
        raise NotImplementedError

    def label_word_targets(self, label_set: list[str] | None) -> list[str]:
        """The labels a label word may stand for."""
        raise DataImportError(f"Label words apply to classification and NLI projects, not {self.name}.")

    def normalize_gold(self, gold: str, choices: list[str] | None, lineno: int, col: str | None) -> str:
        label = self.normalize(gold.strip(), choices, None)
        if label is None:
            raise DataImportError(f"line {lineno}, column {col!r}: {gold.strip()!r} {self.gold_error}.")
        return label

    def label_set(self, golds: list[str], given: list[str] | None) -> list[str] | None:
        """The project's label set at import (None: answers are choices or numbers)."""
        return None

    def labels_equal(self, a: str | None, b: str | None) -> bool:
        """Whether two stored labels are the same answer. `sql_equal` is the same rule."""
        if a is None or b is None:
            return False
        return canonical_text(a) == canonical_text(b)

    def sql_equal(self, a: str, b: str) -> str:
        """labels_equal as a DuckDB boolean over two SQL expressions (FALSE when either is NULL)."""
        return f"coalesce({sql_canonical_text(a)} = {sql_canonical_text(b)}, FALSE)"

    # ---- sampling ----------------------------------------------------------------------
    def stratum(self, item: dict) -> str:
        """The class a row belongs to when a share of rows is drawn per class (the rationale
        fraction): its gold label; one class for rows without gold."""
        gold = item.get("gold")
        return "" if gold is None else canonical_text(str(gold))

    # ---- parse hints -----------------------------------------------------------------
    def is_ambiguous(self, answer_line: str, choices: list[str] | None) -> bool:
        """An answer statement that names several options is flagged, never guessed."""
        return False

    def fallback_answer(self, body: str) -> str | None:
        """An answer read from the body when there is no answer statement (None: flag it)."""
        return None

    # ---- the student -----------------------------------------------------------------
    def student_target(self, label: str) -> str:
        """The label as the student is trained to write it."""
        return label

    def normalize_prediction(self, text: str, choices: list[str] | None, labels: list[str] | None) -> str:
        """A generated label mapped onto the label space; kept as written when it maps to nothing."""
        text = text.strip()
        return self.normalize(text, choices, labels) or text


class Classification(TaskType):
    name = "classification"
    help = "one class from a label set"
    enum_labels = True
    accepts_label_words = True
    preset = (
        "Classify the text below into exactly one of these categories: {labels}.\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <category>\n"
        "Rationale: <one sentence explaining which evidence in the text decides the category>"
    )
    given = "{inputs}\n\nThe correct category (one of: {labels}) is: {gold}."

    def normalize(self, answer, choices=None, labels=None):
        return match_label(answer, labels or [])

    def normalize_gold(self, gold, choices, lineno, col):
        return gold.strip()  # the gold labels define the label set (never fuzzy-matched)

    def label_word_targets(self, label_set):
        if not label_set:
            raise DataImportError("The project has no label set yet, so label words cannot be mapped onto it.")
        return list(label_set)

    def label_set(self, golds, given):
        if given:
            labels = [label.strip() for label in given if label.strip()]
            unknown = sorted(set(golds) - set(labels))
            if unknown:
                raise DataImportError(f"Gold labels not in the label set: {', '.join(unknown[:10])}.")
            return labels
        labels = sorted(set(golds))
        if len(labels) < 2:
            raise DataImportError("A classification task needs a label set: map a label column with at least "
                                  "two labels, or list the labels.")
        return labels


class MultipleChoice(TaskType):
    name = "multiple-choice"
    help = "one of each row's answer choices"
    needs_choices = True
    preset = (
        "Answer the question by choosing one of the options.\n\n"
        "{inputs}\n"
        "Answer Choices:\n{choices}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <letter>) <option text>\n"
        "Rationale: <one sentence explaining why this option is right>"
    )
    given = "{inputs}\nAnswer Choices:\n{choices}\n\nThe correct answer is: {gold}."
    expected_output_tokens = 50
    label_only_output_tokens = 10
    gold_error = "is not one of the choices"

    def normalize(self, answer, choices=None, labels=None):
        return match_choice(answer, choices or [])

    def stratum(self, item):
        """Every row's gold is its own choice text: the class is the gold's position (a, b, c, ...)."""
        gold, choices = item.get("gold"), item.get("choices") or []
        if gold is None:
            return ""
        key = canonical_text(str(gold))
        return next((f"choice {i}" for i, c in enumerate(choices) if canonical_text(str(c)) == key), "choice ?")

    def is_ambiguous(self, answer_line, choices):
        line = answer_line.lower()
        # "(a) or (c)", "a) or c)", "a or c", "option a or option c"
        letters = re.findall(r"(?<![\w'])\(?([a-e])\)", line) + re.findall(r"\boption\s+\(?([a-e])\b", line)
        letters += [x for pair in re.findall(r"(?<![\w'])\(?([a-e])\)?\s*(?:\bor\b|/)\s*\(?([a-e])\b(?!')", line)
                    for x in pair]
        return len(set(letters)) > 1 or bool(re.search(r"\beither\b", line)) or names_two_choices(line, choices)


class NLI(TaskType):
    name = "nli"
    help = "entailment, neutral or contradiction"
    enum_labels = True
    preset = (
        "Decide whether the premise entails the hypothesis, contradicts it, or neither (neutral).\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <entailment|neutral|contradiction>\n"
        "Rationale: <one sentence explaining the relation>"
    )
    given = "{inputs}\n\nThe correct relation is: {gold}."
    label_only_output_tokens = 6
    gold_error = f"is not an NLI label ({', '.join(NLI_LABELS)})"
    accepts_label_words = True

    def normalize(self, answer, choices=None, labels=None):
        return match_nli(answer)

    def is_ambiguous(self, answer_line, choices):
        # "entailment or neutral": two relations offered, neither chosen
        parts = re.split(r"\bor\b|/", answer_line, flags=re.IGNORECASE)
        return len(parts) > 1 and len({match_nli(p) for p in parts} - {None}) > 1

    def label_word_targets(self, label_set):
        return list(NLI_LABELS)

    def label_set(self, golds, given):
        return list(NLI_LABELS)


class Numeric(TaskType):
    name = "numeric"
    help = "a number (answers may be arithmetic expressions)"
    preset = (
        "Solve the problem.\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Rationale: <one sentence with the steps of the calculation>\n"
        "Answer: <the arithmetic expression that gives the result, e.g. (12 + 3) * 4>"
    )
    given = "{inputs}\n\nThe correct answer is: {gold}."
    expected_output_tokens = 60
    label_only_output_tokens = 14
    gold_error = "is not a number or arithmetic expression"

    def normalize(self, answer, choices=None, labels=None):
        return numeric_answer(answer)

    def stratum(self, item):
        """Numbers are bins, not classes: the sign and the order of magnitude (0, 1-9, 10-99, ...)."""
        value = number_of_label(item.get("gold"))
        if value is None:
            return ""
        return "0" if value == 0 else f"{'-' if value < 0 else '+'}{len(str(int(abs(value))))}"

    def normalize_gold(self, gold, choices, lineno, col):
        value = numeric_value(gold.strip())
        if value is None:
            raise DataImportError(f"line {lineno}, column {col!r}: {gold.strip()!r} {self.gold_error}.")
        return format_number(value)

    def labels_equal(self, a, b):
        x, y = number_of_label(a), number_of_label(b)
        return x is not None and y is not None and numbers_close(x, y)

    def sql_equal(self, a, b):
        return f"coalesce({sql_numbers_close(sql_number_of_label(a), sql_number_of_label(b))}, FALSE)"

    def fallback_answer(self, body):
        # chain-of-thought whose last sentence '... = 9 peaches.' states the result
        m = re.search(r"=\s*(-?\d[\d,]*(?:\.\d+)?)\s*[a-z' -]*\.?\s*$", body.strip(), re.IGNORECASE)
        return m.group(1) if m else None

    def normalize_prediction(self, text, choices, labels):
        value = numeric_value(text.strip())
        return format_number(value) if value is not None else text.strip()


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (Classification(), MultipleChoice(), NLI(), Numeric())}
TASKS = tuple(TASK_TYPES)


def get_task(name: str) -> TaskType:
    try:
        return TASK_TYPES[name]
    except KeyError:
        raise DataImportError(f"Unknown task {name!r}: choose one of {', '.join(TASKS)}.") from None


def normalize_gold(gold: str, task: str, choices: list[str] | None, lineno: int, col: str | None) -> str:
    """Canonical form of a gold label: choice text, NLI label, number, or class name."""
    return get_task(task).normalize_gold(gold, choices, lineno, col)
