"""Rationale checks on real teacher outputs: the PaLM chain-of-thought answers in ../shared/data.

Each completion is read with the app's own parser (core.label.parsing.parse_response, as import-teacher
stores it), so label and rationale are what the app would keep; then core.label.rationale_checks.check_rows
runs over the whole split. Printed per data set: rows, the share of rationales each check flags,
the seconds check_rows took, grounding quantiles and a couple of flagged rows per check. A scale
run then checks CommonsenseQA rows repeated to --scale rows (100,000 by default) under fresh ids.
The bundled demo project (data/demo, a recorded synthetic teacher) is checked too, for contrast.

    .venv/bin/python bench/rationale_checks.py [--data ../shared/data] [--scale 100000] [--examples 2]

Exits 0 with a message when the data folder is absent. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.label import rationale_words
from core.kernel.labels import format_number, numeric_value
from core.label.parsing import parse_response
from core.label.rationale_checks import CHECKS, check_rows

SHARED = ROOT.parent / "shared" / "data"


def completions(folder: Path, split: str) -> list[str]:
    """Row i of the concatenation of llm/{split}_CoT_0.json, _1.json, ... (numeric order)."""
    files = sorted(folder.glob(f"llm/{split}_CoT_*.json"),
                   key=lambda p: int(re.search(r"_(\d+)\.json$", p.name).group(1)))
    return [text for path in files for text in json.loads(path.read_text(encoding="utf-8"))]


def load_cqa(data: Path, split: str = "train") -> list[dict]:
    folder = data / "cqa"
    lines = (folder / f"cqa_{split}.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line]
    rows = []
    for item, text in zip(items, completions(folder, split)):
        parsed = parse_response(text, "multiple-choice", item["choices"])
        rows.append({"row_id": item["id"], "inputs": {"question": item["question"]}, "choices": item["choices"],
                     "label": parsed.label, "rationale": parsed.rationale, "gold": item["answer"]})
    return rows


def load_svamp(data: Path) -> list[dict]:
    folder = data / "svamp"
    rows = []
    for split in ("train", "test"):
        items = [json.loads(line) for line in (folder / f"svamp_{split}.jsonl").read_text(encoding="utf-8").splitlines()
                 if line]
        for i, (item, text) in enumerate(zip(items, completions(folder, split))):
            parsed = parse_response(text, "numeric")
            gold = numeric_value(item["label"])
            rows.append({"row_id": f"{split}-{i}", "inputs": {"input": item["input"]}, "choices": None,
                         "label": parsed.label, "rationale": parsed.rationale,
                         "gold": format_number(gold) if gold is not None else None})
    return rows


def load_demo() -> tuple[list[dict], list[str]]:
    """The bundled demo: tickets and the recorded teacher's answers (matched by the request text)."""
    folder = ROOT / "data" / "demo"
    project = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    labels = project["labels"]
    answers = {}
    for line in (folder / "teacher_responses.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        answers[record["request"]["messages"][0]["content"]] = record["response"]["content"][0]["text"]
    rows = []
    with open(folder / project["file"], encoding="utf-8", newline="") as fh:
        for ticket in csv.DictReader(fh):
            prompt = project["template"].format(labels=", ".join(labels), **ticket)
            text = answers.get(prompt)
            if text is None:
                continue
            parsed = parse_response(text, "classification", labels=labels)
            rows.append({"row_id": ticket[project["id_field"]],
                         "inputs": {f: ticket[f] for f in project["input_fields"]}, "choices": None,
                         "label": parsed.label, "rationale": parsed.rationale, "gold": ticket[project["label_field"]]})
    return rows, labels


def fresh_caches() -> None:
    """Time a cold run: nothing stemmed or tokenized by an earlier run."""
    rationale_words._STEMS.clear()
    rationale_words._OPTION_CACHE.clear()


def run(name: str, rows: list[dict], label_set: list[str] | None, examples: int, seed: int = 0) -> dict:
    fresh_caches()
    start, cpu = time.perf_counter(), time.process_time()
    result = check_rows(rows, label_set)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with_rationale = [r for r in rows if r["rationale"] and r["rationale"].strip()]
    n = len(with_rationale)
    counts = {c: sum(c in result[r["row_id"]]["flags"] for r in with_rationale) for c in CHECKS}
    anyflag = sum(bool(result[r["row_id"]]["flags"]) for r in with_rationale)
    scores = sorted(result[r["row_id"]]["grounding"] for r in with_rationale
                    if result[r["row_id"]]["grounding"] is not None)
    quantiles = {q: round(scores[int(q * (len(scores) - 1))], 3) for q in (0.01, 0.05, 0.25, 0.5)} if scores else {}
    print(f"\n== {name}: {len(rows):,} rows, {n:,} with a rationale; check_rows {seconds:.2f} s wall, "
          f"{cpu:.2f} s CPU ({cpu / max(len(rows), 1) * 1e6:.0f} µs CPU a row)")
    for c in CHECKS:
        print(f"   {c:<14} {counts[c]:>6,}  {counts[c] / max(n, 1):7.2%}")
    print(f"   {'any':<14} {anyflag:>6,}  {anyflag / max(n, 1):7.2%}")
    print(f"   grounding quantiles {quantiles}")
    rng = random.Random(seed)
    for c in CHECKS:
        flagged = [r for r in with_rationale if c in result[r["row_id"]]["flags"]]
        for r in rng.sample(flagged, min(examples, len(flagged))):
            inputs = " | ".join(str(v) for v in r["inputs"].values()).replace("\n", " ")
            print(f"   [{c}] input: {inputs[:160]}")
            if r["choices"]:
                print(f"        choices: {r['choices']}")
            rationale = r["rationale"][:240].replace("\n", " ")
            print(f"        label: {r['label']!r} (gold {r['gold']!r})  rationale: {rationale!r}")
            print(f"        why: {result[r['row_id']]['detail'][c]}")
    return {"rows": len(rows), "with_rationale": n, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "shares": {c: round(counts[c] / max(n, 1), 4) for c in CHECKS}, "any": round(anyflag / max(n, 1), 4)}


def scale_run(rows: list[dict], target: int) -> dict:
    """CommonsenseQA rows repeated under fresh ids to `target` rows (copies share their choices,
    so the per-row option cache helps from the second copy on: the cold CQA run above has none)."""
    big = [{**rows[i % len(rows)], "row_id": f"{i}"} for i in range(target)]
    fresh_caches()
    start, cpu = time.perf_counter(), time.process_time()
    result = check_rows(big)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\n== scale: {len(big):,} rows checked in {seconds:.2f} s wall, {cpu:.2f} s CPU "
          f"({cpu / len(big) * 1e6:.0f} µs CPU a row; wall > CPU when other processes share the cores)")
    assert len(result) == len(big)
    return {"rows": len(big), "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--scale", type=int, default=100_000, help="rows of the scale run (0: skip)")
    ap.add_argument("--examples", type=int, default=2, help="flagged rows shown per check")
    args = ap.parse_args(argv)
    if not (args.data / "cqa" / "cqa_train.jsonl").is_file():
        print(f"{args.data} has no cqa/cqa_train.jsonl: this benchmark needs the PaLM outputs of ../shared/data "
              "(see its README). Nothing was measured.")
        print(json.dumps({"skipped": f"{args.data} is absent"}))
        return 0
    report: dict = {}
    cqa = load_cqa(args.data)
    report["cqa"] = run("CommonsenseQA train (PaLM chain-of-thought)", cqa, None, args.examples)
    if (args.data / "svamp" / "svamp_train.jsonl").is_file():
        report["svamp"] = run("SVAMP train + test (PaLM chain-of-thought)", load_svamp(args.data), None, args.examples)
    demo, labels = load_demo()
    if demo:
        report["demo"] = run("demo project (recorded synthetic teacher, one rationale per ticket template)",
                             demo, labels, args.examples)
    if args.scale:
        report["scale"] = scale_run(cqa, args.scale)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
