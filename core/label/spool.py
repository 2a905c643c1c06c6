"""The answer spool: every paid answer is appended to a job's spool file as it arrives, before it
waits for the database writer, so an answer the store never took (a failed write, a kill -9) is
stored on the next run instead of being bought again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from core.kernel.paths import job_dir

SPOOL_NAME = "answers.spool.jsonl"


class AnswerSpool:
    """One run's spool file (appended by the event loop's worker threads)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, answered: list) -> None:
        """Append (key, pending, response, _, attempts, reservation, _) answers. Flushed, not
        fsynced: the threat is a killed process, whose flushed writes the OS keeps."""
        if not answered:
            return
        lines = [json.dumps({"key": key, "request": p.request, "response": response,
                             "row_ids": [it["row_id"] for it in p.rows], "attempts": attempts,
                             "reservation": reservation}) + "\n"
                 for key, p, response, _, attempts, reservation, _ in answered]
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()


def run_kind(config: dict) -> str:
    """What a labeling job's answers are: teacher labels, re-reads, explanations of corrected labels,
    or a try's (which must not become the rows' answers)."""
    if config.get("reread_model"):
        return "reread"
    if config.get("explain_corrections"):
        return "explain"
    return "label" if config.get("store_answers", True) else "try"


def spools_to_replay(store, project: str, own: Path | None, job_id: str | None, kind: str = "label") -> list[Path]:
    """A run's own spool and, for a job (it holds the project's labeling lease, so no other
    labeling job runs), the spools of the project's earlier labeling jobs of its kind (teacher
    answers, or re-reads): a new run after a killed one stores what that one paid for, not only
    a resume of it."""
    spools = [own] if own is not None else []
    if job_id is not None:
        from core.jobs.lifecycle import jobs_for
        from core.jobs.states import ACTIVE

        spools += [job_dir(store, j["id"]) / SPOOL_NAME for j in jobs_for(store, project, "label")
                   if j["id"] != job_id and j["status"] not in ACTIVE
                   and run_kind(j.get("config") or {}) == kind]
    return [p for p in spools if p.exists()]


def read_entries(paths: list[Path]) -> list[dict]:
    entries = []
    for spool in paths:
        for line in spool.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill: its answer was not complete
                continue
    return entries
