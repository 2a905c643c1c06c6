"""Reading the answer out of a teacher's free text, for every task type, by one method.

1. Find every mention of every candidate answer: a choice's letter or number in any marker style
   ("(c)", "c)", "C.", "option 3", "4)"), a choice's text, a label, a label word or synonym; for
   numeric tasks the numbers of the closing sentences.
2. Score each mention by where it stands and what surrounds it:
   - a statement cue before it ("the answer is", "would be", "I choose", "best", "is") or after it
     ("... is the correct answer") asserts it;
   - the reply's first words, its first sentence, and a closing "so / therefore" sentence weigh more
     (zero-shot replies answer first, chain-of-thought replies last);
   - negation or contrast in its clause ("not", "unlikely", "rather than", "while option a ...")
     turns it against the candidate;
   - an item of an evaluation list ("1. Table: ...") is discussed, not chosen.
3. A candidate's score is its best mention's. The best candidate wins when its margin is clear;
   two candidates asserted together ("a classroom or a university") are ambiguous; a reply that
   states no candidate is unreadable.
4. The rationale is the rest of the reply, without the sentence that states the answer (a reason
   given in that sentence, after "because" or a dash, stays).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from core.kernel.labels import NLI_SYNONYMS, canonical_text, format_number, numeric_value

STATE = 2.0       # a statement cue next to the mention
ANSWER_IS = 3.0   # "the answer is" / "answer:" right before it
LEADING = 3.0     # the reply opens with it
FIRST = 1.0       # in the first sentence
CLOSING = 1.5     # in a closing "so / therefore / in conclusion" sentence
NEGATED = -3.0    # "not", "unlikely", "rather than" in its clause
CLEAR_MARGIN = 1.0
CONTEXT = 300     # characters before a mention that its cues are read from

_SENTENCE = re.compile(r"(?<!\d)[.!?][\"'”’*)\]]*(?=\s|$)|(?<=\d)\.(?=\s+[A-Z])|\n+")
_CLAUSE = re.compile(r"[,;:]|\b(?:but|while|whereas|although|though|however|yet)\b|\s[-–—]\s", re.I)
# "the answer is", and "the most suitable choice for a person heading overseas would be (to)": the
# subject may name the question in between, but no sentence or clause break.
_ANSWER_CUE = re.compile(r"\b(?:answer|option|choice|selection)\b(?:[^.;:!?,]{0,90}?\b(?:is|would\s+be|will\s+be|"
                         r"should\s+be)(?:\s+to)?|\s*[:=])\s*\W{0,3}(?:(?:the|a|an|either|both)\s+)*$", re.I)
_STATE_CUE = re.compile(
    r"\b(?:is|are|was|would\s+be|will\s+be|should\s+be|could\s+be|be|choose|chose|pick|select|go\s+with|opt\s+for|"
    r"prefer|recommend|answer|correct|best|right|optimal|ideal|suitable|appropriate|likely|probable|logical|"
    r"reasonable|preferred|closest|classif(?:y|ied)\s+as|categori[sz]ed?\s+as|labeled|labelled|as)\b\W*"
    r"(?:(?:the|a|an|in|at|on|to|by|from|into|of|with|option|choice|answer|be|likely|probably|most|"
    r"definitely|clearly|called|known\s+as|either|both)\W+){0,4}$", re.I)
_AFTER_CUE = re.compile(r"^\W{0,3}(?:(?:fits|suits|works|matches)\s+(?:best|better)\b|"
                        r"(?:is|are|(?:would|could|should|might|may|will)\s+be|seems|appears|sounds|remains)\s+(?:to\s+be\s+)?(?:the\s+|a\s+)?"
                        r"(?:most|best|correct|right|optimal|answer|likely|ideal|suitable|appropriate|preferred|better)\b)",
                        re.I)
_NEGATION = re.compile(r"\b(?:not|never|unlikely|rather\s+than|instead\s+of|less\s+likely|least|incorrect|wrong|"
                       r"except|eliminat\w*|other\s+than|cannot|neither|nor|irrelevant|unrelated|unsuitable|"
                       r"inappropriate|implausible)\b|n['’]t\b", re.I)
_CONTRAST_OPENING = re.compile(r"^\W*(?:while|whereas|although|though|even\s+though|other\s+options?|"
                               r"the\s+other\s+options?)\b", re.I)
_CLOSING = re.compile(r"^\W*(?:so|therefore|thus|hence|overall|in\s+conclusion|in\s+summary|to\s+conclude|"
                      r"ultimately|final(?:ly)?|the\s+(?:final\s+)?answer|answer)\b", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]\s*)?(?:\(?[a-e1-5][).:]|\(?[A-E][).:])?\s*[\w' -]{1,40}:\s", re.I)
_EXAMPLES = re.compile(r"\b(?:such\s+as|including|like|e\.g\.|for\s+example|for\s+instance|other\s+options?|"
                       r"alternatives?)\b", re.I)
_QUOTED = re.compile(r"[\"“][^\"”]{40,}[\"”]")  # a restated question or claim: its words state nothing
_REASON = re.compile(r"\s+(?:because|since|as)\b\s*|,\s*(?:because|since|as)\b\s*|\s*;\s*|\s*—\s*|\s+(?:–|--|-)\s+|:\s+",
                     re.I)
_LETTERS = "abcdefghij"
_FUNCTION_WORDS = {"a", "an", "the", "in", "at", "on", "to", "by", "of", "into", "from", "with"}


@dataclass
class Reading:
    """What the reader found: a label (or None with a flag) and the rationale around it."""
    label: str | None
    rationale: str | None
    flag: str | None = None           # None | ambiguous | unparseable
    note: str | None = None
    scores: dict = field(default_factory=dict)


@dataclass
class _Mention:
    candidate: str
    start: int
    end: int
    sentence: int
    score: float = 0.0
    asserted: bool = False


HEAD, TAIL = 6000, 2000  # a longer reply is read at its opening and its close, where answers are stated


def read(body: str, kind, choices: list[str] | None = None, labels: list[str] | None = None,
         words: dict[str, str] | None = None) -> Reading:
    """The answer a free-text reply states, read against the task's candidates."""
    if len(body) > HEAD + TAIL:  # keeps the reading linear in what it reads: a 100 kB reply costs no more
        body = body[:HEAD] + "\n" + body[-TAIL:]
    sentences = _sentences(body)
    if kind.name == "numeric":
        return _read_number(body, sentences)
    mentions = _mentions(body, sentences, kind, choices, labels, words)
    for m in mentions:
        _score(body, sentences, m)
    _share_coordinated(body, mentions)
    return _decide(body, sentences, mentions)


