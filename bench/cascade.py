"""The cascade on the bundled demo: train the offline student, calibrate it, and find the
confidence threshold that keeps 98% of the teacher's held-out accuracy with the fewest rows
sent to the teacher. Then run the live cascade (core.student.cascade) at that threshold over
the same held-out rows and check it lands where the frontier said: the demo's teacher answers
are recorded in the response cache, so no key and no spend are needed.

    .venv/bin/python bench/cascade.py [--steps 100] [--batch-size 8] [--student offline:minilm-bert2bert]

Prints the calibration (ECE before and after temperature scaling, on the test rows), the
frontier every 0.1, the chosen point in words, and the live check. Last line: one JSON object."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core import jobs  # noqa: E402
from core.db import Store  # noqa: E402
from core.kernel import paths  # noqa: E402
from core.kernel.tasks import get_task  # noqa: E402
from core.label.demo import ensure_demo  # noqa: E402
from core.results.cascade import cascade_report  # noqa: E402
from core.results.savings import measure_throughput  # noqa: E402
from core.student.cascade import Cascade  # noqa: E402
from core.student.predict import load_student_model  # noqa: E402
from core.train.run import Run  # noqa: E402
from core.train.trainer import TrainConfig  # noqa: E402


def live_check(store: Store, run_id: str, threshold: float) -> dict:
    """The live cascade over the held-out rows: share sent and accuracy, against the frontier's."""
    run = Run.find(store, run_id)
    rows = run.held_out_rows(10**6)
    student = load_student_model(run.model_dir())
    cascade = Cascade(student, store, run.project, threshold, job_id=f"bench-cascade-{run_id}")
    records = [{**it["inputs"], "choices": it.get("choices")} for it in rows]
    started = time.perf_counter()
    out = cascade.answer(records, rationale=False)
    seconds = time.perf_counter() - started
    kind = get_task(store.get_project(run.project).task)
    graded = [(o, it) for o, it in zip(out, rows) if it["gold"] is not None]
    return {"rows": len(rows), "seconds": round(seconds, 2),
            "share_to_teacher": round(sum(o["deferred"] for o in out) / len(out), 4),
            "teacher_answered": sum(o["answered_by"] == "teacher" for o in out),
            "teacher_failed": cascade.counts["teacher_failed"],
            "failures": sorted({o["teacher_error"] for o in out if o["teacher_error"]}),
            "accuracy": round(sum(kind.labels_equal(o["label"], it["gold"]) for o, it in graded) / len(graded), 4),
            "teacher_spent_usd": cascade.spent_usd()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--student", default="offline:minilm-bert2bert")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        project = ensure_demo(store)
        cfg = TrainConfig(project=project, student=args.student, max_steps=args.steps, batch_size=args.batch_size,
                          device=args.device, label_source="teacher")
        run_id = store.create_job(project, "train", asdict(cfg))
        store.update_job(run_id, out_dir=str(paths.job_dir(store, run_id)))
        started = time.perf_counter()
        jobs.run_job(store, run_id)
        train_s = time.perf_counter() - started
        if store.get_job(run_id)["status"] != "completed":
            raise SystemExit(f"training failed: {store.get_job(run_id)['error']}")
        measured = measure_throughput(store, run_id)
        report = cascade_report(store, run_id)
        cal, front, chosen = report["calibration"], report["frontier"], report["chosen"]
        print(f"trained {args.student} {args.steps} steps in {train_s:.0f} s; "
              f"{measured['rows_per_s']:.1f} rows/s on {measured['threads']} CPU threads (labels and confidence)")
        print(f"calibration: T = {cal['temperature']:.3f} fitted on {cal['fitted_on_rows']} validation rows; "
              f"ECE on {cal['test_rows']} test rows {cal['ece_before']:.4f} before, {cal['ece_after']:.4f} after")
        print(f"teacher accuracy {front['teacher_accuracy']:.4f}, student alone {front['student_accuracy']:.4f} "
              f"({front['measure']}, {front['graded_rows']} held-out rows)")
        print(f"teacher price: {report['teacher_price']}\nstudent price: {report['student_price']}")
        print("threshold  to teacher  accuracy  $/1000 rows")
        for p in front["points"]:
            if math.isinf(p["threshold"]) or round(p["threshold"] * 10, 6) % 1 == 0:
                cost = "—" if p["usd_per_1000"] is None else f"{p['usd_per_1000']:.4f}"
                label = "all" if math.isinf(p["threshold"]) else f"{p['threshold']:.2f}"
                print(f"{label:>9}  {p['share_to_teacher']:10.1%}  {p['accuracy']:8.4f}  {cost:>11}")
        print(report["sentence"])
        out = {"steps": args.steps, "student": args.student, "train_seconds": round(train_s, 1),
               "rows_per_s": round(measured["rows_per_s"], 2), "temperature": cal["temperature"],
               "ece_before": round(cal["ece_before"], 4), "ece_after": round(cal["ece_after"], 4),
               "teacher_accuracy": round(front["teacher_accuracy"], 4),
               "student_accuracy": round(front["student_accuracy"], 4), "held_out_rows": front["rows"],
               "chosen": None if chosen is None else {k: (v if not isinstance(v, float) or math.isfinite(v) else "all")
                                                      for k, v in chosen.items()},
               "meets_target": bool(chosen and chosen["share_to_teacher"] <= 0.30)}
        if chosen is not None:
            live = live_check(store, run_id, min(1.0, chosen["threshold"]))
            print(f"live cascade at {chosen['threshold']:.2f}: {live['share_to_teacher']:.1%} to the teacher, "
                  f"accuracy {live['accuracy']:.4f} (frontier: {chosen['share_to_teacher']:.1%}, "
                  f"{chosen['accuracy']:.4f}); {live['teacher_failed']} rows without a teacher answer {live['failures']}, "
                  f"${live['teacher_spent_usd']:.4f} spent, {live['seconds']} s for {live['rows']} rows")
            out["live"] = live
        print(json.dumps(out))


if __name__ == "__main__":
    main()
