"""Extracting a label and a rationale from a teacher's free-text answer.

Handles our own presets ("Answer: X / Rationale: Y") and chain-of-thought completions
("... So the answer is (c) wooded area.") that often run on into invented new questions.
Ambiguous, truncated and unparseable answers are flagged, never guessed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from core.labels import (  # noqa: F401  (re-exported: the label-space helpers used to live here)
    NLI_SYNONYMS,
    format_number,
    match_choice,
    match_label,
    match_nli,
    numeric_value,
)
from core.tasks import get_task

# Where a completion starts inventing a new example, everything after is ignored.
_RUN_ON = re.compile(r"\n\s*\n\s*(?:Q|Question|Premise|Input|Text)\s*:", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^\s*\**\s*(?:final\s+)?(?:answer|label|category)\s*\**\s*[:=]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_RATIONALE_LINE = re.compile(r"^\s*\**\s*(?:rationale|explanation|reason)\s*\**\s*[:=]\s*(.+)", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_SO_ANSWER = re.compile(r"(?:so\s+|therefore,?\s+|thus,?\s+)?the\s+(?:final\s+)?answer\s+is\s*:?\s*(.+)", re.IGNORECASE | re.DOTALL)



@dataclass
class ParseResult:
    label: str | None
    rationale: str | None
    flag: str | None = None  # None | unparseable | ambiguous | truncated
    note: str | None = None
    confidence: float | None = None  # the teacher's own, when its JSON answer carries one (0..1)

    @property
    def ok(self) -> bool:
        return self.flag is None


def labels_equal(predicted: str | None, gold: str | None, task: str) -> bool:
    return get_task(task).labels_equal(predicted, gold)


# ---- the parser ------------------------------------------------------------------
def parse_response(
    text: str | None,
    task: str,
    choices: list[str] | None = None,
    labels: list[str] | None = None,
    stop_reason: str | None = None,
) -> ParseResult:
    result = _parse_answer(text, task, choices, labels, stop_reason)
    result.confidence = _json_confidence(text)
    return result


def _json_confidence(text: str | None) -> float | None:
    """A "confidence" in [0, 1] from a JSON answer; percentages are scaled; anything else is unknown."""
    obj = _json_object(_RUN_ON.split(text or "", maxsplit=1)[0])
    value = obj.get("confidence") if obj else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = value / 100 if 1 < value <= 100 else value
    return float(value) if 0 <= value <= 1 else None


def _parse_answer(
    text: str | None,
    task: str,
    choices: list[str] | None,
    labels: list[str] | None,
    stop_reason: str | None,
) -> ParseResult:
    if not text or not text.strip():
        return ParseResult(None, None, "unparseable", "empty response")
    body = _RUN_ON.split(text, maxsplit=1)[0].strip()

    structured = _parse_json(body)
    if structured is not None:
        answer, rationale = structured
    else:
        answer, rationale = _split_answer(body)

    kind = get_task(task)
    if answer is None and stop_reason != "max_tokens":
        answer = kind.fallback_answer(body)
    if answer is None:
        flag = "truncated" if stop_reason == "max_tokens" else "unparseable"
        return ParseResult(None, rationale, flag, "no answer statement found")
    first_line = answer.split("\n")[0]
    if kind.is_ambiguous(first_line, choices or []):
        return ParseResult(None, rationale, "ambiguous", f"answer names several options: {first_line[:80]!r}")
    label = kind.normalize(answer.strip().strip("*").strip(), choices, labels)
    if label is None:
        flag = "truncated" if stop_reason == "max_tokens" else "unparseable"
        return ParseResult(None, rationale, flag, f"answer {first_line[:80]!r} matches no label")
    if stop_reason == "max_tokens":
        # The answer may be incomplete: keep the text for review, do not trust the label.
        return ParseResult(None, rationale, "truncated", f"response was cut at max_tokens (read {label!r})")
    return ParseResult(label, rationale or None)


def _json_object(body: str) -> dict | None:
    stripped = body.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if not stripped.startswith("{"):
        return None
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _parse_json(body: str) -> tuple[str | None, str | None] | None:
    obj = _json_object(body)
    if obj is None:
        return None
    label = obj.get("label", obj.get("answer"))
    rationale = obj.get("rationale", obj.get("explanation"))
    return (str(label) if label is not None else None, str(rationale).strip() if rationale else None)


def _split_answer(body: str) -> tuple[str | None, str | None]:
    answer_line = _ANSWER_LINE.search(body)
    rationale_match = _RATIONALE_LINE.search(body)
    if answer_line:
        answer = answer_line.group(1)
        if rationale_match:
            rationale = rationale_match.group(1).strip()
            # the rationale ends where an Answer line follows it
            rationale = _ANSWER_LINE.split(rationale)[0].strip()
        else:
            rest = (body[: answer_line.start()] + " " + body[answer_line.end():]).strip()
            rationale = rest or None
        return answer, rationale
    matches = list(_SO_ANSWER.finditer(body))
    if matches:
        last = matches[-1]
        answer = last.group(1).strip()
        answer = re.split(r"(?<=[^\d])\.(\s|$)|\n", answer, maxsplit=1)[0].strip()
        rationale = body[: last.start()].strip() or None
        return answer, rationale
    return None, body.strip() or None
