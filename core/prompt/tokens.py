"""The offline token estimator: input tokens of a request body, before anything is sent.
Dollar forecasts built on it live in core.prompt.forecast."""

from __future__ import annotations

import math
import re

# Claude tokenizes English at roughly 3.5-4 characters per token; words and punctuation
# are counted separately so that code-like text and numbers are not undercounted.
MESSAGE_OVERHEAD_TOKENS = 7  # role markers and message framing per request


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    pieces = re.findall(r"\w+|[^\w\s]", text)
    long_words = sum(max(0, math.ceil(len(p) / 6) - 1) for p in pieces)
    return len(pieces) + long_words


def request_tokens(request: dict) -> int:
    total = estimate_tokens(request.get("system", "")) + MESSAGE_OVERHEAD_TOKENS
    for message in request["messages"]:
        total += estimate_tokens(message["content"]) + 3
    return total
