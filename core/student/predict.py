"""Predictions from a saved student (an fp32 folder or its int8 export).

    student = load_student_model("workspace/jobs/<run>/output/model")   # fp32 folder or int8 export
    student.predict(["my card was charged twice"], rationale=True)
    # [{"input", "label", "confidence", "probabilities", "rationale"}]

- Inputs are built exactly as training built them (`core.kernel.tasks.student_input` over the input
  fields, plus the row's answer choices for multiple-choice), behind the task prefixes of
  `core.train.generate`; generation is greedy (the same `generate` as held-out evaluation), in
  batches of similar length; a label is mapped onto the label space the way held-out evaluation
  maps it (`normalize_prediction`) when the model folder names its task.
- Each label carries a confidence (core.train.calibration): the probability of the predicted
  label over the label set or the row's choices (for open answers, of its tokens), at the
  temperature fitted on the run's validation rows (`calibration.json` beside the model; 1.0
  when the folder has none, and `calibrated` says so).
- Whole files stream through `core.student.batch.predict_file`; the int8 format is
  `core.student.int8`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.kernel.errors import AppError, ConfigError, NotFound
from core.kernel.formats import ChoicesError, cell_text, parse_choices
from core.kernel.tasks import TASK_TYPES, get_task, student_input
from core.student.int8 import INT8_MANIFEST, load_int8
from core.train.calibration import (
    candidates_for,
    confidence,
    predicted_index,
    read_calibration,
    softmax,
    target_logprobs,
)
from core.train.generate import LABEL_PREFIX, RATIONALE_PREFIX, generate
from core.train.run import Run

CHOICES_COLUMN = "choices"


# ---- the student ---------------------------------------------------------------------
class Student:
    """A loaded student: model, tokenizer, and what its folder says about training."""

    def __init__(self, model, tokenizer, path: str | Path, fmt: str, config: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.path = Path(path)
        self.format = fmt                      # "fp32" | "int8"
        self.config = dict(config or {})       # the run's train_config.json ({} when absent)
        self.task: str | None = self.config.get("task")
        self.label_set: list[str] | None = self.config.get("label_set")
        self.input_fields: list[str] | None = self.config.get("input_fields")
        self.id_field: str | None = self.config.get("id_field")  # the project's id column
        self.max_input_len = int(self.config.get("max_input_len") or 128)
        self.max_label_len = int(self.config.get("max_label_len") or 16)
        self.max_rationale_len = int(self.config.get("max_rationale_len") or 64)
        calibration = read_calibration(self.path)
        self.calibrated = calibration is not None
        self.temperature = float(calibration["temperature"]) if calibration else 1.0

    @property
    def device(self):
        return next(p for p in self.model.parameters()).device

    def input_text(self, row: dict, fields: list[str] | None = None) -> str:
        """The student's input for one row of input-field values (and `choices` for multiple
        choice: a list or a JSON list), built as training built it."""
        fields = list(fields or self.input_fields or [])
        if not fields:
            raise ConfigError("This model folder does not name its input fields (a run saved before they were "
                              "recorded); give the input columns explicitly.")
        missing = [f for f in fields if f not in row]
        if missing:
            raise AppError(f"The row has no {', '.join(repr(m) for m in missing)}; the model reads "
                           f"{', '.join(fields)}.")
        inputs = {}
        for f in fields:
            text = cell_text(row[f])
            if text is None:
                raise AppError(f"Input {f!r} is empty; the student needs every input field.")
            inputs[f] = text
        text = student_input(inputs, self.row_choices(row))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # the tokenizer would fail on it, and with it every row of its batch
            raise AppError("The row holds characters that are not valid Unicode (a lone surrogate such as "
                           "\\ud800).") from None
        return text

    def row_choices(self, row: dict) -> list[str] | None:
        """The row's answer choices as training saw them (None when the model does not use them)."""
        if self.task not in (None, "multiple-choice"):
            return None
        value = row.get(CHOICES_COLUMN)
        if isinstance(value, str) and not value.strip():
            value = None
        if value is None:
            if self.task == "multiple-choice":
                raise AppError(f"A multiple-choice model needs the answer choices (a {CHOICES_COLUMN!r} column).")
            return None
        return _parse_choices(value)

    def predict(self, texts: list[str], rationale: bool = False, batch_size: int = 16,
                choices: list[list[str] | None] | None = None, with_confidence: bool = True) -> list[dict]:
        """Greedy label (and rationale) for each input text, in batches, with its confidence.
        `choices` (one entry per text: a list, a JSON list or None) maps a multiple-choice label
        onto the row's choices, as evaluation does."""
        if batch_size < 1:
            raise ConfigError("batch size must be at least 1.")
        texts = [str(t) for t in texts]
        row_choices = [_as_choices(choices[i]) if choices else None for i in range(len(texts))]
        raw = self._generate([LABEL_PREFIX + t for t in texts], self.max_label_len, batch_size)
        out = [{"input": t, "label": self._label(r, row_choices[i])} for i, (t, r) in enumerate(zip(texts, raw))]
        if with_confidence:
            self._add_confidence(out, raw, row_choices, batch_size)
        if rationale:
            for row, text in zip(out, self.rationales(texts, batch_size)):
                row["rationale"] = text
        return out

    def rationales(self, texts: list[str], batch_size: int = 16) -> list[str]:
        """The student's rationale for each input text (greedy)."""
        return [t.strip() for t in self._generate([RATIONALE_PREFIX + t for t in texts], self.max_rationale_len,
                                                  batch_size)]

    def _add_confidence(self, out: list[dict], raw: list[str], row_choices: list, batch_size: int) -> None:
        """Each row's calibrated confidence, and over a label set its probability per label."""
        kind = TASK_TYPES.get(self.task or "", TASK_TYPES["classification"])
        cands = [candidates_for(self.task, self.label_set, c) for c in row_choices]
        targets = [[kind.student_target(c) for c in cs] if cs else [r.strip()] for cs, r in zip(cands, raw)]
        scores = target_logprobs(self.model, self.tokenizer, [row["input"] for row in out], targets,
                                 self.max_input_len, self.max_label_len, batch_size)
        for row, cs, s in zip(out, cands, scores):
            row["confidence"] = confidence(s, predicted_index(kind, row["label"], cs), cs is None, self.temperature)
            if cs:
                row["probabilities"] = dict(zip(cs, softmax(s, self.temperature)))

    def _label(self, raw: str, choices: list[str] | None) -> str:
        if self.task:
            try:
                return get_task(self.task).normalize_prediction(raw, choices, self.label_set)
            except AppError:
                pass  # a task this version does not know: the label as written
        return raw.strip()

    def _generate(self, texts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
        return generate(self.model, self.tokenizer, texts, max_new_tokens, self.max_input_len, batch_size)


def load_student_model(model_dir: str | Path, device: str = "cpu") -> Student:
    """Load a student folder: an fp32 `save_pretrained` folder, or an int8 export (it has a
    `quantization.json`). int8 runs on the CPU only."""
    path = Path(model_dir)
    if not path.is_dir():
        raise NotFound(f"No model folder at {model_dir}.")
    config = saved_train_config(path)
    if (path / INT8_MANIFEST).exists():
        model, tokenizer = load_int8(path)
        return Student(model, tokenizer, path, "int8", config)
    if not (path / "config.json").exists():
        raise NotFound(f"{model_dir} holds no saved student (no config.json or {INT8_MANIFEST}).")
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSeq2SeqLM.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"Cannot load the student in {model_dir}: {exc}") from exc
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Student(model.to(device), tokenizer, path, "fp32", config)


