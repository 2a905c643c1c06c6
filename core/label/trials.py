"""Trying a prompt on a few rows before labeling everything: the loop an expert runs
(try, read, fix, re-ask).

- **Which rows.** `trial_rows`: the same N rows for every try of a project, a seeded sample
  stratified by gold label (random without gold) over all rows whatever their status, so two
  template versions are compared on the same rows. A larger N keeps the rows of a smaller one.
- **Price first.** `quote_trial` prices exactly the requests the try would send
  (core.prompt.planner plans them with relabel="all"; identical requests answered before come
  from the response cache, free) at P50/P90 (core.prompt.forecast), and carries check_budget's
  message when P90 exceeds what is left of the project's cap. Starting refuses then
  (BudgetExceeded) unless overridden; the spend ledger still stops the spend at the cap.
- **Run.** A try is a labeling job over those rows (relabel="all", every row asked with the
  project's saved prompt, no rationale fraction) through the teacher engine: cache, spend
  ledger, one labeling run per project. Its answers go to the response cache and the try's
  record; the rows keep the answers they had (a try of a draft prompt must not replace good
  answers with unreadable ones) unless `replace_answers` (then a reviewed row still keeps its
  reviewer's label). A later labeling run with the same prompt gets the try's answers free. `start_trial` starts it as a
  background job (the app: the job gets the key in its environment only, and `core cancel`
  never signals the app's own process); `run_trial` runs it in this process (the CLI).
- **Record.** Each try is a row of `prompt_trials`, per template version, with a row per
  asked row in `prompt_trial_rows`; `finish_trials` fills them in once the job has ended,
  from the job's calls and the cached raw answers, parsed as the engine parses them.
- **Read.** `trial_summary` (parse rate, accuracy against gold, cost), `trial_table` (inputs,
  raw answer, parsed label, rationale, flag, gold) and `compare_trials` (two tries on their
  common rows, and the rows where their labels differ).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace

from core import jobs

from core.jobs import processes
from core.kernel.errors import BudgetExceeded, ConfigError, NotFound
from core.prompt.forecast import Forecast, check_budget, price_forecast, token_profile
from core.label.parsing import parse_response
from core.kernel.prices import PriceTable
from core.kernel.sampling import exactly_n, seeded_rank
from core.prompt.templates import validate_template
from core.prompt.planner import requests_to_send
from core.kernel.tasks import format_choices, get_task
from core.label.config import LabelConfig
from core.label.calls import resolve_api_key, response_text

DEFAULT_ROWS = 10
MAX_ROWS = 200
SEED = 0


# ---- which rows -----------------------------------------------------------------------
def trial_rows(store, project: str, n: int = DEFAULT_ROWS, seed: int = SEED) -> list[str]:
    """Exactly min(n, rows) row ids, the same for every try: `Store.stratified_sample` over all
    rows, topped up or cut to n (core.kernel.sampling.exactly_n)."""
    total = store.count_items(project)["total"]
    n = max(0, min(int(n), total))
    if n == 0:
        return []
    return exactly_n(lambda m: store.stratified_sample(project, m, seed, unlabeled_only=False), n, total,
                     lambda row_id: seeded_rank(seed, row_id, salt="trial:"))


# ---- price first ------------------------------------------------------------------------
@dataclass
class TrialQuote:
    """What a try of the project's prompt on `row_ids` sends and costs."""
    project: str
    model: str
    row_ids: list[str]
    requests: int              # distinct requests the try sends (billed)
    cache_hits: int            # rows the response cache answers (free)
    forecast: Forecast         # those requests at P50/P90, with the project's spend and cap
    over_budget: str | None    # check_budget's message: P90 exceeds what is left of the cap

    def as_dict(self) -> dict:
        return asdict(self)


def quote_trial(store, project: str, prices: PriceTable, n: int = DEFAULT_ROWS, model: str | None = None,
                draft=None, row_ids: list[str] | None = None) -> TrialQuote:
    """Price a try before it is sent. `draft`: a Project with unsaved prompt settings (the page's
    editor) to price instead of the saved ones; the try itself always runs the saved prompt."""
    proj = draft or store.get_project(project)
    model = model or proj.model
    if not model:
        raise ConfigError("Choose a teacher model.")
    if not proj.template:
        raise ConfigError("The project has no prompt template yet; write or load one first.")
    validate_template(proj.template, proj.input_fields, proj.task, proj.mode, proj.label_words)
    rows = trial_rows(store, project, n) if row_ids is None else list(row_ids)
    plan, cache_hits = requests_to_send(store, proj, model, row_ids=rows, relabel="all")
    profile = token_profile(store, project, proj.mode, 1.0, model, plan=plan)
    fc = replace(price_forecast(profile, model, prices, False, store.spend(project), proj.budget_usd),
                 cache_hits=cache_hits, relabel="all")
    return TrialQuote(project=project, model=model, row_ids=rows, requests=len(plan), cache_hits=cache_hits,
                      forecast=fc, over_budget=check_budget(fc) if plan else None)


