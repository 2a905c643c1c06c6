"""Extracting a label and a rationale from a teacher's free-text answer.

Handles our own presets ("Answer: X / Rationale: Y"), JSON, prose ("The correct answer is
d) city because ...", "I would choose (c)") and chain-of-thought completions ("... So the
answer is (c) wooded area.") that often run on into invented new questions. Ambiguous,
truncated and unparseable answers are flagged, never guessed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from core.kernel.errors import DataImportError
from core.kernel.labels import canonical_text, match_label_word
from core.kernel.tasks import TaskType, get_task
from core.label.reader import read

# Where a completion starts inventing a new example, everything after is ignored.
# A completion cut right after the "Q" of a new question ends there too.
# Found line by line, not with one "\n\s*\n\s*Q" pattern: that backtracks without end on a flood of newlines.
_NEW_EXAMPLE = re.compile(r"^[ \t\r\f\v]*(?:Q|Question|Premise|Input|Text)[ \t\r\f\v]*(?::|\Z)", re.IGNORECASE | re.MULTILINE)
_BLANK_LINE_BEFORE = re.compile(r"\n[ \t\r\f\v]*\n[ \t\r\f\v]*\Z")


def cut_run_on(text: str) -> str:
    """The completion up to the first new example it invents (a blank line, then "Q:" ...)."""
    for m in _NEW_EXAMPLE.finditer(text):
        if _BLANK_LINE_BEFORE.search(text, max(0, m.start() - 200), m.start()):
            return text[: m.start()]
    return text
# Tier 1, a labelled answer: "Answer: x" at a line start or after a sentence ("... neutral. Answer:
# neutral"), in bold ("**Answer:** x"), or with the answer on the next line.
_ANSWER_LABEL = re.compile(
    r"(?:^|(?<=[.!?)])[ \t]+)(?P<stmt>\**[ \t]*(?:(?:final|correct)[ \t]+)?(?:answer|label|category|classification)"
    r"[ \t]*\**[ \t]*[:=][ \t]*\**[ \t]*\n?[ \t]*)(?P<ans>)(?=\S)",
    re.IGNORECASE | re.MULTILINE)
# Tier 2, a prose statement. "The answer must be a place where ..." (the CoT preamble) and
# "the answer is not (a)" are not statements of the answer.
_PROSE = re.compile(
    r"(?<![\w'])(?P<stmt>(?:(?:so|therefore|thus|hence|overall|in\s+conclusion),?\s+)?(?:"
    r"(?:the\s+|my\s+|our\s+)?(?:(?:correct|final|best|right|most\s+likely|most\s+appropriate|closest|likely)\s+)?"
    r"(?:answer|choice|option|label|category|classification|relation(?:ship)?)\s+(?:here\s+)?(?:is|would\s+be|will\s+be)"
    r"|I(?:\s+would|\s+will|['’]d|['’]ll)?\s+(?:choose|pick|select|go\s+with|opt\s+for)"
    r"|(?:I(?:\s+would|\s+will|['’]d|['’]ll)?\s+)?(?:classify|categori[sz]e)\s+(?:this|it|the\s+\w+)\s+as"
    r"|(?:(?:it|this|that|mine)\s+)?would\s+be(?=\s*(?:\(\s*[a-z]\s*\)|[a-z]\)|option\s+[a-z]\b|\*\*|[\"'“‘]))"
    r")\b(?!\s*(?:not|never)\b)\s*:?\s*)(?P<ans>)(?=\S)",
    re.IGNORECASE)
# A sentence ends at . ! ? (not a decimal point) with closing quotes or bold, or at a line end.
_SENTENCE_END = re.compile(r"(?<!\d)[.!?][\"'”’*)\]]*(?=\s|$)|(?<=\d)\.(?=\s+[A-Z])|\n")
# What follows the answer and gives its reason: "(c) ocean because whales ...", "neutral; the ...".
# A spaced hyphen is a minus sign in "(30 - 28)": it separates only where answers are labels.
_REASON = re.compile(r"\s+(?:because|since)\b\s*|,\s*(?:because|since|as)\b\s*|\s*;\s*|\s*—\s*|\s+(?:–|--)\s+",
                     re.IGNORECASE)
_REASON_OR_HYPHEN = re.compile(_REASON.pattern + r"|\s+-\s+", re.IGNORECASE)
_RATIONALE_LABEL = re.compile(r"(?:^|(?<=[.!?] ))\s*\**\s*(?:rationale|explanation|reason(?:ing)?)\s*\**\s*[:=]\s*\**\s*",
                              re.IGNORECASE | re.MULTILINE)
_BOLD_LINE = re.compile(r"\*\*(.+?)\*\*[.!]?")
_DECORATION = " \t*_`\"'“”‘’"  # markdown emphasis and quotes around an answer
_NEGATED = re.compile(r"\bnot\b|n't\b", re.IGNORECASE)


NO_STATEMENT = "no answer statement found"


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


# ---- label words (a verbalizer) ----------------------------------------------------
def parse_label_words(spec: str) -> dict[str, str]:
    """'true=entailment, false=contradiction' -> {'true': 'entailment', ...} (words canonical)."""
    words: dict[str, str] = {}
    for entry in (e.strip() for e in re.split(r"[,;\n]", spec or "")):
        if not entry:
            continue  # a trailing comma
        if entry.count("=") != 1:
            raise DataImportError(f"Label words: {entry!r} is not of the form word=label (e.g. true=entailment).")
        word, label = (side.strip() for side in entry.split("="))
        if not canonical_text(word) or not label:
            raise DataImportError(f"Label words: {entry!r} needs a word on the left of '=' and a label on the right.")
        key = canonical_text(word)
        if key in words and canonical_text(words[key]) != canonical_text(label):
            raise DataImportError(f"Label words: {word!r} is mapped to both {words[key]!r} and {label!r}.")
        words.setdefault(key, label)
    return words


def check_label_words(words: dict, task: str, label_set: list[str] | None) -> dict[str, str]:
    """Label words checked against the project: every target is a label (as the label set spells
    it), and no word is itself a different label. Raises DataImportError."""
    if not words:
        return {}
    targets = get_task(task).label_word_targets(label_set)
    by_canon = {canonical_text(label): label for label in targets}
    out: dict[str, str] = {}
    for word, target in words.items():
        key, label = canonical_text(str(word)), by_canon.get(canonical_text(str(target)))
        if not key:
            raise DataImportError(f"Label words: {word!r} is not a word.")
        if label is None:
            raise DataImportError(f"Label words: {word!r} maps to {target!r}, which is not a label of this "
                                  f"project ({', '.join(targets)}).")
        if by_canon.get(key, label) != label:
            raise DataImportError(f"Label words: {word!r} is itself the label {by_canon[key]!r}; it cannot stand "
                                  f"for {label!r}.")
        if out.get(key, label) != label:
            raise DataImportError(f"Label words: {word!r} is mapped to both {out[key]!r} and {label!r}.")
        out[key] = label
    return out


# ---- the parser ------------------------------------------------------------------
def parse_response(
    text: str | None,
    task: str,
    choices: list[str] | None = None,
    labels: list[str] | None = None,
    stop_reason: str | None = None,
    label_words: dict[str, str] | None = None,
) -> ParseResult:
    result = _parse_answer(text, task, choices, labels, stop_reason, label_words)
    result.confidence = _json_confidence(text)
    return result


def _json_confidence(text: str | None) -> float | None:
    """A "confidence" in [0, 1] from a JSON answer; percentages are scaled; anything else is unknown."""
    obj = _json_object(cut_run_on(text or ""))
    value = obj.get("confidence") if obj else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = value / 100 if 1 < value <= 100 else value
    return float(value) if 0 <= value <= 1 else None


@dataclass
class _Space:
    """The label space one answer is read against."""
    kind: TaskType
    choices: list[str] | None
    labels: list[str] | None
    words: dict[str, str] | None

    def read(self, answer: str) -> str | None:
        if self.words and self.kind.accepts_label_words:
            word = match_label_word(answer, self.words, self.labels or ())
            if word is not None:
                return word
        return self.kind.normalize(answer, self.choices, self.labels)

    def ambiguous(self, answer: str) -> bool:
        return self.kind.is_ambiguous(answer.split("\n")[0], self.choices or [])

    @property
    def reason_split(self) -> re.Pattern:
        return _REASON_OR_HYPHEN if self.kind.needs_choices or self.kind.enum_labels else _REASON

    def texts(self) -> list[str]:
        """Label texts a sentence or reason must not be cut inside ('take a nap because ...')."""
        return [t for t in [*(self.choices or []), *(self.labels or []), *(self.words or {})] if t.strip()]


def _parse_answer(text, task, choices, labels, stop_reason, words) -> ParseResult:
    if not text or not text.strip():
        return ParseResult(None, None, "unparseable", "empty response")
    body = cut_run_on(text).strip()
    space = _Space(get_task(task), choices, labels, words)
    structured = _parse_json(body)
    result = _read_statement(body, structured, space, stop_reason)
    if structured is not None or result.ok or stop_reason == "max_tokens":
        return result  # a JSON answer is never re-read from prose; a cut answer is never trusted
    return _read_prose(body, space, result)


def _read_prose(body: str, space: _Space, stated: ParseResult) -> ParseResult:
    """No answer statement read: the reader weighs every mention of every candidate
    (core.label.reader). What it cannot decide keeps the statement tier's flag."""
    labelled = space.kind.name == "numeric" or _ANSWER_LABEL.search(body)
    if stated.flag == "unparseable" and stated.note != NO_STATEMENT and labelled:
        return stated  # "Answer: no", "the answer is (2 * x)": a stated answer that is no label is not guessed around
    words = space.words if space.kind.accepts_label_words else None
    reading = read(body, space.kind, choices=space.choices, labels=space.labels, words=words)
    if reading.label is not None:
        return ParseResult(reading.label, reading.rationale, note="read from prose")
    if reading.flag == "ambiguous":
        return ParseResult(None, stated.rationale, "ambiguous", reading.note)
    return stated


