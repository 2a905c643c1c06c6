"""Prompt templates: presets per task type and mode, validation, rendering, and the
exact request body sent to the teacher.

Modes:
  zero-shot      predict a label and explain it in one sentence (Vöge et al. 2024)
  explain-label  the gold label is given; explain why it is right (rows with gold only)
  few-shot       chain-of-thought with k demonstrations before the question, for comparison
  label-only     a label and nothing else: the rows outside the rationale fraction
"""

from __future__ import annotations

import string

from core.kernel.errors import TemplateError
from core.kernel.tasks import TASK_TYPES, format_choices, get_task, inputs_block
from core.prompt.json_mode import json_mode_template

SYSTEM_PROMPT = (
    "You are an expert annotator. Follow the output format exactly. "
    "Give one answer and a one-sentence rationale."
)
SPECIAL_FIELDS = ("choices", "labels")

# The presets (one per task type, in core.kernel.tasks) ask for the label and a one-sentence
# rationale (zero-shot, as in Vöge et al. 2024). `{inputs}` expands to one placeholder per input field.
MODES = ("zero-shot", "explain-label", "few-shot", "label-only")
OUTPUT_FORMATS = ("text", "json")

EXPLAIN_INSTRUCTION = "Explain in one sentence why this answer is correct."  # marks an explain-label request
_EXPLAIN = (
    "{given}\n\n" + EXPLAIN_INSTRUCTION + "\n\n"
    "Reply in exactly this format:\nAnswer: <the given answer>\nRationale: <one sentence>"
)
_LABEL_ONLY_FORMAT = "Reply with exactly one line:\nAnswer: <answer>"
_FEW_SHOT_HEAD = "Here are solved examples, each with its reasoning.\n\n{examples}\n\nNow the new case.\n"


def mode_template(task: str, input_fields: list[str], mode: str = "zero-shot") -> str:
    """The preset template for a task in one of MODES."""
    if task not in TASK_TYPES:
        raise TemplateError(f"No preset for task {task!r}.")
    base = TASK_TYPES[task].preset_template(input_fields)
    if mode == "zero-shot":
        return base
    if mode == "few-shot":
        return _FEW_SHOT_HEAD + base
    if mode == "label-only":
        return base.split("Reply in exactly this format:")[0].rstrip() + "\n\n" + _LABEL_ONLY_FORMAT
    if mode == "explain-label":
        given = get_task(task).given.replace("{inputs}", inputs_block(input_fields))
        return _EXPLAIN.replace("{given}", given)
    raise TemplateError(f"Unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}.")


