"""JSON output: with output_config the schema defines the reply, so a template must not also
ask for free-text "Answer: … / Rationale: …" lines. `format_conflict` tells whether it does,
`json_mode_template` rewrites those lines as hints for the schema's fields."""

from __future__ import annotations

import re

_FORMAT_HEADING = re.compile(r"^\s*Reply\b.*\b(?:format|line)s?\s*:\s*$", re.IGNORECASE)
_FORMAT_LINE = re.compile(r"^\s*(Answer|Rationale|Confidence)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_FIELD_HINTS = {"label": "<the answer>", "rationale": "<one sentence explaining the answer>",
                "confidence": "<your probability, from 0 to 1, that the label is right>"}
_FIELD_OF = {"answer": "label", "rationale": "rationale", "confidence": "confidence"}


def _format_line(line: str):
    """An "Answer: <…>" line of a reply format; not a line that shows a row's field
    ("Answer: {answer}"), which names a placeholder other than the label lists."""
    m = _FORMAT_LINE.match(line)
    if m is None or set(re.findall(r"{(\w+)}", m.group(2))) - {"labels", "label_words", "choices"}:
        return None
    return m


def has_format_lines(template: str) -> bool:
    """Whether a template asks for a reply format ("Reply in exactly this format:", "Answer: <…>")."""
    return any(_FORMAT_HEADING.match(line) or _format_line(line) for line in (template or "").splitlines())


def format_conflict(template: str, output_format: str) -> bool:
    """Whether a JSON-output template still asks for free-text "Answer: … / Rationale: …" lines."""
    return output_format == "json" and has_format_lines(template)


def json_mode_template(template: str) -> str:
    """The template for JSON output: its "Reply in exactly this format:" heading and its
    "Answer: / Rationale: / Confidence:" lines are replaced, where they stood, by a list of the
    JSON fields the output schema defines, each with what the line asked for (the preset's
    "<one sentence explaining …>" hints survive). A template without them is returned unchanged."""
    lines = template.splitlines()
    hints = dict(_FIELD_HINTS)
    kept: list[str] = []
    at = None
    for line in lines:
        heading, field = _FORMAT_HEADING.match(line), _format_line(line)
        if not (heading or field):
            kept.append(line)
            continue
        if at is None:
            at = len(kept)
        if field and field.group(2):
            hints[_FIELD_OF[field.group(1).lower()]] = field.group(2)
    if at is None:
        return template
    fields = ["Fill in the JSON fields:"] + [f"- {name}: {hint}" for name, hint in hints.items()]
    before = "\n".join(kept[:at]).rstrip()
    after = "\n".join(kept[at:]).strip()
    return "\n\n".join(part for part in (before, "\n".join(fields), after) if part)