def _read_statement(body: str, structured, space: _Space, stop_reason: str | None) -> ParseResult:
    """A JSON answer, a labelled "Answer: x" line, or a prose statement ("the answer is (c)")."""
    answer, rationale = structured if structured is not None else _find_answer(body, space)
    if answer is None and stop_reason != "max_tokens":
        answer = space.kind.fallback_answer(body)
    if answer is None:
        flag = "truncated" if stop_reason == "max_tokens" else "unparseable"
        return ParseResult(None, rationale, flag, NO_STATEMENT)
    first_line = answer.split("\n")[0]
    if space.ambiguous(answer):
        return ParseResult(None, rationale, "ambiguous", f"answer names several options: {first_line[:80]!r}")
    label = space.read(answer.strip().strip("*").strip())
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


# ---- finding the answer statement in free text -------------------------------------
def _find_answer(body: str, space: _Space) -> tuple[str | None, str | None]:
    """The answer statement and the rationale around it. A labelled "Answer:" beats prose, a firm
    statement a hedged one, and a later statement an earlier one (teachers correct themselves); a
    statement that reads as no label gives way to the next; if none reads, the first is flagged."""
    found = [(3, m) for m in _ANSWER_LABEL.finditer(body)] + [(_prose_tier(m), m) for m in _PROSE.finditer(body)]
    found.sort(key=lambda tm: (tm[0], tm[1].start()), reverse=True)
    first = None
    for _, m in found[:_MAX_STATEMENTS]:
        answer, rationale = _split_statement(body, m, space)
        first = first or (answer, rationale)
        if answer and (space.ambiguous(answer) or space.read(answer) is not None):
            return answer, rationale
    if first:
        return first
    return _leading_word(body, space) or _standalone_answer(body, space) or (None, body or None)


