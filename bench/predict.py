"""Batch prediction with the demo student: fp32 against its int8 export.

Trains the offline student on the bundled demo (as bench/demo_student.py does: multi-task,
teacher labels), exports it twice through the app's own export (`export_model`: the
save_pretrained folder, and `quantize="int8"`), then predicts every demo row from a CSV file
with each folder through `predict_file` (streamed in chunks, as `python -m core predict --file`
does). Prints rows/s of both, their agreement (on the run's held-out rows, as the int8 card
states it, and on all rows), accuracy against gold on the held-out rows, and the size ratio.

    .venv/bin/python bench/predict.py [--steps 100] [--threads 1] [--work DIR]

--work keeps the database, run and exports in DIR and reuses a trained run found there.
--threads sets torch's CPU threads for the measurements (1 by default: on a shared, busy
machine two threads fight over two cores; the number is printed). Last line: one JSON object."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core import jobs
from core.db import Store
from core.label.demo import ensure_demo
from core.kernel.paths import run_dir
from core.results.model_export import export_model, folder_bytes
from core.student.batch import predict_file
from core.student.predict import load_student_model
from core.train.trainer import TrainConfig


def trained_run(store: Store, project: str, args) -> str:
    done = [j for j in store.list_jobs(project, "train") if j["status"] == "completed"]
    if done:
        print(f"reusing run {done[0]['id']}", flush=True)
        return done[0]["id"]
    cfg = TrainConfig(project=project, student=args.student, objective="multitask", label_source="teacher",
                      max_steps=args.steps, batch_size=args.batch_size, device="cpu")
    started = time.perf_counter()
    job_id, result = jobs.run_foreground(store, project, "train", asdict(cfg))
    print(f"trained {job_id}: {args.steps} steps in {time.perf_counter() - started:.0f} s, "
          f"test accuracy {result.get('test_accuracy', 0):.3f}", flush=True)
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--student", default="offline:minilm-bert2bert")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk-rows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per model over the file")
    parser.add_argument("--work", help="keep everything here (and reuse a trained run)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
    try:
        store = Store(work / "bench.duckdb")
        project = ensure_demo(store)
        fields = store.get_project(project).input_fields
        run = trained_run(store, project, args)

        for name in ("fp32", "int8"):
            shutil.rmtree(work / name, ignore_errors=True)
        export_model(store, run, str(work / "fp32"))
        started = time.perf_counter()
        card = export_model(store, run, str(work / "int8"), quantize="int8")
        print(f"int8 export: {time.perf_counter() - started:.1f} s (quantize, write, measure on "
              f"{card['rows']} held-out rows)", flush=True)

        items = store.items_by_order(project, None)
        rows_csv = work / "rows.csv"
        with open(rows_csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row_id", *fields])
            writer.writerows([[it["row_id"], *(it["inputs"][f] for f in fields)] for it in items])

        outputs, rates = {}, {}
        students = {name: load_student_model(work / name) for name in ("fp32", "int8")}
        for student in students.values():
            student.predict(["warm-up"], batch_size=1)
        for attempt in range(args.rounds):  # alternating; the faster pass of each counts (load only slows)
            for name, student in students.items():
                out = work / f"predictions_{name}.csv"
                result = predict_file(student, rows_csv, out, input_columns=fields, chunk_rows=args.chunk_rows,
                                      force=True)
                rates[name] = max(rates.get(name, 0), result["rows_per_s"])
                with open(out, newline="", encoding="utf-8") as fh:
                    outputs[name] = {r["row_id"]: r["label"] for r in csv.DictReader(fh)}
                print(f"{name} pass {attempt + 1}: {result['rows']} rows in {result['seconds']:.1f} s, "
                      f"{result['rows_per_s']:.1f} rows/s (predict_file, chunks of {args.chunk_rows}, "
                      f"{args.threads} thread(s))", flush=True)

        held_out = [json.loads(line) for line in
                    (run_dir(store.get_job(run)) / "predictions.jsonl").read_text().splitlines() if line.strip()]
        gold = {p["row_id"]: p["gold"] for p in held_out}
        accuracy = {name: sum(outputs[name][r] == g for r, g in gold.items()) / len(gold) for name in outputs}
        agree_all = sum(outputs["fp32"][r] == outputs["int8"][r] for r in outputs["fp32"]) / len(outputs["fp32"])
        size_ratio = folder_bytes(work / "int8") / folder_bytes(work / "fp32")
        print(f"rows/s: fp32 {rates['fp32']:.1f}, int8 {rates['int8']:.1f} ({rates['int8'] / rates['fp32']:.2f}x); "
              f"at export, on the held-out rows: fp32 {card['rows_per_s_fp32']}, int8 {card['rows_per_s_int8']}",
              flush=True)
        print(f"agreement with fp32: {card['agreement']:.4f} on {card['rows']} held-out rows (the card's number), "
              f"{agree_all:.4f} on all {len(outputs['fp32'])} rows", flush=True)
        print(f"held-out accuracy against gold: fp32 {accuracy['fp32']:.4f}, int8 {accuracy['int8']:.4f}", flush=True)
        print(f"size on disk: int8 / fp32 = {size_ratio:.3f} "
              f"({folder_bytes(work / 'int8') / 1e6:.1f} MB / {folder_bytes(work / 'fp32') / 1e6:.1f} MB, "
              "whole folders with tokenizer and card)", flush=True)
        print(json.dumps({
            "rows_per_s_fp32": rates["fp32"], "rows_per_s_int8": rates["int8"],
            "speedup": round(rates["int8"] / rates["fp32"], 3),
            "agreement": card["agreement"], "agreement_rows": card["rows"], "agreement_all_rows": round(agree_all, 4),
            "accuracy_fp32": round(accuracy["fp32"], 4), "accuracy_int8": round(accuracy["int8"], 4),
            "size_ratio": round(size_ratio, 4), "card_rows_per_s_fp32": card["rows_per_s_fp32"],
            "card_rows_per_s_int8": card["rows_per_s_int8"], "rows": len(outputs["fp32"]), "threads": args.threads,
            "steps": args.steps}))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
