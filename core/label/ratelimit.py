"""An adaptive client-side rate limiter for the Anthropic API.

It runs as SDK middleware, so it sees every HTTP attempt, including the SDK's own
retries. It learns the account's limits from the `anthropic-ratelimit-*` response
headers and paces requests just under them (requests per minute and input tokens
per minute), instead of sending until the server answers 429. A 429 that says the
limit is used up (remaining 0) pauses every sender for its `retry-after`; the SDK itself
waits and retries the request that got it.

Pacing is GCRA (a virtual-time token bucket): each request books the next slot of
1/rate seconds, with `burst_s` of tolerance so that a short stall (a pause, a slow
response) is caught up instead of lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

from anthropic import Middleware

MESSAGE_PATHS = ("/v1/messages",)


@dataclass
class LimiterStats:
    rate_limited: int = 0     # 429 responses seen (reported in the run's summary)
    rpm: int | None = None    # learned limits
    itpm: int | None = None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class AdaptiveLimiter(Middleware):
    def __init__(self, headroom: float = 0.98, burst_s: float = 0.5,
                 token_estimate=None, rpm: int | None = None, itpm: int | None = None):
        self.headroom, self.burst_s = headroom, burst_s
        self.token_estimate = token_estimate  # request JSON -> estimated input tokens
        self.stats = LimiterStats(rpm=rpm, itpm=itpm)
        self._tat = {"requests": 0.0, "tokens": 0.0}  # theoretical arrival times
        self._paused_until = 0.0
        self._learned = asyncio.Event() if rpm is None and itpm is None else None
        self._probe_sent = False
        self._lock: asyncio.Lock | None = None

    # ---- the middleware hook -------------------------------------------------------
    async def handle_async(self, request, call_next):
        paced = request.method.upper() == "POST" and request.url.rstrip("/").endswith(MESSAGE_PATHS)
        booked = await self.acquire(self._tokens(request)) if paced else None
        try:
            response = await call_next(request)
        except BaseException:
            self._release_probe()  # a failed probe (timeout, reset) must not hold everyone back
            raise
        self.observe(response.status_code, response.headers, booked)
        return response

    def _release_probe(self) -> None:
        if self._learned is not None and not self._learned.is_set():
            self._learned.set()

    def _tokens(self, request) -> int:
        body = getattr(request.options, "json_data", None)
        if self.token_estimate and isinstance(body, dict):
            try:
                return int(self.token_estimate(body))
            except (KeyError, TypeError, ValueError):
                return 0
        return 0

    # ---- pacing --------------------------------------------------------------------
    async def acquire(self, tokens: int = 0) -> tuple[float, float]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._learned is not None and not self._learned.is_set():
            # Until the first response tells us the limits, send one request at a time.
            async with self._lock:
                first = not self._probe_sent
                self._probe_sent = True
            if not first:
                await self._learned.wait()
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._paused_until)
            intervals = {}
            if self.stats.rpm:
                intervals["requests"] = 60.0 / (self.stats.rpm * self.headroom)
            if self.stats.itpm and tokens:
                intervals["tokens"] = 60.0 * tokens / (self.stats.itpm * self.headroom)
            for name in intervals:
                start = max(start, self._tat[name] - self.burst_s)
            for name, interval in intervals.items():
                self._tat[name] = max(self._tat[name], start) + interval
        wait = start - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return intervals.get("requests", 0.0), intervals.get("tokens", 0.0)

    def observe(self, status: int, headers, booked: tuple[float, float] | None = None) -> None:
        rpm = _float(headers.get("anthropic-ratelimit-requests-limit"))
        itpm = _float(headers.get("anthropic-ratelimit-input-tokens-limit"))
        if rpm:
            self.stats.rpm = int(rpm)
        if itpm:
            self.stats.itpm = int(itpm)
        if status == 429:
            self.stats.rate_limited += 1
            retry_after = _float(headers.get("retry-after"))
            if retry_after is None:
                retry_after = _reset_in(headers.get("anthropic-ratelimit-requests-reset")) or 1.0
            if _exhausted(headers):
                # The account's limit is used up: everyone waits. Otherwise (a transient 429 with
                # capacity left) only the SDK's retry of that one request waits.
                self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
        if booked and status in (429, 529):
            # A rejected attempt was not counted against the limit: give its slot back.
            self._tat["requests"] -= booked[0]
            self._tat["tokens"] -= booked[1]
        self._release_probe()  # limits known (or absent: then only concurrency bounds us)


def _exhausted(headers) -> bool:
    remaining = [headers.get(f"anthropic-ratelimit-{name}-remaining") for name in ("requests", "input-tokens",
                                                                                   "output-tokens", "tokens")]
    known = [_float(r) for r in remaining if r is not None]
    return not known or any(r is not None and r < 1 for r in known)


def _reset_in(value: str | None) -> float | None:
    if not value:
        return None
    try:
        reset = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (reset - dt.datetime.now(dt.UTC)).total_seconds())
