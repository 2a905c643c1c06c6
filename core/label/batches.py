"""Labeling through the Message Batches API (half price, results within 24 h): submit, poll,
collect, and resolve batches whose creation was interrupted. A part of core.label.teacher.TeacherRun
(composition: the run holds a BatchSender), whose planning, writing and budget it uses."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field

from core.db import TeacherWrites


@dataclass
class PendingRequest:
    """One request to send and the rows it answers (rows sharing a request share one call)."""

    request: dict
    rows: list[dict] = field(default_factory=list)
    with_rationale: bool = True  # False: the label-only prompt (a row outside the rationale fraction)



class BatchRowError(Exception):
    """One request of a batch that came back errored, expired, canceled, or not at all."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class BatchSender:
    """The Message Batches part of a teacher run (core.label.teacher.TeacherRun holds one): it
    uses the run's planning, budget, writing and progress, and owns submitting, polling,
    collecting and resolving interrupted batch creations."""

    def __init__(self, run):
        self.run = run

    def send(self, misses: dict[str, PendingRequest]) -> None:
        """Submit what the caps allow, wait for it to settle, and go on from what is left.

        Each request reserves its worst case (full max_tokens), so a batch under a cap is far
        smaller than the cap would pay for. Once a batch settles, its real cost replaces its
        worst case and the next batch is sent from what is left, until the rows or the cap run
        out (or the run is paused or cancelled)."""
        import anthropic

        client = anthropic.Anthropic(**self.run._client_kwargs())
        left = dict(misses)
        try:
            while True:
                sent = self._submit(client, left) if left else []
                for key in sent:
                    left.pop(key)
                self._poll(client)  # also the batches of an earlier run of the job
                if not left or not sent or self.run.summary.stopped in ("paused", "cancelled"):
                    return
                if self.run.summary.stopped == "budget":
                    self.run.summary.stopped = None  # settled: the next round finds out what is left
                    self.run.summary.batch_rounds += 1
        finally:
            client.close()

    def _run_room(self) -> float | None:
        """What this run may still commit under its own cap: the cap less what it was billed and
        the worst case of its batches still running."""
        if self.run.budget_usd is None:
            return None
        return (self.run.budget_usd - self.run.summary.cost_usd
                - self.run.store.open_batch_worst_case(self.run.project_name, self.run.job_id))

    def _submit(self, client, misses: dict[str, PendingRequest], chunk: int = 10_000) -> list[str]:
        """Submit batches of `misses` while the caps have room; returns the keys submitted."""
        keys, submitted = list(misses), []
        for start in range(0, len(keys), chunk):
            reason = self.run._stop_reason()
            if reason:
                self.run.summary.stopped = reason
                return submitted
            part = keys[start:start + chunk]
            worst = [self.run._worst_case(misses[key].request) for key in part]
            # A batch cannot be stopped half-way, so its whole worst case must fit the caps. It is
            # reserved in the ledger until the batch is stored, after which the batch's own
            # worst case counts (core.db.ledger counts submitted batches).
            ids = self.run.store.reserve_spend(self.run.project_name, self.run.job_id, worst,
                                               self.run._reservation_expiry_s(), run_room=self._run_room(),
                                               request_hashes=part)
            if len(ids) < len(part):
                self.run.summary.stopped = "budget"
                part, worst = part[:len(ids)], worst[:len(ids)]
            if not part:
                return submitted
            try:
                # The intent is stored before the batch is created, so that a batch whose id never
                # reached the database is found and adopted on restart, not created again.
                intent = self.run.store.add_batch_intent(self.run.project_name, self.run.job_id, self.run.model, [
                    {"custom_id": key, "request_hash": key, "request": json.dumps(misses[key].request),
                     "row_ids": json.dumps([it["row_id"] for it in misses[key].rows]),
                     "worst_usd": w} for key, w in zip(part, worst)])
            finally:
                self.run.store.release_spend(ids)  # from here the intent's own worst case counts
            self._create(client, intent, [{"custom_id": key, "params": misses[key].request} for key in part])
            submitted += part
            self.run.summary.batches += 1
            for key in part:
                self.run._count_sent(misses[key])
            if self.run.summary.stopped == "budget":
                return submitted
        return submitted

    def _create(self, client, intent: str, requests: list[dict]) -> None:
        """Create the intent's batch without SDK retries: a retried create after a lost response
        would create (and bill) a second batch. A refusal drops the intent; a lost response
        leaves it to be resolved against the account's batch list."""
        import anthropic

        try:
            batch = client.with_options(max_retries=0).messages.batches.create(requests=requests)
        except anthropic.APIStatusError:
            self.run.store.drop_batch_intent(intent)  # the API answered: no batch was created
            raise
        except (anthropic.APIConnectionError, anthropic.APITimeoutError):
            self.resolve_intents(client)  # it may exist: look for it now, else on the next start
            raise
        self.run.store.confirm_batch(intent, batch.id)

    def resolve_intents(self, client) -> None:
        """Adopt each stored intent's batch from the account's batch list (created after the intent
        with the same number of requests, and not known here), or drop the intent when there is
        none. Results are checked by custom_id when the batch is collected."""
        intents = self.run.store.batch_intents(self.run.project_name)
        if not intents:
            return
        known = self.run.store.known_batch_ids()
        listed = [b for b in client.messages.batches.list(limit=100) if b.id not in known]
        for intent in intents:
            since = intent["submitted_at"].replace(tzinfo=dt.UTC) - dt.timedelta(seconds=60)  # clock skew
            matches = sorted((b for b in listed if b.created_at >= since and sum(
                getattr(b.request_counts, k) for k in ("processing", "succeeded", "errored", "canceled", "expired"))
                == intent["requests"]), key=lambda b: b.created_at)
            if matches:
                self.run.store.confirm_batch(intent["batch_id"], matches[0].id)
                listed.remove(matches[0])
                self.run.summary.adopted_batches += 1
            else:
                self.run.store.drop_batch_intent(intent["batch_id"])

    def _poll(self, client) -> None:
        while True:
            open_batches = self.run.store.open_batches(self.run.project_name)
            if not open_batches:
                return
            reason = self.run._stop_reason()
            if reason == "paused":
                self.run.summary.stopped = "paused"  # the batches keep running; resume polls them
                return
            for batch_id in open_batches:
                if reason == "cancelled":
                    client.messages.batches.cancel(batch_id)
                view = client.messages.batches.retrieve(batch_id)
                if view.processing_status == "ended":
                    self._collect(client, batch_id)
            if reason == "cancelled":
                self.run.summary.stopped = "cancelled"
            self.run._progress()
            if self.run.store.open_batches(self.run.project_name):
                time.sleep(self.run.poll_interval_s)

    def _collect(self, client, batch_id: str) -> None:
        from core.label.calls import call_cost

        entries = {e["custom_id"]: e for e in self.run.store.batch_requests(batch_id)}
        items = {it["row_id"]: it for it in self.run.store.get_items(
            self.run.project_name, [rid for e in entries.values() for rid in json.loads(e["row_ids"])])}
        writes = TeacherWrites(collected_batches=[batch_id])
        seen = set()
        for result in client.messages.batches.results(batch_id):
            entry = entries.get(result.custom_id)
            if entry is None or result.custom_id in seen:
                continue
            seen.add(result.custom_id)
            pending = PendingRequest(json.loads(entry["request"]),
                               [items[r] for r in json.loads(entry["row_ids"]) if r in items])
            outcome = result.result
            if outcome.type == "succeeded":
                response = outcome.message.model_dump(mode="json", exclude_none=True)
                cost = call_cost(self.run.prices, self.run.model, response.get("usage") or {}, batch=True)
                self.run._write_success(writes, entry["request_hash"], pending, response, cached=False,
                                    source="batch", cost=cost, attempts=1)
            else:
                detail = getattr(getattr(getattr(outcome, "error", None), "error", None), "message", "")
                self.run._write_error(writes, entry["request_hash"], pending,
                                  BatchRowError(f"batch_{outcome.type}", detail or f"request {outcome.type}"), 1)
        for custom_id in set(entries) - seen:  # a result the API never returned is retried later
            entry = entries[custom_id]
            pending = PendingRequest(json.loads(entry["request"]),
                               [items[r] for r in json.loads(entry["row_ids"]) if r in items])
            self.run._write_error(writes, entry["request_hash"], pending, BatchRowError("batch_missing", "no result"), None)
        for call in writes.calls:
            call["batch_id"] = batch_id
        self.run._write(writes)