_MAX_STATEMENTS = 20  # a reply restating its answer hundreds of times is not read hundreds of times


def _prose_tier(m: re.Match) -> int:
    """'The answer is (c)' and 'I choose (c)' outrank a hedged 'another option would be (a)'."""
    stmt = m.group("stmt").lower()
    return 1 if re.search(r"would\s+be", stmt) and "answer" not in stmt else 2


def _split_statement(body: str, m: re.Match, space: _Space) -> tuple[str, str | None]:
    """Answer = the statement up to the end of its sentence, less a 'because ...' clause; the
    rationale = the text before the statement, that clause, and the text after the sentence."""
    rest = body[m.start("ans"):]
    protected = _spans(rest.split("\n", 1)[0], space.texts())  # a sentence ends by its line's end
    end = _first_cut(_SENTENCE_END, rest, protected)
    sentence, after = rest[: end.start()] if end else rest, rest[end.end():] if end else ""
    reason_at = _first_cut(space.reason_split, sentence, protected)
    answer, reason = (sentence[: reason_at.start()], sentence[reason_at.end():]) if reason_at else (sentence, "")
    reason = reason.strip()
    if reason:
        reason = reason[0].upper() + reason[1:] + ("" if reason[-1] in ".!?" else ".")
    return answer.strip(), _rationale(_sentence_before(body[: m.start("stmt")]), reason, after)


