"""Why answers were not read, and the one change to the prompt most likely to fix it.

- **Shapes.** Each unread answer is put in one group by what it looks like: cut off at
  max_tokens, broken JSON, answered in other words than the labels ("Yes", "true"), several
  answers named, a refusal, or prose that names no answer at all. A group keeps its count and a
  few examples.
- **One suggested fix**, for the largest group that a prompt change can fix:
  - other words: label words, mapped from the rows' gold labels (or the NLI synonyms) when
    each word points at one label; re-reads the stored answers, no call;
  - several or no answers named: a format line ("Reply in exactly this format: Answer: …") when
    the template has none, else JSON output (its schema enumerates the labels);
  - broken JSON: JSON output through the API's structured output;
  - cut off: twice the max_tokens.
  `apply_fix` saves it: a new template version when the template or output format changes.
- **Parse rate per template version**, of the stored answers and of the tries.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from core.kernel.labels import NLI_SYNONYMS, canonical_text
from core.kernel.tasks import get_task
from core.label.parsing import ParseResult, check_label_words, parse_response
from core.label.reader import read
from core.prompt.json_mode import has_format_lines, json_mode_template
from core.prompt.templates import mode_template, validate_template

EXAMPLES = 3           # examples kept per shape
SAMPLE = 1000          # unread stored answers read again for the groups, at most
MAX_TOKENS_CAP = 4096  # the page's own limit for max_tokens
MIN_WORD_ROWS = 3      # rows that must use a word before it is mapped to a label by their gold labels

SHAPES = {
    "failed": "the call failed (no answer to read)",
    "empty": "an empty answer",
    "cut_off": "cut off at max_tokens",
    "broken_json": "JSON that does not parse",
    "json_label": "JSON whose label is none of the labels",
    "other_words": "answers in other words than the labels",
    "several": "names several answers",
    "refusal": "declines to answer",
    "no_answer": "names no answer",
}

_REFUSAL = re.compile(r"^\W*(?:i['’]?m\s+sorry|i\s+(?:am\s+)?(?:sorry|unable)|i\s+can(?:not|['’]t)|as\s+an\s+ai|"
                      r"unfortunately,?\s+i)\b", re.I)
_OPENING_WORD = re.compile(r"^[\W_]*([A-Za-z][\w'-]{0,20})\b[\W_]*(?=[,.;:!\-–—*]|$)")
_STATED = re.compile(r"answer '([^']{1,60})' matches no label")


@dataclass
class Shape:
    key: str
    title: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    words: Counter = field(default_factory=Counter)  # other_words: the words used
    max_output: int = 0                               # cut_off: the most output tokens an answer got


@dataclass
class Fix:
    kind: str                          # label_words | format_line | json_output | max_tokens
    message: str                       # what the fix does, in one or two sentences
    template: str | None = None        # the new template (format_line, json_output)
    settings: dict = field(default_factory=dict)
    label_words: dict[str, str] | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "template": self.template, "settings": self.settings,
                "label_words": self.label_words}


# ---- shapes -------------------------------------------------------------------------------
def shape_of(text: str | None, parsed: ParseResult | None, task: str, labels: list[str] | None,
             choices: list[str] | None = None) -> str:
    """The group of one unread answer."""
    if text is None or parsed is None:
        return "failed"
    if not text.strip():
        return "empty"
    if parsed.flag == "truncated":
        return "cut_off"
    body = text.strip().removeprefix("```json").removeprefix("```").strip()
    if body.startswith("{"):
        try:
            return "json_label" if isinstance(json.loads(body.removesuffix("```").strip()), dict) else "broken_json"
        except json.JSONDecodeError:
            return "broken_json"
    named = _named(_stated(parsed) or "", task, labels, choices)
    if parsed.flag == "ambiguous" or named > 1:
        return "several"  # "Answer: billing, shipping" names two labels, whatever the words between
    if not named and _other_word(text, parsed, labels):
        return "other_words"
    if _REFUSAL.search(text):
        return "refusal"
    return "no_answer"


def _stated(parsed: ParseResult) -> str | None:
    """The answer a labelled or prose statement gave, when it read as no label."""
    m = _STATED.search(parsed.note or "")
    return m.group(1) if m else None


def _named(text: str, task: str, labels: list[str] | None, choices: list[str] | None) -> int:
    """How many different candidates a stated answer mentions."""
    if not text:
        return 0
    return len(read(text, get_task(task), choices=choices, labels=labels).scores)


def _other_word(text: str, parsed: ParseResult, labels: list[str] | None) -> str | None:
    """The word an answer gives instead of a label: the stated answer ("Answer: yes"), or a
    reply's opening word ("True, the premise says ..."), when it is no label."""
    word = _stated(parsed)
    if word is None:
        opening = _OPENING_WORD.match(text)
        word = opening.group(1) if opening else None
    if word is None:
        return None
    word = canonical_text(word)
    if not word or len(word.split()) > 2 or word in {canonical_text(x) for x in labels or []}:
        return None
    return word if word.isalpha() or " " in word else None


