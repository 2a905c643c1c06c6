"""Zero-shot prompt templates: presets per task type, validation, rendering, and the
exact request body sent to the teacher."""

from __future__ import annotations

import hashlib
import json
import string

from core.errors import TemplateError
from core.tasks import format_choices

SYSTEM_PROMPT = (
    "You are an expert annotator. Follow the output format exactly. "
    "Give one answer and a one-sentence rationale."
)
SPECIAL_FIELDS = ("choices", "labels")

# Each preset asks for the label and a one-sentence rationale (zero-shot, as in
# Vöge et al. 2024). `{inputs}` is expanded to one placeholder per input field.
_PRESETS = {
    "classification": (
        "Classify the text below into exactly one of these categories: {labels}.\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <category>\n"
        "Rationale: <one sentence explaining which evidence in the text decides the category>"
    ),
    "multiple-choice": (
        "Answer the question by choosing one of the options.\n\n"
        "{inputs}\n"
        "Answer Choices:\n{choices}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <letter>) <option text>\n"
        "Rationale: <one sentence explaining why this option is right>"
    ),
    "nli": (
        "Decide whether the premise entails the hypothesis, contradicts it, or neither (neutral).\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Answer: <entailment|neutral|contradiction>\n"
        "Rationale: <one sentence explaining the relation>"
    ),
    "numeric": (
        "Solve the problem.\n\n"
        "{inputs}\n\n"
        "Reply in exactly this format:\n"
        "Rationale: <one sentence with the steps of the calculation>\n"
        "Answer: <the arithmetic expression that gives the result, e.g. (12 + 3) * 4>"
    ),
}
# Expected output length of each preset, in tokens, used before real usage is observed.
EXPECTED_OUTPUT_TOKENS = {"classification": 45, "multiple-choice": 50, "nli": 45, "numeric": 60}


def preset_template(task: str, input_fields: list[str]) -> str:
    if task not in _PRESETS:
        raise TemplateError(f"No preset for task {task!r}.")
    if len(input_fields) == 1:
        inputs = "{" + input_fields[0] + "}"
    else:
        inputs = "\n".join(f"{f.replace('_', ' ').capitalize()}: {{{f}}}" for f in input_fields)
    return _PRESETS[task].replace("{inputs}", inputs)


def placeholders(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"Template has unbalanced braces ({exc}); write {{{{ and }}}} for literal braces.") from exc
    names = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name == "" or not name.replace("_", "").replace("-", "").isalnum():
            raise TemplateError(f"Bad placeholder {{{name}}}: use {{field_name}}.")
        if spec or conv:
            raise TemplateError(f"Placeholder {{{name}}} may not carry a format spec or conversion.")
        names.append(name)
    return names


def validate_template(template: str, input_fields: list[str], task: str) -> list[str]:
    """Raise TemplateError naming any unknown placeholder; return the placeholders used."""
    if not template.strip():
        raise TemplateError("The template is empty.")
    names = placeholders(template)
    allowed = set(input_fields) | {"labels"} | ({"choices"} if task == "multiple-choice" else set())
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise TemplateError(
            f"Unknown placeholder {{{unknown[0]}}}. Available: "
            + ", ".join("{" + a + "}" for a in sorted(allowed))
        )
    if not set(names) & set(input_fields):
        raise TemplateError("The template uses none of the input fields, so every request would be identical.")
    return names


def render(template: str, item: dict, label_set: list[str] | None) -> str:
    values = dict(item["inputs"])
    values["choices"] = format_choices(item["choices"]) if item.get("choices") else ""
    values["labels"] = ", ".join(label_set or [])
    return template.format(**values)


def build_request(template: str, item: dict, label_set: list[str] | None, model: str, max_tokens: int) -> dict:
    """The exact Messages API body for one row."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": render(template, item, label_set)}],
    }


def request_hash(request: dict) -> str:
    """Cache key: identical request content, identical key, whatever row it came from."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]