# ---- sentences and mentions ----------------------------------------------------------
def _sentences(body: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for cut in _SENTENCE.finditer(body):
        if body[start:cut.start()].strip():
            spans.append((start, cut.end()))
        start = cut.end()
    if body[start:].strip():
        spans.append((start, len(body)))
    return spans or [(0, len(body))]


def _sentence_of(sentences, pos: int) -> int:
    i = bisect.bisect_right([a for a, _ in sentences], pos) - 1
    return i if 0 <= i < len(sentences) and pos < sentences[i][1] else len(sentences) - 1


def _surface_forms(kind, choices, labels, words) -> list[tuple[str, str]]:
    """(text to look for, candidate it names), longest first."""
    forms = []
    if choices:
        for c in choices:
            forms.append((c, c))
            bits = canonical_text(c).split()
            while bits and bits[0] in _FUNCTION_WORDS:
                bits = bits[1:]
            if bits and " ".join(bits) != canonical_text(c) and len(" ".join(bits)) > 3:
                forms.append((" ".join(bits), c))
    for label in labels or []:
        forms.append((label, label))
        forms.append((label.replace("_", " "), label))
    if kind.name == "nli":
        for word, label in NLI_SYNONYMS.items():
            forms.append((word, label))
    for word, label in (words or {}).items():
        forms.append((word, label))
    seen, out = set(), []
    for text, cand in sorted(forms, key=lambda f: -len(f[0])):
        key = canonical_text(text)
        if key and (key, cand) not in seen:
            seen.add((key, cand))
            out.append((key, cand))
    return out


def _mentions(body, sentences, kind, choices, labels, words) -> list[_Mention]:
    hidden = [(m.start(), m.end()) for m in _QUOTED.finditer(body)]
    taken: list[tuple[int, int]] = []
    found: list[_Mention] = []
    lowered = body.lower()
    for text, cand in _surface_forms(kind, choices, labels, words):
        pattern = re.compile(rf"(?<![\w-]){_loose(text)}(?:e?s)?(?![\w-])")
        for m in pattern.finditer(_canonical_spaces(lowered)):
            span = (m.start(), m.end())
            if any(a < span[1] and span[0] < b for a, b in taken + hidden):
                continue  # inside a longer candidate's text ("kitchen" in "kitchen cabinet")
            taken.append(span)
            found.append(_Mention(cand, *span, _sentence_of(sentences, span[0])))
    if choices:
        found += _markers(body, sentences, choices, found)
    return sorted(found, key=lambda m: m.start)


_FILLER = r"\s+(?:(?:the|a|an|of|to|in|at|on|your|his|her|their|its|one['’]s)\s+)?"


def _loose(text: str) -> str:
    """A candidate's words in order, a function word allowed between them ("warm the house" is "warm house")."""
    return _FILLER.join(_word(word) for word in text.split())


def _word(word: str) -> str:
    """A word and its inflections ("carved" / "carving", "bake" / "baking")."""
    stem = re.sub(r"(?:ing|ed|es|er|e|s)$", "", word) if len(word) >= 5 else word
    return re.escape(stem) + (r"\w{0,3}" if stem != word or len(word) >= 5 else "(?:e?s)?")


def _canonical_spaces(text: str) -> str:
    """Same length as the text (offsets stay valid): punctuation that canonical_text drops becomes a space."""
    return re.sub(r"[_*`]", " ", text)


_MARKER = re.compile(
    r"(?:\((?P<p>[a-jA-J1-9])\)"                                          # (c) (3)
    r"|(?<![\w.,'’])(?P<c>[a-jA-J1-9])\)"                                 # c) 3)
    r"|\b(?:option|choice|answer|letter|number)\s*#?\s*(?P<o>[a-jA-J1-9])(?![\w'’])"  # option c, choice 3
    r"|^\s*(?P<l>[a-jA-J1-9])[.:](?=\s)"                                 # c. / 3: at a line start
    r"|(?<![\w'’])(?P<u>[A-J])(?=[.:]\s|\s*$))",                          # C. / a bare capital letter
    re.MULTILINE)


def _markers(body, sentences, choices, texts: list[_Mention]) -> list[_Mention]:
    out = []
    for m in _MARKER.finditer(body):
        key = next(g for g in m.groups() if g)
        index = int(key) - 1 if key.isdigit() else _LETTERS.index(key.lower())
        if not 0 <= index < len(choices):
            continue
        cand = choices[index]
        # "(b) ocean": the text names the option meant; a marker beside another option's text is a slip
        beside = [t for t in texts if 0 <= t.start - m.end() <= 3]
        if beside and beside[0].candidate != cand:
            continue
        if beside:  # the marker and its own text are one mention
            beside[0].start = m.start()
            continue
        out.append(_Mention(cand, m.start(), m.end(), _sentence_of(sentences, m.start())))
    return out


# ---- scoring -------------------------------------------------------------------------
def _score(body: str, sentences, m: _Mention) -> None:
    s_start, s_end = sentences[m.sentence]
    sentence = body[s_start:s_end]
    before = body[max(s_start, m.start - CONTEXT):m.start]  # what bears on a mention stands near it
    clause_before = _CLAUSE.split(before)[-1]
    after = body[m.end:s_end]
    score = 1.0
    if not body[:m.start].strip(" \t\n*_\"'“‘(#>-"):
        score += LEADING
    elif m.sentence == 0:
        score += FIRST
    if _CLOSING.search(sentence) or (m.sentence == len(sentences) - 1 and len(sentences) > 2):
        score += CLOSING
    if _ANSWER_CUE.search(before[-130:]):
        score += ANSWER_IS
        m.asserted = True
    elif _STATE_CUE.search(before[-80:]) or _AFTER_CUE.search(after):
        score += STATE
        m.asserted = True
    if _LIST_ITEM.match(sentence) and not m.asserted and m.start - s_start < 45:
        score = 0.5  # "1. Table: ..." discusses an option
    if _listed(before):
        score, m.asserted = min(score, 1.0), False  # "other options such as x, y" lists, it does not choose
    if _negated(clause_before) or _echoes_negation(before, clause_before) or _CONTRAST_OPENING.search(sentence) and m.start < s_start + len(
            sentence.split(",")[0]) or re.match(r"^\W*(?:is|would\s+be|are)\s+(?:not|un|less|in)", after, re.I):
        score = min(score, 0) + NEGATED
        m.asserted = False
    m.score = score


_VERB_CUE = re.compile(r"\b(?:is|are|was|were|would\s+be|will\s+be|be|choose|pick|select|go\s+with)\b", re.I)


def _negated(clause: str) -> bool:
    """A negation that bears on the mention: no statement verb stands between them ("is not the
    cupboard" is negated; "not ready to use them would be the cupboard" is not)."""
    last = None
    for last in _NEGATION.finditer(clause):
        pass
    # "cannot be true", "is not the bank": the verb right after the negation is the negated one
    rest = re.sub(r"^\s*(?:be|been|being|is|are)\b", "", clause[last.end():]) if last else ""
    return last is not None and not _VERB_CUE.search(rest)


def _listed(before: str) -> bool:
    """The mention is an item of a list of examples: "such as a, b, and c" earlier in its
    sentence, with no statement verb after it."""
    last = None
    for last in _EXAMPLES.finditer(before):
        pass
    return last is not None and not _VERB_CUE.search(before[last.end():])


_ECHO = re.compile(r"^\W*(?:and\s+)?(?:so|nor|neither|as)\s+(?:is|are|was|were|does|do|would)\b", re.I)


def _echoes_negation(sentence_before: str, clause_before: str) -> bool:
    """"The bank is unlikely, and so is the mall": an echo clause takes the verdict before it."""
    if not _ECHO.search(clause_before):
        return False
    earlier = _CLAUSE.split(sentence_before[: len(sentence_before) - len(clause_before)])
    return any(_NEGATION.search(c) for c in earlier[-2:])


_COORDINATION = re.compile(r"^[\s*\"'”’)]*(?:\band/or\b|\bor\b|\band\b)[\s*\"'“‘(]*(?:(?:either|both|the|a|an|"
                           r"option|choice)\s+)*[\"'“‘(]*$", re.I)


def _share_coordinated(body: str, mentions: list[_Mention]) -> None:
    """"The answer is (a) or (c)", "Billing or shipping": a candidate joined to another by "or" /
    "and" stands as strongly as it, so the two stay ambiguous."""
    for first, second in zip(mentions, mentions[1:]):
        if (max(first.score, second.score) > 0 and first.sentence == second.sentence
                and first.candidate != second.candidate and _COORDINATION.match(body[first.end:second.start])):
            first.score = second.score = max(first.score, second.score)
            first.asserted = second.asserted = first.asserted or second.asserted


def _decide(body: str, sentences, mentions: list[_Mention]) -> Reading:
    if not mentions:
        return Reading(None, _clean(body), "unparseable", "the reply names no candidate answer")
    best: dict[str, _Mention] = {}
    for m in mentions:
        if m.candidate not in best or m.score > best[m.candidate].score:
            best[m.candidate] = m
    ranked = sorted(best.values(), key=lambda m: -m.score)
    scores = {m.candidate: round(m.score, 2) for m in ranked}
    top = ranked[0]
    if top.score <= 0:
        return Reading(None, _clean(body), "unparseable", "every candidate the reply names is ruled out", scores)
    rival = ranked[1] if len(ranked) > 1 else None
    if rival and rival.score > 0 and (top.score - rival.score < CLEAR_MARGIN or
                                      (rival.asserted and rival.sentence == top.sentence and top.score - rival.score < 3)):
        return Reading(None, _clean(body), "ambiguous",
                       f"the reply states both {top.candidate!r} and {rival.candidate!r}", scores)
    return Reading(top.candidate, _rationale(body, sentences, top), scores=scores)


def _rationale(body: str, sentences, m: _Mention) -> str | None:
    """The reply without its answer statement; a reason given after the answer stays."""
    s_start, s_end = sentences[m.sentence]
    rest = body[m.end:s_end]
    reason = _REASON.search(rest)
    kept = rest[reason.end():].strip() if reason else ""
    if kept:
        kept = kept[0].upper() + kept[1:]
    before = body[:s_start].strip()
    return _clean(" ".join(p for p in (before, kept, body[s_end:].strip()) if p))


def _clean(text: str) -> str | None:
    text = " ".join(text.split())
    return text or None


# ---- numbers -------------------------------------------------------------------------
# A stated result: a number right after "=" or a statement verb ("is 42", "has 8 apples", "total of
# 12"), and not itself the start of a sum ("has 18 - 6" states no result).
_RESULT = re.compile(
    r"(?:=|\b(?:is|are|was|were|be|equals?|has|have|had|gets?|got|makes?|made|needs?|costs?|totals?|"
    r"total\s+of|answer(?:\s+is)?|left\s+with|remains?|altogether|in\s+all)\b:?)\s*(?:about\s+|exactly\s+)?"
    r"(?P<n>-?\$?\d[\d,]*(?:\.\d+)?)(?![\d,]*\s*[-+*/×÷^]\s*\(?\d)(?![\w.]*\d)", re.I)


def _read_number(body: str, sentences) -> Reading:
    """The result the last sentence with a number states ("3 + 5 = 8, so she has 8 left" is 8);
    sentences without numbers after it ("Hope this helps!") are passed over. A last number
    sentence that states no result ("So Steven has 18 - 26") leaves the reply unread."""
    for i in range(len(sentences) - 1, -1, -1):
        a, b = sentences[i]
        if not re.search(r"\d", body[a:b]):
            continue
        stated = list(_RESULT.finditer(body[a:b]))
        if not stated:
            break
        value = numeric_value(stated[-1].group("n").replace("$", "").replace(",", ""))
        if value is None:
            continue
        rationale = _clean(body[:a] + " " + body[b:]) if i == len(sentences) - 1 and i > 0 else _clean(body)
        return Reading(format_number(value), rationale)
    return Reading(None, _clean(body), "unparseable", "no closing sentence states a number as a result")
