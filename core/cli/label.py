"""Teacher labels: run the teacher, import its answers from elsewhere, set the label words."""

from __future__ import annotations

import sys

from core.cli.commands import command
from core.cli.flags import add_config_flags, config_from_args
from core.db import Store
from core.kernel.errors import AppError
from core.label.config import LabelConfig, LabelSummary
from core.prompt.planner import RELABEL

# Which rows a run sends and with which prompt: `label` and `estimate` share these.
PLAN_FIELDS = ("relabel", "rationale_fraction", "seed")


# The relabel choices live in core.prompt.planner; the CLI adds them to the flag.
RELABEL_CHOICES = {"relabel": {"choices": RELABEL}}


def add_plan_flags(p) -> None:
    add_config_flags(p, LabelConfig, only=PLAN_FIELDS, overrides=RELABEL_CHOICES)


def summary_fields(result: dict) -> dict:
    """A labeling job's result as the CLI has always printed it (LabelSummary's fields), plus its status."""
    return {k: v for k, v in result.items()
            if k in LabelSummary.__dataclass_fields__ or k in ("status", "stop_reason", "parse_failure_share")}


def label_flags(p) -> None:
    add_config_flags(p, LabelConfig, overrides=RELABEL_CHOICES)  # every LabelConfig field a person sets
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    p.add_argument("--override-budget", action="store_true",
                   help="start even when the P90 forecast exceeds the remaining project budget")


@command("label", "Run the teacher over unlabeled rows (cached, retried, errors recorded per row).", label_flags)
def cmd_label(args, store: Store) -> dict:
    from core import jobs
    from core.kernel.prices import load_prices
    from core.prompt.forecast import preflight

    store.get_project(args.project)
    jobs.ensure_labeling_free(store, args.project)  # the lease message, before the preflight's
    cfg = config_from_args(LabelConfig, args).validate()
    preflight(store, args.project, load_prices(), model=cfg.model, batch=cfg.batch, override=args.override_budget,
              n_rows=cfg.limit, relabel=cfg.relabel, rationale_fraction=cfg.rationale_fraction, seed=cfg.seed)
    bar = None
    if not args.json and sys.stderr.isatty() or args.progress:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="row", file=sys.stderr)

    def on_progress(p: dict) -> None:
        if bar is not None:
            bar.total = p["total"]
            bar.n = p["done"]
            bar.set_postfix(cost=f"${p['cost_usd']:.4f}", errors=p["errors"])
            bar.refresh()

    try:
        job_id, result = jobs.run_foreground(store, args.project, "label", cfg.as_job_config(), on_progress)
    finally:
        if bar is not None:
            bar.close()
    return {"job_id": job_id, **summary_fields(result)}


def import_teacher_flags(p) -> None:
    p.add_argument("--split", help="align list files with the rows of this split")
    p.add_argument("--id-field", default="id")
    p.add_argument("--response-field", default="response")
    p.add_argument("--label-words", help="the words the answers use, mapped onto the label set: "
                   "true=entailment,false=contradiction,inconclusive=neutral (default: the project's)")
    p.add_argument("files", nargs="+")


@command("import-teacher", "Import teacher completions obtained elsewhere; they are parsed like live ones.",
         import_teacher_flags)
def cmd_import_teacher(args, store: Store) -> dict:
    from core.label.answers import import_teacher_outputs, read_completions
    from core.label.parsing import parse_label_words

    from core.label.diagnosis import stored_diagnosis

    completions = read_completions(args.files, args.id_field, args.response_field)
    words = parse_label_words(args.label_words) if args.label_words else None
    out = import_teacher_outputs(store, args.project, completions, split=args.split, label_words=words)
    if out["flagged"]:
        out["why_unread"] = diagnosis_fields(stored_diagnosis(store, args.project))
    return out


def diagnosis_fields(report: dict) -> dict:
    """A diagnosis as JSON: the fix as a dict, examples cut short."""
    return {**report, "fix": report["fix"].as_dict() if report["fix"] else None}


def why_unread_flags(p) -> None:
    p.add_argument("--trial", type=int, help="a try's answers instead of the stored ones")
    p.add_argument("--apply", action="store_true", help="save the suggested fix (a new template version, or label "
                                                        "words and the stored answers read again)")


@command("why-unread", "Why answers were not read: parse rate per template version, the unread answers grouped "
                       "by shape, and one suggested fix for the prompt (--apply saves it).", why_unread_flags)
