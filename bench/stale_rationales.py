"""Training rows whose rationale argues for another label, before and after the rule that a
corrected label does not keep the teacher's rationale.

A reviewer corrects every row whose teacher label is wrong (to the gold label) through the review
form as it opens: pre-filled with the teacher's rationale, which the reviewer leaves as it is. Then
the training set is built as a multi-task run on reviewed labels builds it, and counted:

  before    corrected rows whose saved rationale would be the teacher's (what the form sent, and
            what the store kept before the rule)
  after     training rows whose rationale is the teacher's while their label is not the teacher's

on the bundled demo (the recorded teacher) and on PaLM's CommonsenseQA answers in ../shared/data
(imported as import-teacher imports them; --cqa-rows of them).

    .venv/bin/python bench/stale_rationales.py [--cqa-rows 2000]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.db import Store
from core.kernel.tasks import get_task
from core.review import rules as review
from core.train.data import training_examples
from core.train.trainer import TrainConfig

SHARED = ROOT.parent / "shared" / "data"


def correct_like_a_reviewer(store: Store, project: str) -> dict:
    kind = get_task(store.get_project(project).task)
    rows = [r for r in store.items_by_order(project, None)
            if r["gold"] is not None and r["teacher_label"] is not None and not kind.labels_equal(r["teacher_label"], r["gold"])]
    before = 0
    for r in rows:
        before += bool(r["teacher_rationale"])  # the form sends it back unchanged
        review.save_review(store, project, r["row_id"], "bench", r["gold"], r["teacher_rationale"], mode="first")
    items = {it["row_id"]: it for it in store.items_by_order(project, None)}
    examples = training_examples(list(items.values()), TrainConfig(project=project))
    after = sum(1 for e in examples if e["rationale"] and e["rationale"] == items[e["row_id"]]["teacher_rationale"]
                and not kind.labels_equal(e["label"], items[e["row_id"]]["teacher_label"]))
    return {"corrected": len(rows), "before": before, "after": after, "training_rows": len(examples)}


def demo(tmp: Path) -> dict:
    from core.label.demo import ensure_demo

    store = Store(tmp / "demo.duckdb")
    return correct_like_a_reviewer(store, ensure_demo(store))


def cqa(tmp: Path, rows: int) -> dict | None:
    if not (SHARED / "cqa").exists():
        return None
    from bench.rationale_checks import completions
    from core.ingest.files import ColumnMapping, import_source, open_records
    from core.label.answers import import_teacher_outputs

    lines = (SHARED / "cqa" / "cqa_train.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
    items = [json.loads(line) for line in lines]
    store = Store(tmp / "cqa.duckdb")
    records = [(i + 2, {"id": it["id"], "question": it["question"], "choices": json.dumps(it["choices"]),
                        "answer": it["answer"]}) for i, it in enumerate(items)]
    import_source(store, open_records(records), "cqa", "multiple-choice",
                  ColumnMapping(input_fields=["question"], id_field="id", label_field="answer", choices_field="choices"))
    texts = completions(SHARED / "cqa", "train")[:rows]
    import_teacher_outputs(store, "cqa", [(it["id"], text) for it, text in zip(items, texts)])
    return correct_like_a_reviewer(store, "cqa")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cqa-rows", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {"demo": demo(Path(tmp)), "cqa_palm": cqa(Path(tmp), args.cqa_rows)}
    for name, r in out.items():
        if r is None:
            print(f"{name}: ../shared/data is absent; skipped")
            continue
        print(f"{name}: {r['corrected']} rows corrected; training rows whose rationale argues for another label: "
              f"before {r['before']}, after {r['after']} (of {r['training_rows']} training rows)")
    print(json.dumps({"bench": "stale_rationales", **out}))


if __name__ == "__main__":
    main()