def _sentence_before(text: str) -> str:
    """'Deer need cover, so it would be (c)' leaves 'Deer need cover,': end it as a sentence."""
    text = re.sub(r"[\s,;:–—-]+$", "", text)
    return text + "." if text and text[-1] not in ".!?\"'”’)*" else text


def _spans(text: str, keys: list[str]) -> list[tuple[int, int]]:
    lowered = text.lower()
    return [(i, i + len(k)) for k in keys for i in _find_all(lowered, k.lower())]


def _find_all(text: str, key: str):
    i = text.find(key)
    while i >= 0:
        yield i
        i = text.find(key, i + 1)


def _first_cut(pattern: re.Pattern, text: str, protected: list[tuple[int, int]]) -> re.Match | None:
    """The first match of `pattern` that is not inside a label's own text."""
    return next((c for c in pattern.finditer(text) if not any(a <= c.start() < b for a, b in protected)), None)


def _rationale(*parts: str) -> str | None:
    text = " ".join(p.strip() for p in parts if p and p.strip())
    text = _RATIONALE_LABEL.sub("", text).strip()
    return text or None


def _leading_word(body: str, space: _Space) -> tuple[str, str | None] | None:
    """A reply that opens with a label word ("No, the customer only asks a question.") when the
    prompt asked for such words; the first sentence must name no word of another label."""
    if not (space.words and space.kind.accepts_label_words):
        return None
    opening = body.lstrip(_DECORATION)
    end = _first_cut(_SENTENCE_END, opening, [])
    first = opening[: end.start()] if end else opening
    if match_label_word(first, space.words, space.labels or ()) is None:
        return None
    for word in sorted(space.words, key=len, reverse=True):
        m = re.match(rf"{re.escape(word)}(?![\w'])", opening, re.IGNORECASE)
        if m:
            rest = opening[m.end():].lstrip(_DECORATION + ",.;:!-—")
            return word, _rationale(rest[:1].upper() + rest[1:])
    return None


def _standalone_answer(body: str, space: _Space) -> tuple[str, str | None] | None:
    """Tier 3: a line that is only a bolded answer ("**(c) wooded area**"), or a whole reply of
    a few words ("Neutral."). Lines that read as different labels are not guessed between."""
    if not (space.kind.needs_choices or space.kind.enum_labels):
        return None  # numbers: a bold "**Step 1**" is not an answer (fallback_answer reads those)
    lines = body.split("\n")
    hits = []
    for i, line in enumerate(lines):
        bold = _BOLD_LINE.fullmatch(line.strip())
        short = len(lines) == 1 and len(canonical_text(line).split()) <= 3 and not _NEGATED.search(line)
        candidate = bold.group(1) if bold else line if short else None
        label = space.read(candidate.strip()) if candidate else None
        if label is not None:
            hits.append((i, candidate, label))
    if not hits or len({label for _, _, label in hits}) > 1:
        return None
    i, candidate, _ = hits[-1]
    return candidate.strip(), _rationale("\n".join(lines[:i]), "", "\n".join(lines[i + 1:]))

