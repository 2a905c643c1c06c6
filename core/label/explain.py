"""The teacher explains a label a reviewer corrected.

A corrected label loses the teacher's rationale (it argued for the teacher's own label, see
core.review.rules), so the row trains on its label alone until it has a rationale that fits. The
reviewer may write one, or ask the teacher: the explain-label prompt with the reviewer's label
given as the answer to explain.

- **Priced first.** `quote_explanations` prices exactly the requests it would send (the cache
  answers an explanation asked before, free) at P50 and P90 against the project's budget cap;
  nothing is sent without `core explain-corrections --yes` or the Review page's button after the
  quote.
- **Like any teacher call.** `ExplainRun` is a TeacherRun with another plan and another write: the
  same ledger, cache, retries, spool and per-row errors. Its answers never touch the teacher's
  columns (what the teacher first said stays on record).
- **Only a rationale that fits is kept.** The explanation becomes the row's rationale when the
  teacher's answer names the reviewer's label and the row still holds that label with no
  rationale (a reviewer's edit meanwhile wins); it is audited as the teacher's change. An answer
  that argues for another label is dropped and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from core.db import TeacherWrites
from core.kernel.errors import BudgetExceeded
from core.kernel.prices import PriceTable
from core.label.batches import PendingRequest
from core.label.teacher import TeacherRun
from core.prompt.planner import PlannedRequest, explain_label
from core.prompt.templates import request_for


def planned_explanations(store, project_name: str, model: str | None = None) -> list[PlannedRequest]:
    """One explain-label request per corrected row without a rationale (rows sharing an input and
    a label share it)."""
    project = store.get_project(project_name)
    explain = explain_label(project)
    model = model or project.model
    return [PlannedRequest(it, request_for(explain, {**it, "gold": it["label"]}, model), True)
            for it in store.corrected_without_rationale(project_name)]


@dataclass
class ExplainQuote:
    project: str
    model: str
    rows: int               # corrected rows without a rationale
    requests: int           # requests to send (billed)
    cache_hits: int         # rows the cache answers (free)
    cost_usd_p50: float | None
    cost_usd_p90: float | None
    over_budget: str | None  # P90 does not fit what is left of the project's cap

    def as_dict(self) -> dict:
        return asdict(self)


def quote_explanations(store, project_name: str, prices: PriceTable, model: str | None = None) -> ExplainQuote:
    """What asking the teacher to explain the corrected labels sends and costs."""
    from core.prompt.forecast import check_budget, price_forecast, token_profile

    project = store.get_project(project_name)
    model = model or project.model
    planned = planned_explanations(store, project_name, model)
    distinct = {p.key: p for p in planned}
    cached = store.cached_keys(list(distinct))
    send = [p for k, p in distinct.items() if k not in cached]
    hits = sum(1 for p in planned if p.key in cached)
    if not send:
        return ExplainQuote(project_name, model, len(planned), 0, hits, 0.0, 0.0, None)
    profile = token_profile(store, project_name, "explain-label", 1.0, model, plan=send)
    fc = price_forecast(profile, model, prices, False, store.spend(project_name), project.budget_usd)
    fc = replace(fc, remaining_usd=None if fc.remaining_usd is None else fc.remaining_usd
                 - store.reserved_spend(project_name))
    return ExplainQuote(project_name, model, len(planned), len(send), hits, fc.cost_usd_p50, fc.cost_usd_p90,
                        check_budget(fc))


def check_quote(quote: ExplainQuote, override: bool = False) -> None:
    if quote.over_budget and not override:
        raise BudgetExceeded(quote.over_budget)


class ExplainRun(TeacherRun):
    """A labeling run whose requests ask the teacher to explain the reviewers' labels."""

    KIND = "explain"

    def plan(self) -> tuple[dict[str, PendingRequest], dict[str, dict]]:
        pending: dict[str, PendingRequest] = {}
        for p in planned_explanations(self.store, self.project_name, self.model):
            if self.row_ids is None or p.item["row_id"] in self.row_ids:
                pending.setdefault(p.key, PendingRequest(p.request)).rows.append(p.item)
        if self.limit is not None:
            pending = dict(list(pending.items())[: self.limit])
        self.summary.rows = sum(len(p.rows) for p in pending.values())
        return pending, self.store.cached_responses(list(pending))

    def _write_success(self, w: TeacherWrites, key: str, pending: PendingRequest, response: dict, *, cached: bool,
                       source: str, cost: float | None, attempts: int | None) -> None:
        super()._write_success(w, key, pending, response, cached=cached, source=source, cost=cost, attempts=attempts)
        # the base run would write the answer as the teacher's label: it is an explanation instead
        results, w.results = w.results[-len(pending.rows):], w.results[:-len(pending.rows)]
        for result, item in zip(results, pending.rows):
            fits = result["rationale"] and self._same_label(result["label"], item["label"])
            if fits:
                w.explanations.append({"row_id": item["row_id"], "label": item["label"],
                                       "rationale": result["rationale"]})
            self.summary.labeled -= bool(result["status"] == "labeled") - bool(fits)
            self.summary.flagged -= bool(result["status"] != "labeled") - (not fits)

    def _explained_label(self, pending: PendingRequest, item: dict) -> str | None:
        return item["label"]  # every request here explains the reviewer's label