def group_unread(answers: list[dict], task: str, labels: list[str] | None,
                 label_words: dict[str, str] | None = None) -> list[Shape]:
    """Unread answers grouped by shape, largest first. `answers`: dicts with `text`,
    `stop_reason`, `choices` and `gold` (as stored); read ones are skipped."""
    shapes: dict[str, Shape] = {}
    for a in answers:
        parsed = (parse_response(a["text"], task, a.get("choices"), labels, a.get("stop_reason"),
                                 label_words=label_words) if a.get("text") is not None else None)
        if parsed is not None and parsed.ok:
            continue
        key = shape_of(a.get("text"), parsed, task, labels, a.get("choices"))
        shape = shapes.setdefault(key, Shape(key, SHAPES[key]))
        shape.count += 1
        if len(shape.examples) < EXAMPLES:
            shape.examples.append((a.get("text") or a.get("error") or "")[:300])
        if key == "other_words":
            shape.words[(_other_word(a["text"], parsed, labels), a.get("gold"))] += 1
        if key == "cut_off":
            shape.max_output = max(shape.max_output, a.get("output_tokens") or 0)
    return sorted(shapes.values(), key=lambda s: -s.count)


# ---- the fix ------------------------------------------------------------------------------
def suggest_fix(project, shapes: list[Shape], answers_from: str = "saved") -> Fix | None:
    """The one change for the largest group a prompt change can fix (None: nothing to fix, or
    nothing the prompt can change). `answers_from`: "saved" (the saved prompt gave these answers),
    "older" (an earlier template version did) or "imported": then only label words, which read
    the stored answers again, can change them."""
    for shape in shapes:
        fix = _FIXES.get(shape.key, lambda p, s: None)(project, shape)
        if fix is not None and (answers_from == "saved" or fix.kind == "label_words"):
            return fix
    return None


def no_fix_note(project, answers_from: str, answers_version: int | None, current_version: int) -> str:
    """Why no change is suggested, in a sentence."""
    if answers_from == "imported":
        return ("These answers were imported: a change to the prompt cannot change them. Set label words, or have a "
                "cheap model read them (below).")
    if answers_from == "older":
        return (f"These answers came from template version {answers_version}; the saved prompt is version "
                f"{current_version}. Try the saved prompt to see how its answers read.")
    return "No change to the prompt is suggested: review these answers, or ask the teacher again."


def _label_words_fix(project, shape: Shape) -> Fix | None:
    kind = get_task(project.task)
    if not kind.accepts_label_words:
        return _format_fix(project, shape)
    golds: dict[str, Counter] = defaultdict(Counter)
    for (word, gold), n in shape.words.items():
        if word:
            golds[word][gold] += n
    words: dict[str, str] = dict(project.label_words or {})
    for word, counts in golds.items():
        label = _word_label(word, counts, project.task)
        if label is not None:
            words.setdefault(word, label)
    try:
        words = check_label_words(words, project.task, project.label_set)
    except Exception:  # a word that is itself another label: no one-click mapping
        words = {}
    new = {w: label for w, label in words.items() if w not in (project.label_words or {})}
    if not new:
        return _format_fix(project, shape)
    spec = ", ".join(f"{w}={label}" for w, label in words.items())
    unmapped = sorted({w for (w, _), _ in shape.words.items() if w and w not in words})
    return Fix("label_words", f"The teacher answers with {', '.join(repr(w) for w in new)} instead of the labels. "
                              f"Set the label words {spec}, each mapped by the gold label of most rows that used "
                              "it (check them: a wrong mapping would count as right against gold). The stored "
                              "answers are read again (no call, no cost)."
                              + (f" Not mapped (too few rows, or no clear label): {', '.join(map(repr, unmapped))}."
                                 if unmapped else ""),
               label_words=words)


def _word_label(word: str, golds: Counter, task: str) -> str | None:
    """The label a word stands for: the gold label of most rows that answered with it (at least
    MIN_WORD_ROWS rows and two thirds of them), else for NLI the usual synonym."""
    known = [(g, n) for g, n in golds.items() if g is not None]
    total = sum(n for _, n in known)
    if known:
        gold, n = max(known, key=lambda gn: gn[1])
        if total >= MIN_WORD_ROWS and n / total >= 2 / 3:
            return gold
    return NLI_SYNONYMS.get(word) if task == "nli" else None


def _format_fix(project, shape: Shape) -> Fix | None:
    template = project.template or ""
    if project.output_format == "text" and not has_format_lines(template):
        return Fix("format_line", "The template does not say how to reply, so the teacher answers in prose. Add the "
                                  "preset's format lines (Answer / Rationale), saved as a new template version.",
                   template=with_format_lines(template, project))
    if project.output_format == "text":
        return _json_fix(project, shape)
    return None


def _json_fix(project, shape: Shape) -> Fix | None:
    if project.output_format == "json":
        return None  # in place already
    enum = " (its schema lists the labels)" if get_task(project.task).enum_labels else ""
    return Fix("json_output", f"Switch to JSON output{enum}: the API's structured output returns a label and a "
                              "rationale in fields, so nothing is read from prose. Saved as a new template version.",
               template=json_mode_template(project.template or ""), settings={"output_format": "json"})


