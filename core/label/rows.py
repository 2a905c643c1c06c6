"""The teacher for rows outside the project (rows a served student or a file's cascade defers).

They go through the same engine as labeling (core.label.teacher.TeacherRun:
the project's prompt, the response cache, retries, the rate limiter, the spend ledger and
the project's cap), and their calls are recorded in `teacher_calls` under the asking job's
id, but nothing is written to the project's rows.

    answers = ask_teacher(store, "tickets", [{"inputs": {"text": "..."}, "choices": None}],
                          job_id="serve-run-1-...", cap_usd=2.0)
    answers[0]  # {"ok": True, "label": "billing", "rationale": "...", "cost_usd": 0.0004, "cached": False}
                # or {"ok": False, "reason": "budget" | "error" | "unreadable" | ..., "message": "..."}

`cap_usd` caps everything the job id has spent and has in flight, in the ledger: concurrent
requests of one server, and any process using the same id, share it. A `TeacherLoop` gives
every run of a process one event loop, one client and one rate limiter, so the concurrent
requests of a server are paced together under the limits the API reports.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from core.db import TeacherWrites
from core.kernel.errors import ConfigError
from core.label.batches import PendingRequest
from core.label.teacher import TeacherRun
from core.kernel.hashing import request_hash
from core.prompt.templates import demonstrations, request_for

ROW_PREFIX = "ask:"  # teacher_calls.row_id of a row outside the project: ask:<job id>:<n>


class TeacherLoop:
    """One event loop thread, one client and one rate limiter shared by the runs of a process."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="teacher-io"))  # ledger, writes
        self._client = self._limiter = None
        self._lock = threading.Lock()
        threading.Thread(target=self.loop.run_forever, name="teacher-loop", daemon=True).start()

    def run(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def client(self, client_kwargs: dict):
        """The shared (client, limiter), made by the first run that needs one."""
        import anthropic

        from core.label.ratelimit import AdaptiveLimiter
        from core.prompt.tokens import request_tokens

        with self._lock:
            if self._client is None:
                self._limiter = AdaptiveLimiter(token_estimate=request_tokens)
                self._client = anthropic.AsyncAnthropic(**client_kwargs, middleware=[self._limiter])
            return self._client, self._limiter


class RowsTeacher(TeacherRun):
    KIND = "try"  # answers are cached and billed, never stored on the project's rows

    def __init__(self, store, project: str, rows: list[dict], *, job_id: str, cap_usd: float | None = None,
                 shared: TeacherLoop | None = None, **kwargs):
        super().__init__(store, project, job_id=job_id, spool_path="", store_answers=False, **kwargs)
        if self.project.mode == "explain-label":
            raise ConfigError("This project's prompt explains a given label (explain-label mode), so it cannot "
                              "answer new rows: switch the prompt to zero-shot or few-shot to defer rows to the teacher.")
        self.rows, self.job_cap, self.shared = rows, cap_usd, shared
        self.answers: dict[str, dict] = {}

    def _run_async(self, coro) -> None:
        self.shared.run(coro) if self.shared else super()._run_async(coro)

    def _live_client(self):
        return (*self.shared.client(self._client_kwargs()), False) if self.shared else super()._live_client()

    def plan(self) -> tuple[dict[str, PendingRequest], dict[str, dict]]:
        examples = demonstrations(self.store, self.project)
        pending: dict[str, PendingRequest] = {}
        for n, row in enumerate(self.rows):
            item = {"row_id": f"{ROW_PREFIX}{self.job_id}:{n}", "inputs": row["inputs"], "choices": row.get("choices"),
                    "gold": None}
            request = request_for(self.project, item, self.model, examples)
            pending.setdefault(request_hash(request), PendingRequest(request)).rows.append(item)
        self.summary.rows = len(self.rows)
        return pending, self.store.cached_responses(list(pending))

    def _replay_spool(self) -> None:
        """Nothing to replay: these answers are not kept in a spool (a lost one is asked again)."""

    def _write(self, writes: TeacherWrites) -> None:
        cost = {c["row_id"]: (c["billed_usd"], c["cached"]) for c in writes.calls}
        for r in writes.results:
            billed, cached = cost.get(r["row_id"], (0.0, True))
            self.answers[r["row_id"]] = {"ok": r["status"] == "labeled", "label": r["label"],
                                         "rationale": r["rationale"], "cost_usd": billed, "cached": cached,
                                         **({} if r["status"] == "labeled" else
                                            {"reason": "unreadable", "message": r["flag"] or "no label in the answer"})}
        for e in writes.errors:
            self.answers[e["row_id"]] = {"ok": False, "reason": "error", "message": e["error"]}
        super()._write(writes)


def ask_teacher(store, project: str, rows: list[dict], *, job_id: str, cap_usd: float | None = None,
                shared: TeacherLoop | None = None, **kwargs) -> list[dict]:
    """The teacher's answer for each row (in order), each ok or with the reason it has none."""
    if not rows:
        return []
    run = RowsTeacher(store, project, rows, job_id=job_id, cap_usd=cap_usd, shared=shared, **kwargs)
    summary = run.run()
    missing = {"budget": "the budget cap is reached: the teacher was not asked",
               "paused": "stopped before the teacher was asked", "cancelled": "stopped before the teacher was asked"}
    why = missing.get(summary.stopped or "", "not sent (a running batch holds the same request)")
    return [run.answers.get(f"{ROW_PREFIX}{job_id}:{n}",
                            {"ok": False, "reason": summary.stopped or "not sent", "message": why})
            for n in range(len(rows))]
