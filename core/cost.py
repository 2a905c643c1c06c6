"""Token and dollar estimates for a labeling run, before anything is spent."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, asdict

from core.prices import PriceTable
from core.prompts import EXPECTED_OUTPUT_TOKENS, build_request

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


@dataclass
class CostEstimate:
    model: str
    rows: int
    input_tokens: int
    output_tokens: int
    input_tokens_per_row: float
    output_tokens_per_row: float
    cost_usd: float | None  # None when the model has no price
    output_source: str  # "preset" or "observed"
    price_known: bool

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_cost(
    items: list[dict], template: str, label_set: list[str] | None, task: str, model: str, max_tokens: int,
    prices: PriceTable, observed_output_tokens: float | None = None, total_rows: int | None = None,
) -> CostEstimate:
    """Estimate input/output tokens and dollars. `items` may be a sample; totals are
    scaled to `total_rows`."""
    rows = total_rows if total_rows is not None else len(items)
    per_row_in = (
        sum(request_tokens(build_request(template, it, label_set, model, max_tokens)) for it in items) / len(items)
        if items else 0.0
    )
    if observed_output_tokens:
        per_row_out, source = float(observed_output_tokens), "observed"
    else:
        per_row_out, source = float(min(EXPECTED_OUTPUT_TOKENS.get(task, 50), max_tokens)), "preset"
    input_tokens = round(per_row_in * rows)
    output_tokens = round(per_row_out * rows)
    cost = prices.cost(model, input_tokens, output_tokens)
    return CostEstimate(
        model=model, rows=rows, input_tokens=input_tokens, output_tokens=output_tokens,
        input_tokens_per_row=round(per_row_in, 1), output_tokens_per_row=round(per_row_out, 1),
        cost_usd=cost, output_source=source, price_known=cost is not None,
    )
