"""A second reading of answers the reader could not settle (unparseable or ambiguous), by a
cheap model with structured output: which one label does this answer choose?

- **Optional and priced first.** Nothing is re-read unless asked (`core reread --yes`, or the
  Prompt page's button after its quote). `quote_reread` prices exactly the requests it would
  send (the cache answers a re-read asked before, free) at P50 and P90, as its own cost line,
  and says when P90 does not fit what is left of the project's budget cap.
- **Like any teacher call.** `RereadRun` is a TeacherRun with another plan: the same spend
  ledger (the cap binds across processes), response cache, retries, spool and per-row errors.
- **The request** shows the row's inputs, the answer to read, and asks for `label` from an
  enum of the row's options (the label set, or the choices) plus "none"; numeric tasks ask for
  the number. The answer's own rationale stays the row's rationale.
- **Recorded.** Each re-read is a row of `answer_rereads` (row, the answer read, the model, the
  label), and the row's label_source is "reread"; reading the stored answers again (label
  words) keeps a re-read label while the row's answer is the one that was re-read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from core.db import TeacherWrites
from core.kernel.errors import ConfigError
from core.kernel.hashing import request_hash
from core.kernel.labels import format_number, numeric_value
from core.kernel.prices import PriceTable
from core.kernel.tasks import get_task
from core.label.batches import PendingRequest
from core.label.parsing import ParseResult, parse_response
from core.label.calls import response_text
from core.label.teacher import TeacherRun
from core.prompt.tokens import request_tokens

DEFAULT_MODEL = "claude-haiku-4-5"   # the cheapest model in data/prices.toml when this was written
MAX_TOKENS = 64                      # {"label": "..."}: a few tokens; the worst case is priced at this
EXPECTED_OUTPUT_TOKENS = 12          # P50 output per re-read
NONE = "none"
MAX_ANSWER_CHARS = 6000              # the answer shown to the reader, at most
SYSTEM = ("You read another model's answer to a question and report which single option that answer chooses. "
          "Do not answer the question yourself. If the answer chooses no option, or more than one, reply none.")


def options(project, item: dict) -> list[str] | None:
    """What the answer may choose: the row's choices, or the project's labels; None for numbers."""
    kind = get_task(project.task)
    if kind.needs_choices:
        return list(item.get("choices") or []) or None
    if kind.enum_labels:
        return list(project.label_set or []) or None
    return None


def reread_request(project, item: dict, answer: str, model: str) -> dict | None:
    """The Messages API body that asks `model` which option `answer` chooses (None: the row has
    no options to choose from)."""
    kind = get_task(project.task)
    choices = options(project, item)
    if choices is None and kind.name != "numeric":
        return None
    question = "\n".join(f"{f}: {item['inputs'].get(f, '')}" for f in project.input_fields)
    if choices:
        ask = ("Options:\n" + "\n".join(f"- {c}" for c in choices)
               + f'\n\nWhich one option does the answer choose? Reply "{NONE}" if it chooses none, or several.')
        label = {"type": "string", "enum": [*choices, NONE]}
    else:
        ask = f'Which number does the answer give as its final result? Digits only, or "{NONE}".'
        label = {"type": "string"}
    content = (f"Question:\n{question}\n\n{ask}\n\nThe answer to read:\n<answer>\n{answer[:MAX_ANSWER_CHARS]}\n"
               "</answer>")
    return {"model": model, "max_tokens": MAX_TOKENS, "system": SYSTEM,
            "messages": [{"role": "user", "content": content}],
            "output_config": {"format": {"type": "json_schema", "schema": {
                "type": "object", "properties": {"label": label}, "required": ["label"],
                "additionalProperties": False}}}}


def reread_label(project, item: dict, response: dict) -> str | None:
    """The label a re-read found, as the project spells it; None for none, or anything else."""
    try:
        value = json.loads(response_text(response)).get("label")
    except (json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(value, str) or value.strip().lower() == NONE:
        return None
    choices = options(project, item)
    if choices is None:
        number = numeric_value(value.replace(",", "").replace("$", "").strip())
        return None if number is None else format_number(number)
    return next((c for c in choices if c == value), None) or get_task(project.task).normalize(
        value, item.get("choices"), project.label_set)


def _original(store, project, items: list[dict]) -> dict[str, tuple[str, ParseResult]]:
    """Each row's stored answer text and how the reader read it (for its rationale)."""
    cached = store.cached_responses([it["request_hash"] for it in items])
    out = {}
    for it in items:
        hit = cached.get(it["request_hash"])
        if hit is None:
            continue
        text = response_text(hit["response"])
        out[it["row_id"]] = (text, parse_response(text, project.task, it.get("choices"), project.label_set,
                                                  hit["response"].get("stop_reason"), label_words=project.label_words))
    return out