def _checked_quote(store, project: str, prices: PriceTable, n: int, model: str | None, override: bool,
                   api_key: str | None) -> TrialQuote:
    jobs.ensure_labeling_free(store, project)  # a try is a labeling run: one at a time per project
    quote = quote_trial(store, project, prices, n, model)
    if not quote.row_ids:
        raise ConfigError("The project has no rows to try the prompt on.")
    if quote.requests:
        if quote.forecast.cost_usd_p50 is None:
            raise ConfigError(f"Model {quote.model!r} has no price in the price file, so the try's cost cannot be "
                              "tracked. Add it to data/prices.toml (or on the Prompt & budget page) first.")
        if not resolve_api_key(api_key):
            raise ConfigError(f"The try sends {quote.requests} requests to the teacher, but no API key is set. "
                              "Set ANTHROPIC_API_KEY in the environment or in Streamlit secrets.")
    if quote.over_budget and not override:
        raise BudgetExceeded(quote.over_budget)
    return quote


def _job_config(quote: TrialQuote, replace_answers: bool = False) -> dict:
    cfg = LabelConfig(quote.project, model=quote.model, row_ids=quote.row_ids, relabel="all",
                      store_answers=replace_answers)
    return cfg.validate().as_job_config()


def _create(store, quote: TrialQuote, job_id: str) -> int:
    version = store.template_version(quote.project)
    project = store.get_project(quote.project)
    return store.create_trial(quote.project, template_version=version, mode=project.mode,
                              output_format=project.output_format, model=quote.model, row_ids=quote.row_ids,
                              job_id=job_id)


# ---- run --------------------------------------------------------------------------------
def start_trial(store, project: str, prices: PriceTable, n: int = DEFAULT_ROWS, model: str | None = None,
                env: dict | None = None, override: bool = False, replace_answers: bool = False) -> int:
    """Start a try as a background labeling job; returns the try's id (`wait_trial` follows it).
    `env` carries the API key to the job's process only. Refuses (BudgetExceeded) when the
    try's P90 exceeds what is left of the cap, unless `override`; LabelingBusy while another
    labeling run of the project is alive."""
    quote = _checked_quote(store, project, prices, n, model, override, (env or {}).get("ANTHROPIC_API_KEY"))
    job_id = jobs.start_job(store, project, "label", _job_config(quote, replace_answers), env=env)
    return _create(store, quote, job_id)


def run_trial(store, project: str, prices: PriceTable, n: int = DEFAULT_ROWS, model: str | None = None,
              override: bool = False, on_progress=None, replace_answers: bool = False) -> dict:
    """Try the project's saved prompt on its N trial rows in this process (the CLI) and return
    the try's summary (`trial_summary`). The run is a job like `core label`'s foreground runs:
    `core cancel` reaches it, and the try is recorded however it ended."""
    quote = _checked_quote(store, project, prices, n, model, override, None)
    job_id = jobs.create_job(store, project, "label", _job_config(quote, replace_answers), lease=True,
                             **processes.identity(os.getpid()))
    trial_id = _create(store, quote, job_id)
    try:
        jobs.run_job(store, job_id, on_progress)
    finally:
        finish_trials(store, project)
    return trial_summary(store.get_trial(trial_id))


