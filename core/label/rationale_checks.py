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

from core.kernel.labels import number_of_label, numeric_value
from core.label.rationale_words import (
    BREAKS,
    DIGIT,
    META,
    NEGATORS,
    NUMBER_START,
    STOPWORDS,
    Mention,
    Options,
    find_mentions,
    options_for,
    stance_of,
    stem,
    stems_of,
    tokenize,
)

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
# 1.0, a quarter of the rows are under 0.75 and 5% under 0.57. The threshold is set by what a flag is
# worth to a reviewer (bench/rationale_precision.py: of the flagged rows, the share whose label is
# wrong, against the unflagged rows). At 0.4 it flagged 36% of GPT-3.5's zero-shot CQA rationales at
# 40% wrong against 27% (lift 1.49), and PaLM's flags were less often wrong than the rest (lift 0.69);
# at 0.15 it flags 6.3% of GPT-3.5's at 57% wrong against 30% (lift 1.89) and 0.1% of PaLM's. The
# share itself stays a sort ("least grounded rationale") for reviewers who want to go further.
UNGROUNDED_MAX_SHARE = 0.15
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
    opts: Options | None
    mentions: list[Mention]
    label_number: float | None


def _read(rationale: str, choices: list[str] | None, label: str | None, label_set: list[str] | None) -> _Row:
    n_choices = len(choices) if choices else 0
    toks = tokenize(rationale, n_choices)
    stems = stems_of(toks)
    opts = options_for(choices, label_set, label) if (choices or label_set or label) else None
    mentions = find_mentions(toks, stems, opts) if opts else []
    prev = None
    for m in mentions:
        m.stance, m.cue = stance_of(toks, m, prev)
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
        return any(t[0] in NUMBER_START and _same_number(t, row.label_number, 1e-9) for t in row.toks)
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
        if i in covered or t in BREAKS or "_" in t or t in STOPWORDS or s in META:
            continue
        if row.label_number is not None and t[0] in NUMBER_START and _same_number(t, row.label_number, 1e-9):
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
    if label_stances == {"negated"} and not vocab & NEGATORS:
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
    written = (number_of_label(t) for t in row.toks if t[0] in NUMBER_START)
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
            vocab.update(stems_of(tokenize(str(value))))
    if row.opts is not None and row.opts.lettered:
        for seq in row.opts.seqs:
            vocab.update(seq)
    return vocab


def _neutral_words(label_set: list[str] | None) -> frozenset[str]:
    """Stems of the label set's words: a classification rationale may name its class."""
    return frozenset(s for lbl in label_set or [] for s in stems_of([t for t in tokenize(lbl) if t not in BREAKS]))


def _grounding(row: _Row, vocab: set[str], neutral: frozenset[str]) -> tuple[float | None, int]:
    """(share of content words found in the input or choices, number of content words). Words of
    the label set are neutral, and so are numbers the rationale computes (after '=') or that are
    the answer: a computed number is grounded in the arithmetic, not in the input."""
    total = found = 0
    computed = None
    for t, s in zip(row.toks, row.stems):
        if t in BREAKS or t in STOPWORDS or s in META or s in neutral or "_" in t:
            continue
        if t[0] in NUMBER_START and t not in vocab:
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
        toks[m.start:m.end] = ["<n>" if toks[m.start][0] in NUMBER_START else "<label>"]
    if DIGIT.search(row.text):
        toks = ["<n>" if t[0] in NUMBER_START else t for t in toks]
    key = " ".join([t for t in toks if t not in BREAKS])
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
