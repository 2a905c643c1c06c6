"""The label space: matching an answer to a choice, an NLI label, a class or a number.

Pure functions over text, shared by parsing (teacher answers), ingest (gold labels) and
training (student predictions) through the task objects in core.kernel.tasks."""

from __future__ import annotations

import ast
import difflib
import math
import operator
import re

LETTERS = "abcdefghijklmnopqrstuvwxyz"
NLI_LABELS = ("entailment", "neutral", "contradiction")
NLI_SYNONYMS = {
    "entailment": "entailment", "entails": "entailment", "entailed": "entailment", "true": "entailment", "yes": "entailment",
    "neutral": "neutral", "inconclusive": "neutral", "unknown": "neutral", "undetermined": "neutral",
    "it is not possible to tell": "neutral", "not possible to tell": "neutral", "maybe": "neutral",
    "contradiction": "contradiction", "contradicts": "contradiction", "false": "contradiction", "no": "contradiction",
    # fact-checking data (FEVER and the like): does the evidence support the claim?
    "supported": "entailment", "supports": "entailment", "refuted": "contradiction", "refutes": "contradiction",
    "not enough info": "neutral", "not enough information": "neutral", "nei": "neutral",
}
# Anything but letters, digits, underscore, whitespace and . + - becomes a space. Written
# with classes both Python's re (Unicode \w) and DuckDB's RE2 (\p{L}\p{N}) read the same way.
_NOT_WORDISH = re.compile(r"[^\w\s.+-]")
_NOT_WORDISH_SQL = r"[^\p{L}\p{N}_\s.+-]"


def canonical_text(text: str) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed: the text two labels are compared by.
    `sql_canonical_text` is the same rule in DuckDB (kept in step by tests/test_tasks.py)."""
    return re.sub(r"\s+", " ", _NOT_WORDISH.sub(" ", text.lower())).strip(" .")


def sql_canonical_text(expr: str) -> str:
    """canonical_text as a DuckDB expression over the SQL expression `expr`."""
    return (f"trim(regexp_replace(regexp_replace(lower({expr}), '{_NOT_WORDISH_SQL}', ' ', 'g'), "
            f"'\\s+', ' ', 'g'), ' .')")


_clean = canonical_text


# A choice letter: "(c)", "option C", "c)", "C." or a lone "c". A bare letter followed by text
# ("a place where ...") is an article, not option (a), so it must be marked.
_LETTER = re.compile(
    r"^(?:\(\s*([a-z])\s*\)|(?:option|choice|letter)\s+\(?([a-z])\b\)?[.:)]?|([a-z])\s*[).:](?=\s|$)|([a-z])$)"
    r"\s*(.*)$", re.IGNORECASE | re.DOTALL)
# Markdown emphasis and quotes around an answer ("**c) wooded area**", '"neutral"').
_DECORATION = " \t*_`\"'“”‘’"


def match_choice(answer: str, choices: list[str]) -> str | None:
    """Map '(c) wooded area', 'c)', 'option C', 'C.' or the text itself to a choice."""
    if not choices:
        return None
    raw = answer.strip()
    cleaned = _clean(raw)
    by_text = {_clean(c): c for c in choices}
    m = _LETTER.match(raw.strip(_DECORATION))
    if m:
        idx = LETTERS.find(next(g for g in m.groups()[:4] if g).lower())
        rest = _clean(m.group(5) or "")
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


def names_two_choices(line: str, choices: list[str] | None) -> bool:
    """'desert or ocean': two choice texts joined by 'or' (a choice such as 'city or town' counts once)."""
    if not choices or not re.search(r"\bor\b", line):
        return False
    cleaned = _clean(line)
    named = {_clean(c) for c in choices if _clean(c)
             and re.search(rf"\b{re.escape(_clean(c))}\b", cleaned)}
    return len([c for c in named if not any(c != o and c in o for o in named)]) > 1


def match_nli(answer: str) -> str | None:
    cleaned = _clean(answer)
    if cleaned in NLI_SYNONYMS:
        return NLI_SYNONYMS[cleaned]
    first = cleaned.split(" ")[0] if cleaned else ""
    return NLI_SYNONYMS.get(first)


_MIN_FUZZY_LEN = 4


def match_label(answer: str, labels: list[str]) -> str | None:
    cleaned = _clean(answer)
    by_clean = {_clean(lbl): lbl for lbl in labels}
    if cleaned in by_clean:
        return by_clean[cleaned]
    hits = [lbl for key, lbl in by_clean.items() if key and re.search(rf"\b{re.escape(key)}\b", cleaned)]
    if hits:
        return hits[0] if len(hits) == 1 else None
    # A near miss ("biling") maps like a multiple-choice typo; short labels are left out
    # because one typo turns them into another word ("no" / "on"), and a tie maps to nothing.
    if len(cleaned) < _MIN_FUZZY_LEN:
        return None
    close = _fuzzy(cleaned, [key for key in by_clean if len(key) >= _MIN_FUZZY_LEN])
    return by_clean[close] if close else None


def match_label_word(answer: str, words: dict[str, str], labels: list[str] | tuple[str, ...] = ()) -> str | None:
    """The label a verbalizer word stands for: the answer is the word ("True."), or starts
    with it ("yes, the text ...") and names no word or label that means something else."""
    cleaned = _clean(answer)
    table = {_clean(word): label for word, label in words.items() if _clean(word)}
    if cleaned in table:
        return table[cleaned]
    starts = [word for word in table if cleaned.startswith(word + " ")]
    if not starts:
        return None
    word = max(starts, key=len)
    target, rest = table[word], cleaned[len(word):]
    others = [w for w, lbl in table.items() if _clean(lbl) != _clean(target)]
    others += [_clean(lbl) for lbl in labels if _clean(lbl) != _clean(target)]
    if any(other and re.search(rf"\b{re.escape(other)}\b", rest) for other in others):
        return None
    return target


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


def numeric_answer(answer: str) -> str | None:
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


def number_of_label(text: str | None) -> float | None:
    """The value of a stored numeric label ('7', '7.0', '1,000', '$7'); not an expression.
    `sql_number_of_label` is the same rule in DuckDB."""
    if text is None:
        return None
    try:
        value = float(text.strip().replace(",", "").replace("$", "").rstrip("."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def sql_number_of_label(expr: str) -> str:
    return f"try_cast(rtrim(replace(replace(trim({expr}), ',', ''), '$', ''), '.') AS DOUBLE)"


def numbers_close(a: float, b: float) -> bool:
    """Equal within 1e-6, absolute or relative (`sql_numbers_close` is the same in DuckDB)."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def sql_numbers_close(a: str, b: str) -> str:
    return f"(abs(({a}) - ({b})) <= greatest(1e-6, 1e-6 * greatest(abs({a}), abs({b}))))"
