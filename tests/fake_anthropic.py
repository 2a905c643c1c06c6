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

It counts its tokens with its own rule (not the app's estimator) and adds per-message
overhead, so estimates can be checked against "invoice" numbers.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def fake_token_count(text: str) -> int:
    # Different on purpose from core.cost.estimate_tokens: ~4 chars per token.
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
    m = re.search(r"^\(a\) (.+)$", text, re.M)
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
        self._server: ThreadingHTTPServer | None = None

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

    def start(self) -> "FakeAnthropic":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                try:
                    fake._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout fired): nothing to answer

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
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("request-id", "req_" + uuid.uuid4().hex[:12])
        for k, v in (headers or {}).items():
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
        if path != "/v1/messages":
            return self._error(h, 404, "not_found_error", f"no route {path}")
        if "temperature" in body:
            return self._error(h, 400, "invalid_request_error", "temperature is not supported for this model")

        delay = max(0.0, self.latency_s + self.rng.uniform(-self.latency_jitter_s, self.latency_jitter_s))
        if delay:
            time.sleep(delay)
        fault = self._pick_fault(body)
        key = json.dumps(body, sort_keys=True)
        with self.lock:
            self.requests.append({"body": body, "fault": fault, "retry": h.headers.get("x-stainless-retry-count")})
        if fault == "429":
            return self._error(h, 429, "rate_limit_error", "rate limited", {
                "retry-after": str(self.retry_after_s),
                "anthropic-ratelimit-requests-limit": "1000",
                "anthropic-ratelimit-requests-remaining": "0",
            })
        if fault == "529":
            return self._error(h, 529, "overloaded_error", "overloaded")
        if fault == "500":
            return self._error(h, 500, "api_error", "internal error")
        if fault == "timeout":
            time.sleep(self.timeout_sleep_s)
            return self._error(h, 504, "timeout_error", "too slow")
        if fault == "malformed":
            return self._send(h, 200, b'{"id": "msg_x", "content": [ this is not json')

        text = self.responder(body)
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
        payload = json.dumps(message).encode()
        if fault == "truncated_body":
            # Promise the full length, deliver half, close: the client sees a cut-off body.
            return self._send(h, 200, payload[: len(payload) // 2], content_length=len(payload))
        with self.lock:
            self.billed[key] += 1
        self._send(h, 200, payload)