def cmd_why_unread(args, store: Store) -> dict:
    from core.label.diagnosis import apply_fix, stored_diagnosis, trial_diagnosis

    if args.trial is not None and store.get_trial(args.trial)["project"] != args.project:
        raise AppError(f"Try {args.trial} belongs to another project.")
    report = trial_diagnosis(store, args.trial) if args.trial is not None else stored_diagnosis(store, args.project)
    out = diagnosis_fields(report)
    if args.apply:
        if report["fix"] is None:
            raise AppError("There is no suggested fix to apply.")
        out["applied"] = apply_fix(store, args.project, report["fix"])
    return out


def label_words_flags(p) -> None:
    p.add_argument("spec", nargs="?", help="true=entailment,false=contradiction,inconclusive=neutral ('' clears)")


@command("label-words", "Show or set the words the prompt asks the teacher for, mapped onto the label set; stored "
                        "answers are read again with them (no calls, no cost).", label_words_flags)
def cmd_label_words(args, store: Store) -> dict:
    from core.label.answers import save_label_words

    if args.spec is None:
        return {"project": args.project, "label_words": store.get_project(args.project).label_words}
    return save_label_words(store, args.project, args.spec)


def reread_flags(p) -> None:
    from core.label.reread import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help="the model that reads the answers again")
    p.add_argument("--yes", action="store_true", help="send the re-reads (without it: only the quote)")
    p.add_argument("--override", action="store_true", help="send even when P90 exceeds what is left of the cap "
                                                          "(the cap still stops spending at its limit)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--budget", type=float, help="stop before this re-read's spend could pass this many USD")


def run_quoted(store: Store, args, quote, what: str, cfg: LabelConfig) -> dict:
    """A run priced before it is sent (a re-read, explanations): without --yes only the quote;
    refused when the model has no price, or when P90 exceeds what is left of the cap unless
    --override; else a foreground labeling job."""
    from core import jobs
    from core.kernel.errors import BudgetExceeded

    out = {"quote": quote.as_dict()}
    if not args.yes or not quote.rows:
        cost = "cost unknown: the model has no price" if quote.cost_usd_p90 is None else f"P90 ${quote.cost_usd_p90:.4f}"
        return {**out, "sent": 0, "note": f"nothing to {what}" if not quote.rows else
                f"add --yes to send {quote.requests} request{'s' * (quote.requests != 1)} ({cost})"}
    if quote.requests and quote.cost_usd_p90 is None:
        raise AppError(f"{quote.model} has no price in the price file, so the cost of this {what} cannot be tracked.")
    if quote.over_budget and not args.override:
        raise BudgetExceeded(quote.over_budget)
    job_id, result = jobs.run_foreground(store, args.project, "label", cfg.validate().as_job_config())
    return {**out, "job_id": job_id, **summary_fields(result)}


@command("reread", "Ask a cheap model which label each unread stored answer chooses (structured output): "
                   "priced first, sent only with --yes, refused over the budget cap.", reread_flags)
def cmd_reread(args, store: Store) -> dict:
    from core.kernel.prices import load_prices
    from core.label.reread import quote_reread

    quote = quote_reread(store, args.project, load_prices(), args.model)
    return run_quoted(store, args, quote, "re-read", LabelConfig(
        args.project, reread_model=args.model, concurrency=args.concurrency, budget_usd=args.budget))


def explain_flags(p) -> None:
    p.add_argument("--yes", action="store_true", help="send the requests (without it: only the quote)")
    p.add_argument("--override", action="store_true", help="send even when P90 exceeds what is left of the cap "
                                                          "(the cap still stops spending at its limit)")
    p.add_argument("--model", help="teacher model (default: the project's)")
    p.add_argument("--budget", type=float, help="stop before this run's spend could pass this many USD")


@command("explain-corrections", "Ask the teacher to explain the labels reviewers corrected (their rows hold no "
                                "rationale that fits): priced first, sent only with --yes, refused over the cap.",
         explain_flags)
def cmd_explain_corrections(args, store: Store) -> dict:
    from core.kernel.prices import load_prices
    from core.label.explain import quote_explanations

    quote = quote_explanations(store, args.project, load_prices(), args.model)
    out = run_quoted(store, args, quote, "explain", LabelConfig(args.project, model=args.model,
                                                                budget_usd=args.budget, explain_corrections=True))
    if "job_id" in out:  # what the explain run's labeled / flagged counts mean here
        out.update(explained=out.get("labeled", 0), not_fitting=out.get("flagged", 0))
    return out
