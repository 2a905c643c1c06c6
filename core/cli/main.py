"""Command line: the same work as the app, headless, through the same core functions.

Every subcommand takes --db PATH and --json (one JSON object on stdout)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.db import Store, default_db_path
from core.kernel.errors import AppError, BudgetExceeded, ConfigError
from core.kernel.tasks import TASKS


def _out(args, payload: dict, human: str | None = None) -> None:
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(human if human is not None else "\n".join(f"{k}: {v}" for k, v in payload.items()))


# ---- subcommands ------------------------------------------------------------------
def cmd_import(args, store: Store) -> dict:
    from core.ingest.files import ColumnMapping, import_source, open_file, open_hf
    from core.kernel.names import check_project_name

    mapping = ColumnMapping(
        input_fields=[f.strip() for f in args.input_fields.split(",") if f.strip()] if args.input_fields else [],
        id_field=args.id_field, label_field=args.label_field, choices_field=args.choices_field,
        split_field=args.split_field, labels=args.labels.split(",") if args.labels else None,
    )
    if not mapping.input_fields:
        raise AppError("--input-fields is required (comma-separated column names).")
    given = [x for x in (args.file, args.file_option, args.hf) if x]
    if len(given) != 1:
        raise AppError("Give exactly one source: a file (FILE or --file) or --hf DATASET.")
    file = args.file or args.file_option
    check_project_name(args.project)  # refuse a bad name before reading anything
    if args.hf:  # --split names the dataset's split too (the rows then carry its name)
        source = open_hf(args.hf, args.hf_split or args.split)
    else:
        if not Path(file).exists():
            raise AppError(f"No such file: {file}")
        source = open_file(file)
    n, labels = import_source(store, source, args.project, args.task, mapping, model=args.model,
                              default_split=args.split or args.hf_split or "train")
    return {"project": args.project.strip(), "rows": n, "task": args.task, "labels": labels}


def cmd_import_teacher(args, store: Store) -> dict:
    from core.label.answers import import_teacher_outputs, read_completions
    from core.label.parsing import parse_label_words

    completions = read_completions(args.files, args.id_field, args.response_field)
    words = parse_label_words(args.label_words) if args.label_words else None
    return import_teacher_outputs(store, args.project, completions, split=args.split, label_words=words)


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


def cmd_try(args, store: Store) -> dict:
    """Try the saved prompt on the project's N trial rows (the same rows every time), or only
    price the try (--quote)."""
    from core.label import trials
    from core.kernel.prices import load_prices

    prices = load_prices()
    if args.quote:
        return trials.quote_trial(store, args.project, prices, args.rows, args.model).as_dict()
    return trials.run_trial(store, args.project, prices, args.rows, args.model, override=args.override_budget)


def cmd_label_words(args, store: Store) -> dict:
    from core.label.answers import save_label_words

    if args.spec is None:
        return {"project": args.project, "label_words": store.get_project(args.project).label_words}
    return save_label_words(store, args.project, args.spec)


def _plan_flags(p) -> None:
    """Which rows a run sends and with which prompt: `label` and `estimate` share these."""
    from core.prompt.planner import RELABEL
    from core.label.teacher import LabelConfig

    p.add_argument("--relabel", choices=RELABEL, help="also re-send rows whose answer failed to parse (failed), "
                   "was given to an older prompt (stale), or every row (all); identical requests come from the cache")
    p.add_argument("--rationale-fraction", type=float, default=LabelConfig.rationale_fraction,
                   help="share of rows asked for a rationale (stratified by gold label); the rest get a label-only "
                        "prompt with a small max_tokens")
    p.add_argument("--seed", type=int, default=LabelConfig.seed, help="which rows form the rationale share")


def cmd_estimate(args, store: Store) -> dict:
    from core.prompt.forecast import cost_table, count_tokens_sample, forecast
    from core.kernel.prices import load_prices
    from core.label.teacher import resolve_api_key

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


def cmd_pilot(args, store: Store) -> dict:
    from core import jobs
    from core.prompt.forecast import forecast, pilot_rows, preflight
    from core.kernel.prices import load_prices
    from core.label.teacher import LabelConfig

    prices = load_prices()
    jobs.ensure_labeling_free(store, args.project)  # the lease message, before sampling and the preflight
    rows = pilot_rows(store, args.project, args.fraction, args.floor)
    preflight(store, args.project, prices, model=args.model, override=args.override_budget, n_rows=len(rows))
    cfg = LabelConfig(args.project, model=args.model, concurrency=args.concurrency, row_ids=rows).validate()
    job_id, summary = jobs.run_foreground(store, args.project, "label", cfg.as_job_config())
    after = forecast(store, args.project, prices, model=args.model)
    return {"job_id": job_id, "pilot": _summary_fields(summary), "forecast": after.as_dict()}


def _summary_fields(result: dict) -> dict:
    """A labeling job's result as the CLI has always printed it (LabelSummary's fields), plus its status."""
    from core.label.teacher import LabelSummary

    return {k: v for k, v in result.items()
            if k in LabelSummary.__dataclass_fields__ or k in ("status", "stop_reason", "parse_failure_share")}


def cmd_budget(args, store: Store) -> dict:
    store.get_project(args.project)
    if args.usd is not None and args.usd < 0:
        raise AppError("A budget must be zero or more dollars.")
    store.update_project(args.project, budget_usd=args.usd)
    spent, reserved = store.spend(args.project), store.reserved_spend(args.project)
    return {"project": args.project, "budget_usd": args.usd, "spent_usd": spent, "reserved_usd": reserved,
            "remaining_usd": None if args.usd is None else args.usd - spent - reserved}


def cmd_label(args, store: Store) -> dict:
    from core import jobs
    from core.prompt.forecast import preflight
    from core.kernel.prices import load_prices
    from core.label.teacher import LabelConfig

    store.get_project(args.project)
    jobs.ensure_labeling_free(store, args.project)  # the lease message, before the preflight's
    cfg = LabelConfig(args.project, model=args.model, concurrency=args.concurrency, limit=args.limit,
                      budget_usd=args.budget, batch=args.batch, poll_interval_s=args.poll_interval,
                      relabel=args.relabel, rationale_fraction=args.rationale_fraction, seed=args.seed).validate()
    preflight(store, args.project, load_prices(), model=args.model, batch=args.batch, override=args.override_budget,
              n_rows=args.limit, relabel=cfg.relabel, rationale_fraction=cfg.rationale_fraction, seed=cfg.seed)
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
    return {"job_id": job_id, **_summary_fields(result)}


def cmd_review(args, store: Store) -> dict:
    from core.review import rules as review

    return review.save_review(store, args.project, args.row_id, args.reviewer, args.label, args.rationale,
                              verdict=args.verdict, reason=args.reason, comment=args.comment,
                              expected_version=args.expected_version)


def cmd_undo(args, store: Store) -> dict:
    from core.review import rules as review

    return review.undo_last(store, args.project, args.reviewer)


def cmd_review_stats(args, store: Store) -> dict:
    from core.review.stats import review_stats

    return review_stats(store, args.project, usd_per_hour=args.expert_rate, idle_gap_s=args.idle_gap)


def cmd_spot_check(args, store: Store) -> dict:
    from core.review.rules import sample_size

    n = args.size or sample_size(args.margin, args.confidence, population=store.review_count(args.project, "all"))
    made = store.create_spot_check(args.project, n, stratified=not args.unstratified, seed=args.seed,
                                   blind_share=args.blind_share)
    blind = store.review_count(args.project, "blind (spot check)")
    return {"rows": made, "blind": blind}


def cmd_prompt_fixes(args, store: Store) -> dict:
    """List the correction clusters; with --apply, amend the prompt and re-ask that cluster's rows."""
    from dataclasses import asdict

    from core import jobs

    from core.review import prompt_fixes
    from core.prompt.forecast import check_budget
    from core.kernel.prices import load_prices

    clusters = prompt_fixes.correction_clusters(store, args.project)
    if not args.apply:
        return {"clusters": [{**asdict(c), "affected": len(c.affected)} for c in clusters]}
    cluster = next((c for c in clusters if c.key == args.apply), None)
    if cluster is None:
        raise ConfigError(f"No cluster {args.apply!r}; `prompt-fixes` lists them.")
    amendment = args.amendment or cluster.amendment
    jobs.ensure_labeling_free(store, args.project)
    fc = prompt_fixes.price_reask(store, args.project, amendment, cluster.affected, load_prices())
    refusal = check_budget(fc, args.override_budget)
    if refusal:
        raise BudgetExceeded(refusal)
    version = prompt_fixes.apply_amendment(store, args.project, amendment)
    cfg = prompt_fixes.reask_config(args.project, cluster.affected)
    job_id, result = jobs.run_foreground(store, args.project, "label", cfg.as_job_config())
    return {"cluster": cluster.key, "template_version": version, "rows": len(cluster.affected),
            "forecast_usd_p50": fc.cost_usd_p50, "forecast_usd_p90": fc.cost_usd_p90, "job_id": job_id,
            **_summary_fields(result)}


