"""Which rows a labeling run sends, and with which prompt. The teacher and the forecast both
plan through here, so the forecast prices exactly the requests a run would send.

- `relabel` chooses the rows: none (rows never answered or whose call failed), `failed`
  (also the rows whose answer did not parse), `stale` (also the rows answered by an older
  prompt: their request today would differ from the one answered), `all`.
- `rationale_fraction` F with `seed` S: a seeded, label-stratified share F of the project's
  rows gets the project's prompt (label and rationale); the rest get the label-only prompt
  with a small `max_tokens` (Vöge et al.'s cost lever). The share grows monotonically with F
  for one seed, so a later run with a larger F tops rationales up for the same rows first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from core.kernel.errors import ConfigError
from core.kernel.hashing import request_hash
from core.kernel.sampling import stratified_order
from core.kernel.tasks import get_task
from core.prompt.templates import demonstrations, mode_template, request_for

RELABEL = ("failed", "stale", "all")
LABEL_ONLY_MAX_TOKENS = 32  # "Answer: <label>" with room for a long class name or an expression


@dataclass
class PlannedRequest:
    item: dict
    request: dict
    with_rationale: bool
    current: bool = False  # the row's stored answer is one this plan accepts (not stale)

    @cached_property
    def key(self) -> str:
        return request_hash(self.request)


def check_plan_args(relabel: str | None, rationale_fraction: float) -> None:
    if relabel is not None and relabel not in RELABEL:
        raise ConfigError(f"relabel must be one of {', '.join(RELABEL)} (or none), not {relabel!r}.")
    if not 0 <= rationale_fraction <= 1:
        raise ConfigError(f"the rationale fraction must be between 0 and 1, not {rationale_fraction}.")


def rationale_rows(items: list[dict], fraction: float, seed: int, task: str = "classification") -> set[str]:
    """The row ids that get a rationale prompt: exactly round(F * rows), spread evenly over the
    task's classes (core.kernel.tasks.TaskType.stratum: the gold label, a multiple-choice gold's
    position, a numeric gold's order of magnitude). Each class's rows are taken in a seeded order
    and interleaved by their place in it (the j-th of n stands at (j + 1/2) / n), so every class
    gets round(F * n) rows give or take one, and a larger F keeps the rows of a smaller one."""
    if fraction >= 1:
        return {it["row_id"] for it in items}
    order = stratified_order(items, seed, get_task(task).stratum)
    return set(order[: round(fraction * len(items))])


def label_only(project):
    """The project as it asks the rows outside the rationale share: the label-only preset, as
    text (a JSON schema would demand a rationale), with a small max_tokens."""
    return replace(project, template=mode_template(project.task, project.input_fields, "label-only"),
                   mode="label-only", output_format="text", max_tokens=min(project.max_tokens, LABEL_ONLY_MAX_TOKENS))


def explain_label(project):
    """The project as it tops up a rationale for a row whose label is known: the explain-label
    preset, with that label given as the answer to explain."""
    return replace(project, template=mode_template(project.task, project.input_fields, "explain-label"),
                   mode="explain-label", output_format="text")


def _known_label(item: dict) -> str | None:
    return item.get("label") or item.get("teacher_label")


def _due(store, project, relabel: str | None, limit: int | None, row_ids: list[str] | None) -> list[dict]:
    if relabel is None:
        return store.items_to_label(project.name, limit, row_ids)
    if row_ids is not None:  # a few rows (a try, a re-ask) of possibly a million: read only them
        items = sorted(store.get_items(project.name, row_ids), key=lambda it: it["idx"])
    else:
        items = store.items_by_order(project.name, None)
    if relabel == "failed":
        items = [it for it in items if it["status"] in ("unlabeled", "error", "flagged")]
    return items  # stale is decided once the requests are built; all keeps every row


def plan_requests(store, project, model: str, *, relabel: str | None = None, rationale_fraction: float = 1.0,
                  seed: int = 0, limit: int | None = None, row_ids: list[str] | None = None) -> list[PlannedRequest]:
    """The requests a run would send, one per due row (rows may share a request)."""
    check_plan_args(relabel, rationale_fraction)
    items = _due(store, project, relabel, None if relabel == "stale" else limit, row_ids)
    if project.mode == "explain-label":
        items = [it for it in items if it.get("gold") is not None]  # the label to explain must exist
    share = (rationale_rows(store.items_by_order(project.name, None), rationale_fraction, seed, project.task)
             if rationale_fraction < 1 else None)
    examples = demonstrations(store, project)
    short = label_only(project)
    explain = explain_label(project) if relabel is not None and project.mode != "explain-label" else None
    planned = [_plan_row(item, project, short, explain, model, examples, share) for item in items]
    if relabel == "stale":
        planned = [p for p in planned if p.item["status"] in ("unlabeled", "error") or not p.current]
        planned = planned[:limit] if limit is not None else planned
    return planned


def _planned(item: dict, request: dict, with_rationale: bool, current: bool | None = None) -> PlannedRequest:
    """A PlannedRequest whose key (the request's hash) is computed once; `current` None: the
    row's stored answer is current when it is this very request."""
    planned = PlannedRequest(item, request, with_rationale)
    planned.current = (item.get("request_hash") == planned.key) if current is None else current
    return planned


def _plan_row(item, project, short, explain, model, examples, share) -> PlannedRequest:
    """One row's request. A row in the rationale share whose stored answer came from the
    label-only prompt, with a label, gets its rationale topped up in explain-label mode (its
    label given); a row answered that way already counts as current."""
    stored = item.get("request_hash")
    if share is not None and item["row_id"] not in share:
        return _planned(item, request_for(short, item, model), False)
    request = request_for(project, item, model, examples)
    if stored is None:  # never answered (most rows of a first run): nothing to compare
        return _planned(item, request, True, current=False)
    planned = _planned(item, request, True)
    if planned.current or explain is None or not _known_label(item):
        return planned
    given = request_for(explain, {**item, "gold": _known_label(item)}, model)
    if stored == request_hash(given):
        return _planned(item, request, True, current=True)  # topped up already
    if stored == request_hash(request_for(short, item, model)):
        return _planned(item, given, True, current=False)  # answered label-only: top the rationale up
    return planned


def requests_to_send(store, project, model: str, **plan_args) -> tuple[list[PlannedRequest], int]:
    """(the distinct requests a run would send, rows the cache will answer): what a forecast
    prices. Rows that share a request are one request; cached requests are free."""
    distinct: dict[str, PlannedRequest] = {}
    rows_per_key: dict[str, int] = {}
    for p in plan_requests(store, project, model, **plan_args):
        distinct.setdefault(p.key, p)
        rows_per_key[p.key] = rows_per_key.get(p.key, 0) + 1
    cached = store.cached_keys(list(distinct))
    return [p for k, p in distinct.items() if k not in cached], sum(rows_per_key[k] for k in cached)