def saved_train_config(path: Path) -> dict:
    file = path / "train_config.json"
    if not file.exists():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON ({exc.msg}).") from exc


def _parse_choices(value: Any) -> list[str]:
    """Answer choices as the import reads them (core.kernel.formats.parse_choices), with this
    file's wording of what is wrong."""
    try:
        return parse_choices(value)
    except ChoicesError as exc:
        if exc.kind == "json":
            raise AppError(f"the {CHOICES_COLUMN!r} are not a valid JSON list ({exc.detail}).") from exc
        if exc.kind == "few":
            raise AppError(f"{CHOICES_COLUMN!r} needs a list of at least two choices.") from exc
        raise AppError(f"a choice in {CHOICES_COLUMN!r} is empty.") from exc


def _as_choices(value: Any) -> list[str] | None:
    """Choices for mapping a generated label (unreadable ones map nothing: the label stays as written)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _parse_choices(value)
    except AppError:
        return None


def held_out_inputs(store, run_id: str, limit: int = 200) -> tuple[list[str], list]:
    """The student inputs of a run's held-out rows (those its final evaluation predicted, in that
    order; for a run without stored predictions, its split recomputed), built as training built
    them, with each row's answer choices. Throughput, the Try page and the int8 card use these."""
    items = Run.find(store, run_id).held_out_rows(limit)
    return [student_input(it["inputs"], it.get("choices")) for it in items], [it.get("choices") for it in items]
