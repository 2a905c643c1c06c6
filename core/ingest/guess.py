"""A first guess at a new file's column mapping and task type, from its column names and first
rows, for the Data page to show (and the user to change): the id column, the inputs, the gold
label, the choices and split columns, and the task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from core.kernel.labels import match_nli, numeric_value

ID_NAMES = ("id", "row_id", "uid", "guid", "key", "case", "case_id", "ticket", "ticket_id", "example_id", "idx")
GOLD_NAMES = ("label", "gold", "answer", "target", "class", "category", "judgement", "judgment", "verdict",
              "rating", "y", "output", "result")
CHOICES_NAMES = ("choices", "options", "candidates", "answers")
SPLIT_NAMES = ("split", "set", "fold", "partition")
# Pairs of input columns that ask whether one text supports another (an NLI task).
PAIR_NAMES = (("premise", "hypothesis"), ("passage", "claim"), ("evidence", "claim"), ("context", "claim"),
              ("sentence1", "sentence2"), ("text", "hypothesis"), ("source", "claim"))


@dataclass
class Guess:
    task: str
    id_field: str | None
    input_fields: list[str]
    label_field: str | None
    choices_field: str | None
    split_field: str | None
    why: list[str] = field(default_factory=list)


def _named(columns: list[str], names: tuple[str, ...]) -> str | None:
    by_lower = {c.strip().lower(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _values(rows: list[dict], column: str | None) -> list[str]:
    return [str(r[column]) for r in rows if column and r.get(column) not in (None, "")]


def _is_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except (json.JSONDecodeError, TypeError):
        return False


def guess_mapping(columns: list[str], rows: list[dict]) -> Guess:
    """Column roles and the task, from names first and the first `rows` (dicts by column) second."""
    why = []
    id_field = _named(columns, ID_NAMES)
    if id_field is None:  # a short column whose first values are all different (C-0001, 17, ...)
        id_field = next((c for c in columns if (v := _values(rows, c)) and len(set(v)) == len(v) == len(rows)
                         and max(map(len, v)) <= 24 and c.lower().endswith("id")), None)
    label_field = _named(columns, GOLD_NAMES)
    choices_field = _named(columns, CHOICES_NAMES)
    if choices_field is None:
        choices_field = next((c for c in columns if (v := _values(rows, c)) and all(map(_is_list, v))), None)
    split_field = _named(columns, SPLIT_NAMES)
    taken = {id_field, label_field, choices_field, split_field}
    rest = [c for c in columns if c not in taken]
    pair = next(((a, b) for a, b in PAIR_NAMES if _named(rest, (a,)) and _named(rest, (b,))), None)

    def mean_length(c: str) -> float:
        v = _values(rows, c)
        return sum(map(len, v)) / len(v) if v else 0.0
    # inputs: the pair, else the text columns in file order (ids and numbers left out)
    texty = [c for c in rest if mean_length(c) >= 3 and not all(numeric_value(x) is not None for x in _values(rows, c))]
    input_fields = ([_named(rest, (pair[0],)), _named(rest, (pair[1],))] if pair else texty or rest[:1])
    gold = {x.strip().lower() for x in _values(rows, label_field)}
    if choices_field:
        task = "multiple-choice"
        why.append(f"'{choices_field}' holds lists of answer choices: multiple-choice")
    elif pair and gold and all(match_nli(g) for g in gold):  # entailment words (core.kernel.labels.NLI_SYNONYMS)
        task = "nli"
        why.append(f"'{input_fields[0]}' and '{input_fields[1]}' are a pair and the gold column holds "
                   f"{', '.join(sorted(gold))}: NLI (does the first support the second?)")
    elif gold and all(numeric_value(x) is not None for x in gold) and len(gold) > 5:
        task = "numeric"
        why.append(f"'{label_field}' holds numbers: numeric answers")
    else:
        task = "classification"
        if pair:
            why.append(f"'{input_fields[0]}' and '{input_fields[1]}' look like a pair, but the gold values "
                       f"({', '.join(sorted(gold)[:6]) or 'none'}) are not entailment words: classification, "
                       "with both as inputs (pick nli if the label says whether one supports the other)")
        else:
            why.append("one label per row from a set: classification")
    for role, column in (("id", id_field), ("gold label", label_field), ("split", split_field)):
        if column:
            why.append(f"'{column}' looks like the {role} column")
    return Guess(task, id_field, [c for c in input_fields if c], label_field, choices_field, split_field, why)
