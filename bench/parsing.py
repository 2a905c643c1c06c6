"""How well the app reads real teachers' answers, on every answer in ../shared/data:

- GPT-3.5's zero-shot answers to the seed paper's prompt templates on CommonsenseQA
  (cqa/gpt35_zero_shot/tNN.jsonl), per template against the paper's own regex accuracy
  (correct / answers; an answer that was not read counts as wrong on both sides);
- PaLM's chain-of-thought completions on CommonsenseQA and SVAMP (cqa/llm, svamp/llm).

    .venv/bin/python bench/parsing.py [--data ../shared/data] [--examples 0]

Each answer is read with core.label.parsing.parse_response, as import-teacher reads it. Prints a
table per template (ours, the paper's, unread share), the templates where we fall below the paper,
and one JSON line last. Without the data it says so and exits 0."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.kernel.tasks import normalize_gold  # noqa: E402
from core.label.parsing import labels_equal, parse_response  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def completions(folder: Path, split: str) -> list[str]:
    parts = sorted(folder.glob(f"{split}_CoT_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return [text for part in parts for text in json.loads(part.read_text(encoding="utf-8"))]


def score(rows: list[tuple[str, str, list | None]], task: str) -> dict:
    """rows: (answer, gold, choices). Correct share, unread share, flags by kind."""
    correct, flags = 0, Counter()
    for answer, gold, choices in rows:
        parsed = parse_response(answer, task, choices=choices)
        if parsed.ok:
            correct += labels_equal(parsed.label, gold, task)
        else:
            flags[parsed.flag] += 1
    n = len(rows) or 1
    return {"n": len(rows), "accuracy": correct / n, "unread": sum(flags.values()) / n, "flags": dict(flags)}


def zero_shot(data: Path, examples: int) -> dict:
    folder = data / "cqa" / "gpt35_zero_shot"
    gold = jsonl(data / "cqa" / "cqa_train.jsonl")
    templates = {t["template"]: t for t in jsonl(folder / "templates.jsonl")}
    per = {}
    for path in sorted(folder.glob("t*.jsonl")):
        if path.name == "templates.jsonl":
            continue
        answers = jsonl(path)
        tid = answers[0]["prompt_template_id"]
        rows = [(a["response"], gold[a["idx"]]["answer"], gold[a["idx"]]["choices"]) for a in answers]
        per[tid] = score(rows, "multiple-choice") | {"paper": templates[tid]["paper_accuracy"]}
        if examples:
            missed = [r for r in rows if not parse_response(r[0], "multiple-choice", choices=r[2]).ok][:examples]
            per[tid]["unread_examples"] = [r[0][:160] for r in missed]
    return per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--examples", type=int, default=0, help="unread answers to print per template")
    args = ap.parse_args()
    if not (args.data / "cqa" / "gpt35_zero_shot").is_dir():
        print(f"{args.data} has no cqa/gpt35_zero_shot: this benchmark needs ../shared/data; nothing measured.")
        print(json.dumps({"skipped": True}))
        return
    started = time.process_time()
    per = zero_shot(args.data, args.examples)
    print(f"{'template':>8} {'n':>4} {'ours':>6} {'paper':>6} {'unread':>7}")
    for tid, r in sorted(per.items()):
        print(f"{tid:>8} {r['n']:>4} {r['accuracy']:6.3f} {r['paper']:6.3f} {r['unread']:7.1%}")
        for ex in r.get("unread_examples", []):
            print(f"{'':>10}unread: {ex!r}")
    mean = lambda key, ids=None: sum(per[t][key] for t in (ids or per)) / len(ids or per)  # noqa: E731
    below = sorted(t for t, r in per.items() if r["accuracy"] < r["paper"] - 1e-9)
    far_below = sorted(t for t, r in per.items() if r["accuracy"] < r["paper"] - 0.05)
    print(f"\nmean accuracy {mean('accuracy'):.3f} against the paper's {mean('paper'):.3f}; unread {mean('unread'):.1%}; "
          f"below the paper on {len(below)} of {len(per)} templates: {below}; more than 0.05 below on {far_below}")
    flags = Counter()
    for r in per.values():
        flags.update(r["flags"])
    print(f"unread answers by flag, all templates: {dict(flags)}")
    # two halves by template number: a reader fitted to some templates would show it as a gap between them
    for name, ids in (("odd", [t for t in per if t % 2]), ("even", [t for t in per if not t % 2])):
        print(f"  {name} templates ({len(ids)}): ours {mean('accuracy', ids):.3f}, paper {mean('paper', ids):.3f}, "
              f"unread {mean('unread', ids):.1%}")
    cqa = jsonl(args.data / "cqa" / "cqa_train.jsonl")
    palm_cqa = score([(a, g["answer"], g["choices"]) for a, g in zip(completions(args.data / "cqa" / "llm", "train"), cqa)],
                     "multiple-choice")
    svamp = jsonl(args.data / "svamp" / "svamp_train.jsonl")
    palm_svamp = score([(a, normalize_gold(g["label"], "numeric", None, 0, "label"), None) for a, g in zip(completions(args.data / "svamp" / "llm", "train"), svamp)],
                       "numeric")
    print(f"PaLM CoT, CQA train: accuracy {palm_cqa['accuracy']:.4f}, unread {palm_cqa['unread']:.2%} ({palm_cqa['n']} rows)")
    print(f"PaLM CoT, SVAMP train: accuracy {palm_svamp['accuracy']:.4f}, unread {palm_svamp['unread']:.2%} ({palm_svamp['n']} rows)")
    print(json.dumps({"templates": len(per), "zero_shot_accuracy": round(mean("accuracy"), 4),
                      "paper_accuracy": round(mean("paper"), 4), "zero_shot_unread": round(mean("unread"), 4),
                      "templates_below_paper": len(below), "templates_more_than_005_below": len(far_below),
                      "palm_cqa_accuracy": round(palm_cqa["accuracy"], 4),
                      "palm_cqa_unread": round(palm_cqa["unread"], 4), "palm_svamp_accuracy": round(palm_svamp["accuracy"], 4),
                      "palm_svamp_unread": round(palm_svamp["unread"], 4), "cpu_s": round(time.process_time() - started, 1)}))


if __name__ == "__main__":
    main()
