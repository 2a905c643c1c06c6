"""Results: the runs and a run's report."""

from __future__ import annotations

from pathlib import Path

from core.cli.commands import command
from core.db import Store


@command("runs", "List training runs with config, status, latest metrics and the Results page's warnings "
                 "(one answer for everything, no better than the baseline, data changed since training).")
def cmd_runs(args, store: Store) -> dict:
    from core import jobs
    from core.results.runs import run_warnings
    from core.train.run import Run

    runs = []
    for job in jobs.jobs_for(store, args.project, "train"):
        metrics = store.latest_metrics(job["id"])
        row = {"run": job["id"], "status": job["status"], "test_accuracy": metrics.get("test_accuracy")}
        config = Run(job).config  # as the run resolved it (split, chosen step, data snapshot) once it started
        runs.append({"id": job["id"], "status": job["status"], "config": config, "error": job["error"],
                     "created_at": job["created_at"], "finished_at": job["finished_at"], "metrics": metrics,
                     "warnings": run_warnings(store, row)})
    return {"runs": runs}


def report_flags(p) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--format", choices=["md", "html"], default="md")
    p.add_argument("out")


@command("report", "Write a run report (config, provenance, metrics).", report_flags, project=False)
def cmd_report(args, store: Store) -> dict:
    from core.results.reports import run_report

    text = run_report(store, args.run, fmt=args.format)
    Path(args.out).write_text(text, encoding="utf-8")
    return {"run": args.run, "format": args.format, "out": args.out, "chars": len(text)}
