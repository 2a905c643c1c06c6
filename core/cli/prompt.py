"""The prompt and what it will cost: set it, try it, forecast a run, label a pilot, cap the budget."""

from __future__ import annotations

from pathlib import Path

from core.cli.commands import command
from core.cli.flags import add_config_flags, config_from_args
from core.cli.label import add_plan_flags, summary_fields
from core.db import Store
from core.kernel.errors import AppError
from core.label.config import LabelConfig

MODE_CHOICES = ["zero-shot", "few-shot", "explain-label", "label-only"]


def prompt_flags(p) -> None:
    p.add_argument("--mode", choices=MODE_CHOICES, help="a new mode loads its preset unless --template-file is given")
    p.add_argument("--template-file", help="a file holding the template ({field} placeholders)")
    p.add_argument("--output-format", choices=["text", "json"])
    p.add_argument("--model")
    p.add_argument("--shots", type=int)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--label-words", help="true=entailment,false=contradiction ('' clears them)")


@command("prompt", "Show or change the project's prompt (saved as a new template version when it changed): mode, "
                   "template, output format, model, shots, max_tokens, label words.", prompt_flags)
def cmd_prompt(args, store: Store) -> dict:
    """Everything the Prompt page sets, scriptable: a new template version when anything changed."""
    from core.label import answers
    from core.prompt.templates import MODES, mode_template, validate_template

    project = store.get_project(args.project)
    mode = args.mode or project.mode
    if args.shots is not None and not 1 <= args.shots <= 16:
        raise AppError("--shots must be between 1 and 16.")
    if args.max_tokens is not None and not 16 <= args.max_tokens <= 4096:
        raise AppError("--max-tokens must be between 16 and 4096.")
    if args.template_file:
        if not Path(args.template_file).is_file():
            raise AppError(f"No such template file: {args.template_file}")
        template = Path(args.template_file).read_text(encoding="utf-8")
    elif args.mode and args.mode != project.mode:
        template = mode_template(project.task, project.input_fields, mode)  # the new mode's preset
    else:
        template = project.template
    if mode not in MODES:
        raise AppError(f"Unknown mode {mode!r}.")
    words = (answers.label_words_from(project, args.label_words) if args.label_words is not None
             else project.label_words)
    validate_template(template, project.input_fields, project.task, mode, words)
    settings = {k: v for k, v in {"model": args.model, "shots": args.shots, "max_tokens": args.max_tokens,
                                  "output_format": args.output_format}.items() if v is not None}
    store.update_project(args.project, template=template, mode=mode, label_words=words, **settings)
    reread = answers.reparse_answers(store, args.project) if words != project.label_words else None
    saved = store.get_project(args.project)
    return {"project": args.project, "template_version": store.template_version(args.project), "mode": saved.mode,
            "output_format": saved.output_format, "model": saved.model, "shots": saved.shots,
            "max_tokens": saved.max_tokens, "label_words": saved.label_words, "template": saved.template,
            "reread": reread}


def try_flags(p) -> None:
    p.add_argument("--rows", type=int, default=10)
    p.add_argument("--model")
    p.add_argument("--quote", action="store_true", help="only price the try; send nothing")
    p.add_argument("--override-budget", action="store_true", help="try even when P90 exceeds the remaining budget")
    p.add_argument("--replace-answers", action="store_true",
                   help="store the try's answers as the rows' teacher answers (default: the rows keep theirs)")


@command("try", "Try the saved prompt on N rows (the same rows for every try, so versions compare): priced first, "
                "recorded per template version with parse rate and accuracy.", try_flags)
def cmd_try(args, store: Store) -> dict:
    """Try the saved prompt on the project's N trial rows (the same rows every time), or only
    price the try (--quote)."""
    from core.kernel.prices import load_prices
    from core.label import trials

    prices = load_prices()
    if args.quote:
        return trials.quote_trial(store, args.project, prices, args.rows, args.model).as_dict()
    return trials.run_trial(store, args.project, prices, args.rows, args.model, override=args.override_budget,
                            replace_answers=args.replace_answers)