def format_demonstrations(demos: list[dict], input_fields: list[str], task: str) -> str:
    """k worked examples (input, reasoning, answer) for a few-shot chain-of-thought prompt."""
    blocks = []
    for item in demos:
        lines = [("" if len(input_fields) == 1 else f"{f}: ") + str(item["inputs"].get(f, "")) for f in input_fields]
        if get_task(task).needs_choices and item.get("choices"):
            lines.append("Answer Choices:\n" + format_choices(item["choices"]))
        reasoning = item.get("rationale") or item.get("teacher_rationale") or ""
        lines.append(f"Reasoning: {reasoning}".rstrip())
        lines.append(f"Answer: {item.get('gold')}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def preset_template(task: str, input_fields: list[str], mode: str = "zero-shot", output_format: str = "text") -> str:
    """The preset of a task and prompt mode for an output format: with JSON output, without the
    free-text format lines the structured output schema would contradict."""
    template = mode_template(task, input_fields, mode)
    return json_mode_template(template) if output_format == "json" else template


def answer_words(label_set: list[str] | None, label_words: dict[str, str] | None) -> list[str]:
    """The words the teacher is asked to answer with: the label words when the project has
    them (its verbalizer), else the label set."""
    return list(label_words) if label_words else list(label_set or [])


def answer_schema(task: str, label_set: list[str] | None, label_words: dict[str, str] | None = None) -> dict:
    """JSON schema for structured output: {"label", "rationale", "confidence"}."""
    label: dict = {"type": "string"}
    if task in TASK_TYPES and TASK_TYPES[task].enum_labels and (label_set or label_words):
        label["enum"] = answer_words(label_set, label_words)
    # confidence: the teacher's own probability that its label is right; the Review page
    # queues low-confidence answers first
    return {"type": "object",
            "properties": {"label": label, "rationale": {"type": "string"}, "confidence": {"type": "number"}},
            "required": ["label", "rationale", "confidence"], "additionalProperties": False}


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


def validate_template(template: str, input_fields: list[str], task: str, mode: str = "zero-shot",
                      label_words: dict[str, str] | None = None) -> list[str]:
    """Raise TemplateError naming any unknown placeholder; return the placeholders used."""
    if not template.strip():
        raise TemplateError("The template is empty.")
    if mode not in MODES:
        raise TemplateError(f"Unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}.")
    names = placeholders(template)
    allowed = set(input_fields) | {"labels", "label_words"} | ({"choices"} if get_task(task).needs_choices else set())
    allowed |= {"gold"} if mode == "explain-label" else {"examples"} if mode == "few-shot" else set()
    if "label_words" in names and not label_words:
        raise TemplateError("The template uses {label_words} but the project has no label words; set them "
                            "(for example true=entailment, false=contradiction) or use {labels}.")
    if mode == "explain-label" and "gold" not in names:
        raise TemplateError("An explain-label template must show the given answer with {gold}.")
    if mode == "few-shot" and "examples" not in names:
        raise TemplateError("A few-shot template must place the demonstrations with {examples}.")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise TemplateError(
            f"Unknown placeholder {{{unknown[0]}}}. Available: "
            + ", ".join("{" + a + "}" for a in sorted(allowed))
        )
    if not set(names) & set(input_fields):
        raise TemplateError("The template uses none of the input fields, so every request would be identical.")
    return names


def render(template: str, item: dict, label_set: list[str] | None, examples: str = "",
           label_words: dict[str, str] | None = None) -> str:
    values = dict(item["inputs"])
    values["label_words"] = ", ".join(label_words or {})
    values["choices"] = format_choices(item["choices"]) if item.get("choices") else ""
    values["labels"] = ", ".join(label_set or [])
    values["gold"] = item.get("gold") if item.get("gold") is not None else ""
    values["examples"] = examples
    return template.format(**values)


def build_request(template: str, item: dict, label_set: list[str] | None, model: str, max_tokens: int, *,
                  output_format: str = "text", task: str | None = None, examples: str = "",
                  label_words: dict[str, str] | None = None) -> dict:
    """The exact Messages API body for one row. No temperature: newer models reject it.
    Structured JSON output goes through `output_config`."""
    request = {
        "model": model,
        "max_tokens": max_tokens,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": render(template, item, label_set, examples, label_words)}],
    }
    if output_format == "json":
        request["output_config"] = {"format": {"type": "json_schema", "schema": answer_schema(task or "", label_set, label_words)}}
    return request


def expected_output_tokens(task: str, label_only: bool = False) -> int:
    """Answer length of the preset before real usage is observed."""
    kind = get_task(task)
    return kind.label_only_output_tokens if label_only else kind.expected_output_tokens


# ---- assembling a project's requests ----------------------------------------------
def demonstrations(store, project) -> str:
    """The few-shot block: the user's chosen rows, or k sampled rows with a gold label."""
    if project.mode != "few-shot":
        return ""
    rows = (store.get_items(project.name, project.demo_rows) if project.demo_rows
            else store.demo_candidates(project.name, project.shots))
    return format_demonstrations(rows, project.input_fields, project.task)


def request_for(project, item: dict, model: str, examples: str = "", max_tokens: int | None = None) -> dict:
    """The request a project sends for one row (the teacher and the forecast both use it)."""
    return build_request(project.template, item, project.label_set, model, max_tokens or project.max_tokens,
                         output_format=project.output_format, task=project.task, examples=examples,
                         label_words=project.label_words)
