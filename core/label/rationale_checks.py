"""Cheap checks of a teacher's rationale, at labeling and import time: each is a flag, a review
queue and a sort. Pure Python over text, no model and no network; 100,000 rows check in seconds.

  leakage        the rationale only restates the label ("The answer is billing.")
  contradiction  it argues for another option or label than the answer, or rules the answer out
  ungrounded     few of its content words occur in the input or the choices (the share is a score)
  boilerplate    the same text, label words masked, repeats across many rows of the project
  length         far shorter or longer than the project's rationales usually are

Row-level checks read one row; boilerplate and length read the whole list passed to check_rows.
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, fields

from core.kernel.labels import LETTERS, canonical_text, number_of_label, numeric_value

__all__ = ["CHECKS", "CHECK_HELP", "Thresholds", "check_rows", "grounding", "length_bounds", "stem"]

CHECKS = ("leakage", "contradiction", "ungrounded", "boilerplate", "length")

CHECK_HELP = {
    "leakage": "The rationale only restates the answer (\"The answer is billing.\") and gives no reason.",
    "contradiction": "The rationale argues for a different option or label than the answer, or rules the answer out.",
    "ungrounded": "Few of the rationale's content words appear in the input or the choices; sort by the share.",
    "boilerplate": "The same rationale text (label words masked) is repeated across many rows of the project.",
    "length": "The rationale is much shorter or longer than this project's rationales usually are.",
}

# ---- thresholds ---------------------------------------------------------------------------
# leakage: a rationale that names the answer and has no content word of its own besides the answer,
# answer-talk ("answer", "correct", "option", "makes sense") and stopwords. One extra word ("Refund,
# so billing.") is already a reason, if a thin one; the length check catches thin rationales.
LEAKAGE_MAX_OTHER_WORDS = 0
# ungrounded: below this share of content words found in the input or choices. Real chain-of-thought
# restates the question and adds some world knowledge: on CommonsenseQA (PaLM) the median share is
# 1.0, a quarter of the rows are under 0.75 and 5% under 0.57, and rows between 0.4 and 0.5 still
# read as grounded paraphrase ("a place where canned goods are kept" for a pantry question); under
# 0.4 a rationale mostly talks about what the input does not mention (1.1% of CQA rows, 0% of SVAMP).
UNGROUNDED_MAX_SHARE = 0.4
# ... judged only with this many content words: a share of 1 to 3 words moves in steps of a third
# and is noise ("Double charge.", "only fire can be lit").
UNGROUNDED_MIN_WORDS = 4
# boilerplate: one normalised text on at least this many rows AND this share of the project's
# rationales. Five identical explanations are a pattern, not chance; the share keeps a large project
# from flagging the handful of stock phrasings every teacher has.
BOILERPLATE_MIN_ROWS = 5
BOILERPLATE_MIN_SHARE = 0.02
# length: outside median ± LENGTH_K · (1.4826 · MAD) of log word count. 1.4826 · MAD estimates a
# standard deviation robustly and 3 of them is the usual outlier fence: on SVAMP it flags 0.8% (bare
# "337 - 23 = 314." and repetition loops of 95+ words), on CQA's uniform two-sentence template none.
LENGTH_K = 3.0
# The spread is at least log(1.5): when almost every rationale has the same length, one half again
# as long (or two thirds as short) is not an outlier.
LENGTH_MIN_SPREAD = math.log(1.5)
# Fewer rationales than this is no distribution to judge by: only the absolute bounds below apply.
LENGTH_MIN_ROWS = 20
# Always too short / too long, whatever the project: under 3 words is no sentence; over 250 words
# is not the one or two sentences a rationale is asked to be (it is a run-on or a repetition loop).
LENGTH_ABS_MIN_WORDS = 3
LENGTH_ABS_MAX_WORDS = 250
# contradiction on numeric answers: the rationale's last "= N" is the answer within this relative
# tolerance (a teacher that writes 33.33 for 100 / 3 agrees with its answer).
NUMERIC_REL_TOL = 0.01
# contradiction: an option written this close to the answer (difflib ratio), or with the same
# stems, is the answer spelt another way, not another answer: 'theatre' / 'theater', 'losing money'
# / 'lose money' (CQA has such near-duplicate choices). 0.85 is the cutoff core.kernel.labels uses for typos.
NEAR_MISS = 0.85


@dataclass(frozen=True)
class Thresholds:
    """The module constants, overridable per call (a project's settings, a test)."""
    leakage_max_other_words: int = LEAKAGE_MAX_OTHER_WORDS
    ungrounded_max_share: float = UNGROUNDED_MAX_SHARE
    ungrounded_min_words: int = UNGROUNDED_MIN_WORDS
    boilerplate_min_rows: int = BOILERPLATE_MIN_ROWS
    boilerplate_min_share: float = BOILERPLATE_MIN_SHARE
    length_k: float = LENGTH_K
    length_min_spread: float = LENGTH_MIN_SPREAD
    length_min_rows: int = LENGTH_MIN_ROWS
    length_abs_min_words: int = LENGTH_ABS_MIN_WORDS
    length_abs_max_words: int = LENGTH_ABS_MAX_WORDS
    numeric_rel_tol: float = NUMERIC_REL_TOL
    near_miss: float = NEAR_MISS

    @classmethod
    def from_dict(cls, values: dict | None) -> Thresholds:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


# ---- words --------------------------------------------------------------------------------
_STOPWORD_WORDS = """
a about above after again against all also am an and any are as at be been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves s t d ll m re ve let lets may might must shall also even ever every much
many still yet since because though although whether either neither upon onto per via within without
among around across along one ones something someone somebody anything anyone everything everyone
thing things way kind type sort able usually often always never really quite rather place places
"""
STOPWORDS = frozenset(_STOPWORD_WORDS.split())

# words (and opt_c, the mark of an option letter), numbers (a minus sign only when it is not an
# operator: "-5", not "4 - 5"), clause marks. Words first: it is the common case and the fastest.
_TOKEN = re.compile(r"[a-z_]+|(?:(?<![\w)])-)?\d+(?:[.,]\d+)*|[.;!?,:]")
_BREAKS = frozenset(".;!?,:")
_DIGIT = re.compile(r"\d")
_NUMBER_START = frozenset("0123456789-")   # a token that starts so is a number (words never do)
_CONTRACTION = re.compile(r"n['’]t\b")
_CANNOT = re.compile(r"\bcannot\b")
_IS_CONTRACTION = re.compile(r"\b(it|that|this|what|there|here|which|who|he|she)['’]s\b")
_POSSESSIVE = re.compile(r"['’]s\b|['’]")
_LETTER_MARK = re.compile(r"\(\s*([a-z])\s*\)|(?<![\w'’])([a-z])\)|\b(?:option|choice|letter)\s+\(?([a-z])\b\)?")


_IRREGULAR = {
    "chose": "choos", "chosen": "choos", "went": "go", "gone": "go", "made": "mak", "says": "say", "said": "say",
    "given": "giv", "gave": "giv", "taken": "tak", "took": "tak", "eaten": "eat", "ate": "eat", "written": "writ",
    "wrote": "writ", "known": "know", "knew": "know", "bought": "buy", "sold": "sell", "found": "find",
    "kept": "keep", "lost": "los", "felt": "feel", "thought": "think", "brought": "bring", "told": "tell",
    "ran": "run", "began": "begin", "begun": "begin", "fell": "fall", "fallen": "fall", "grew": "grow",
    "grown": "grow", "spent": "spend", "paid": "pay", "sent": "send", "people": "person", "children": "child",
    "men": "man", "women": "woman", "feet": "foot", "teeth": "tooth", "mice": "mouse", "seen": "see",
}


_STEMS: dict[str, str] = {}


def stem(word: str) -> str:
    """A light, consistent stemmer: plural, -ing, -ed, -ly and a final e are cut, a doubled final
    consonant undone, so 'churches'/'church', 'making'/'make', 'bathing'/'bathe' meet."""
    cached = _STEMS.get(word)
    if cached is not None:
        return cached
    if word in _BREAKS or word[0] in _NUMBER_START or "_" in word:   # a clause mark, a number, an option letter
        _STEMS[word] = word
        return word
    w = _IRREGULAR.get(word, word)
    if len(w) > 3:
        if w.endswith(("ies", "ied")) and len(w) > 4:
            w = w[:-3] + "y"
        elif w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if w.endswith("ing") and len(w) > 5:
            w = _undouble(w[:-3])
        elif w.endswith("ed") and len(w) > 4:
            w = _undouble(w[:-2])
        elif w.endswith("ly") and len(w) > 5:
            w = w[:-2]
        if w.endswith("e") and len(w) > 3:
            w = w[:-1]
    if len(_STEMS) > 500_000:   # numbers are cached too: keep memory bounded on huge projects
        _STEMS.clear()
    _STEMS[word] = w
    return w


def _undouble(w: str) -> str:
    return w[:-1] if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls" else w


# Talk about the answer ("the correct option", "makes sense") or about the input as such ("the
# customer mentions", "the premise states"): neither a reason of its own (leakage) nor a claim that
# needs grounding (every rationale may say "the ticket"). Kept as stems.
_META_WORDS = """
answer answers choice choices option options correct right best wrong incorrect label category class
classification question clear clearly obvious obviously definite definitely certain certainly likely
probably sense makes make fits fit appropriate suitable logical reasonable therefore hence thus given
stated states says say means mean case reason choose chose pick select letter closest close true false
possible seems seem looks look like good better
text ticket message customer user client writer author sentence passage premise hypothesis statement
mentions mention asks ask requests request wants want reports report describes describe refers refer
issue problem indicates indicate suggests suggest expresses express talks talk discusses discuss
regarding regard related relate concerns concern involves involve complains complain
"""
_META = frozenset(stem(word) for word in _META_WORDS.split())


def _number(token: str) -> str:
    if "," not in token and "." not in token:
        return token.lstrip("0") or "0"
    value = number_of_label(token)
    if value is None:
        return token
    return str(int(value)) if value == int(value) else repr(round(value, 6))


def _tokens(text: str, n_choices: int = 0) -> list[str]:
    """Lowercase tokens: words, numbers (1,000 -> 1000), clause marks, 'not' for n't, and
    opt_c for an option letter written as '(c)', 'c)' or 'option c' (when the row has choices).
    Each rewrite runs only when its trigger is in the text: this is the hot loop."""
    text = text.lower()
    if "_" in text:
        text = text.replace("_", " ")   # underscores mark option letters only
    if "'" in text or "’" in text:
        text = _POSSESSIVE.sub(" ", _IS_CONTRACTION.sub(r"\1 is", _CONTRACTION.sub(" not", text)))
    if "cannot" in text:
        text = _CANNOT.sub("can not", text)
    if n_choices and (")" in text or "option " in text or "choice " in text or "letter " in text):
        def mark(m: re.Match) -> str:
            letter = m.group(1) or m.group(2) or m.group(3)
            return f" opt_{letter} " if LETTERS.index(letter) < n_choices else m.group(0)
        text = _LETTER_MARK.sub(mark, text)
    toks = _TOKEN.findall(text)
    if _DIGIT.search(text):
        for i, tok in enumerate(toks):
            if tok[0] in _NUMBER_START:
                toks[i] = _number(tok)
    return toks


def _stems(toks: list[str]) -> list[str]:
    """Stems of word tokens; numbers, clause marks and option letters as they are."""
    get = _STEMS.get
    return [get(t) or stem(t) for t in toks]


# ---- options: the row's choices or the project's labels -----------------------------------
@dataclass
class _Options:
    texts: list[str]                   # option texts (choices, or the label set)
    seqs: list[tuple[str, ...]]        # their stem sequences
    label_index: int | None            # which one is the answer
    lettered: bool                     # options have letters (choices)
    first: dict[str, list[tuple[tuple[str, ...], int]]]  # first stem -> (sequence, index), longest first
    canon: dict[str, int]              # exact text -> index
    words: list[tuple[str, ...]]       # their words as written (to tell 'fall asleep' from 'falling asleep')


_OPTION_CACHE: dict[tuple, _Options] = {}
_TEXT_CACHE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _option_text(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words, stems) of one option text; cached, since choices recur across rows ('house', 'park')."""
    hit = _TEXT_CACHE.get(text)
    if hit is None:
        words = tuple(t for t in _tokens(text) if t not in _BREAKS)
        hit = (words, tuple(_stems(list(words))))
        if len(_TEXT_CACHE) > 200_000:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[text] = hit
    return hit


def _build_options(texts: list[str], lettered: bool) -> _Options:
    parsed = [_option_text(x) for x in texts]
    words = [w for w, _ in parsed]
    seqs = [q for _, q in parsed]
    first: dict[str, list] = {}
    for i, seq in enumerate(seqs):
        if seq:
            first.setdefault(seq[0], []).append((seq, i))
    for cands in first.values():
        if len(cands) > 1:
            cands.sort(key=lambda c: -len(c[0]))
    canon: dict[str, int] = {}
    for i, x in enumerate(texts):
        canon.setdefault(x, i)
    return _Options(texts, seqs, None, lettered, first, canon, words)


def _options(choices: list[str] | None, label_set: list[str] | None, label: str | None) -> _Options:
    texts = list(choices) if choices else list(label_set or [])
    if choices:
        opts = _build_options(texts, True)   # a row's own choices: rarely the same twice
    else:
        key = tuple(texts)
        opts = _OPTION_CACHE.get(key)
        if opts is None:
            opts = _build_options(texts, False)
            if len(_OPTION_CACHE) > 1_000:
                _OPTION_CACHE.clear()
            _OPTION_CACHE[key] = opts
    index = None
    if label is not None:
        index = opts.canon.get(label)
        if index is None:   # not spelled as the option: compare canonical texts ("Billing" / "billing")
            canon = canonical_text(label)
            index = next((i for i, x in enumerate(texts) if canonical_text(x) == canon), None)
            if index is None and canon:   # a label outside the list (a corrected label): its own option
                extended = _build_options([*texts, label], opts.lettered)
                extended.label_index = len(texts)
                return extended
    if index is None and not choices:
        return opts
    return _Options(opts.texts, opts.seqs, index, opts.lettered, opts.first, opts.canon, opts.words)


@dataclass
class _Mention:
    option: int
    start: int
    end: int
    stance: str = "neutral"   # favoured | negated | neutral
    cue: str = ""


def _mentions(toks: list[str], stems: list[str], opts: _Options) -> list[_Mention]:
    """Where each option is named: its text (longest option first, as stems) or its letter."""
    found: list[_Mention] = []
    first = opts.first
    lettered = opts.lettered
    pos = 0
    for i in [i for i, s in enumerate(stems) if s in first or "_" in s]:
        if i < pos:
            continue   # inside the mention before
        tok = toks[i]
        if "_" in tok:
            if not lettered:
                continue
            idx = LETTERS.index(tok[4])
            j = i + 1
            seq = opts.seqs[idx] if idx < len(opts.seqs) else ()
            if seq and tuple(stems[j:j + len(seq)]) == seq:   # "(c) wooded area" is one mention
                j += len(seq)
            found.append(_Mention(idx, i, j))
            pos = j
            continue
        hits = [idx for seq, idx in first[stems[i]] if tuple(stems[i:i + len(seq)]) == seq]
        if not hits:
            continue
        size = len(opts.seqs[hits[0]])
        hits = [idx for idx in hits if len(opts.seqs[idx]) == size]
        if len(hits) > 1:
            # options that stem alike ('fall asleep' / 'falling asleep'): the one written so, else
            # the answer (no contradiction is read into a spelling), else the first
            written = tuple(toks[i:i + size])
            hits = ([idx for idx in hits if opts.words[idx] == written]
                    or [idx for idx in hits if idx == opts.label_index] or hits)
        found.append(_Mention(hits[0], i, i + size))
        pos = i + size
    return found


# Words that end a negation's reach: "not X but Y", "not X, so Y".
_SCOPE_BREAKERS = frozenset({"but", "so", "therefore", "thus", "hence", "while", "whereas", "although", "though",
                             "however", "instead"})
_NEGATORS = frozenset({"not", "no", "never", "neither", "nor", "unlike", "except", "excluding", "than", "without",
                       "rule", "ruled", "rules", "eliminate", "eliminated", "eliminates", "exclude", "excluded",
                       "excludes"})
_STRONG_BREAKS = frozenset(".;:!?")
_COORDINATION = (["and"], ["or"], ["nor"], [","], [",", "and"], [",", "or"], [",", "nor"])
_ARTICLES = frozenset({"a", "an", "the", *(f"opt_{c}" for c in LETTERS)})
_FAVOUR_BEFORE = re.compile(
    r"(?:^| )(?:only|just|choose|chose|choosing|pick|picked|select|selected|go with|opt for|prefer"
    r"|answer (?:is|would be|will be)|(?:choice|option|label|category) (?:is|would be|will be)"
    r"|(?:best|closest|correct|right|likely|appropriate|logical|sensible|obvious|fitting) (?:\w+ )?(?:is|be)"
    r"|(?:it|this|that|which|text|ticket|message|review|email|post|query|request|case|sentiment|topic|relation"
    r"|relationship) (?:is|was|must be|would be|should be|seems|looks)(?: like)?"
    r"(?: clearly| definitely| certainly| probably| likely| most likely)?(?: about)?"
    r"|falls? (?:under|into)|belongs? (?:to|in)|classif\w* as|categori[sz]\w* as|counts? as|labell?ed as"
    r"|points? to|so|thus|therefore|hence|but|means|indicates|suggests)$")
_FAVOUR_AFTER = re.compile(
    r"^(?:(?:is|are|was|would be|seems|sounds|looks)(?: like)? )?(?:the )?(?:correct|right|best|most likely|closest"
    r"|most appropriate|most logical|most suitable|most sensible|answer|obvious choice|obvious answer"
    r"|only (?:one|option|choice|answer))\b"
    r"|^(?:makes?|made) (?:the most |more |most )?sense|^fits\b|^(?:is|are) the only\b")
_NEGATED_AFTER = re.compile(
    r"^(?:(?:is|are|was|were|would|does|do|did|can|could|will|should|has|have|might|may|must)(?: be)? )?"
    r"(?:not|never|wrong|incorrect|unlikely|impossible|irrelevant|less likely|false|ruled out|eliminated)\b")


def _stance(toks: list[str], m: _Mention, prev: _Mention | None) -> tuple[str, str]:
    """favoured / negated / neutral for one mention, from the words around it in its clause."""
    start = m.start
    k = start
    while k > 0 and toks[k - 1] not in _BREAKS and start - k < 7:
        k -= 1
    before = toks[k:start]
    for j in range(len(before) - 1, -1, -1):
        if before[j] in _SCOPE_BREAKERS:
            scope = before[j + 1:]
            break
    else:
        scope = before
    # "only X, Y and Z", "not X or Y": a coordinated option shares the stance of the one before it
    if prev is not None and toks[prev.end:start] in _COORDINATION:
        return prev.stance, prev.cue
    negators = [j for j, t in enumerate(scope) if t in _NEGATORS]
    if negators:
        return "negated", " ".join(scope[negators[0]:]) + " …"
    words = [t for t in before if t not in _ARTICLES]
    tail = " ".join(words[-5:])
    fav = _FAVOUR_BEFORE.search(tail)
    if fav:
        return "favoured", fav.group(0).strip() + " …"
    end = m.end
    after = []
    while end < len(toks) and toks[end] not in _BREAKS and len(after) < 5:
        after.append(toks[end])
        end += 1
    after_text = " ".join(after)
    neg = _NEGATED_AFTER.search(after_text)
    if neg:
        return "negated", "… " + neg.group(0)
    fav = _FAVOUR_AFTER.search(after_text)
    if fav:
        return "favoured", "… " + fav.group(0)
    # "...; contradiction." / "Billing." : the option is a sentence of its own (a comma-separated
    # list item is not: "Deserts, oceans and cities have no deer")
    if not before and not after and (start == 0 or toks[start - 1] in _STRONG_BREAKS) \
            and (end == len(toks) or toks[end] in _STRONG_BREAKS):
        return "favoured", "a sentence of its own"
    return "neutral", ""


# "= 87", "= 2 / 3", "equals 12": a result the rationale states (an expression is evaluated)
_RESULT = re.compile(r"(?:=|\bequals\b)\s*\$?\s*(\(?\s*-?\d[\d,.]*(?:\s*[-+*/x×÷]\s*\(?\s*-?\d[\d,.]*\s*\)?)*)")
# an expression written without its result ("79 games means 79 * 191 points.")
_EXPRESSION = re.compile(r"\(?\s*-?\d[\d,.]*(?:\s*[-+*/x×÷]\s*\(?\s*-?\d[\d,.]*\s*\)?)+")


# ---- one row ------------------------------------------------------------------------------
@dataclass
class _Row:
    """A rationale read once for every row-level check."""
    text: str
    toks: list[str]
    stems: list[str]
    opts: _Options | None
    mentions: list[_Mention]
    label_number: float | None


def _read(rationale: str, choices: list[str] | None, label: str | None, label_set: list[str] | None) -> _Row:
    n_choices = len(choices) if choices else 0
    toks = _tokens(rationale, n_choices)
    stems = _stems(toks)
    opts = _options(choices, label_set, label) if (choices or label_set or label) else None
    mentions = _mentions(toks, stems, opts) if opts else []
    prev = None
    for m in mentions:
        m.stance, m.cue = _stance(toks, m, prev)
        prev = m
    number = None
    if label is not None and not choices and (opts is None or opts.label_index is None
                                              or opts.label_index >= len(label_set or [])):
        number = number_of_label(label)   # a numeric answer (not a class that happens to be "3")
    return _Row(rationale, toks, stems, opts, mentions, number)


def _label_spans(row: _Row) -> set[int]:
    idx = row.opts.label_index if row.opts else None
    spans = set()
    for m in row.mentions:
        if m.option == idx:
            spans.update(range(m.start, m.end))
    return spans


def _label_named(row: _Row) -> bool:
    if row.opts is not None and row.opts.label_index is not None \
            and any(m.option == row.opts.label_index for m in row.mentions):
        return True
    if row.label_number is not None:
        return any(t[0] in _NUMBER_START and _same_number(t, row.label_number, 1e-9) for t in row.toks)
    return False


def _same_number(token: str, value: float, rel: float) -> bool:
    x = number_of_label(token)
    return x is not None and math.isclose(x, value, rel_tol=rel, abs_tol=1e-6)


def _leakage(row: _Row, th: Thresholds) -> str | None:
    if not _label_named(row):
        return None
    covered = _label_spans(row)
    other = []
    for i, (t, s) in enumerate(zip(row.toks, row.stems)):
        if i in covered or t in _BREAKS or "_" in t or t in STOPWORDS or s in _META:
            continue
        if row.label_number is not None and t[0] in _NUMBER_START and _same_number(t, row.label_number, 1e-9):
            continue
        other.append(t)
        if len(other) > th.leakage_max_other_words:
            return None   # a word of its own: most rationales stop here
    extra = f" (besides {', '.join(repr(w) for w in other)})" if other else ""
    return f"names the answer with no reason of its own{extra}"


def _contradiction(row: _Row, th: Thresholds, vocab: set[str]) -> str | None:
    if row.label_number is not None:
        return _numeric_contradiction(row, th)
    opts = row.opts
    if opts is None or opts.label_index is None:
        return None
    label_stances = {m.stance for m in row.mentions if m.option == opts.label_index}
    if "favoured" in label_stances:
        return None
    answer = " ".join(opts.words[opts.label_index])
    for m in row.mentions:
        if m.option != opts.label_index and m.stance == "favoured":
            written = " ".join(t for t in row.toks[m.start:m.end] if "_" not in t) or " ".join(opts.words[m.option])
            if opts.seqs[m.option] == opts.seqs[opts.label_index] \
                    or difflib.SequenceMatcher(None, written, answer).ratio() >= th.near_miss:
                continue   # 'losing money' for the answer 'lose money', 'theatre' for 'theater': one answer
            return (f"argues for {opts.texts[m.option]!r} ({_quote(m.cue)}), "
                    f"not the answer {opts.texts[opts.label_index]!r}")
    # "X is not the reason" rules the answer out, unless the question itself is negative ("what did
    # he NOT want?" is answered by "he did not want X")
    if label_stances == {"negated"} and not vocab & _NEGATORS:
        cue = next(m.cue for m in row.mentions if m.option == opts.label_index)
        return f"rules out the answer {opts.texts[opts.label_index]!r} ({_quote(cue)})"
    return None


def _quote(cue: str) -> str:
    return f"'{cue}'" if "…" in cue else cue


def _numeric_contradiction(row: _Row, th: Thresholds) -> str | None:
    """The rationale computes a result ('... = 87') and the answer is a number the rationale never
    reaches: not its last result, not any number it writes, not the sum, difference or product of
    its last two results (a rationale that stops at the parts the answer adds up)."""
    results = [v for v in (numeric_value(x.rstrip(".,")) for x in _RESULT.findall(row.text)) if v is not None]
    if not results:
        return None
    answer = row.label_number

    def close(x: float) -> bool:
        return math.isclose(x, answer, rel_tol=th.numeric_rel_tol, abs_tol=1e-6)

    if close(results[-1]):
        return None
    written = (number_of_label(t) for t in row.toks if t[0] in _NUMBER_START)
    if any(x is not None and close(x) for x in written):
        return None
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        if any(close(x) for x in (a + b, a - b, b - a, a * b, sum(results[-3:]))):
            return None
    for m in _EXPRESSION.finditer(row.text):
        if row.text[m.end():m.end() + 3].lstrip().startswith("="):
            continue   # its stated result was judged above
        value = numeric_value(m.group(0).rstrip(".,"))
        if value is not None and close(value):
            return None
    return f"the rationale's last result is {_fmt(results[-1])}, the answer is {_fmt(answer)}"


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(round(value, 6))


def _vocabulary(inputs: dict | None, row: _Row) -> set[str]:
    """Stems of the input's words and of the row's choices."""
    vocab: set[str] = set()
    for value in (inputs or {}).values():
        if value is not None:
            vocab.update(_stems(_tokens(str(value))))
    if row.opts is not None and row.opts.lettered:
        for seq in row.opts.seqs:
            vocab.update(seq)
    return vocab


def _neutral_words(label_set: list[str] | None) -> frozenset[str]:
    """Stems of the label set's words: a classification rationale may name its class."""
    return frozenset(s for lbl in label_set or [] for s in _stems([t for t in _tokens(lbl) if t not in _BREAKS]))


def _grounding(row: _Row, vocab: set[str], neutral: frozenset[str]) -> tuple[float | None, int]:
    """(share of content words found in the input or choices, number of content words). Words of
    the label set are neutral, and so are numbers the rationale computes (after '=') or that are
    the answer: a computed number is grounded in the arithmetic, not in the input."""
    total = found = 0
    computed = None
    for t, s in zip(row.toks, row.stems):
        if t in _BREAKS or t in STOPWORDS or s in _META or s in neutral or "_" in t:
            continue
        if t[0] in _NUMBER_START and t not in vocab:
            if computed is None:
                computed = {_fmt(v) for v in (numeric_value(x.rstrip(".,")) for x in _RESULT.findall(row.text))
                            if v is not None}
            if t in computed or (row.label_number is not None and _same_number(t, row.label_number, 1e-9)):
                continue
        total += 1
        found += s in vocab
    return (found / total if total else None), total


# ---- the whole list -----------------------------------------------------------------------
def _boilerplate_key(row: _Row) -> str:
    """Lowercase words, every option/label and number masked, punctuation and spacing dropped."""
    toks = list(row.toks)
    for m in reversed(row.mentions):
        toks[m.start:m.end] = ["<n>" if toks[m.start][0] in _NUMBER_START else "<label>"]
    if _DIGIT.search(row.text):
        toks = ["<n>" if t[0] in _NUMBER_START else t for t in toks]
    key = " ".join([t for t in toks if t not in _BREAKS])
    return _REPEATED_MASK.sub(r"\1", key) if "<" in key else key


_REPEATED_MASK = re.compile(r"(<n>|<label>)(?: \1)+")


def _word_count(text: str) -> int:
    return len(text.split())


def length_bounds(counts: list[int], th: Thresholds | None = None) -> tuple[float, float]:
    """(shortest, longest) word counts that are not length outliers in a project with these counts."""
    th = th or Thresholds()
    lo, hi = float(th.length_abs_min_words), float(th.length_abs_max_words)
    if len(counts) < th.length_min_rows:
        return lo, hi
    logs = [math.log(max(c, 1)) for c in counts]
    median = statistics.median(logs)
    mad = statistics.median(abs(x - median) for x in logs)
    spread = max(1.4826 * mad, th.length_min_spread)
    return max(lo, math.exp(median - th.length_k * spread)), min(hi, math.exp(median + th.length_k * spread))


def grounding(rationale: str, inputs: dict, choices: list[str] | None = None, label: str | None = None,
              label_set: list[str] | None = None) -> float | None:
    """The share of the rationale's content words found in the input or the choices (None: no
    content word to judge)."""
    if not rationale or not rationale.strip():
        return None
    row = _read(rationale, choices, label, label_set)
    return _grounding(row, _vocabulary(inputs, row), _neutral_words(label_set))[0]


def check_rows(rows: list[dict], label_set: list[str] | None = None, *,
               thresholds: Thresholds | None = None) -> dict[str, dict]:
    """row_id -> {"flags": [check names in CHECKS order], "grounding": share or None,
    "detail": {check: a short reason}}. Rows are dicts with row_id, inputs, choices, label and
    rationale; a row without a rationale gets no flag. Boilerplate and length are judged against
    the rows passed (the project), the other checks against the row alone."""
    th = thresholds or Thresholds()
    out: dict[str, dict] = {}
    keys: dict[str, str] = {}
    counts: dict[str, int] = {}
    inputs_of: dict[str, tuple] = {}
    neutral = _neutral_words(label_set)
    for r in rows:
        rid = r["row_id"]
        rationale = r.get("rationale")
        result: dict = {"flags": [], "grounding": None, "detail": {}}
        out[rid] = result
        if not isinstance(rationale, str) or not rationale.strip():
            continue
        choices = r.get("choices") or None
        label = r.get("label")
        label = str(label) if label is not None and str(label).strip() else None
        row = _read(rationale, choices, label, label_set)
        detail = result["detail"]
        vocab = _vocabulary(r.get("inputs"), row)
        if label is not None:
            reason = _leakage(row, th)
            if reason:
                detail["leakage"] = reason
            reason = _contradiction(row, th, vocab)
            if reason:
                detail["contradiction"] = reason
        share, n_words = _grounding(row, vocab, neutral)
        result["grounding"] = None if share is None else round(share, 4)
        if share is not None and n_words >= th.ungrounded_min_words and share < th.ungrounded_max_share:
            detail["ungrounded"] = (f"{round(share * n_words)} of {n_words} content words appear in the input "
                                    f"({share:.0%})")
        keys[rid] = _boilerplate_key(row)
        inputs_of[rid] = tuple(str(v) for v in (r.get("inputs") or {}).values())
        counts[rid] = _word_count(rationale)

    if keys:
        repeats = Counter(keys.values())
        # a repeat on the same input (a duplicated row) is no boilerplate: count distinct inputs
        distinct: dict[str, set] = {}
        for rid, key in keys.items():
            distinct.setdefault(key, set()).add(inputs_of[rid])
        need = max(th.boilerplate_min_rows, math.ceil(th.boilerplate_min_share * len(keys)))
        for rid, key in keys.items():
            if key and repeats[key] >= need and len(distinct[key]) >= need:
                out[rid]["detail"]["boilerplate"] = (f"the same text is on {repeats[key]} of {len(keys)} rows: "
                                                     f"{_shorten(key)!r}")
        lo, hi = length_bounds(list(counts.values()), th)
        for rid, n in counts.items():
            if n < lo or n > hi:
                out[rid]["detail"]["length"] = (f"{n} words, {'short' if n < lo else 'long'}: this project's "
                                                f"rationales run {math.ceil(lo)}–{math.floor(hi)}")
    for result in out.values():
        result["flags"] = [c for c in CHECKS if c in result["detail"]]
    return out


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