def _max_tokens_fix(project, shape: Shape) -> Fix | None:
    if project.max_tokens >= MAX_TOKENS_CAP or (shape.max_output and project.max_tokens > shape.max_output):
        return None  # at the limit, or already raised since these answers were cut
    more = min(MAX_TOKENS_CAP, project.max_tokens * 2)
    return Fix("max_tokens", f"Answers are cut off at max_tokens {project.max_tokens}: raise it to {more}. "
                             "Longer answers cost more output tokens.", settings={"max_tokens": more})


_FIXES = {"other_words": _label_words_fix, "several": _format_fix, "no_answer": _format_fix,
          "broken_json": _json_fix, "cut_off": _max_tokens_fix}


def with_format_lines(template: str, project) -> str:
    """The template with the preset's reply format for its task and mode appended; a
    classification or NLI template that names no labels also gets them."""
    preset = mode_template(project.task, project.input_fields, project.mode)
    block = preset[preset.index("Reply "):] if "Reply " in preset else ""
    names = "{label_words}" if project.label_words else "{labels}"
    listing = ""
    if get_task(project.task).enum_labels and "{labels}" not in template and "{label_words}" not in template:
        listing = f"Answer with exactly one of: {names}.\n\n"
    return template.rstrip() + "\n\n" + listing + block


def apply_fix(store, project_name: str, fix: Fix) -> dict:
    """Save a fix: template and settings (a new template version when they change the prompt), or
    label words (then the stored answers are read again). Returns what changed."""
    from core.label.answers import reparse_answers

    project = store.get_project(project_name)
    if fix.template is not None:
        validate_template(fix.template, project.input_fields, project.task, project.mode,
                          fix.label_words or project.label_words)
    fields = dict(fix.settings)
    if fix.template is not None:
        fields["template"] = fix.template
    if fix.label_words is not None:
        fields["label_words"] = fix.label_words
    store.update_project(project_name, **fields)
    out = {"fix": fix.kind, "template_version": store.template_version(project_name),
           "max_tokens": store.get_project(project_name).max_tokens}
    if fix.label_words is not None:
        out["reread"] = reparse_answers(store, project_name)
    return out


# ---- where the answers come from ----------------------------------------------------------
def _answer(response: dict | None, choices, gold, error) -> dict:
    from core.label.calls import response_text

    text = response_text(response) if response else None
    return {"text": text, "stop_reason": (response or {}).get("stop_reason"), "choices": choices, "gold": gold,
            "error": error, "output_tokens": ((response or {}).get("usage") or {}).get("output_tokens")}


def _report(store, project, versions: list[dict], answers: list[dict], unread: int | None,
            answers_version: int | None, imported: bool) -> dict:
    current = store.template_version(project.name)
    answers_from = "imported" if imported else "saved" if answers_version == current else "older"
    shapes = group_unread(answers, project.task, project.label_set, project.label_words)
    fix = suggest_fix(project, shapes, answers_from)
    return {"versions": versions, "unread": sum(s.count for s in shapes) if unread is None else unread,
            "read_again": len(answers), "answers_from": answers_from,
            "shapes": [{"shape": s.key, "title": s.title, "count": s.count, "examples": s.examples} for s in shapes],
            "fix": fix, "note": None if fix or not shapes else no_fix_note(project, answers_from, answers_version,
                                                                            current)}


def stored_diagnosis(store, project_name: str) -> dict:
    """The stored answers (labeling runs, tries, imports): parse rate per template version
    (`versions`; None = imported), the unread ones grouped by shape (a spread of at most SAMPLE
    read again), and the suggested fix for the saved prompt when it gave them."""
    project = store.get_project(project_name)
    versions = [{**v, "parse_rate": v["parsed"] / v["answers"] if v["answers"] else None}
                for v in store.parse_rates_by_version(project_name)]
    unread = sum(v["unread"] for v in versions) + store.count_items(project_name)["by_status"].get("error", 0)
    rows = store.unread_answers(project_name, SAMPLE)
    answers = [_answer(r["response"], r["choices"], r["gold"], r["error"]) for r in rows]
    asked = [r["template_version"] for r in rows if r["template_version"] is not None]
    imported = bool(rows) and not asked and all(r["response"] is not None for r in rows)
    return _report(store, project, versions, answers, unread, max(asked) if asked else None, imported)


def trial_diagnosis(store, trial_id: int) -> dict:
    """One try's unread answers grouped by shape, and the suggested fix for the saved prompt
    when the try asked with it."""
    trial = store.get_trial(trial_id)
    project = store.get_project(trial["project"])
    rows = store.trial_row_results(trial_id)
    answers = [_answer(json.loads(r["response"]) if r["response"] else None, r["choices"], r["gold"], r["error"])
               for r in rows if r["flag"] or r["error"]]
    version = {"template_version": trial["template_version"], "answers": trial["answered"], "parsed": trial["parsed"],
               "parse_rate": trial["parsed"] / trial["answered"] if trial["answered"] else None}
    return _report(store, project, [version], answers, None, trial["template_version"], False)
