"""The cascade, live: the student answers; rows under a confidence threshold go to the teacher.

The student answers every row with a calibrated confidence; rows under
the threshold go to the teacher (core.label.rows: the project's prompt, cache, rate limit,
ledger, the project's cap and this cascade's own cap). A row the teacher does not answer
(the cap is reached, the call failed, the answer named no label) keeps the student's answer
and says why.

    cascade = Cascade(student, store, "tickets", threshold=0.6, cap_usd=2.0)
    cascade.answer([{"subject": "...", "body": "..."}])
    # [{"label", "confidence", "answered_by": "student" | "teacher", "rationale", "deferred", "teacher_error",
    #   "student_label", "student_confidence"}]

`confidence` is the student's confidence in the label given, so it is None where the teacher
answered (the teacher states none); `student_label` and `student_confidence` are what the
student said on every row (the confidence that decided the row's route).

The serving endpoint (core.student.serve) and `predict --file --cascade` both use it.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid

from core.kernel.errors import AppError, ConfigError
from core.kernel.formats import cell_text
from core.label.rows import TeacherLoop, ask_teacher
from core.student.predict import Student


def student_answer(prediction: dict, deferred: bool = False) -> dict:
    """A row answered by the student, in the shape every answer has."""
    return {"label": prediction["label"], "confidence": prediction["confidence"], "answered_by": "student",
            "rationale": prediction.get("rationale"), "deferred": deferred, "teacher_error": None,
            "student_label": prediction["label"], "student_confidence": prediction["confidence"]}


def cascade_job_id(kind: str, run_id: str | None) -> str:
    """The id a cascade's teacher calls are recorded (and its own cap kept) under."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{run_id or 'model'}-{stamp}-{uuid.uuid4().hex[:6]}"


class Cascade:
    def __init__(self, student: Student, store, project: str, threshold: float, *, cap_usd: float | None = None,
                 job_id: str | None = None, **teacher_kwargs):
        if not 0 <= threshold <= 1:
            raise ConfigError(f"The cascade threshold is a confidence between 0 and 1, got {threshold}.")
        if cap_usd is not None and cap_usd < 0:
            raise ConfigError("The cascade's budget cap must be zero or more dollars.")
        self.student, self.store, self.project, self.threshold = student, store, project, threshold
        self.cap_usd = cap_usd
        self.job_id = job_id or cascade_job_id("cascade", None)
        self.teacher_kwargs = teacher_kwargs
        self.teacher_loop = TeacherLoop()  # every deferred row of this cascade: one client, one rate limiter
        self.counts = {"rows": 0, "deferred": 0, "teacher_answered": 0, "teacher_failed": 0}
        self._lock = threading.Lock()
        store.get_project(project)  # a missing project is refused now, not at the first deferred row

    def spent_usd(self) -> float:
        """What this cascade's teacher calls were billed (in the ledger, so across threads)."""
        return self.store.job_spend(self.job_id)

    def deferred(self, predictions: list[dict]) -> list[int]:
        """The rows under the threshold: exactly these go to the teacher."""
        return [i for i, p in enumerate(predictions) if p["confidence"] < self.threshold]

    def teacher_rows(self, rows: list[dict], choices: list) -> list[dict]:
        fields = self.student.input_fields or []
        return [{"inputs": {f: cell_text(row[f]) for f in fields}, "choices": c} for row, c in zip(rows, choices)]

    def ask(self, rows: list[dict], choices: list) -> list[dict]:
        """The teacher's answers for `rows` (input-field dicts); a failure to ask at all (no API
        key, an unpriced model) becomes each row's error, never the caller's crash."""
        try:
            return ask_teacher(self.store, self.project, self.teacher_rows(rows, choices), job_id=self.job_id,
                               cap_usd=self.cap_usd, shared=self.teacher_loop, **self.teacher_kwargs)
        except AppError as exc:
            return [{"ok": False, "reason": "error", "message": str(exc)}] * len(rows)

    def merge(self, predictions: list[dict], deferred: list[int], answers: list[dict]) -> list[dict]:
        """Each row's final answer: the teacher's for a deferred row it answered, else the student's."""
        by_row = dict(zip(deferred, answers))
        out = []
        for i, p in enumerate(predictions):
            rec = student_answer(p, deferred=i in by_row)
            answer = by_row.get(i)
            if answer is not None and answer["ok"]:
                rec.update(label=answer["label"], rationale=answer["rationale"], answered_by="teacher", confidence=None)
            elif answer is not None:
                rec["teacher_error"] = answer["message"]
            out.append(rec)
        with self._lock:
            self.counts["rows"] += len(predictions)
            self.counts["deferred"] += len(deferred)
            self.counts["teacher_answered"] += sum(1 for a in answers if a["ok"])
            self.counts["teacher_failed"] += sum(1 for a in answers if not a["ok"])
        return out

    def answer(self, rows: list[dict], rationale: bool = True, batch_size: int = 16) -> list[dict]:
        """The cascade over `rows` (dicts with the model's input fields, and choices)."""
        texts = [self.student.input_text(r) for r in rows]
        choices = [self.student.row_choices(r) for r in rows]
        predictions = self.student.predict(texts, batch_size=batch_size, choices=choices)
        deferred = self.deferred(predictions)
        answers = self.ask([rows[i] for i in deferred], [choices[i] for i in deferred]) if deferred else []
        out = self.merge(predictions, deferred, answers)
        self.add_rationales(out, texts, rationale, lambda wanted: self.student.rationales(wanted, batch_size))
        return out

    @staticmethod
    def add_rationales(out: list[dict], texts: list[str], wanted: bool, rationales) -> None:
        """The student's rationale for the rows it answered (`rationales(texts)` makes them);
        none at all, the teacher's included, when not wanted."""
        if not wanted:
            for rec in out:
                rec["rationale"] = None
            return
        own = [i for i, rec in enumerate(out) if rec["answered_by"] == "student"]
        for i, text in zip(own, rationales([texts[i] for i in own]) if own else []):
            out[i]["rationale"] = text
