"""A fake Anthropic Messages API on 127.0.0.1 for tests and benchmarks.

The real `anthropic` SDK talks to it over HTTP (point `base_url` at `server.url`), so
retries, timeouts and response parsing are exercised for real. Faults can be scripted
(next N requests), drawn at a rate, or chosen per request by a callback:

  429         rate limited, with retry-after (and anthropic-ratelimit-* headers)
  529         overloaded
  500         api error
  timeout     sleeps past the client's timeout
  malformed   200 with a body that is not JSON
  truncated_body  200 whose JSON body is cut off mid-way
  max_tokens  a normal message cut short, stop_reason "max_tokens"

Rate limits (`rpm`, `itpm`) are token buckets refilled continuously, as Anthropic
documents them: a request over the limit gets a real 429 with retry-after, and every
response carries anthropic-ratelimit-* headers. Injected faults are decided before
admission and do not use up the limit.

The Message Batches endpoints (create, retrieve, results, cancel) process a batch
after `batch_delay_s`; `batch_fault_for(custom_id)` can make single requests end
errored, expired or canceled.

It counts its tokens with its own rule (not the app's estimator) and adds per-message
overhead, so estimates can be checked against "invoice" numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def fake_token_count(text: str) -> int:
    # Different on purpose from core.prompt.tokens.estimate_tokens: ~4 chars per token.
    return max(1, round(len(text) / 4))


def count_request_tokens(body: dict) -> int:
    system = body.get("system") or ""
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system)
    total = fake_token_count(system) + 5 if system else 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        total += fake_token_count(content or "") + 4
    return total


def default_responder(body: dict) -> str:
    """Answer with the first label/choice in the prompt in the preset format."""
    text = body["messages"][-1]["content"]
    m = re.search(r"^\(a\) (.+)$", text, re.MULTILINE)
    if m:
        return f"Answer: a) {m.group(1)}\nRationale: The first option fits the question best."
    m = re.search(r"categories: ([^.\n]+)\.", text)
    if m:
        first = m.group(1).split(",")[0].strip()
        return f"Answer: {first}\nRationale: The text is about {first}."
    return "Answer: neutral\nRationale: The premise does not settle the hypothesis."


class FakeAnthropic:
    def __init__(
        self,
        responder: Callable[[dict], str] = default_responder,
        latency_s: float = 0.0,
        latency_jitter_s: float = 0.0,
        fault_rates: dict[str, float] | None = None,
        fault_for: Callable[[dict], str | None] | None = None,
        retry_after_s: float = 0.05,
        timeout_sleep_s: float = 3.0,
        seed: int = 0,
        rpm: int | None = None,
        itpm: int | None = None,
        burst_s: float = 1.0,
        batch_delay_s: float = 0.2,
        batch_fault_for: Callable[[str], str | None] | None = None,
        batch_create_delay_s: float = 0.0,
    ):
        self.responder = responder
        self.latency_s, self.latency_jitter_s = latency_s, latency_jitter_s
        self.fault_rates = fault_rates or {}
        self.fault_for = fault_for
        self.retry_after_s = retry_after_s
        self.timeout_sleep_s = timeout_sleep_s
        self.scripted: deque[str] = deque()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # every request received, with the outcome
        self.billed: Counter = Counter()  # successful message responses per request content
        self.usage: list[dict] = []  # the server's own ledger: model and usage of every billed response
        self._server: ThreadingHTTPServer | None = None
        self.rpm, self.itpm, self.burst_s = rpm, itpm, burst_s
        self._buckets: dict[str, list[float]] = {}  # name -> [level, last refill time]
        self.rate_limited = 0  # real 429s from the rate limiter (not injected)
        self.admitted_at: list[float] = []  # monotonic admission times of message requests
        self.batch_delay_s, self.batch_fault_for = batch_delay_s, batch_fault_for
        self.batches: dict[str, dict] = {}
        # the batch exists (and will be billed) before its creation response is sent: a client
        # killed meanwhile never learns its id
        self.batch_create_delay_s = batch_create_delay_s
        self.batches_created = 0

    def billed_usd(self, prices) -> float:
        """What this server billed, priced from its own usage records (not the client's)."""
        with self.lock:
            return sum(prices.cost(u["model"], u["input_tokens"], u["output_tokens"]) for u in self.usage)

    # ---- control ---------------------------------------------------------------
    def script(self, *faults: str) -> None:
        """The next len(faults) requests get these faults, in order ("ok" for none)."""
        with self.lock:
            self.scripted.extend(faults)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (killed, or its timeout fired)

            def do_POST(self):
                try:
                    fake._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout fired): nothing to answer

            def do_GET(self):
                try:
                    fake._handle_get(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- request handling --------------------------------------------------------
    def _pick_fault(self, body: dict) -> str | None:
        with self.lock:
            if self.scripted:
                fault = self.scripted.popleft()
                return None if fault == "ok" else fault
            if self.fault_for:
                fault = self.fault_for(body)
                if fault:
                    return fault
            roll = self.rng.random()
        acc = 0.0
        for name, rate in self.fault_rates.items():
            acc += rate
            if roll < acc:
                return name
        return None

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict | None = None,
              content_length: int | None = None) -> None:
        headers = dict(headers or {})
        h.send_response(status)
        h.send_header("content-type", headers.pop("content-type", "application/json"))
        h.send_header("request-id", "req_" + uuid.uuid4().hex[:12])
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("content-length", str(content_length if content_length is not None else len(payload)))
        if content_length is not None:
            h.send_header("connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(payload)
        h.wfile.flush()

    def _error(self, h, status: int, etype: str, message: str, headers: dict | None = None) -> None:
        body = json.dumps({"type": "error", "error": {"type": etype, "message": message}}).encode()
        self._send(h, status, body, headers)

    # ---- rate limits -------------------------------------------------------------
    def _limits(self) -> dict[str, int]:
        return {k: v for k, v in (("requests", self.rpm), ("input-tokens", self.itpm)) if v}

    def _level(self, name: str, per_minute: int, now: float) -> float:
        capacity = per_minute / 60 * self.burst_s
        level, last = self._buckets.get(name, [capacity, now])
        level = min(capacity, level + (now - last) * per_minute / 60)
        self._buckets[name] = [level, now]
        return level

    def _admit(self, tokens: int) -> tuple[bool, float, dict]:
        """Take one request and `tokens` input tokens from the buckets, or say how long to wait."""
        with self.lock:
            now = time.monotonic()
            need = {"requests": 1, "input-tokens": tokens}
            wait = 0.0
            for name, per_minute in self._limits().items():
                level = self._level(name, per_minute, now)
                if level < need[name]:
                    wait = max(wait, (need[name] - level) / (per_minute / 60))
            if wait == 0.0:
                for name in self._limits():
                    self._buckets[name][0] -= need[name]
                self.admitted_at.append(now)
            return wait == 0.0, wait, self._headers(now)

    def _headers(self, now: float) -> dict:
        headers = {}
        for name, per_minute in self._limits().items():
            level = max(0.0, self._buckets.get(name, [per_minute / 60 * self.burst_s])[0])
            full_in = (per_minute / 60 * self.burst_s - level) / (per_minute / 60)
            reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=full_in)
            headers[f"anthropic-ratelimit-{name}-limit"] = str(per_minute)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(int(level))
            headers[f"anthropic-ratelimit-{name}-reset"] = reset.isoformat().replace("+00:00", "Z")
        return headers

    # ---- message batches -----------------------------------------------------------
    def _batch_view(self, batch: dict) -> dict:
        self._maybe_finish(batch)
        return self._batch_view_unlocked(batch)

    def _batch_view_unlocked(self, batch: dict) -> dict:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch["results"] is None:
            counts["processing"] = len(batch["requests"])
        else:
            for r in batch["results"]:
                counts[r["result"]["type"]] += 1
        ended = batch["results"] is not None
        return {
            "id": batch["id"], "type": "message_batch",
            "processing_status": "ended" if ended else ("canceling" if batch["cancel"] else "in_progress"),
            "request_counts": counts, "created_at": batch["created_iso"],
            "expires_at": batch["created_iso"], "ended_at": batch["created_iso"] if ended else None,
            "cancel_initiated_at": batch["created_iso"] if batch["cancel"] else None, "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    def _maybe_finish(self, batch: dict) -> None:
        with self.lock:
            if batch["results"] is not None:
                return
            if not batch["cancel"] and time.monotonic() - batch["created"] < self.batch_delay_s:
                return
            results = []
            for req in batch["requests"]:
                fault = "canceled" if batch["cancel"] else (
                    self.batch_fault_for(req["custom_id"]) if self.batch_fault_for else None)
                if fault == "errored":
                    result = {"type": "errored", "error": {"type": "error",
                              "error": {"type": "api_error", "message": "internal error"}}}
                elif fault in ("expired", "canceled"):
                    result = {"type": fault}
                else:
                    message, _ = self._message(req["params"], None)
                    self.billed[json.dumps(req["params"], sort_keys=True)] += 1
                    result = {"type": "succeeded", "message": message}
                results.append({"custom_id": req["custom_id"], "result": result})
            batch["results"] = results

    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        if not (h.headers.get("x-api-key") or h.headers.get("authorization")):
            return self._error(h, 401, "authentication_error", "missing api key")
        if h.path.split("?")[0] == "/v1/messages/batches":  # the account's batches, newest first
            with self.lock:
                views = [self._batch_view_unlocked(b) for b in self.batches.values()]
            views.sort(key=lambda v: v["created_at"], reverse=True)
            return self._send(h, 200, json.dumps({"data": views, "has_more": False,
                                                  "first_id": views[0]["id"] if views else None,
                                                  "last_id": views[-1]["id"] if views else None}).encode())
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", h.path.split("?")[0])
        batch = self.batches.get(m.group(1)) if m else None
        if batch is None:
            return self._error(h, 404, "not_found_error", f"no route {h.path}")
        view = self._batch_view(batch)
        if not m.group(2):
            return self._send(h, 200, json.dumps(view).encode())
        if batch["results"] is None:
            return self._error(h, 400, "invalid_request_error", "batch is still processing")
        lines = "\n".join(json.dumps(r) for r in batch["results"]) + "\n"
        return self._send(h, 200, lines.encode(), {"content-type": "application/binary"})

    def _create_batch(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        requests = body.get("requests") or []
        ids = [r.get("custom_id") for r in requests]
        if not requests or len(requests) > 100_000 or len(set(ids)) != len(ids):
            return self._error(h, 400, "invalid_request_error", "requests must be non-empty with unique custom_ids")
        if any(not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(i)) for i in ids):
            return self._error(h, 400, "invalid_request_error", "custom_id must match ^[a-zA-Z0-9_-]{1,64}$")
        batch_id = "msgbatch_" + uuid.uuid4().hex[:20]
        batch = {"id": batch_id, "requests": requests, "created": time.monotonic(), "cancel": False,
                 "created_iso": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"), "results": None}
        with self.lock:
            self.batches[batch_id] = batch
            self.batches_created += 1
        if self.batch_create_delay_s:
            time.sleep(self.batch_create_delay_s)
        self._send(h, 200, json.dumps(self._batch_view(batch)).encode())

    def _message(self, body: dict, fault: str | None) -> tuple[dict, str]:
        text = self.responder(body)
        if (body.get("output_config") or {}).get("format"):
            # structured output: the same answer as a {"label", "rationale"} object
            answer = re.search(r"Answer:\s*(.+)", text)
            why = re.search(r"Rationale:\s*(.+)", text)
            sure = re.search(r"Confidence:\s*([0-9.]+)", text)  # a responder may state one
            text = json.dumps({"label": answer.group(1).strip() if answer else "",
                               "rationale": why.group(1).strip() if why else "",
                               "confidence": float(sure.group(1)) if sure else 0.9})
        stop_reason = "end_turn"
        output_tokens = fake_token_count(text)
        max_tokens = int(body.get("max_tokens", 1024))
        if fault == "max_tokens" or output_tokens > max_tokens:
            text = text[: max(1, min(len(text) // 2, max_tokens * 4))]
            output_tokens = min(max_tokens, fake_token_count(text))
            stop_reason = "max_tokens"
        message = {
            "id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant",
            "model": body.get("model"), "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": count_request_tokens(body), "output_tokens": output_tokens},
        }
        return message, text

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        if not (h.headers.get("x-api-key") or h.headers.get("authorization")):
            return self._error(h, 401, "authentication_error", "missing api key")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._error(h, 400, "invalid_request_error", "body is not JSON")
        path = h.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            return self._send(h, 200, json.dumps({"input_tokens": count_request_tokens(body)}).encode())
        if path == "/v1/messages/batches":
            return self._create_batch(h, body)
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)/cancel", path)
        if m and m.group(1) in self.batches:
            self.batches[m.group(1)]["cancel"] = True
            return self._send(h, 200, json.dumps(self._batch_view(self.batches[m.group(1)])).encode())
        if path != "/v1/messages":
            return self._error(h, 404, "not_found_error", f"no route {path}")
        if "temperature" in body:
            return self._error(h, 400, "invalid_request_error", "temperature is not supported for this model")

        fault = self._pick_fault(body)
        if fault is None:
            admitted, wait, limit_headers = self._admit(count_request_tokens(body))
            if not admitted:
                with self.lock:
                    self.rate_limited += 1
                    self.requests.append({"body": body, "fault": "rate_limited",
                                          "retry": h.headers.get("x-stainless-retry-count")})
                return self._error(h, 429, "rate_limit_error", "rate limit exceeded",
                                   {"retry-after": str(max(1, math.ceil(wait))), **limit_headers})
        else:
            limit_headers = self._headers(time.monotonic()) if self._limits() else {}
        delay = max(0.0, self.latency_s + self.rng.uniform(-self.latency_jitter_s, self.latency_jitter_s))
        if delay:
            time.sleep(delay)
        key = json.dumps(body, sort_keys=True)
        with self.lock:
            self.requests.append({"body": body, "fault": fault, "retry": h.headers.get("x-stainless-retry-count")})
        if fault == "429":
            return self._error(h, 429, "rate_limit_error", "rate limited", {
                "retry-after": str(self.retry_after_s), **limit_headers})
        if fault == "529":
            return self._error(h, 529, "overloaded_error", "overloaded")
        if fault == "500":
            return self._error(h, 500, "api_error", "internal error")
        if fault == "timeout":
            time.sleep(self.timeout_sleep_s)
            return self._error(h, 504, "timeout_error", "too slow")
        if fault == "malformed":
            return self._send(h, 200, b'{"id": "msg_x", "content": [ this is not json')

        message, _ = self._message(body, fault)
        payload = json.dumps(message).encode()
        if fault == "truncated_body":
            # Promise the full length, deliver half, close: the client sees a cut-off body.
            return self._send(h, 200, payload[: len(payload) // 2], content_length=len(payload))
        with self.lock:
            self.billed[key] += 1
            self.usage.append({"model": body.get("model"), **message["usage"]})
        self._send(h, 200, payload, limit_headers)
