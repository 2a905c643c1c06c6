"""Task types and how a row of each is shown to the student and compared for accuracy."""

from __future__ import annotations

from core.errors import DataImportError

TASKS = ("classification", "multiple-choice", "nli", "numeric")
NLI_LABELS = ("entailment", "neutral", "contradiction")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def normalize_gold(gold: str, task: str, choices: list[str] | None, lineno: int, col: str | None) -> str:
    """Canonical form of a gold label: choice text, NLI label, number, or class name."""
    from core.parsing import format_number, match_choice, match_nli, numeric_value

    gold = gold.strip()
    if task == "multiple-choice":
        choice = match_choice(gold, choices or [])
        if choice is None:
            raise DataImportError(f"line {lineno}, column {col!r}: answer {gold!r} is not one of the choices.")
        return choice
    if task == "nli":
        label = match_nli(gold)
        if label is None:
            raise DataImportError(
                f"line {lineno}, column {col!r}: {gold!r} is not an NLI label ({', '.join(NLI_LABELS)})."
            )
        return label
    if task == "numeric":
        value = numeric_value(gold)
        if value is None:
            raise DataImportError(f"line {lineno}, column {col!r}: {gold!r} is not a number or arithmetic expression.")
        return format_number(value)
    return gold


def format_choices(choices: list[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def student_input(inputs: dict, choices: list[str] | None) -> str:
    """The text a student model sees for one row (before the task prefix)."""
    parts = [f"{k}: {v}" if len(inputs) > 1 else v for k, v in inputs.items()]
    if choices:
        parts.append("Answer Choices: " + " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)))
    return "\n".join(parts)
