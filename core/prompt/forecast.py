"""The cost forecast a user can act on: P50 and P90 dollars for labeling the rows still
unlabeled, with the assumptions behind them.

Input tokens per row come from the offline estimator (core.prompt.tokens) on a sample of real
rows, calibrated by the best evidence available:
  1. observed usage of billed calls (a pilot run), compared with the offline estimate of
     the very same requests;
  2. exact `count_tokens` results on a sample (cached in DuckDB);
  3. nothing: then the tokenizer is uncertain by ±12% (1 sd) and P90 says so.
Output tokens per row are the preset's expected answer length until real calls exist,
then the observed mean. P50 assumes flagged rows are not relabeled; P90 adds the upper
sampling error and relabeling of the observed parse-failure share.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import asdict, dataclass, field

from core.prompt.tokens import request_tokens
from core.db import Store
from core.kernel.hashing import request_hash
from core.kernel.prices import PriceTable
from core.kernel.sampling import at_least_n
from core.prompt.templates import (
    MODES,
    demonstrations,
    expected_output_tokens,
    mode_template,
    request_for,
    validate_template,
)

Z90 = 1.2816  # one-sided 90% normal quantile
OFFLINE_TOKENIZER_SD = 0.12  # relative error of the offline estimator against Claude's tokenizer
PRESET_OUTPUT_SD = 0.30      # relative error of a preset's expected answer length
SAMPLE_ROWS = 200


@dataclass
class TokenProfile:
    """Per-row token expectations for one prompt mode and rationale fraction (model-independent)."""
    mode: str
    rationale_fraction: float
    rows: int                       # rows left to label
    input_per_row: float
    output_per_row: float
    input_se_total: float           # standard error of the input total, tokens
    output_se_total: float
    input_source: str               # observed | count_tokens | offline
    output_source: str              # observed | preset
    calibration: float              # exact / offline token ratio applied
    parse_failure_rate: float | None
    retry_rate: float | None
    sample_rows: int


@dataclass
class Forecast:
    model: str
    mode: str
    batch: bool
    rationale_fraction: float
    rows: int
    input_tokens_per_row: float
    output_tokens_per_row: float
    input_tokens_p50: int
    output_tokens_p50: int
    input_tokens_p90: int
    output_tokens_p90: int
    cost_usd_p50: float | None
    cost_usd_p90: float | None
    price_known: bool
    input_source: str
    output_source: str
    parse_failure_rate: float | None
    retry_rate: float | None
    spent_usd: float
    budget_usd: float | None
    remaining_usd: float | None
    assumptions: list[str] = field(default_factory=list)
    cache_hits: int = 0             # due rows the response cache answers (free)
    relabel: str | None = None      # which answered rows are re-sent (core.prompt.planner.RELABEL)

    def as_dict(self) -> dict:
        return asdict(self)


def _template_for(project, mode: str) -> str:
    return project.template if mode == project.mode else mode_template(project.task, project.input_fields, mode)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def token_profile(store: Store, project_name: str, mode: str | None = None, rationale_fraction: float = 1.0,
                  model: str | None = None, shots: int | None = None, memo: dict | None = None,
                  plan: list | None = None, relabel: str | None = None) -> TokenProfile:
    """`memo` lets several profiles of one project (the cost table) share the sample, the
    offline token counts per mode and the observed usage instead of recomputing them.
    `plan` (core.prompt.planner.requests_to_send) prices exactly the requests a run would send:
    their count, their own input tokens, and their real split into rationale and label-only."""
    memo = {} if memo is None else memo

    def once(key, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    project = store.get_project(project_name)
    if shots is not None:
        project = _with(project, shots=shots, demo_rows=None)
    mode = mode or project.mode
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    model = model or project.model
    to_label = once("to_label", lambda: store.count_to_label(project_name))
    sample = once("sample", lambda: store.sample_items(project_name, SAMPLE_ROWS, unlabeled_only=True))
    if mode == "explain-label":
        sample = [it for it in sample if it.get("gold") is not None]

    def offline(which: str) -> tuple[list[float], list[dict]]:
        proj = _with(project, template=_template_for(project, which), mode=which)
        validate_template(proj.template, proj.input_fields, proj.task, which, proj.label_words)
        examples = demonstrations(store, proj)
        requests = [request_for(proj, it, model, examples) for it in sample]
        return [float(request_tokens(r)) for r in requests], requests

    gold_only = mode == "explain-label"  # its sample differs, so its entries must not be shared
    if plan is not None:
        to_label = len(plan)
        picked = random.Random(0).sample(plan, min(SAMPLE_ROWS, len(plan)))
        full_requests = [p.request for p in picked if p.with_rationale]
        per_row = [float(request_tokens(p.request)) for p in picked]
        rationale_fraction = sum(p.with_rationale for p in plan) / len(plan) if plan else rationale_fraction
    else:
        full, full_requests = once(("offline", mode, gold_only), lambda: offline(mode))
        label_only = (once(("offline", "label-only", gold_only), lambda: offline("label-only"))[0]
                      if rationale_fraction < 1 else full)
        per_row = [rationale_fraction * a + (1 - rationale_fraction) * b for a, b in zip(full, label_only)]
    mean_in, sd_in = _mean_sd(per_row)

    # --- calibrate input tokens: observed usage > count_tokens > none
    observed = once("observed", lambda: store.observed_usage(project_name))
    pairs, source, cal_se = [], "offline", OFFLINE_TOKENIZER_SD
    if len(observed) >= 5:
        pairs = once("observed_pairs", lambda: [
            (float(est), float(o["input_tokens"])) for o in observed
            if o["input_tokens"] and (est := request_tokens(json.loads(o["request"])))])
        source = "observed"
    else:
        counted = store.token_counts([request_hash(r) for r in full_requests])
        if counted:
            pairs = [(float(o), float(n)) for n, o in counted.values() if o]
            source = "count_tokens"
    calibration = 1.0
    if pairs and mean_in:
        calibration, cal_se = _calibrate(pairs, mean_in)
    n = max(1, len(per_row))
    fpc = math.sqrt(max(0.0, 1 - n / to_label)) if to_label else 0.0
    input_total = to_label * mean_in * calibration
    input_se = math.hypot(to_label * sd_in * calibration / math.sqrt(n) * fpc, input_total * cal_se)

    # --- output tokens: observed mean (for this mode's answers) or the preset's length
    # (label-only answers, from the rows outside a rationale share, are observed apart: they are short)
    # re-asking failed rows replaces unparsed answers: their length says little about the new ones
    answered = [o for o in observed if o["status"] != "flagged"] if relabel == "failed" else observed
    full_outs, short_outs = _observed_outputs(answered, project)
    expected_full = expected_output_tokens(project.task)
    expected_label = expected_output_tokens(project.task, label_only=True)
    if len(full_outs) >= 5 and mode == project.mode:
        mean_out_full, sd_out = _mean_sd(full_outs)
        mean_short, sd_short = _mean_sd(short_outs) if len(short_outs) >= 5 else (
            mean_out_full * expected_label / expected_full, sd_out * expected_label / expected_full)
        out_source = "observed"
        mean_out = rationale_fraction * mean_out_full + (1 - rationale_fraction) * mean_short
        sd_mix = rationale_fraction * sd_out + (1 - rationale_fraction) * sd_short
        output_total = to_label * mean_out
        n_obs = len(full_outs) + len(short_outs)
        output_se = math.hypot(to_label * sd_mix / math.sqrt(n_obs), math.sqrt(to_label) * sd_mix)
    else:
        mean_out = rationale_fraction * expected_full + (1 - rationale_fraction) * expected_label
        mean_out = min(mean_out, project.max_tokens)
        out_source = "preset"
        output_total = to_label * mean_out
        output_se = output_total * PRESET_OUTPUT_SD

    flagged = sum(1 for o in observed if o["status"] == "flagged")
    outcomes = once("outcomes", lambda: store.call_outcomes(project_name))
    calls = outcomes["ok"] + outcomes["failed"]
    return TokenProfile(
        mode=mode, rationale_fraction=rationale_fraction, rows=to_label,
        input_per_row=mean_in * calibration, output_per_row=mean_out,
        input_se_total=input_se, output_se_total=output_se, input_source=source, output_source=out_source,
        calibration=calibration, parse_failure_rate=(flagged / len(observed)) if observed else None,
        retry_rate=(outcomes["retries"] / calls) if calls else None, sample_rows=len(per_row),
    )


def _calibrate(pairs: list[tuple[float, float]], mean_in: float) -> tuple[float, float]:
    """(exact / offline ratio at `mean_in` offline tokens, its relative standard error), from
    (offline, exact) pairs fitted as exact = a + b * offline. The intercept is the per-request
    overhead a plain ratio would spread wrongly over short and long prompts (label-only and
    full prompts in one run)."""
    n = len(pairs)
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    b = sum((x - mx) * (y - my) for x, y in pairs) / sxx if sxx > 1e-9 and n >= 3 else my / mx
    a = my - b * mx if sxx > 1e-9 and n >= 3 else 0.0
    predicted = a + b * mean_in
    if predicted <= 0:  # a fit that extrapolates below zero: fall back to the plain ratio
        a, b, predicted = 0.0, my / mx, my / mx * mean_in
    residual = math.sqrt(sum((y - a - b * x) ** 2 for x, y in pairs) / max(1, n - 2))
    se = residual * math.sqrt(1 / n + ((mean_in - mx) ** 2 / sxx if sxx > 1e-9 else 0))
    return predicted / mean_in, (se / predicted if n > 1 else 0.05)


def _observed_outputs(observed: list[dict], project) -> tuple[list[float], list[float]]:
    """Output tokens of observed answers: (to the project's prompt, to the label-only prompt).
    A label-only request is told apart by its smaller max_tokens."""
    from core.prompt.planner import label_only

    short_max = label_only(project).max_tokens
    full, short = [], []
    for o in observed:
        if o["output_tokens"] is None:
            continue
        is_short = short_max < project.max_tokens and json.loads(o["request"]).get("max_tokens") == short_max
        (short if is_short else full).append(float(o["output_tokens"]))
    return full, short


def _with(project, **changes):
    from dataclasses import replace

    return replace(project, **changes)


def price_forecast(profile: TokenProfile, model: str, prices: PriceTable, batch: bool = False,
                   spent: float = 0.0, budget: float | None = None) -> Forecast:
    rows = profile.rows
    in50, out50 = profile.input_per_row * rows, profile.output_per_row * rows
    in90, out90 = in50 + Z90 * profile.input_se_total, out50 + Z90 * profile.output_se_total
    relabel = 1 + (profile.parse_failure_rate or 0.0)
    p50 = prices.cost(model, round(in50), round(out50), batch=batch)
    p90 = prices.cost(model, round(in90 * relabel), round(out90 * relabel), batch=batch)
    price = prices.get(model)
    assumptions = [
        {"observed": f"input tokens calibrated on {profile.sample_rows} sampled rows by the usage of billed pilot "
                     f"calls (x{profile.calibration:.3f} the offline estimate)",
         "count_tokens": f"input tokens calibrated by exact count_tokens results (x{profile.calibration:.3f})",
         "offline": f"input tokens from the offline estimator on {profile.sample_rows} sampled rows; "
                    f"its error against Claude's tokenizer is taken as ±{OFFLINE_TOKENIZER_SD:.0%} (1 sd)"}[profile.input_source],
        ("output tokens: observed mean of billed calls" if profile.output_source == "observed" else
         f"output tokens: the preset's expected answer length, ±{PRESET_OUTPUT_SD:.0%}"),
        f"{profile.rationale_fraction:.0%} of rows get a rationale prompt; the rest a label-only prompt",
        "Batch API prices (50% off)" if batch else "realtime API prices",
        "retries of 429/529/500 answers are not billed; rows served from the cache are free",
        (f"P90 includes relabeling the {profile.parse_failure_rate:.1%} of answers that failed to parse"
         if profile.parse_failure_rate else "P90 is the upper 90% bound of the token uncertainty"),
    ]
    if price is None:
        assumptions.append(f"{model} has no price in the price file: cost unknown, never $0")
    elif not price.confirmed:
        assumptions.append(f"the price of {model} is marked unconfirmed in the price file")
    return Forecast(
        model=model, mode=profile.mode, batch=batch, rationale_fraction=profile.rationale_fraction, rows=rows,
        input_tokens_per_row=round(profile.input_per_row, 1), output_tokens_per_row=round(profile.output_per_row, 1),
        input_tokens_p50=round(in50), output_tokens_p50=round(out50), input_tokens_p90=round(in90),
        output_tokens_p90=round(out90), cost_usd_p50=p50, cost_usd_p90=p90, price_known=p50 is not None,
        input_source=profile.input_source, output_source=profile.output_source,
        parse_failure_rate=profile.parse_failure_rate, retry_rate=profile.retry_rate,
        spent_usd=spent, budget_usd=budget, remaining_usd=(budget - spent) if budget is not None else None,
        assumptions=assumptions,
    )


def forecast(store: Store, project: str, prices: PriceTable, model: str | None = None, mode: str | None = None,
             rationale_fraction: float = 1.0, batch: bool = False, shots: int | None = None,
             relabel: str | None = None, seed: int = 0, row_ids: list[str] | None = None,
             template: str | None = None) -> Forecast:
    """The bill of the run `label` would start with these settings: the requests it would send
    (the rows due, minus those the cache answers), priced at P50 and P90. `row_ids` limits the
    run to those rows; `template` prices a prompt not saved yet (an amendment)."""
    from dataclasses import replace

    from core.prompt.planner import requests_to_send

    proj = store.get_project(project)
    model = model or proj.model
    planned = _with(proj, template=_template_for(proj, mode), mode=mode) if mode and mode != proj.mode else proj
    if shots is not None:
        planned = _with(planned, shots=shots, demo_rows=None)
    if template is not None:
        planned = _with(planned, template=template)
    plan, cache_hits = requests_to_send(store, planned, model, relabel=relabel, rationale_fraction=rationale_fraction,
                                        seed=seed, row_ids=row_ids)
    profile = token_profile(store, project, mode, rationale_fraction, model, shots, plan=plan, relabel=relabel)
    fc = price_forecast(profile, model, prices, batch, store.spend(project), proj.budget_usd)
    return replace(fc, cache_hits=cache_hits, relabel=relabel)


def cost_table(store: Store, project: str, prices: PriceTable, fractions=(0.0, 0.5, 1.0)) -> list[dict]:
    """Every priced model x realtime/batch x zero-shot/few-shot x rationale fraction, P50 and P90,
    with the saving of zero-shot over few-shot."""
    memo: dict = {}
    profiles = {(m, f): token_profile(store, project, m, f, memo=memo) for m in ("zero-shot", "few-shot")
                for f in fractions}
    rows = []
    for model in sorted(prices.models):
        for batch in (False, True):
            for f in fractions:
                zero = price_forecast(profiles[("zero-shot", f)], model, prices, batch)
                few = price_forecast(profiles[("few-shot", f)], model, prices, batch)
                saving = few.cost_usd_p50 - zero.cost_usd_p50
                rows.append({
                    "model": model, "api": "batch" if batch else "realtime", "rationale_fraction": f,
                    "zero_shot_p50": zero.cost_usd_p50, "zero_shot_p90": zero.cost_usd_p90,
                    "few_shot_p50": few.cost_usd_p50, "few_shot_p90": few.cost_usd_p90,
                    "saving_usd": saving, "saving_pct": 100 * saving / few.cost_usd_p50 if few.cost_usd_p50 else None,
                })
    return rows


def count_tokens_sample(store: Store, project: str, api_key: str, base_url: str | None = None, n: int = 20,
                        model: str | None = None) -> int:
    """Exact input counts for n sampled requests through the API's count_tokens (free);
    results are cached in DuckDB and replace the offline estimate's calibration."""
    import anthropic

    proj = store.get_project(project)
    model = model or proj.model
    examples = demonstrations(store, proj)
    requests = [request_for(proj, it, model, examples) for it in store.sample_items(project, n, unlabeled_only=False)]
    known = store.token_counts([request_hash(r) for r in requests])  # one query for the whole sample
    todo = list({h: r for r in requests if (h := request_hash(r)) not in known}.items())  # each request once
    if not todo:  # a repeat click: everything sampled is counted already, nothing to call or save
        return 0
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url)
    counts = []
    try:
        for h, req in todo:
            body = {k: v for k, v in req.items() if k != "max_tokens"}
            counts.append((h, client.messages.count_tokens(**body).input_tokens, request_tokens(req)))
    finally:
        client.close()
    store.save_token_counts(model, counts)
    return len(counts)


