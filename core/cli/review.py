"""Expert review: save and undo decisions, measure review, spot-check, check rationales,
turn corrections into prompt fixes, export the reviewed dataset."""

from __future__ import annotations

from core.cli.commands import command
from core.cli.label import summary_fields
from core.db import Store
from core.kernel.errors import AppError, ConfigError
from core.review.rules import REASON_CODES, VERDICTS


def review_flags(p) -> None:
    p.add_argument("--row-id", required=True)
    p.add_argument("--reviewer", required=True)
    p.add_argument("--label", help="one of the project's labels or the row's choices (a choice letter or another "
                                   "capitalisation is mapped to it; anything else is refused)")
    p.add_argument("--rationale")
    p.add_argument("--reason", choices=REASON_CODES, help="why (needed to flag); free text goes in --comment")
    p.add_argument("--blind-label", help="your own label for a blind spot-check row, given before its teacher answer "
                                         "is shown (then review it with a second call)")
    p.add_argument("--expected-version", type=int)
    p.add_argument("--verdict", choices=VERDICTS, help="accept with an edited label or rationale is stored as correct")
    p.add_argument("--comment")


@command("review", "Save a reviewer's label and/or rationale for one row, with an audit record.", review_flags)
def cmd_review(args, store: Store) -> dict:
    """The page's rules from the command line: a blind row takes the reviewer's own label first;
    a second reviewer's decision is recorded as independent (the CLI shows no earlier decision)."""
    from core.review import rules as review

    mode = review.form_mode(store, args.project, args.row_id, args.reviewer)
    if mode == "blind":
        if not args.blind_label:
            raise AppError(f"Row {args.row_id} is a blind spot-check row for {args.reviewer}: give your own label "
                           "first with --blind-label LABEL; its teacher answer is shown after that.")
        review.save_blind_label(store, args.project, args.row_id, args.reviewer, args.blind_label)
        row = store.get_item(args.project, args.row_id)
        return {"row_id": args.row_id, "blind_label": review.checked_label(store.get_project(args.project),
                                                                          args.blind_label, row),
                "teacher_label": row["teacher_label"], "teacher_rationale": row["teacher_rationale"],
                "next": "review the row now (--verdict, --label, --rationale)"}
    if args.blind_label:
        raise AppError(f"Row {args.row_id} is not blind for {args.reviewer}; review it without --blind-label.")
    return review.save_review(store, args.project, args.row_id, args.reviewer, args.label, args.rationale,
                              verdict=args.verdict, reason=args.reason, comment=args.comment,
                              expected_version=args.expected_version,
                              mode=mode if mode in ("independent", "adjudicate") else "cli")


def undo_flags(p) -> None:
    p.add_argument("--reviewer", required=True)


@command("undo", "Undo the reviewer's last change (itself recorded in the audit trail); refused when a row of it "
                 "was changed since.", undo_flags)
def cmd_undo(args, store: Store) -> dict:
    from core.review import rules as review

    return review.undo_last(store, args.project, args.reviewer)


def review_stats_flags(p) -> None:
    p.add_argument("--expert-rate", type=float, help="expert USD per hour (default: data/review_costs.toml)")
    p.add_argument("--idle-gap", type=float, help="seconds between two decisions counted as idle, not review "
                                                  "(default: data/review_costs.toml)")


@command("review-stats", "What review costs and how good it is: decisions, expert minutes, cost per accepted "
                         "label, independent kappa, automation bias.", review_stats_flags)
def cmd_review_stats(args, store: Store) -> dict:
    from core.review.stats import review_stats

    return review_stats(store, args.project, usd_per_hour=args.expert_rate, idle_gap_s=args.idle_gap)


def spot_check_flags(p) -> None:
    p.add_argument("--size", type=int, help="rows (default: the sample size for --margin and --confidence)")
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--blind-share", type=float, default=0.1, help="share of the set shown blind (default 0.1)")
    p.add_argument("--unstratified", action="store_true", help="do not stratify by teacher label")
    p.add_argument("--seed", type=int, default=0)


@command("spot-check", "Create the spot-check set (replacing the previous one), with a share of blind rows labeled "
                       "before the teacher's answer is shown.", spot_check_flags)
def cmd_spot_check(args, store: Store) -> dict:
    from core.review.rules import sample_size

    n = args.size or sample_size(args.margin, args.confidence, population=store.review_count(args.project, "all"))
    made = store.create_spot_check(args.project, n, stratified=not args.unstratified, seed=args.seed,
                                   blind_share=args.blind_share)
    blind = store.review_count(args.project, "blind (spot check)")
    return {"rows": made, "blind": blind}


def spot_check_estimate_flags(p) -> None:
    p.add_argument("--confidence", type=float, default=0.95)


@command("spot-check-estimate", "The spot check's live error estimate: teacher label and rationale error rates "
                                "with Wilson intervals, per label, and whether the plan is complete.",
         spot_check_estimate_flags)
def cmd_spot_check_estimate(args, store: Store) -> dict:
    from core.review.rules import error_estimate

    planned, outcomes = store.spot_check_outcomes(args.project)
    if not planned:
        raise AppError("There is no spot-check set yet: create one with `core spot-check`.")
    return {"planned": planned, **error_estimate(outcomes, args.confidence),
            "complete": len(outcomes) >= planned}


