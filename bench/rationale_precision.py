"""Is a rationale check worth a reviewer's time? Its precision, on real teacher answers.

No reviewer judged the rows in ../shared/data, so the gold answer stands in for one: a reviewer
corrects a row whose teacher label is wrong. For each check, on GPT-3.5's zero-shot CQA answers
(42 templates) and on PaLM's chain-of-thought (CQA train, SVAMP):

  flagged     the share of rationales the check flags
  precision   of the flagged rows, the share whose teacher label is wrong (a reviewer would act)
  base        the same share among rows the check does not flag
  lift        precision / base: above 1, the check finds rows worth reviewing; at 1 or below, its
              flags are noise to a reviewer

The app applies the same measure to the rows reviewers actually judged (core.label.rationale_flags
.flag_rejection: corrected, rationale rejected or flagged = acted on), on the Review page's quality
panel ("rejected when flagged" against "rejected when not flagged").

    .venv/bin/python bench/rationale_precision.py [--data ../shared/data]

Exits 0 with a message when the data folder is absent. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rationale_checks import SHARED, load_cqa, load_svamp
from core.kernel.tasks import get_task
from core.label.parsing import parse_response
from core.label.rationale_checks import CHECKS, check_rows


def load_zero_shot(data: Path) -> list[dict]:
    folder = data / "cqa" / "gpt35_zero_shot"
    gold = [json.loads(line) for line in (data / "cqa" / "cqa_train.jsonl").read_text(encoding="utf-8").splitlines()
            if line]
    rows = []
    for path in sorted(folder.glob("t*.jsonl")):
        if path.name == "templates.jsonl":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            answer = json.loads(line)
            item = gold[answer["idx"]]
            parsed = parse_response(answer["response"], "multiple-choice", item["choices"])
            rows.append({"row_id": f"{path.stem}-{answer['idx']}", "inputs": {"question": item["question"]},
                         "choices": item["choices"], "label": parsed.label, "rationale": parsed.rationale,
                         "gold": item["answer"]})
    return rows


def precision(rows: list[dict], task: str) -> dict:
    kind = get_task(task)
    result = check_rows(rows)
    judged = [r for r in rows if r["rationale"] and r["rationale"].strip() and r["label"] is not None]
    wrong = {r["row_id"]: not kind.labels_equal(r["label"], r["gold"]) for r in judged}
    out = {"rows": len(judged), "wrong": round(sum(wrong.values()) / max(len(judged), 1), 4)}
    for check in CHECKS:
        flagged = [r["row_id"] for r in judged if check in result[r["row_id"]]["flags"]]
        rest = [r["row_id"] for r in judged if check not in result[r["row_id"]]["flags"]]
        p = sum(wrong[i] for i in flagged) / len(flagged) if flagged else None
        base = sum(wrong[i] for i in rest) / len(rest) if rest else None
        out[check] = {"flagged": round(len(flagged) / max(len(judged), 1), 4), "n": len(flagged),
                      "precision": None if p is None else round(p, 4), "base": None if base is None else round(base, 4),
                      "lift": round(p / base, 2) if p is not None and base else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    if not (args.data / "cqa").exists():
        print(f"{args.data} has no cqa folder: this benchmark needs ../shared/data; nothing measured.")
        print(json.dumps({"skipped": True}))
        return
    sets = {"GPT-3.5 zero-shot CQA (42 templates)": (load_zero_shot(args.data), "multiple-choice"),
            "PaLM CoT CQA train": (load_cqa(args.data), "multiple-choice"),
            "PaLM CoT SVAMP": (load_svamp(args.data), "numeric")}
    results = {}
    for name, (rows, task) in sets.items():
        results[name] = r = precision(rows, task)
        print(f"\n== {name}: {r['rows']:,} rows with a label and a rationale, {r['wrong']:.1%} of labels wrong")
        print(f"   {'check':<14} {'flagged':>8} {'rows':>6} {'precision':>10} {'base':>7} {'lift':>6}")
        for check in CHECKS:
            c = r[check]
            fmt = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
            print(f"   {check:<14} {c['flagged']:>8.1%} {c['n']:>6,} {fmt(c['precision']):>10} {fmt(c['base']):>7} "
                  f"{'—' if c['lift'] is None else c['lift']:>6}")
    print(json.dumps({"bench": "rationale_precision", "sets": results}))


if __name__ == "__main__":
    main()
