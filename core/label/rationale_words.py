"""How the rationale checks read a rationale: words (tokens, stems, stopwords, meta words),
the options a row can name (its choices, or the project's labels), where the rationale mentions
them, and whether each mention favours or rejects its option. core.label.rationale_checks uses
these; the words are cached per process (_STEMS, _OPTION_CACHE, both bounded)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.kernel.labels import LETTERS, canonical_text, number_of_label

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
BREAKS = frozenset(".;!?,:")
DIGIT = re.compile(r"\d")
NUMBER_START = frozenset("0123456789-")   # a token that starts so is a number (words never do)
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
    if word in BREAKS or word[0] in NUMBER_START or "_" in word:   # a clause mark, a number, an option letter
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
META = frozenset(stem(word) for word in _META_WORDS.split())


def _number(token: str) -> str:
    if "," not in token and "." not in token:
        return token.lstrip("0") or "0"
    value = number_of_label(token)
    if value is None:
        return token
    return str(int(value)) if value == int(value) else repr(round(value, 6))


def tokenize(text: str, n_choices: int = 0) -> list[str]:
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
    if DIGIT.search(text):
        for i, tok in enumerate(toks):
            if tok[0] in NUMBER_START:
                toks[i] = _number(tok)
    return toks


def stems_of(toks: list[str]) -> list[str]:
    """Stems of word tokens; numbers, clause marks and option letters as they are."""
    get = _STEMS.get
    return [get(t) or stem(t) for t in toks]


# ---- options: the row's choices or the project's labels -----------------------------------
@dataclass
class Options:
    texts: list[str]                   # option texts (choices, or the label set)
    seqs: list[tuple[str, ...]]        # their stem sequences
    label_index: int | None            # which one is the answer
    lettered: bool                     # options have letters (choices)
    first: dict[str, list[tuple[tuple[str, ...], int]]]  # first stem -> (sequence, index), longest first
    canon: dict[str, int]              # exact text -> index
    words: list[tuple[str, ...]]       # their words as written (to tell 'fall asleep' from 'falling asleep')


_OPTION_CACHE: dict[tuple, Options] = {}
_TEXT_CACHE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _option_text(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words, stems) of one option text; cached, since choices recur across rows ('house', 'park')."""
    hit = _TEXT_CACHE.get(text)
    if hit is None:
        words = tuple(t for t in tokenize(text) if t not in BREAKS)
        hit = (words, tuple(stems_of(list(words))))
        if len(_TEXT_CACHE) > 200_000:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[text] = hit
    return hit


def _build_options(texts: list[str], lettered: bool) -> Options:
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
    return Options(texts, seqs, None, lettered, first, canon, words)


def options_for(choices: list[str] | None, label_set: list[str] | None, label: str | None) -> Options:
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
    return Options(opts.texts, opts.seqs, index, opts.lettered, opts.first, opts.canon, opts.words)


@dataclass
class Mention:
    option: int
    start: int
    end: int
    stance: str = "neutral"   # favoured | negated | neutral
    cue: str = ""


def find_mentions(toks: list[str], stems: list[str], opts: Options) -> list[Mention]:
    """Where each option is named: its text (longest option first, as stems) or its letter."""
    found: list[Mention] = []
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
            found.append(Mention(idx, i, j))
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
        found.append(Mention(hits[0], i, i + size))
        pos = i + size
    return found


# Words that end a negation's reach: "not X but Y", "not X, so Y".
_SCOPE_BREAKERS = frozenset({"but", "so", "therefore", "thus", "hence", "while", "whereas", "although", "though",
                             "however", "instead"})
NEGATORS = frozenset({"not", "no", "never", "neither", "nor", "unlike", "except", "excluding", "than", "without",
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


def stance_of(toks: list[str], m: Mention, prev: Mention | None) -> tuple[str, str]:
    """favoured / negated / neutral for one mention, from the words around it in its clause."""
    start = m.start
    k = start
    while k > 0 and toks[k - 1] not in BREAKS and start - k < 7:
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
    negators = [j for j, t in enumerate(scope) if t in NEGATORS]
    if negators:
        return "negated", " ".join(scope[negators[0]:]) + " …"
    words = [t for t in before if t not in _ARTICLES]
    tail = " ".join(words[-5:])
    fav = _FAVOUR_BEFORE.search(tail)
    if fav:
        return "favoured", fav.group(0).strip() + " …"
    end = m.end
    after = []
    while end < len(toks) and toks[end] not in BREAKS and len(after) < 5:
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