def queue_flags(p) -> None:
    p.add_argument("--filter", action="append", help="a review filter (repeat to combine them with AND; "
                                                     "default: all)")
    p.add_argument("--sort", default="import order")
    p.add_argument("--search", default="")
    p.add_argument("--page", type=int, default=0)
    p.add_argument("--page-size", type=int, default=25)


@command("queue", "List a review queue: the rows a filter (or several) and a search match, sorted, one page.",
         queue_flags)
def cmd_queue(args, store: Store) -> dict:
    from core.db.review import REVIEW_SORTS

    if args.sort not in REVIEW_SORTS:
        raise AppError(f"Unknown sort {args.sort!r}; choose from {', '.join(REVIEW_SORTS)}.")
    if not 1 <= args.page_size <= 1000:
        raise AppError("--page-size must be between 1 and 1000.")
    rows, total = store.review_page(args.project, args.filter or "all", args.search, args.page, args.page_size,
                                    args.sort)
    keep = ("row_id", "status", "teacher_label", "label", "flag", "reviewed", "reviewer", "verdict", "version")
    return {"total": total, "page": args.page, "rows": [{k: r.get(k) for k in keep} for r in rows]}


def bulk_flags(p) -> None:
    p.add_argument("--reviewer", required=True)
    p.add_argument("--action", required=True, choices=["accept", "set_label", "flag"])
    p.add_argument("--filter", action="append", help="review filter(s), as for `queue` (default: unreviewed)")
    p.add_argument("--search", default="")
    p.add_argument("--label", help="the label for set_label")
    p.add_argument("--reason", choices=REASON_CODES, help="the reason code for flag")
    p.add_argument("--yes", action="store_true", help="apply it (without: say how many rows it would change)")


@command("bulk", "Accept, set the label of, or flag every row a filter matches, as one undoable change "
                 "(an audit record per row); without --yes it only counts them.", bulk_flags)
def cmd_bulk(args, store: Store) -> dict:
    from core.review import rules as review

    filters = args.filter or ["unreviewed"]
    ids = store.review_ids(args.project, filters, args.search)
    if not args.yes:
        return {"would_change": len(ids), "applied": 0, "note": "add --yes to apply it"}
    # the rows counted are the rows changed: one edited meanwhile is skipped and reported, never overwritten
    return review.bulk_review(store, args.project, filters, args.reviewer, args.action, label=args.label,
                              reason=args.reason, search=args.search, row_ids=ids)


def prompt_fixes_flags(p) -> None:
    p.add_argument("--apply", metavar="CLUSTER", help="the cluster key to act on, e.g. 'confusion: billing -> account'")
    p.add_argument("--amendment", help="the amendment text (default: the cluster's draft)")
    p.add_argument("--override-budget", action="store_true", help="start even if P90 exceeds the remaining budget")


@command("prompt-fixes", "Corrections grouped by confusion, reason code and rationale check, each with examples and "
                         "a drafted prompt amendment; --apply amends the prompt and re-asks that cluster's "
                         "unreviewed rows (priced first).", prompt_fixes_flags)
def cmd_prompt_fixes(args, store: Store) -> dict:
    """List the correction clusters; with --apply, amend the prompt and re-ask that cluster's rows."""
    from dataclasses import asdict

    from core import jobs
    from core.kernel.prices import load_prices
    from core.label.calls import resolve_api_key
    from core.review import prompt_fixes

    clusters = prompt_fixes.correction_clusters(store, args.project)
    if not args.apply:
        return {"clusters": [{**asdict(c), "affected": len(c.affected)} for c in clusters]}
    cluster = next((c for c in clusters if c.key == args.apply), None)
    if cluster is None:
        raise ConfigError(f"No cluster {args.apply!r}; `prompt-fixes` lists them.")
    amendment = args.amendment or cluster.amendment
    jobs.ensure_labeling_free(store, args.project)
    fc = prompt_fixes.price_reask(store, args.project, amendment, cluster.affected, load_prices())
    prompt_fixes.check_reask(fc, resolve_api_key(), args.override_budget)
    version = prompt_fixes.apply_amendment(store, args.project, amendment)
    cfg = prompt_fixes.reask_config(args.project, cluster.affected)
    job_id, result = jobs.run_foreground(store, args.project, "label", cfg.as_job_config())
    return {"cluster": cluster.key, "template_version": version, "rows": len(cluster.affected),
            "forecast_usd_p50": fc.cost_usd_p50, "forecast_usd_p90": fc.cost_usd_p90, "job_id": job_id,
            **summary_fields(result)}


@command("check-rationales", "Run the automatic rationale checks over the project's answers (leakage, "
                             "contradiction, grounding, boilerplate, length) and store the flags.")
def cmd_check_rationales(args, store: Store) -> dict:
    from core.label.rationale_flags import refresh_rationale_checks

    return refresh_rationale_checks(store, args.project)


def export_flags(p) -> None:
    p.add_argument("--format", choices=["jsonl", "csv", "parquet", "hf"], default="jsonl",
                   help="hf: a Hugging Face datasets folder (datasets.load_from_disk)")
    p.add_argument("--force", action="store_true", help="replace an existing export file (never a database)")
    p.add_argument("out")


@command("export", "Export the labeled dataset with provenance columns.", export_flags)
def cmd_export(args, store: Store) -> dict:
    from core.review.dataset_export import export_project

    return export_project(store, args.project, args.format, args.out, force=args.force)