def plan_rereads(store, project_name: str, model: str, row_ids: list[str] | None = None
                 ) -> dict[str, PendingRequest]:
    """The re-read requests for the project's unread answers, keyed by request hash; each row
    carries its answer's hash and rationale. Empty answers, and answers this model read before
    without finding a label, are left out."""
    project = store.get_project(project_name)
    done = store.rereads(project_name)
    # a row this model read already for this answer found no label: asking again would change nothing
    items = [it for it in store.unread_items(project_name, row_ids)
             if not (it["row_id"] in done and done[it["row_id"]]["answer_hash"] == it["request_hash"]
                     and done[it["row_id"]]["model"] == model)]
    original = _original(store, project, items)
    pending: dict[str, PendingRequest] = {}
    for it in items:
        if it["row_id"] not in original or not original[it["row_id"]][0].strip():
            continue  # no answer text to read
        text, parsed = original[it["row_id"]]
        request = reread_request(project, it, text, model)
        if request is None:
            continue
        row = {**it, "answer_hash": it["request_hash"], "answer_rationale": parsed.rationale, "answer_flag": parsed.flag}
        pending.setdefault(request_hash(request), PendingRequest(request, with_rationale=False)).rows.append(row)
    return pending


@dataclass
class RereadQuote:
    project: str
    model: str
    rows: int               # unread rows a re-read would settle or leave
    requests: int           # requests to send (billed)
    cache_hits: int         # rows whose re-read the cache answers (free)
    cost_usd_p50: float | None
    cost_usd_p90: float | None
    over_budget: str | None  # P90 does not fit what is left of the project's cap

    def as_dict(self) -> dict:
        return asdict(self)


def quote_reread(store, project_name: str, prices: PriceTable, model: str = DEFAULT_MODEL,
                 row_ids: list[str] | None = None) -> RereadQuote:
    """What re-reading the unread answers sends and costs. P50: the offline input estimate and
    a short JSON answer; P90: input +25% and the full max_tokens, as the ledger reserves it."""
    pending = plan_rereads(store, project_name, model, row_ids)
    cached = store.cached_responses(list(pending))
    send = [p for k, p in pending.items() if k not in cached]
    tokens = [request_tokens(p.request) for p in send]
    p50 = prices.cost(model, sum(tokens), EXPECTED_OUTPUT_TOKENS * len(send))
    p90 = prices.cost(model, sum(int(t * 1.25) + 50 for t in tokens), MAX_TOKENS * len(send))
    project = store.get_project(project_name)
    over = None
    if send and project.budget_usd is not None:
        left = project.budget_usd - store.spend(project_name) - store.reserved_spend(project_name)
        if p90 is None:
            over = f"{model} has no price, so the re-read cannot be checked against the budget."
        elif p90 > left:
            over = (f"The re-read's P90 (${p90:.4f}) exceeds the remaining budget (${max(left, 0):.4f} of "
                    f"${project.budget_usd:.2f}). Raise the budget, or override.")
    return RereadQuote(project_name, model, sum(len(p.rows) for p in pending.values()), len(send),
                       sum(len(p.rows) for k, p in pending.items() if k in cached), p50, p90, over)


class RereadRun(TeacherRun):
    """A labeling run whose requests are re-reads (core.label.teacher runs them: ledger, cache,
    retries, spool). Its model is the reader's, not the project's teacher."""

    KIND = "reread"

    def __init__(self, store, project: str, *, model: str = DEFAULT_MODEL, **kwargs):
        super().__init__(store, project, model=model, **kwargs)
        self.template_hash, self.template_version = "reread", None

    def _check_prompt(self) -> None:
        """Re-reading needs no prompt of the project's own (imported answers may have none)."""

    def plan(self) -> tuple[dict[str, PendingRequest], dict[str, dict]]:
        pending = plan_rereads(self.store, self.project_name, self.model, self.row_ids)
        if self.limit is not None:
            pending = dict(list(pending.items())[: self.limit])
        self.summary.rows = sum(len(p.rows) for p in pending.values())
        return pending, self.store.cached_responses(list(pending))

    def _parse(self, item: dict, response: dict) -> ParseResult:
        label = reread_label(self.project, item, response)
        if label is not None:
            return ParseResult(label, item["answer_rationale"])
        return ParseResult(None, item["answer_rationale"], item["answer_flag"] or "unparseable",
                           "the re-read found no single answer")

    def _write_success(self, w: TeacherWrites, key: str, pending: PendingRequest, response: dict, *, cached: bool,
                       source: str, cost: float | None, attempts: int | None) -> None:
        rows = [it if "answer_hash" in it else None for it in pending.rows]
        if None in rows:  # rows of a spooled answer, replayed after a kill: read their answers again
            original = _original(self.store, self.project, pending.rows)
            rows = [{**it, "answer_hash": it["request_hash"], "answer_rationale": original[it["row_id"]][1].rationale,
                     "answer_flag": original[it["row_id"]][1].flag} for it in pending.rows if it["row_id"] in original]
            pending = PendingRequest(pending.request, rows, with_rationale=False)
        super()._write_success(w, key, pending, response, cached=cached, source=source, cost=cost, attempts=attempts)
        # the row keeps its own answer (request_hash) and rationale; the re-read decides the label
        for result, item in zip(w.results[-len(pending.rows):], pending.rows):
            result.update(request_hash=item["answer_hash"],
                          source="reread" if result["label"] else (item.get("label_source") or "teacher"))
            w.rereads.append({"row_id": item["row_id"], "answer_hash": item["answer_hash"], "reread_hash": key,
                              "model": self.model, "label": result["label"]})


def reread_project(store, project_name: str, model: str = DEFAULT_MODEL, **kwargs):
    """Re-read the project's unread answers in this process (the CLI); returns the LabelSummary."""
    if model is None:
        raise ConfigError("Choose a model for the re-read.")
    return RereadRun(store, project_name, model=model, **kwargs).run()