def wait_trial(store, trial_id: int, timeout_s: float = 120.0, poll_s: float = 0.5) -> dict:
    """The try once its job has ended and it is recorded, or as it stands after timeout_s
    (status still 'running': it is recorded by a later `finish_trials`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        trial = store.get_trial(trial_id)
        if trial["status"] == "running":
            finish_trials(store, trial["project"])
            trial = store.get_trial(trial_id)
        if trial["status"] != "running" or time.monotonic() >= deadline:
            return trial
        time.sleep(poll_s)


# ---- record -----------------------------------------------------------------------------
def finish_trials(store, project: str) -> list[int]:
    """Record every try of the project whose job has ended (cheap when none is open); returns
    their ids. A job whose process died shows as failed (jobs.refresh) and its try with it."""
    done = []
    for trial in store.open_trials(project):
        try:
            status = jobs.refresh(store, store.get_job(trial["job_id"]))["status"] if trial["job_id"] else "failed"
        except NotFound:
            status = "failed"
        if status in jobs.ACTIVE:
            continue
        _record(store, trial, status)
        done.append(trial["id"])
    return done


def _record(store, trial: dict, status: str) -> None:
    project = store.get_project(trial["project"])
    kind = get_task(project.task)
    calls = {c["row_id"]: c for c in store.trial_calls(trial["job_id"])} if trial["job_id"] else {}
    items = {it["row_id"]: it for it in store.get_items(project.name, trial["row_ids"])}
    rows: list[dict] = []
    totals = dict.fromkeys(("answered", "parsed", "correct", "with_gold", "output_tokens", "cache_hits"), 0)
    totals["cost_usd"] = 0.0
    for row_id in trial["row_ids"]:
        item = items.get(row_id)
        if item is None:  # the row is gone from the project
            continue
        call = calls.get(row_id)
        row = {"row_id": row_id, "request_hash": None, "label": None, "rationale": None, "flag": None,
               "correct": None, "output_tokens": None, "billed_usd": 0.0, "error": None}
        if call is None:
            row["error"] = ("not sent: explain-label asks only rows with a gold label"
                            if project.mode == "explain-label" and item["gold"] is None else
                            "not sent" + ("" if status == "completed" else f" (the try was {status})"))
        else:
            row.update(request_hash=call["request_hash"], billed_usd=float(call["billed_usd"] or 0.0))
            totals["cost_usd"] += row["billed_usd"]
            if call["error_type"] or call["response"] is None:
                row["error"] = f"{call['error_type'] or 'no answer'}: {call['error_message'] or ''}".rstrip(": ")
            else:
                response = json.loads(call["response"])
                parsed = parse_response(response_text(response), project.task, item.get("choices"),
                                        project.label_set, response.get("stop_reason"),
                                        label_words=project.label_words)
                row.update(label=parsed.label, rationale=parsed.rationale, flag=parsed.flag,
                           output_tokens=call["output_tokens"])
                totals["answered"] += 1
                totals["parsed"] += parsed.ok
                totals["output_tokens"] += call["output_tokens"] or 0
                totals["cache_hits"] += bool(call["cached"])
                if item["gold"] is not None:
                    row["correct"] = kind.labels_equal(parsed.label, item["gold"])
                    totals["with_gold"] += 1
                    totals["correct"] += row["correct"]
        rows.append(row)
    store.finish_trial(trial["id"], status, totals, rows, _version_run(store, trial, calls))


def _version_run(store, trial: dict, calls: dict) -> dict | None:
    """The template version the job ran with, when it is not the one recorded at the start
    (the prompt was saved again between the start and the job's first request)."""
    ran = {c["template_version"] for c in calls.values() if c["template_version"] is not None}
    if len(ran) != 1 or ran == {trial["template_version"]}:
        return None
    version = ran.pop()
    found = next((v for v in store.template_versions(trial["project"]) if v["version"] == version), None)
    if found is None:
        return None
    return {"template_version": version, "mode": found["mode"], "output_format": found["output_format"]}


# ---- read -------------------------------------------------------------------------------
def _share(part, whole) -> float | None:
    return part / whole if whole else None


def trial_summary(trial: dict) -> dict:
    """A try with its rates: parse_rate (parsed of answered), accuracy (right of answered rows
    with gold; an unparsed answer counts as wrong), mean output tokens per answer."""
    return {**{k: v for k, v in trial.items() if k != "row_ids"},
            "parse_rate": _share(trial["parsed"], trial["answered"]),
            "accuracy": _share(trial["correct"], trial["with_gold"]),
            "mean_output_tokens": _share(trial["output_tokens"], trial["answered"])}


def summary_line(trial: dict) -> str:
    """One sentence on a try (plain text: the caller escapes it where Markdown renders)."""
    s = trial_summary(trial)
    head = (f"Try #{s['id']}: template v{s['template_version']} ({s['mode']}, {s['output_format']}), "
            f"{s['model']}, {s['rows']} rows")
    if s["status"] == "running":
        return head + ": running."
    parts = [f"parsed {s['parsed']} of {s['answered']} answers"
             + (f" ({s['parse_rate']:.0%})" if s["parse_rate"] is not None else "")]
    if s["with_gold"]:
        parts.append(f"{s['correct']} of {s['with_gold']} right against gold ({s['accuracy']:.0%})")
    cached = f", {s['cache_hits']} from the cache" if s["cache_hits"] else ""
    parts.append(f"billed ${s['cost_usd'] or 0:.4f}{cached}")
    if s["answered"] < s["rows"]:
        missing = s["rows"] - s["answered"]
        parts.append(f"{missing} row{'' if missing == 1 else 's'} without an answer")
    if s["status"] != "completed":
        parts.append(f"the try was {s['status']}")
    return head + ": " + "; ".join(parts) + "."


def raw_answer(row: dict) -> str:
    """The teacher's text for a try's row (JSON text in JSON mode), or why there is none."""
    if row.get("response"):
        return response_text(json.loads(row["response"]))
    return row.get("error") or ""


_OWN_COLUMNS = ("row", "choices", "raw answer", "label", "rationale", "flag", "gold", "correct")


def _input_columns(project, row: dict) -> dict:
    out = {}
    for f in project.input_fields:
        out[f"input: {f}" if f in _OWN_COLUMNS else f] = str(row["inputs"].get(f, ""))
    if get_task(project.task).needs_choices:
        out["choices"] = format_choices(row["choices"]) if row.get("choices") else ""
    return out


def trial_table(store, trial_id: int) -> list[dict]:
    """A try side by side, one dict per row: what it decided first (the parsed label, the gold
    label, whether they agree, the flag and the raw answer: in view without scrolling), then
    the rationale and the row's inputs (every input field)."""
    trial = store.get_trial(trial_id)
    project = store.get_project(trial["project"])
    return [{"row": r["row_id"], "label": r["label"], "gold": r["gold"], "correct": r["correct"],
             "flag": r["flag"] or r["error"], "raw answer": raw_answer(r), "rationale": r["rationale"],
             **_input_columns(project, r)}
            for r in store.trial_row_results(trial_id)]


def _label_cell(row: dict) -> str:
    if row["label"] is not None and row["flag"] is None:
        return row["label"]
    return f"({row['flag'] or row['error'] or 'no label'}{': ' + row['label'] if row['label'] else ''})"


def compare_trials(store, first: int, second: int) -> dict:
    """Two tries on the rows both asked: `tries` (one dict per try: version, parse rate,
    accuracy, mean output tokens, cost, over those common rows), `differ` (the common rows both
    tries read a label for, and the labels differ), `read_once` (rows only one try read a label
    for: an unread answer is no label, not a different one), each with both answers and the gold
    label, and `common` (how many rows both asked)."""
    a, b = store.get_trial(first), store.get_trial(second)
    if a["project"] != b["project"]:
        raise ConfigError("Only tries of the same project can be compared.")
    project = store.get_project(a["project"])
    kind = get_task(project.task)
    ra = {r["row_id"]: r for r in store.trial_row_results(first)}
    rb = {r["row_id"]: r for r in store.trial_row_results(second)}
    common = [rid for rid in ra if rid in rb]

    def measures(trial: dict, rows: dict) -> dict:
        mine = [rows[rid] for rid in common]
        answered = [r for r in mine if r["error"] is None]
        gold = [r for r in answered if r["gold"] is not None]
        tokens = [r["output_tokens"] or 0 for r in answered]
        return {"try": f"#{trial['id']}", "template version": trial["template_version"], "mode": trial["mode"],
                "output": trial["output_format"], "model": trial["model"], "rows": len(mine),
                "parse rate": _share(sum(r["flag"] is None for r in answered), len(answered)),
                "accuracy": _share(sum(bool(r["correct"]) for r in gold), len(gold)),
                "mean output tokens": _share(sum(tokens), len(tokens)),
                "cost usd": sum(r["billed_usd"] or 0.0 for r in mine)}

    def read(r: dict) -> bool:
        return r["flag"] is None and r["error"] is None and r["label"] is not None

    differ, read_once = [], []
    for rid in common:
        x, y = ra[rid], rb[rid]
        if read(x) and read(y) and kind.labels_equal(x["label"], y["label"]) or not (read(x) or read(y)):
            continue
        row = {"row": rid, **_input_columns(project, x), f"label #{a['id']}": _label_cell(x),
               f"label #{b['id']}": _label_cell(y), f"rationale #{a['id']}": x["rationale"],
               f"rationale #{b['id']}": y["rationale"], "gold": x["gold"]}
        (differ if read(x) and read(y) else read_once).append(row)
    return {"tries": [measures(a, ra), measures(b, rb)], "differ": differ, "read_once": read_once,
            "common": len(common)}