def cmd_check_rationales(args, store: Store) -> dict:
    from core.label.rationale_flags import refresh_rationale_checks

    return refresh_rationale_checks(store, args.project)


def cmd_export(args, store: Store) -> dict:
    from core.review.dataset_export import export_project

    return export_project(store, args.project, args.format, args.out, force=args.force)


def cmd_train(args, store: Store) -> dict:
    from dataclasses import asdict

    from core import jobs
    from core.train.trainer import TrainConfig

    cfg = TrainConfig(project=args.project, student=args.student, objective=args.objective,
                      label_source=args.label_source, alpha=args.alpha, rationale_fraction=args.rationale_fraction,
                      max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                      device=args.device, rationale_missing=args.rationale_missing,
                      approved_rationales_only=args.approved_only, precision=args.precision,
                      checkpoint_every=args.checkpoint_every).validate()
    store.get_project(args.project)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun / accelerate launch
        return _train_distributed(store, cfg)
    if args.background:
        job_id = jobs.start_job(store, args.project, "train", asdict(cfg))
        return {"job_id": job_id, "status": "started", "config": asdict(cfg)}
    job_id, result = jobs.run_foreground(store, args.project, "train", asdict(cfg))
    return {"job_id": job_id, **result}


def _train_distributed(store: Store, cfg) -> dict:
    """One process per device: rank 0 owns the job row; every rank trains its share."""
    from dataclasses import asdict

    import torch
    import torch.distributed as dist

    from core import jobs
    from core.train.trainer import train_project

    dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
    job = [None]
    if dist.get_rank() == 0:
        job[0] = jobs.create_job(store, cfg.project, "train", asdict(cfg))
    dist.broadcast_object_list(job, src=0)
    job_id = job[0]
    if dist.get_rank() == 0:
        result = jobs.run_job(store, job_id)
    else:
        cfg.out_dir = str(jobs.run_dir(store.get_job(job_id)))
        result = train_project(store, cfg, job_id=job_id)
    if dist.is_initialized():
        dist.destroy_process_group()
    return {"job_id": job_id, **result}


