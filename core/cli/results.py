"""Results: the runs and a run's report."""

from __future__ import annotations

import math
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


def savings_flags(p) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--measure", action="store_true", help="time the student's CPU throughput again (it is "
                   "measured anyway when the run has no measurement)")
    p.add_argument("--cpu-hour", type=float, metavar="USD", help="price of one vCPU for one hour (default: "
                   "data/compute_prices.toml)")
    p.add_argument("--threshold", type=float, help="the cascade's confidence threshold to report (default: the one "
                   "keeping --target-accuracy with the fewest rows sent to the teacher)")
    p.add_argument("--target-accuracy", type=float, help="held-out accuracy the cascade must keep (default: 98%% of "
                   "the teacher's)")


@command("savings", "Measure the student's throughput and print cost per 1,000 rows, break-even and the "
                    "cascade's frontier (accuracy against share sent to the teacher and cost), as the Results "
                    "page does.", savings_flags, project=False)
def cmd_savings(args, store: Store) -> dict:
    from core.results import savings
    from core.results.cascade import cascade_report
    from core.train.run import Run

    run = Run.find(store, args.run)
    if args.measure or savings.stored_throughput(run.folder) is None:
        savings.measure_throughput(store, args.run)
    facts = savings.run_savings(store, args.run, usd_per_cpu_hour=args.cpu_hour)
    report = cascade_report(store, args.run, threshold=args.threshold, target_accuracy=args.target_accuracy,
                            usd_per_cpu_hour=args.cpu_hour, compute=True)
    result = _savings_result(args.run, facts, report)
    result["human"] = _savings_text(result)
    return result


def _savings_result(run_id: str, facts: dict, report: dict) -> dict:
    from core.results.savings import throughput_text

    front = report["frontier"]
    shown = [p for p in front["points"]
             if math.isinf(p["threshold"]) or round(p["threshold"] * 10, 6) % 1 == 0 or p is report["chosen"]]
    return {
        "run": run_id,
        "throughput": throughput_text(facts["throughput"]),
        "student_usd_per_1000": facts["student_usd_per_1000"], "teacher_usd_per_1000": facts["teacher_usd_per_1000"],
        "saving_usd_per_1000": facts["saving_usd_per_1000"], "break_even_rows": facts["break_even_rows"],
        "notes": facts["notes"],
        "calibration": {k: report["calibration"][k] for k in ("temperature", "fitted_on_rows", "test_rows",
                                                              "ece_before", "ece_after")},
        "teacher_price": report["teacher_price"], "student_price": report["student_price"],
        "teacher_usd_per_1000_in_the_cascade": front["teacher_usd_per_1000"],
        "teacher_price_estimated": report["teacher_price_estimated"], "target_accuracy": report["target_accuracy"],
        "teacher_accuracy": front["teacher_accuracy"], "student_accuracy": front["student_accuracy"],
        "measure": front["measure"], "cascade": report["sentence"],
        "chosen": None if report["chosen"] is None else {
            **report["chosen"], "threshold": ("every row" if math.isinf(report["chosen"]["threshold"])
                                              else report["chosen"]["threshold"])},
        "frontier": [{"threshold": "every row" if math.isinf(p["threshold"]) else p["threshold"],
                      "share_to_teacher": round(p["share_to_teacher"], 4),
                      "accuracy": None if p["accuracy"] is None else round(p["accuracy"], 4),
                      "usd_per_1000": None if p["usd_per_1000"] is None else round(p["usd_per_1000"], 6)}
                     for p in shown],
    }


def _savings_text(r: dict) -> str:
    """`core savings` for a person: the costs, the calibration, the frontier every 0.1, the cascade."""
    from core.results.savings import money

    cal = r["calibration"]
    ece = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"run {r['run']}", f"throughput: {r['throughput']}",
             f"per 1,000 rows: student {money(r['student_usd_per_1000'])}, teacher (billed) "
             f"{money(r['teacher_usd_per_1000'])}, saving {money(r['saving_usd_per_1000'])}; break-even "
             + ("—" if r["break_even_rows"] is None else f"{r['break_even_rows']:,} rows"),
             *[f"note: {n}" for n in r["notes"]],
             f"calibration: T = {cal['temperature']:.3f} on {cal['fitted_on_rows']} validation rows; ECE on "
             f"{cal['test_rows']} test rows {ece(cal['ece_before'])} before, {ece(cal['ece_after'])} after",
             f"teacher per row in the cascade: {r['teacher_price']}", "",
             f"{'threshold':>10}  {'to teacher':>10}  {r['measure'][:8]:>8}  {'$ / 1,000 rows':>14}"]
    for p in r["frontier"]:
        t = p["threshold"] if isinstance(p["threshold"], str) else f"{p['threshold']:.2f}"
        acc = "—" if p["accuracy"] is None else f"{p['accuracy']:.4f}"
        cost = "—" if p["usd_per_1000"] is None else f"{p['usd_per_1000']:.4f}"
        lines.append(f"{t:>10}  {p['share_to_teacher']:>10.1%}  {acc:>8}  {cost:>14}")
    return "\n".join(lines + ["", r["cascade"]])
