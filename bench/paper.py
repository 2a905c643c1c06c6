"""The seed paper's comparison on CommonsenseQA with the PaLM rationales in ../shared/data, in one command.

Four runs at equal steps, batch size, student, learning rate and seed, all trained on the
teacher's (PaLM 540B) labels, graded against GOLD answers on the CQA test split:
  multi-task   rationale fraction 1.0   (distilling step-by-step)
  multi-task   rationale fraction 0.5
  multi-task   rationale fraction 0.25
  label-only   no rationales            (standard distillation)
It prints a table (test accuracy, agreement with PaLM on the same test rows, time per run)
with PaLM's own test accuracy on those rows as the reference, then one JSON line.

    python bench/paper.py            # the comparison: sized for one large GPU (an H200) in under 10 minutes
    python bench/paper.py --quick    # a CPU smoke run of a few minutes: checks the pipeline, measures nothing

Defaults: the offline MiniLM bert2bert student (no network), device auto (cuda when there is
one; bf16 autocast there), all 9,741 training rows, 1,500 steps x batch 64 (about 10 epochs),
learning rate 3e-4, all 1,221 test rows. The size was chosen by estimate (tens of ms per step
for a 49M-parameter student on an H200), not yet timed on one: each run's seconds are printed.
The paper used T5-base for 10k+ steps (about 0.60 multi-task against 0.59 standard on CQA with
GPT-3.5 rationales); `--student google/flan-t5-base --steps 4000` comes closer where the Hub
is reachable.

`--quick` numbers are a SMOKE RUN (300 training rows, 30 steps x batch 8, 50 test rows, one CPU
thread): a student trained that little has not learned the task, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data" / "cqa"
RUNS = [("multitask", 1.0), ("multitask", 0.5), ("multitask", 0.25), ("standard", 0.0)]
QUICK = {"train_rows": 300, "steps": 30, "batch_size": 8, "eval_limit": 50, "threads": 1}
SMOKE = ("SMOKE RUN (--quick): a tiny subsample and a few steps; these numbers check that the pipeline runs "
         "end to end and say NOTHING about the paper's claim.")


def completions(split: str, parts: int) -> list[tuple[None, str]]:
    """PaLM's raw completions for a split, row-aligned with cqa_{split}.jsonl."""
    out: list[tuple[None, str]] = []
    for i in range(parts):
        path = SHARED / "llm" / f"{split}_CoT_{i}.json"
        if not path.exists():
            break
        out += [(None, text) for text in json.loads(path.read_text())]
    return out


def import_cqa(store, train_rows: int) -> dict:
    """CQA train (first `train_rows`, 0 = all) and test in one project, with PaLM's answers for both:
    the train answers are what the students learn from, the test answers only give PaLM's own score."""
    from core.label.answers import import_teacher_outputs
    from core.ingest.files import ColumnMapping, import_source, open_bytes

    mapping = ColumnMapping(input_fields=["question"], id_field="id", label_field="answer", choices_field="choices")
    for split in ("train", "test"):
        lines = [line for line in (SHARED / f"cqa_{split}.jsonl").read_bytes().splitlines(keepends=True)
                 if line.strip()]
        if split == "train" and train_rows:
            lines = lines[:train_rows]
        import_source(store, open_bytes(b"".join(lines), f"cqa_{split}.jsonl"), "cqa", "multiple-choice", mapping,
                      template="{question}", model="palm-540b", default_split=split)
    train = import_teacher_outputs(store, "cqa", completions("train", 10)[:train_rows or None], split="train")
    test = import_teacher_outputs(store, "cqa", completions("test", 10), split="test")
    return {**train, "test": test}  # the training answers' summary, and the test answers' under "test"


def teacher_test_accuracy(store, limit: int) -> float | None:
    """PaLM against gold on the test rows the students are graded on (the first `limit`); an
    unparsed answer counts as wrong."""
    from core.kernel.tasks import get_task

    kind = get_task("multiple-choice")
    rows = [it for it in store.items_by_order("cqa", "test")[:limit] if it["gold"] is not None]
    return sum(kind.labels_equal(it["teacher_label"], it["gold"]) for it in rows) / len(rows) if rows else None


