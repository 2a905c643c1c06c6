"""Extracting a label and a rationale from a teacher's free-text answer.

Handles our own presets ("Answer: X / Rationale: Y") and chain-of-thought completions
("... So the answer is (c) wooded area.") that often run on into invented new questions.
Ambiguous, truncated and unparseable answers are flagged, never guessed."""

from __future__ import annotations

import ast
import difflib
import json
import math
import operator
import re
from dataclasses import dataclass

from core.tasks import LETTERS

# Where a completion starts inventing a new example, everything after is ignored.
_RUN_ON = re.compile(r"\n\s*\n\s*(?:Q|Question|Premise|Input|Text)\s*:", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^\s*\**\s*(?:final\s+)?(?:answer|label|category)\s*\**\s*[:=]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_RATIONALE_LINE = re.compile(r"^\s*\**\s*(?:rationale|explanation|reason)\s*\**\s*[:=]\s*(.+)", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_SO_ANSWER = re.compile(r"(?:so\s+|therefore,?\s+|thus,?\s+)?the\s+(?:final\s+)?answer\s+is\s*:?\s*(.+)", re.IGNORECASE | re.DOTALL)
_AMBIGUOUS = re.compile(r"\b(either|or)\b.*\(?\b[a-e]\b\)?.*\bor\b|\beither\b", re.IGNORECASE)

NLI_SYNONYMS = {
    "entailment": "entailment", "entails": "entailment", "entailed": "entailment", "true": "entailment", "yes": "entailment",
    "neutral": "neutral", "inconclusive": "neutral", "unknown": "neutral", "undetermined": "neutral",
    "it is not possible to tell": "neutral", "not possible to tell": "neutral", "maybe": "neutral",
    "contradiction": "contradiction", "contradicts": "contradiction", "false": "contradiction", "no": "contradiction",
}


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


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s.+-]", " ", text.lower())).strip(" .")


def match_choice(answer: str, choices: list[str]) -> str | None:
    """Map '(c) wooded area', 'c)', 'option C', 'C.' or the text itself to a choice."""
    if not choices:
        return None
    raw = answer.strip()
    cleaned = _clean(raw)
    by_text = {_clean(c): c for c in choices}
    letter_re = re.compile(r"^\(?\s*(?:option\s+|choice\s+)?\(?([a-z])\s*[).:]?(?:\s+(.*))?$", re.IGNORECASE)
    m = letter_re.match(raw.strip().strip("*"))
    if m:
        idx = LETTERS.find(m.group(1).lower())
        rest = _clean(m.group(2) or "")
        if 0 <= idx < len(choices):
            # Letter and text: a text naming a *different* option wins (it is the more specific
            # statement); otherwise the letter does, so paraphrases and typos ("knowlege") still map.
            if not rest or rest == _clean(choices[idx]) or rest.startswith(_clean(choices[idx])):
                return choices[idx]
            if rest in by_text:
                return by_text[rest]
            other = _fuzzy(rest, [k for k in by_text if k != _clean(choices[idx])])
            return by_text[other] if other else choices[idx]
    if cleaned in by_text:
        return by_text[cleaned]
    # text followed by trailing words: "wooded area because ..." -> longest choice that prefixes
    hits = [c for key, c in by_text.items() if key and (cleaned.startswith(key + " ") or cleaned == key)]
    if len(hits) >= 1:
        return max(hits, key=len)
    close = _fuzzy(cleaned, list(by_text))
    return by_text[close] if close else None


def _fuzzy(text: str, keys: list[str], cutoff: float = 0.85) -> str | None:
    """The one key that `text` is a near miss of (a typo or plural), else None."""
    close = difflib.get_close_matches(text, keys, n=2, cutoff=cutoff)
    return close[0] if len(close) == 1 else None


def match_nli(answer: str) -> str | None:
    cleaned = _clean(answer)
    if cleaned in NLI_SYNONYMS:
        return NLI_SYNONYMS[cleaned]
    first = cleaned.split(" ")[0] if cleaned else ""
    return NLI_SYNONYMS.get(first)


def match_label(answer: str, labels: list[str]) -> str | None:
    cleaned = _clean(answer)
    by_clean = {_clean(lbl): lbl for lbl in labels}
    if cleaned in by_clean:
        return by_clean[cleaned]
    hits = [lbl for key, lbl in by_clean.items() if key and re.search(rf"\b{re.escape(key)}\b", cleaned)]
    return hits[0] if len(hits) == 1 else None


# ---- safe arithmetic ------------------------------------------------------------
_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv,
}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f"unsupported expression element {type(node).__name__}")