def cmd_sweep(args, store: Store) -> dict:
    from core import jobs

    store.get_project(args.project)
    base = {"project": args.project, "student": args.student, "label_source": args.label_source[0],
            "alpha": args.alpha[0], "max_steps": args.max_steps, "batch_size": args.batch_size,
            "learning_rate": args.lr, "device": args.device}
    grid = {"objective": args.objective, "rationale_fraction": args.rationale_fraction, "seed": args.seed,
            "alpha": args.alpha, "label_source": args.label_source}
    sweep_id = jobs.start_sweep(store, args.project, base, grid)
    children = store.child_jobs(sweep_id)
    if args.background:
        return {"sweep_id": sweep_id, "status": "started", "runs": [c["id"] for c in children]}
    job = jobs.wait(store, sweep_id, timeout_s=7 * 24 * 3600)
    return {"sweep_id": sweep_id, "status": job["status"], "error": job["error"],
            "runs": [{"id": c["id"], "status": c["status"], "config": c["config"],
                      "metrics": store.latest_metrics(c["id"])} for c in store.child_jobs(sweep_id)]}


def cmd_job(args, store: Store) -> dict:
    """pause | resume | cancel one background job (labeling, training or sweep)."""
    from core import jobs

    action = {"pause": jobs.pause_job, "resume": jobs.resume_job, "cancel": jobs.cancel_job}[args.action]
    action(store, args.job_id)
    job = jobs.refresh(store, store.get_job(args.job_id))
    return {"job_id": args.job_id, "action": args.action, "status": job["status"]}