def main() -> None:
    from core.train.base_models import OFFLINE_DEFAULT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a CPU-sized smoke run: " + ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + " (explicit flags still win)")
    parser.add_argument("--student", default=OFFLINE_DEFAULT)
    parser.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 1500)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per step (default 64)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--train-rows", type=int, default=None, help="training rows; 0 = all 9,741 (default)")
    parser.add_argument("--eval-limit", type=int, default=None, help="test rows graded; 0 = all 1,221 (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="auto (bf16 autocast on GPUs with bf16, else fp32) | fp32 | bf16")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's own choice; --quick: 1, which stays fast on a "
                             "shared machine where more threads than free cores slow everything down)")
    args = parser.parse_args()
    sizes = {"train_rows": 0, "steps": 1500, "batch_size": 64, "eval_limit": 0, "threads": None} | (
        QUICK if args.quick else {})
    sizes |= {k: getattr(args, k) for k in sizes if getattr(args, k) is not None}
    if not (SHARED / "cqa_train.jsonl").exists():
        print(f"{SHARED} is absent: this benchmark needs the PaLM outputs in ../shared/data (see its README). "
              "Nothing was run.")
        sys.exit(0)

    import torch

    from core.db import Store
    from core.train.trainer import TrainConfig, train_project

    if sizes["threads"]:
        torch.set_num_threads(sizes["threads"])

    started_all = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cqa.duckdb")
        imported = import_cqa(store, sizes["train_rows"])
        test_rows = len(store.items_by_order("cqa", "test"))
        graded = min(test_rows, sizes["eval_limit"] or test_rows)
        palm = teacher_test_accuracy(store, graded)
        print(f"imported CQA: {imported['rows']} PaLM training answers (PaLM accuracy on them "
              f"{imported['teacher_accuracy']:.4f}), {test_rows} test rows, {graded} graded", flush=True)
        device = args.device
        for objective, fraction in RUNS:
            cfg = TrainConfig(project="cqa", student=args.student, objective=objective, label_source="teacher",
                              rationale_fraction=fraction, max_steps=sizes["steps"], batch_size=sizes["batch_size"],
                              learning_rate=args.lr, seed=args.seed, device=args.device, precision=args.precision,
                              eval_limit=graded,
                              eval_every=0, rationale_samples=0, checkpoint_every=0,
                              log_every=max(1, sizes["steps"] // 10), out_dir=str(Path(tmp) / f"{objective}-{fraction}"))
            t0 = time.monotonic()
            out = train_project(store, cfg, job_id=f"{objective}-{fraction}")
            resolved = json.loads((Path(cfg.out_dir) / "train_config.json").read_text())
            device = resolved["device"] + (" bf16 autocast" if resolved.get("bf16_autocast") else "")
            results.append({"objective": objective, "rationale_fraction": None if objective == "standard" else fraction,
                            "test_accuracy": round(out["test_accuracy"], 4),
                            "agreement_with_palm": round(out["teacher_agreement"], 4)
                            if out.get("teacher_agreement") is not None else None,
                            "train_rows": resolved["train_rows"], "rows_with_rationale": resolved["rows_with_rationale"],
                            "seconds": round(time.monotonic() - t0, 1)})
            print(f"  {objective:9s} fraction {fraction:4.2f}: test accuracy {out['test_accuracy']:.4f} "
                  f"({results[-1]['seconds']} s on {device})", flush=True)
    total_s = round(time.monotonic() - started_all, 1)
    standard = results[-1]["test_accuracy"]

    if args.quick:
        print("\n" + SMOKE)
    print(f"\nstudent {args.student} on {device} (CPU threads: {torch.get_num_threads()}), {sizes['steps']} steps x "
          f"batch {sizes['batch_size']}, "
          f"lr {args.lr}, seed {args.seed}; labels from PaLM; graded against gold on {graded} CQA test rows")
    print(f"{'objective':11s} {'rationales':>10s} {'accuracy':>9s} {'vs label-only':>13s} {'agree PaLM':>10s} "
          f"{'seconds':>8s}")
    for r in results:
        share = "—" if r["rationale_fraction"] is None else f"{r['rationale_fraction']:.2f}"
        agree = "—" if r["agreement_with_palm"] is None else f"{r['agreement_with_palm']:.4f}"
        print(f"{'label-only' if r['objective'] == 'standard' else 'multi-task':11s} {share:>10s} "
              f"{r['test_accuracy']:9.4f} {r['test_accuracy'] - standard:+13.4f} {agree:>10s} {r['seconds']:8.1f}")
    print(f"PaLM (teacher) on the same test rows: {'—' if palm is None else f'{palm:.4f}'}; total {total_s} s")
    if args.quick:
        print(SMOKE)
    print(json.dumps({"smoke_run": args.quick, "note": SMOKE if args.quick else None, "student": args.student,
                      "device": device, **sizes, "threads": torch.get_num_threads(), "train_rows": results[0]["train_rows"], "test_rows_graded": graded,
                      "lr": args.lr, "seed": args.seed, "palm_test_accuracy": None if palm is None else round(palm, 4),
                      "runs": results, "multitask_1.0_minus_label_only": round(results[0]["test_accuracy"] - standard, 4),
                      "total_seconds": total_s}))


if __name__ == "__main__":
    main()