def estimate_flags(p) -> None:
    p.add_argument("--model")
    p.add_argument("--mode", choices=MODE_CHOICES)
    p.add_argument("--shots", type=int, help="demonstrations in few-shot mode (default: the project's, 6)")
    add_plan_flags(p)
    p.add_argument("--batch", action="store_true", help="price with the Batch API discount")
    p.add_argument("--count-tokens", action="store_true", help="calibrate with exact count_tokens on 20 rows")
    p.add_argument("--table", action="store_true", help="add the model x API x mode x fraction cost table")


@command("estimate", "Forecast tokens and dollars (P50 and P90) for the rows still unlabeled.", estimate_flags)
def cmd_estimate(args, store: Store) -> dict:
    from core.kernel.prices import load_prices
    from core.label.calls import resolve_api_key
    from core.prompt.forecast import cost_table, count_tokens_sample, forecast

    prices = load_prices()
    counted = 0
    if args.count_tokens:
        key = resolve_api_key()
        if not key:
            raise AppError("--count-tokens needs ANTHROPIC_API_KEY.")
        counted = count_tokens_sample(store, args.project, key, model=args.model)
    fc = forecast(store, args.project, prices, model=args.model, mode=args.mode, shots=args.shots,
                  rationale_fraction=args.rationale_fraction, batch=args.batch, relabel=args.relabel, seed=args.seed)
    out = {**fc.as_dict(), "count_tokens_calls": counted}
    if args.table:
        out["table"] = cost_table(store, args.project, prices)
    return out


def pilot_flags(p) -> None:
    p.add_argument("--fraction", type=float, default=0.02)
    p.add_argument("--floor", type=int, default=20)
    add_config_flags(p, LabelConfig, only=("model", "concurrency"))
    p.add_argument("--override-budget", action="store_true")


@command("pilot", "Label a stratified pilot sample, then re-forecast the rest from observed usage.", pilot_flags)
def cmd_pilot(args, store: Store) -> dict:
    from core import jobs
    from core.kernel.prices import load_prices
    from core.prompt.forecast import forecast, pilot_rows, preflight

    prices = load_prices()
    jobs.ensure_labeling_free(store, args.project)  # the lease message, before sampling and the preflight
    rows = pilot_rows(store, args.project, args.fraction, args.floor)
    preflight(store, args.project, prices, model=args.model, override=args.override_budget, n_rows=len(rows))
    cfg = config_from_args(LabelConfig, args, row_ids=rows).validate()
    job_id, summary = jobs.run_foreground(store, args.project, "label", cfg.as_job_config())
    after = forecast(store, args.project, prices, model=args.model)
    return {"job_id": job_id, "pilot": summary_fields(summary), "forecast": after.as_dict()}


def budget_flags(p) -> None:
    cap = p.add_mutually_exclusive_group()
    cap.add_argument("--usd", type=float, help="set the cap to this many dollars")
    cap.add_argument("--clear", action="store_true", help="remove the cap")


@command("budget", "Show the project's teacher budget cap; --usd sets it, --clear removes it.", budget_flags)
def cmd_budget(args, store: Store) -> dict:
    project = store.get_project(args.project)
    if args.usd is not None and args.usd < 0:
        raise AppError("A budget must be zero or more dollars.")
    if args.usd is not None or args.clear:
        store.update_project(args.project, budget_usd=args.usd)
    cap = args.usd if args.usd is not None or args.clear else project.budget_usd
    spent, reserved = store.spend(args.project), store.reserved_spend(args.project)
    return {"project": args.project, "budget_usd": cap, "spent_usd": spent, "reserved_usd": reserved,
            "changed": args.usd is not None or args.clear,
            "remaining_usd": None if cap is None else cap - spent - reserved}