def cmd_export_model(args, store: Store) -> dict:
    from core.results.runs import export_model

    outs = [x for x in (args.out, args.out_option) if x]
    if len(outs) != 1:
        raise AppError("Give the export folder once: OUT or --out OUT.")
    return export_model(store, args.run, outs[0], push_to=args.push_to, public=args.public, quantize=args.quantize)


def cmd_report(args, store: Store) -> dict:
    from core.results.runs import run_report

    text = run_report(store, args.run, fmt=args.format)
    Path(args.out).write_text(text, encoding="utf-8")
    return {"run": args.run, "format": args.format, "out": args.out, "chars": len(text)}


def cmd_runs(args, store: Store) -> dict:
    from core import jobs

    runs = []
    for job in jobs.jobs_for(store, args.project, "train"):
        runs.append({"id": job["id"], "status": job["status"], "config": job["config"], "error": job["error"],
                     "created_at": job["created_at"], "finished_at": job["finished_at"],
                     "metrics": store.latest_metrics(job["id"])})
    return {"runs": runs}


def cmd_predict(args, store: Store) -> dict:
    """Texts given on the command line, or a whole file (--file F --out O) streamed in chunks."""
    from core.student.predict import load_student_model, predict_file

    texts = list(args.text or []) + list(args.text_option or [])
    if bool(texts) == bool(args.file):
        raise AppError("Give texts to predict, or --file F with --out O (not both).")
    if not args.file:
        return {"predictions": load_student_model(args.model).predict(texts, rationale=args.rationale,
                                                                      batch_size=args.batch_size)}
    if not args.out:
        raise AppError("--file needs --out (a .csv, .jsonl or .parquet file for the predictions).")
    columns = [c.strip() for c in args.input_columns.split(",") if c.strip()] if args.input_columns else None
    bar = None
    if not args.json and sys.stderr.isatty() or args.progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="row", file=sys.stderr)

    def on_progress(done: int, total: int | None) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        return predict_file(args.model, args.file, args.out, rationale=args.rationale, chunk_rows=args.chunk_rows,
                            input_columns=columns, force=args.force, batch_size=args.batch_size,
                            on_progress=on_progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def cmd_demo(args, store: Store) -> dict:
    from core.label.demo import ensure_demo

    name = ensure_demo(store)
    return {"project": name, **store.count_items(name)}


def cmd_run_job(args, store: Store) -> dict:
    from core.jobs import run_job

    return run_job(store, args.job_id)


# ---- parser -----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from core.review.rules import VERDICTS
    from core.label.teacher import LabelConfig
    from core.train.trainer import LABEL_SOURCES, OBJECTIVES
    from core.train.trainer import TrainConfig as T

    parser = argparse.ArgumentParser(prog="python -m core", description="Zero-shot step-by-step distillation.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str, project: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--db", default=default_db_path(), help="DuckDB file (default: $DISTILL_DB or workspace/distill.duckdb)")
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        if project:
            p.add_argument("--project", required=True)
        p.set_defaults(func=func)
        return p

    p = add("import", cmd_import, "Import a CSV, TSV, JSON Lines, JSON array or Parquet file, or a Hugging Face "
                                  "dataset, into a project (one transaction).")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--id-field")
    p.add_argument("--input-fields", help="comma-separated input columns")
    p.add_argument("--label-field", help="gold label column (optional)")
    p.add_argument("--choices-field", help="column with the list of choices (multiple-choice)")
    p.add_argument("--split-field", help="column naming each row's split")
    p.add_argument("--split", help="split for rows without a split column (default train); with --hf, also "
                   "the dataset split to import")
    p.add_argument("--labels", help="comma-separated label set (classification)")
    p.add_argument("--model", default="claude-haiku-4-5", help="teacher model for the project")
    p.add_argument("file", nargs="?", help="the data file (or --file)")
    p.add_argument("--file", dest="file_option", metavar="FILE", help="the data file")
    p.add_argument("--hf", metavar="ID_OR_PATH", help="a Hugging Face dataset: a save_to_disk folder or a Hub id")
    p.add_argument("--hf-split", help="the dataset's split to import, when it differs from --split")

    p = add("import-teacher", cmd_import_teacher, "Import teacher completions obtained elsewhere; they are parsed like live ones.")
    p.add_argument("--split", help="align list files with the rows of this split")
    p.add_argument("--id-field", default="id")
    p.add_argument("--response-field", default="response")
    p.add_argument("--label-words", help="the words the answers use, mapped onto the label set: "
                   "true=entailment,false=contradiction,inconclusive=neutral (default: the project's)")
    p.add_argument("files", nargs="+")

    p = add("prompt", cmd_prompt, "Show or change the project's prompt (saved as a new template version when it "
            "changed): mode, template, output format, model, shots, max_tokens, label words.")
    p.add_argument("--mode", choices=["zero-shot", "few-shot", "explain-label", "label-only"],
                   help="a new mode loads its preset unless --template-file is given")
    p.add_argument("--template-file", help="a file holding the template ({field} placeholders)")
    p.add_argument("--output-format", choices=["text", "json"])
    p.add_argument("--model")
    p.add_argument("--shots", type=int)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--label-words", help="true=entailment,false=contradiction ('' clears them)")

    p = add("try", cmd_try, "Try the saved prompt on N rows (the same rows for every try, so versions compare): "
            "priced first, recorded per template version with parse rate and accuracy.")
    p.add_argument("--rows", type=int, default=10)
    p.add_argument("--model")
    p.add_argument("--quote", action="store_true", help="only price the try; send nothing")
    p.add_argument("--override-budget", action="store_true", help="try even when P90 exceeds the remaining budget")

    p = add("label-words", cmd_label_words, "Show or set the words the prompt asks the teacher for, mapped onto "
            "the label set; stored answers are read again with them (no calls, no cost).")
    p.add_argument("spec", nargs="?", help="true=entailment,false=contradiction,inconclusive=neutral ('' clears)")

    p = add("estimate", cmd_estimate, "Forecast tokens and dollars (P50 and P90) for the rows still unlabeled.")
    p.add_argument("--model")
    p.add_argument("--mode", choices=["zero-shot", "few-shot", "explain-label", "label-only"])
    p.add_argument("--shots", type=int, help="demonstrations in few-shot mode (default: the project's, 6)")
    _plan_flags(p)
    p.add_argument("--batch", action="store_true", help="price with the Batch API discount")
    p.add_argument("--count-tokens", action="store_true", help="calibrate with exact count_tokens on 20 rows")
    p.add_argument("--table", action="store_true", help="add the model x API x mode x fraction cost table")

    p = add("pilot", cmd_pilot, "Label a stratified pilot sample, then re-forecast the rest from observed usage.")
    p.add_argument("--model")
    p.add_argument("--fraction", type=float, default=0.02)
    p.add_argument("--floor", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=LabelConfig.concurrency)
    p.add_argument("--override-budget", action="store_true")

    p = add("budget", cmd_budget, "Set (or clear, without --usd) the project's teacher budget cap.")
    p.add_argument("--usd", type=float)

    p = add("label", cmd_label, "Run the teacher over unlabeled rows (cached, retried, errors recorded per row).")
    p.add_argument("--model")
    p.add_argument("--concurrency", type=int, default=LabelConfig.concurrency)
    p.add_argument("--limit", type=int)
    p.add_argument("--budget", type=float, help="stop before spend could pass this many USD")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    p.add_argument("--batch", action="store_true", help="use the Message Batches API (50%% cheaper; resumable)")
    p.add_argument("--poll-interval", type=float, default=LabelConfig.poll_interval_s,
                   help="seconds between batch status polls")
    p.add_argument("--override-budget", action="store_true",
                   help="start even when the P90 forecast exceeds the remaining project budget")
    _plan_flags(p)

    p = add("review", cmd_review, "Save a reviewer's label and/or rationale for one row, with an audit record.")
    p.add_argument("--row-id", required=True)
    p.add_argument("--reviewer", required=True)
    p.add_argument("--label", help="one of the project's labels or the row's choices (a choice letter or another "
                                   "capitalisation is mapped to it; anything else is refused)")
    p.add_argument("--rationale")
    p.add_argument("--reason")
    p.add_argument("--expected-version", type=int)
    p.add_argument("--verdict", choices=VERDICTS, help="accept with an edited label or rationale is stored as correct")
    p.add_argument("--comment")

    p = add("undo", cmd_undo, "Undo the reviewer's last change (itself recorded in the audit trail); refused when "
                              "a row of it was changed since.")
    p.add_argument("--reviewer", required=True)

    p = add("review-stats", cmd_review_stats, "What review costs and how good it is: decisions, expert minutes, "
                                              "cost per accepted label, independent kappa, automation bias.")
    p.add_argument("--expert-rate", type=float, help="expert USD per hour (default: data/review_costs.toml)")
    p.add_argument("--idle-gap", type=float, help="seconds between two decisions counted as idle, not review "
                                                  "(default: data/review_costs.toml)")

    p = add("spot-check", cmd_spot_check, "Create the spot-check set (replacing the previous one), with a share "
                                          "of blind rows labeled before the teacher's answer is shown.")
    p.add_argument("--size", type=int, help="rows (default: the sample size for --margin and --confidence)")
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--blind-share", type=float, default=0.1, help="share of the set shown blind (default 0.1)")
    p.add_argument("--unstratified", action="store_true", help="do not stratify by teacher label")
    p.add_argument("--seed", type=int, default=0)

    p = add("prompt-fixes", cmd_prompt_fixes, "Corrections grouped by confusion, reason code and rationale check, "
                                              "each with examples and a drafted prompt amendment; --apply amends "
                                              "the prompt and re-asks that cluster's unreviewed rows (priced first).")
    p.add_argument("--apply", metavar="CLUSTER", help="the cluster key to act on, e.g. 'confusion: billing -> account'")
    p.add_argument("--amendment", help="the amendment text (default: the cluster's draft)")
    p.add_argument("--override-budget", action="store_true", help="start even if P90 exceeds the remaining budget")

    p = add("check-rationales", cmd_check_rationales, "Run the automatic rationale checks over the project's "
                                                      "answers (leakage, contradiction, grounding, boilerplate, "
                                                      "length) and store the flags.")

    p = add("export", cmd_export, "Export the labeled dataset with provenance columns.")
    p.add_argument("--format", choices=["jsonl", "csv", "parquet", "hf"], default="jsonl",
                   help="hf: a Hugging Face datasets folder (datasets.load_from_disk)")
    p.add_argument("--force", action="store_true", help="replace an existing export file (never a database)")
    p.add_argument("out")

    p = add("train", cmd_train, "Train a student (foreground, or --background as a job).")
    p.add_argument("--objective", choices=OBJECTIVES, default=T.objective)
    p.add_argument("--label-source", choices=LABEL_SOURCES, default=T.label_source)
    p.add_argument("--alpha", type=float, default=T.alpha)
    p.add_argument("--rationale-fraction", type=float, default=T.rationale_fraction)
    p.add_argument("--student", default=T.student)
    p.add_argument("--max-steps", type=int, default=T.max_steps)
    p.add_argument("--batch-size", type=int, default=T.batch_size)
    p.add_argument("--lr", type=float, default=T.learning_rate)
    p.add_argument("--seed", type=int, default=T.seed)
    p.add_argument("--device", default=T.device)
    p.add_argument("--rationale-missing", choices=["mask", "empty"], default=T.rationale_missing,
                   help="rows without a rationale: no rationale loss (mask) or an empty target (the seed code)")
    p.add_argument("--approved-only", action="store_true", help="use only rationales a reviewer approved")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=T.precision)
    p.add_argument("--checkpoint-every", type=int, default=T.checkpoint_every)
    p.add_argument("--background", action="store_true")

    p = add("sweep", cmd_sweep, "Run a grid of training runs one after another in one background process.")
    p.add_argument("--objective", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    p.add_argument("--rationale-fraction", nargs="+", type=float, default=[T.rationale_fraction])
    p.add_argument("--seed", nargs="+", type=int, default=[T.seed])
    p.add_argument("--alpha", nargs="+", type=float, default=[T.alpha])
    p.add_argument("--label-source", nargs="+", choices=LABEL_SOURCES, default=[T.label_source])
    p.add_argument("--student", default=T.student)
    p.add_argument("--max-steps", type=int, default=T.max_steps)
    p.add_argument("--batch-size", type=int, default=T.batch_size)
    p.add_argument("--lr", type=float, default=T.learning_rate)
    p.add_argument("--device", default=T.device)
    p.add_argument("--background", action="store_true", help="return at once; the sweep runs on")

    for action in ("pause", "resume", "cancel"):
        p = add(action, cmd_job, f"{action.capitalize()} a background job (label, train or sweep).", project=False)
        p.add_argument("job_id")
        p.set_defaults(action=action)

    p = add("export-model", cmd_export_model, "Save a run's student (save_pretrained + tokenizer + model card).",
            project=False)
    p.add_argument("--run", required=True)
    p.add_argument("--push-to", help="Hugging Face Hub repo id; needs HF_TOKEN and network")
    p.add_argument("--public", action="store_true", help="push to a public repo (default: private only)")
    p.add_argument("--quantize", choices=["int8"], help="int8: a dynamically quantized student for CPU serving "
                   "(its card gives size, speed and agreement against fp32 on the run's held-out rows)")
    p.add_argument("out", nargs="?", help="the export folder (or --out)")
    p.add_argument("--out", dest="out_option", metavar="OUT", help="the export folder")

    p = add("report", cmd_report, "Write a run report (config, provenance, metrics).", project=False)
    p.add_argument("--run", required=True)
    p.add_argument("--format", choices=["md", "html"], default="md")
    p.add_argument("out")

    add("runs", cmd_runs, "List training runs with config, status and latest metrics.")

    p = add("predict", cmd_predict, "Predict labels for new inputs, or for every row of a file, with a trained "
            "student folder (fp32 or an int8 export).", project=False)
    p.add_argument("--model", required=True, help="folder with the saved student (…/output/model, or an export)")
    p.add_argument("--rationale", action="store_true", help="also generate the student's rationale")
    p.add_argument("text", nargs="*", help="input texts (as the student sees them)")
    p.add_argument("--text", dest="text_option", action="append", metavar="TEXT", help="an input text (repeatable)")
    p.add_argument("--file", help="CSV, TSV, JSON Lines or Parquet file with the project's input columns "
                   "(and choices for multiple-choice); read in chunks")
    p.add_argument("--out", help="predictions file: .csv, .jsonl or .parquet (the id column when the file has "
                   "row_id or id, label, rationale)")
    p.add_argument("--input-columns", help="comma-separated input columns, for a model folder that does not name them")
    p.add_argument("--chunk-rows", type=int, default=256, help="rows read, predicted and written at a time")
    p.add_argument("--batch-size", type=int, default=16, help="rows per generation batch")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")

    add("demo", cmd_demo, "Create the bundled demo project (idempotent).", project=False)

    p = add("run-job", cmd_run_job, "Internal: run a queued background job.", project=False)
    p.add_argument("job_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = Store(args.db)
        result = args.func(args, store)
    except AppError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "kind": exc.kind}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _out(args, result)
    return 0