def pilot_rows(store: Store, project: str, fraction: float = 0.02, floor: int = 20) -> list[str]:
    """A stratified sample of the unlabeled rows: fraction of them, at least `floor` (all of
    them when there are fewer), topped up where the strata round down (core.kernel.sampling.at_least_n)."""
    to_label = store.count_to_label(project)
    n = min(to_label, max(floor, math.ceil(fraction * to_label)))
    return at_least_n(lambda m: store.stratified_sample(project, m), n, to_label)


def forecast_fingerprint(store: Store, project: str) -> tuple:
    """Everything a forecast depends on that can change between two page reruns, read in one
    query: the project's settings, its rows (every write bumps a row's version), the cache and
    the token counts (what is free, what is counted), spend and reservations, the price file.
    Equal fingerprints give equal forecasts, so a page can keep one instead of planning every
    row's request again on each rerun (seconds for 20,000 rows)."""
    from core.kernel.prices import prices_path

    counts = store.change_counts(project)
    path = prices_path()
    return (repr(store.get_project(project)), tuple(counts.values()), store.spend(project),
            store.reserved_spend(project), path.stat().st_mtime_ns if path.exists() else None)


def preflight(store: Store, project: str, prices: PriceTable, model: str | None = None, batch: bool = False,
              override: bool = False, n_rows: int | None = None, relabel: str | None = None,
              rationale_fraction: float = 1.0, seed: int = 0, row_ids: list[str] | None = None) -> Forecast:
    """Refuse (BudgetExceeded) to start labeling when P90 does not fit the remaining budget."""
    from core.kernel.errors import BudgetExceeded

    fc = forecast(store, project, prices, model=model, batch=batch, relabel=relabel,
                  rationale_fraction=rationale_fraction, seed=seed, row_ids=row_ids)
    if n_rows is not None and fc.rows:
        fc = _scaled(fc, min(1.0, n_rows / fc.rows))
    refusal = check_budget(fc, override)
    if refusal:
        raise BudgetExceeded(refusal)
    return fc


def _scaled(fc: Forecast, share: float) -> Forecast:
    from dataclasses import replace

    return replace(fc, rows=round(fc.rows * share),
                   cost_usd_p50=fc.cost_usd_p50 * share if fc.cost_usd_p50 is not None else None,
                   cost_usd_p90=fc.cost_usd_p90 * share if fc.cost_usd_p90 is not None else None)


def check_budget(fc: Forecast, override: bool = False) -> str | None:
    """A refusal message when the P90 forecast does not fit the project's remaining budget."""
    if fc.remaining_usd is None or override:
        return None
    if fc.cost_usd_p90 is None:
        return f"{fc.model} has no price, so the run cannot be checked against the budget."
    if fc.cost_usd_p90 > fc.remaining_usd:
        return (f"The P90 forecast (${fc.cost_usd_p90:.4f}) exceeds the remaining budget "
                f"(${fc.remaining_usd:.4f} of ${fc.budget_usd:.2f}). Raise the budget, label fewer rows, or override.")
    return None
