"""The teacher run: send each unlabeled row's request to Claude through the official
`anthropic` SDK, concurrently, and store request, response, usage and cost.

- A response cache keyed by the request content (core.prompt.templates.request_hash) means an
  identical request is never sent, or billed, twice; rows that share a request share
  one call.
- Retries (429 with retry-after, 529, 500, timeouts) are the SDK's own (`max_retries`);
  core.label.ratelimit paces requests under the limits the API reports in its headers.
- Batch mode (`batch=True`) sends the rows through the Message Batches API at half
  price. Each batch id is stored before polling starts, so a restarted run resumes
  polling instead of submitting again.
- A failed call becomes a per-row error record and never stops the run.
- Results are written as they arrive, in small transactions, so a crash loses at most
  the responses in flight.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.label.batches import BatchSender, PendingRequest
from core.label.calls import (
    attempts_of_error,
    attempts_of_request,
    call_cost,
    error_type,
    resolve_api_key,
    response_text,
    unbilled,
)
from core.label.config import LabelConfig, LabelSummary
from core.prompt.tokens import request_tokens
from core.db import Store, TeacherWrites
from core.kernel.errors import ConfigError
from core.kernel.paths import job_dir
from core.kernel.tasks import get_task
from core.label.parsing import ParseResult, parse_response
from core.label.spool import SPOOL_NAME, AnswerSpool, read_entries, spools_to_replay
from core.kernel.prices import PriceTable, load_prices
from core.kernel.hashing import template_hash
from core.prompt.templates import EXPLAIN_INSTRUCTION, validate_template
from core.prompt.planner import check_plan_args, plan_requests

DEMO_SOURCE = "recorded-demo"


class TeacherRun:
    KIND = "label"  # what its answers are (core.label.spool.run_kind): a spool is replayed by a run of its kind

    @classmethod
    def from_config(cls, store: Store, cfg: LabelConfig, **kwargs) -> TeacherRun:
        return cls(store, cfg.project, model=cfg.model, concurrency=cfg.concurrency, limit=cfg.limit,
                   budget_usd=cfg.budget_usd, batch=cfg.batch, poll_interval_s=cfg.poll_interval_s,
                   row_ids=cfg.row_ids, relabel=cfg.relabel, rationale_fraction=cfg.rationale_fraction,
                   seed=cfg.seed, store_answers=cfg.store_answers, **kwargs)

    def __init__(
        self, store: Store, project: str, *, model: str | None = None, concurrency: int = 8,
        limit: int | None = None, budget_usd: float | None = None, api_key: str | None = None,
        base_url: str | None = None, max_retries: int = 4, timeout_s: float = 60.0, job_id: str | None = None,
        prices: PriceTable | None = None, on_progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], str | bool | None] | None = None, batch: bool = False,
        poll_interval_s: float = 10.0, row_ids: list[str] | None = None, spool_path: str | None = None,
        relabel: str | None = None, rationale_fraction: float = 1.0, seed: int = 0, store_answers: bool = True,
    ):
        self.store, self.project_name = store, project
        self.project = store.get_project(project)
        self.model = model or self.project.model
        if not self.model:
            raise ConfigError("Choose a teacher model.")
        self._check_prompt()
        self.row_ids = row_ids
        check_plan_args(relabel, rationale_fraction)
        self.relabel, self.rationale_fraction, self.seed = relabel, rationale_fraction, seed
        # Every paid answer is appended here before the database write, so that an answer
        # the store could not take is replayed on resume instead of being bought again.
        if spool_path is None and job_id is not None:
            spool_path = job_dir(store, job_id) / SPOOL_NAME
        self.spool = AnswerSpool(Path(spool_path)) if spool_path else None
        self.template_version = store.template_version(project)
        self.prices = prices or load_prices()
        self.concurrency = max(1, concurrency)
        self.limit = limit
        # This run's own cap; the project's cap is checked in the spend ledger at every
        # reservation, against what every process has spent and has in flight.
        self.budget_usd = budget_usd
        self.job_cap: float | None = None  # a cap on everything job_id spends, kept in the ledger (core.label.rows)
        self.api_key, self.base_url = resolve_api_key(api_key), base_url
        self.max_retries, self.timeout_s, self.job_id = max_retries, timeout_s, job_id
        self.on_progress, self.should_stop = on_progress, should_stop
        self.batch, self.poll_interval_s = batch, poll_interval_s
        self.batches = BatchSender(self)  # the Message Batches part of this run
        self.template_hash = template_hash(self.project.template or "")
        self.summary = LabelSummary()
        self.store_answers = store_answers  # False: cache, calls and ledger only (a try); the rows stay as they are
        self._done = 0
        self._in_flight_worst = 0.0   # reserved by this run and not yet settled in the store
        self._money = threading.Lock()  # the writer thread settles, the event loop reserves

    def _check_prompt(self) -> None:
        if not self.project.template:
            raise ConfigError("The project has no prompt template yet; set one on the Prompt page.")
        validate_template(self.project.template, self.project.input_fields, self.project.task, self.project.mode,
                          self.project.label_words)

    # ---- planning --------------------------------------------------------------
    def plan(self) -> tuple[dict[str, PendingRequest], dict[str, dict]]:
        planned = plan_requests(self.store, self.project, self.model, relabel=self.relabel,
                                rationale_fraction=self.rationale_fraction, seed=self.seed, limit=self.limit,
                                row_ids=self.row_ids)
        self.summary.rows = len(planned)
        pending: dict[str, PendingRequest] = {}
        for p in planned:
            pending.setdefault(p.key, PendingRequest(p.request, with_rationale=p.with_rationale)).rows.append(p.item)
        cached = self.store.cached_responses(list(pending))
        return pending, cached

    def _count_sent(self, p: PendingRequest) -> None:
        self.summary.requests += 1
        if p.with_rationale:
            self.summary.rationale_requests += 1
        else:
            self.summary.label_only_requests += 1

    # ---- writing results -------------------------------------------------------
    def _parse(self, item: dict, response: dict):
        return parse_response(
            response_text(response), self.project.task, item.get("choices"), self.project.label_set,
            response.get("stop_reason"), label_words=self.project.label_words,
        )

    def _write_success(self, w: TeacherWrites, key: str, pending: PendingRequest, response: dict, *, cached: bool,
                       source: str, cost: float | None, attempts: int | None) -> None:
        usage = response.get("usage") or {}
        if not cached:
            w.cache.append({"request_hash": key, "model": self.model, "request": json.dumps(pending.request),
                            "response": json.dumps(response), "input_tokens": usage.get("input_tokens"),
                            "output_tokens": usage.get("output_tokens"), "cost_usd": cost, "source": source})
        for n, item in enumerate(pending.rows):
            # Rows sharing one request share one call: only the first is billed.
            w.calls.append({
                "row_id": item["row_id"], "job_id": self.job_id, "request_hash": key, "template_hash": self.template_hash,
                "model": self.model, "cached": cached or n > 0,
                "billed_usd": (cost or 0.0) if (not cached and n == 0) else 0.0,
                "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
                "error_type": None, "error_message": None, "attempts": attempts if n == 0 else None,
                "template_version": self.template_version,
            })
            parsed = self._parse(item, response)
            explained = self._explained_label(pending, item)
            if explained is not None and not (parsed.ok and self._same_label(parsed.label, explained)):
                parsed = ParseResult(explained, None)  # a top-up adds a rationale; it never takes the label away
            w.results.append({"row_id": item["row_id"], "status": "labeled" if parsed.ok else "flagged",
                              "label": parsed.label, "rationale": parsed.rationale, "flag": parsed.flag,
                              "request_hash": key, "source": "teacher", "confidence": parsed.confidence})
            self.summary.labeled += parsed.ok
            self.summary.flagged += not parsed.ok
            self.summary.recorded_demo += source == DEMO_SOURCE
        self.summary.cost_usd += 0.0 if cached else (cost or 0.0)
        self._done += len(pending.rows)

    def _explained_label(self, pending: PendingRequest, item: dict) -> str | None:
        """The label a rationale top-up asked the teacher to explain (the planner sends a row
        answered label-only the explain-label prompt with its label given); None otherwise."""
        if self.project.mode == "explain-label" or EXPLAIN_INSTRUCTION not in str(pending.request["messages"][-1]):
            return None
        return item.get("label") or item.get("teacher_label")

    def _same_label(self, a: str | None, b: str) -> bool:
        return get_task(self.project.task).labels_equal(a, b)

    def _write_error(self, w: TeacherWrites, key: str, pending: PendingRequest, exc: BaseException,
                     attempts: int | None) -> None:
        etype, message = error_type(exc), str(exc)[:500]
        for item in pending.rows:
            w.calls.append({
                "row_id": item["row_id"], "job_id": self.job_id, "request_hash": key, "template_hash": self.template_hash,
                "model": self.model, "cached": False, "billed_usd": 0.0, "input_tokens": None, "output_tokens": None,
                "error_type": etype, "error_message": message, "attempts": attempts,
                "template_version": self.template_version,
            })
            w.errors.append({"row_id": item["row_id"], "error": f"{etype}: {message}"})
        self.summary.errors += len(pending.rows)
        self._done += len(pending.rows)

    def _progress(self) -> None:
        if self.on_progress:
            self.on_progress({"done": self._done, "total": self.summary.rows, **self.summary.as_dict()})

    # ---- running ---------------------------------------------------------------
    def run(self) -> LabelSummary:
        started = time.monotonic()
        self._replay_spool()
        if self.store.batch_intents(self.project_name):
            self._require_key("A batch whose creation was interrupted must be looked up at the API")
            import anthropic

            with anthropic.Anthropic(**self._client_kwargs()) as client:
                self.batches.resolve_intents(client)
        pending, cached = self.plan()
        hits = {k: v for k, v in pending.items() if k in cached}
        misses = {k: v for k, v in pending.items() if k not in cached}
        if hits:
            writes = TeacherWrites()
            for key, p in hits.items():
                self._write_success(writes, key, p, cached[key]["response"], cached=True,
                                    source=cached[key]["source"], cost=0.0, attempts=None)
                self.summary.cache_hits += len(p.rows)
            self._write(writes)
            self._progress()
        held = self.store.open_batch_hashes(self.project_name)  # a batch may still answer them
        self.summary.held_by_batches = sum(len(v.rows) for k, v in misses.items() if k in held)
        misses = {k: v for k, v in misses.items() if k not in held}
        if misses or (self.batch and self.store.open_batches(self.project_name)):
            if self.prices.get(self.model) is None:
                raise ConfigError(
                    f"Model {self.model!r} has no price in the price file, so its cost cannot be tracked. "
                    "Add it to data/prices.toml (or on the Prompt & budget page) first."
                )
            if not self.api_key:
                raise ConfigError(
                    f"{sum(len(p.rows) for p in misses.values())} row(s) need a live teacher call, but no API key "
                    "is set. Set ANTHROPIC_API_KEY in the environment or in Streamlit secrets."
                )
            if self.batch:
                self.batches.send(misses)
            else:
                self._run_async(self._run_live(misses))
        self.summary.seconds = round(time.monotonic() - started, 3)
        self._progress()
        if self.store_answers:  # new answers: their rationale checks
            from core.label.rationale_flags import refresh_quietly

            refresh_quietly(self.store, self.project_name)
        return self.summary

    def _worst_case(self, request: dict) -> float:
        # Upper bound for one call: estimated input with 25% margin, full max_tokens out.
        return self.prices.cost(self.model, int(request_tokens(request) * 1.25) + 50, request["max_tokens"],
                                batch=self.batch) or 0.0

    def _require_key(self, why: str) -> None:
        if not self.api_key:
            raise ConfigError(f"{why}, but no API key is set. Set ANTHROPIC_API_KEY in the environment or in "
                              "Streamlit secrets.")

    def _stop_reason(self) -> str | None:
        if not self.should_stop:
            return None
        reason = self.should_stop()
        return (reason if isinstance(reason, str) else "cancelled") if reason else None

    def _client_kwargs(self) -> dict:
        return {"api_key": self.api_key, "base_url": self.base_url, "max_retries": self.max_retries,
                "timeout": self.timeout_s}

    def _reservation_expiry_s(self) -> float:
        # long enough for every attempt the SDK may make, with retry-after waits in between;
        # after that a reservation of a process that died mid-request stops counting
        return 2 * self.timeout_s * (self.max_retries + 1) + 120

    def _reserve(self, wanted: list[tuple[str, float]]) -> list[int]:
        """Reserve worst cases in the shared ledger (one transaction for all of `wanted`);
        returns the ids made, a prefix of `wanted`."""
        with self._money:
            room = None if self.budget_usd is None else self.budget_usd - self.summary.cost_usd - self._in_flight_worst
        ids = self.store.reserve_spend(self.project_name, self.job_id, [w for _, w in wanted],
                                       self._reservation_expiry_s(), run_room=room,
                                       request_hashes=[k for k, _ in wanted], job_cap=self.job_cap)
        with self._money:
            self._in_flight_worst += sum(w for _, w in wanted[:len(ids)])
        return ids

    def _run_async(self, coro) -> None:
        asyncio.run(coro)  # a run owns its event loop (core.label.rows shares one between runs)

    def _live_client(self):
        """(client, rate limiter, owned): a run makes its own and closes the client after."""
        import anthropic

        from core.label.ratelimit import AdaptiveLimiter

        limiter = AdaptiveLimiter(token_estimate=request_tokens)
        return anthropic.AsyncAnthropic(**self._client_kwargs(), middleware=[limiter]), limiter, True

    async def _run_live(self, misses: dict[str, PendingRequest]) -> None:
        client, limiter, owned = self._live_client()
        results: asyncio.Queue = asyncio.Queue()
        semaphore = asyncio.Semaphore(self.concurrency)
        stop = asyncio.Event()
        reserver = _Reserver(self._reserve)
        writer_failed: list[BaseException] = []

        async def call(key: str, p: PendingRequest) -> None:
            async with semaphore:
                if stop.is_set():
                    return
                reason = self._stop_reason()
                if reason:
                    self.summary.stopped = self.summary.stopped or reason
                    stop.set()
                    return
                worst = self._worst_case(p.request)
                reservation = await reserver.reserve(key, worst)
                if reservation is None:  # the project's or this run's cap has no room for it
                    self.summary.stopped = self.summary.stopped or "budget"
                    stop.set()
                    return
                if stop.is_set():  # the writer failed while we waited: send nothing more
                    self.store.release_spend([reservation])
                    with self._money:
                        self._in_flight_worst -= worst
                    return
                self._count_sent(p)
                try:
                    raw = await client.messages.with_raw_response.create(**p.request)
                    message = await raw.parse()
                    response = message.model_dump(mode="json", exclude_none=True)
                    answer = (key, p, response, None, attempts_of_request(raw.http_request), reservation, worst)
                    if self.spool is not None:  # paid: kept before it waits for the writer
                        await asyncio.to_thread(self.spool.append, [answer])
                    await results.put(answer)
                except Exception as exc:  # every failure becomes a per-row record
                    await results.put((key, p, None, exc, attempts_of_error(exc), reservation, worst))

        async def writer() -> None:
            while True:
                first = await results.get()
                if first is None:
                    return
                batch = [first]
                while not results.empty():
                    batch.append(results.get_nowait())
                done = any(b is None for b in batch)
                batch = [b for b in batch if b is not None]
                try:
                    await asyncio.to_thread(self._flush, batch)
                except Exception as exc:  # stop sending: answers that cannot be stored must not be bought
                    writer_failed.append(exc)
                    self.summary.stopped = "writer failed"
                    stop.set()
                    return
                self._progress()
                if done:
                    return

        writer_task = asyncio.create_task(writer())
        try:
            await asyncio.gather(*(call(k, p) for k, p in misses.items()))
        finally:
            await results.put(None)
            await writer_task
            if owned:
                await client.close()
            self.summary.rate_limited = limiter.stats.rate_limited
        if writer_failed:
            raise WriterFailed(f"Storing teacher answers failed ({type(writer_failed[0]).__name__}: "
                               f"{writer_failed[0]}); labeling stopped so that no more answers are paid for "
                               "without being stored. Resume the job to continue.") from writer_failed[0]

    def _flush(self, batch: list) -> None:
        writes = TeacherWrites()
        for key, p, response, exc, attempts, reservation, _ in batch:
            if exc is None:
                cost = call_cost(self.prices, self.model, response.get("usage") or {})
                self._write_success(writes, key, p, response, cached=False, source="live", cost=cost, attempts=attempts)
                writes.settled.append((reservation, cost or 0.0))
            else:
                self._write_error(writes, key, p, exc, attempts)
                if unbilled(exc):
                    writes.released.append(reservation)
                # else: the API may have billed it (a timeout, a broken body): the reservation
                # keeps counting until it expires
        self._write(writes)
        with self._money:
            self._in_flight_worst -= sum(b[6] for b in batch)

    def _write(self, writes: TeacherWrites) -> None:
        if not self.store_answers:  # the answers are paid for and cached; the rows keep theirs
            writes.results, writes.errors, writes.rereads, writes.explanations = [], [], [], []
        self.store.write_teacher(self.project_name, writes)

    # ---- the spool: paid answers survive a failed write or a kill ----------------------
    def _replay_spool(self) -> None:
        """Store the spooled answers the database does not have yet, before anything is sent."""
        entries = read_entries(spools_to_replay(self.store, self.project_name, self.spool and self.spool.path,
                                                self.job_id, kind=self.KIND if self.store_answers else "try"))
        if not entries:
            return
        stored = self.store.cached_responses([e["key"] for e in entries])
        todo = {e["key"]: e for e in entries if e["key"] not in stored}
        if not todo:
            return
        items = {it["row_id"]: it for it in self.store.get_items(
            self.project_name, [r for e in todo.values() for r in e["row_ids"]])}
        writes, done = TeacherWrites(), self._done
        for key, e in todo.items():
            pending = PendingRequest(e["request"], [items[r] for r in e["row_ids"] if r in items])
            cost = call_cost(self.prices, e["request"]["model"], e["response"].get("usage") or {})
            self._write_success(writes, key, pending, e["response"], cached=False, source="live", cost=cost,
                                attempts=e["attempts"])
            if e.get("reservation") is not None:
                writes.settled.append((e["reservation"], cost or 0.0))
            self.summary.replayed += len(pending.rows)
        self._write(writes)
        self._done = done  # progress counts the rows this run sets out to label, planned next

class WriterFailed(ConfigError):
    """The store refused the run's answers; the run stops sending."""


class _Reserver:
    """Reserves spend for requests about to be sent. Requests that ask while a reservation is
    being written wait and are reserved together, so the ledger costs one transaction per
    group of requests, not one per request."""

    def __init__(self, reserve_many):
        self.reserve_many = reserve_many
        self.waiting: list[tuple[str, float, asyncio.Future]] = []
        self.lock = asyncio.Lock()

    async def reserve(self, key: str, worst: float) -> int | None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((key, worst, future))
        async with self.lock:
            if not future.done():
                group, self.waiting = self.waiting, []
                try:
                    ids = await asyncio.to_thread(self.reserve_many, [(k, w) for k, w, _ in group])
                except Exception as exc:  # every request of the group learns why
                    for _, _, f in group:
                        f.set_exception(exc)
                else:
                    for n, (_, _, f) in enumerate(group):
                        f.set_result(ids[n] if n < len(ids) else None)
        return future.result()


def label_project(store: Store, project: str, **kwargs) -> LabelSummary:
    return TeacherRun(store, project, **kwargs).run()

