"""How fast, and how well, the offline student learns the bundled demo on this machine:
multi-task (label + rationale) against label-only, same data, steps, batch and seed,
measured side by side in one run.

    .venv/bin/python bench/demo_student.py [--steps 100] [--batch-size 8] [--student offline:minilm-bert2bert]

Last line: one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.db import Store
from core.label.demo import ensure_demo
from core.train.trainer import TrainConfig, train_project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--student", default="offline:minilm-bert2bert")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    out = {"steps": args.steps, "batch_size": args.batch_size, "student": args.student}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        project = ensure_demo(store)
        for objective in ("multitask", "standard"):
            cfg = TrainConfig(project=project, student=args.student, objective=objective, label_source="teacher",
                              max_steps=args.steps, batch_size=args.batch_size, device=args.device,
                              out_dir=str(Path(tmp) / objective))
            started = time.perf_counter()
            result = train_project(store, cfg, job_id=objective)
            seconds = time.perf_counter() - started
            out[objective] = {"seconds": round(seconds, 1), "test_accuracy": round(result.get("test_accuracy", 0), 4),
                              "teacher_agreement": round(result.get("teacher_agreement", 0), 4),
                              "final_loss": round(result["final_loss"], 4)}
            print(f"{objective:9s}: {seconds:6.1f} s  test accuracy {out[objective]['test_accuracy']:.3f}  "
                  f"(teacher labels; gold accuracy of the teacher itself: {store.teacher_accuracy(project):.3f})",
                  flush=True)
    out["time_ratio_multitask_vs_standard"] = round(out["multitask"]["seconds"] / out["standard"]["seconds"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
