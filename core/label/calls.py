"""One teacher call's facts, shared by the live and batch senders and the readers of stored
answers: where the API key comes from, the text of a response, what a call cost, and how a
failed call is recorded (its error type, the SDK's attempts, whether it was billed)."""

from __future__ import annotations

import json
import os

from core.kernel.prices import PriceTable
from core.label.batches import BatchRowError


def resolve_api_key(explicit: str | None = None) -> str | None:
    """Key from the caller (Streamlit secrets, passed by the page) or the environment only."""
    return explicit or os.environ.get("ANTHROPIC_API_KEY") or None


def response_text(response: dict) -> str:
    return "".join(block.get("text", "") for block in response.get("content", []) if block.get("type") == "text")


def call_cost(prices: PriceTable, model: str, usage: dict, batch: bool = False) -> float | None:
    inp = usage.get("input_tokens") or 0
    out = usage.get("output_tokens") or 0
    cost = prices.cost(model, inp, out, batch=batch)
    if cost is None:
        return None
    price = prices.get(model)
    cache_write = usage.get("cache_creation_input_tokens") or 0
    cache_read = usage.get("cache_read_input_tokens") or 0
    factor = (1 - prices.batch_discount) if batch else 1.0
    return cost + factor * (cache_write * prices.cache_write_multiplier
                            + cache_read * prices.cache_read_multiplier) * price.input / 1e6


def error_type(exc: BaseException) -> str:
    import anthropic

    if isinstance(exc, BatchRowError):
        return exc.kind
    if isinstance(exc, anthropic.APIStatusError):
        return f"http_{exc.status_code}"
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection"
    if isinstance(exc, anthropic.APIResponseValidationError):
        return "bad_response"
    if isinstance(exc, (json.JSONDecodeError, ValueError)):
        return "bad_response"
    return type(exc).__name__


def attempts_of_error(exc: BaseException) -> int | None:
    """Attempts the SDK made, read from the retry-count header of its last request."""
    request = getattr(exc, "request", None)
    if request is None and getattr(exc, "response", None) is not None:
        request = exc.response.request
    return attempts_of_request(request)


def attempts_of_request(request) -> int | None:
    try:
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1
    except (AttributeError, ValueError, TypeError):
        return None


def unbilled(exc: BaseException) -> bool:
    """Whether a failed call was certainly not billed: the API answered with an error status."""
    import anthropic

    return isinstance(exc, anthropic.APIStatusError)