def numeric_value(text: str) -> float | None:
    """Value of a number or an arithmetic expression, without Python eval."""
    expr = text.strip().rstrip(".").replace(",", "").replace("×", "*").replace("÷", "/").replace("$", "")
    expr = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", expr)
    if not expr or len(expr) > 200 or not re.fullmatch(r"[\d\s.+\-*/()%^]+", expr):
        return None
    expr = expr.replace("^", "**")
    try:
        value = _eval(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def format_number(value: float) -> str:
    rounded = round(value, 6)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


_UNIT_WORDS = re.compile(r"(?<=\d)\s+[a-z][a-z' -]*?(?=\s*(?:[-+*/)]|$))", re.IGNORECASE)
_VARIABLE = re.compile(r"(?<![a-z])(?:x|y|n|some|some\w*)(?![a-z])|\d[a-z]\b", re.IGNORECASE)


def _numeric_answer(answer: str) -> str | None:
    """The value of a numeric answer: an expression ('(87 * 58) / 2'), an equation's
    result ('44 + 58 = 102'), or one number. Expressions with unknowns ('some - 8',
    '2 * x') or with several results ('(3) and (4)') are not guessed."""
    line = answer.strip().split("\n")[0].strip().rstrip(".")
    if re.search(r"\band\b|,\s+\d", line) and len(re.findall(r"\d+", line)) > 1:
        return None
    # '8 action figures + 10 cabinets' -> '8 + 10': words right after a number are units
    unitless = _UNIT_WORDS.sub("", line)
    if _VARIABLE.search(unitless):
        return None
    for cand in (unitless, unitless.split("=")[-1]):
        value = numeric_value(cand)
        if value is not None:
            return format_number(value)
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", line)
    if len(numbers) == 1:
        return format_number(float(numbers[0].replace(",", "")))
    return None


def labels_equal(predicted: str | None, gold: str | None, task: str) -> bool:
    if predicted is None or gold is None:
        return False
    if task == "numeric":
        a, b = numeric_value(predicted), numeric_value(gold)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return _clean(predicted) == _clean(gold)


# ---- the parser ------------------------------------------------------------------
def _normalize(answer: str, task: str, choices: list[str] | None, labels: list[str] | None) -> str | None:
    answer = answer.strip().strip("*").strip()
    if task == "multiple-choice":
        return match_choice(answer, choices or [])
    if task == "nli":
        return match_nli(answer)
    if task == "numeric":
        return _numeric_answer(answer)
    return match_label(answer, labels or [])


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.DOTALL)
    return (m.group(1) if m else text).strip()


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

    if answer is None and task == "numeric" and stop_reason != "max_tokens":
        answer = _final_equation(body)
    if answer is None:
        flag = "truncated" if stop_reason == "max_tokens" else "unparseable"
        return ParseResult(None, rationale, flag, "no answer statement found")
    first_line = answer.split("\n")[0]
    if task == "multiple-choice" and _is_ambiguous(first_line, choices or []):
        return ParseResult(None, rationale, "ambiguous", f"answer names several options: {first_line[:80]!r}")
    label = _normalize(answer, task, choices, labels)
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


def _final_equation(body: str) -> str | None:
    """Chain-of-thought without an answer statement: a last sentence '... = 9 peaches.'
    states the result."""
    m = re.search(r"=\s*(-?\d[\d,]*(?:\.\d+)?)\s*[a-z' -]*\.?\s*$", body.strip(), re.IGNORECASE)
    return m.group(1) if m else None


def _is_ambiguous(answer: str, choices: list[str]) -> bool:
    letters = re.findall(r"\(([a-e])\)", answer.lower())
    if len(set(letters)) > 1:
        return True
    return bool(re.search(r"\beither\b", answer, re.IGNORECASE))
