"""Does the forecast match the invoice? And how much does zero-shot save over few-shot?

1. On the fake Anthropic server (which counts tokens with its own rule plus per-message
   overhead, unlike our offline estimator): 5,000 rows; pilot 2% (stratified), forecast
   the rest, label everything, compare forecast with the billed total.
2. On ../shared/data CommonsenseQA (skipped when absent): prompt tokens per row of the
   zero-shot preset against a 6-shot chain-of-thought prompt whose demonstrations carry
   the PaLM rationales.

    .venv/bin/python bench/estimate.py [--rows 5000]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.label.answers import import_teacher_outputs
from core.db import Store
from core.prompt.forecast import forecast, pilot_rows
from core.ingest.files import ColumnMapping, import_source, open_bytes
from core.kernel.prices import load_prices
from core.prompt.templates import mode_template
from core.label.teacher import TeacherRun
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
WORDS = ["my card was charged twice for the same order last week", "the app crashes when I open the settings",
         "where is my parcel, tracking has not moved in days", "I was billed again after cancelling",
         "login shows error 500 since the update", "the courier left the package at the wrong house"]


def tickets_csv(rows: int) -> bytes:
    import random

    rng = random.Random(7)
    lines = ["id,text,label"]
    for i in range(rows):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))  # varied lengths
        lines.append(f"{i},\"Ticket {i}: {words}\",{['billing', 'technical', 'shipping'][i % 3]}")
    return ("\n".join(lines) + "\n").encode()


def invoice_check(rows: int) -> dict:
    prices = load_prices()
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(responder=correct_responder) as fake:
        store = Store(Path(tmp) / "e.duckdb")
        import_source(store, open_bytes(tickets_csv(rows), "t.csv"), "bench", "classification",
                      ColumnMapping(input_fields=["text"], id_field="id", label_field="label"),
                      template=mode_template("classification", ["text"]), model="claude-haiku-4-5")
        offline = forecast(store, "bench", prices)
        pilot = pilot_rows(store, "bench", 0.02, floor=20)
        TeacherRun(store, "bench", api_key="bench", base_url=fake.url, concurrency=16, row_ids=pilot).run()
        pilot_cost = store.spend("bench")
        fc = forecast(store, "bench", prices)
        started = time.monotonic()
        TeacherRun(store, "bench", api_key="bench", base_url=fake.url, concurrency=16).run()
        actual = store.spend("bench")
        return {
            "rows": rows, "pilot_rows": len(pilot), "pilot_cost": pilot_cost,
            "offline_p50": offline.cost_usd_p50 and offline.cost_usd_p50, "offline_p90": offline.cost_usd_p90,
            "forecast_p50": pilot_cost + fc.cost_usd_p50, "forecast_p90": pilot_cost + fc.cost_usd_p90,
            "actual": actual, "label_seconds": time.monotonic() - started,
            "input_source": fc.input_source, "calibration": fc.input_tokens_per_row,
        }


def honest_responder(body: dict) -> str:
    """correct_responder that answers a label-only prompt with the label alone, and cannot
    decide about parcels unless the prompt tells it to be decisive (for the relabel case)."""
    text = body["messages"][-1]["content"]
    answer = correct_responder(body)
    if "parcel" in text and "Be decisive" not in text:
        return "Hard to say; it could be several things, the ticket is not clear enough for me."
    return answer.split("\n")[0] if "Reply with exactly one line" in text else answer


def _bench_project(store: Store, rows: int, decisive: bool) -> None:
    template = mode_template("classification", ["text"]) + ("\nBe decisive." if decisive else "")
    import_source(store, open_bytes(tickets_csv(rows), "t.csv"), "bench", "classification",
                  ColumnMapping(input_fields=["text"], id_field="id", label_field="label"),
                  template=template, model="claude-haiku-4-5")


def plan_check(rows: int) -> dict:
    """Forecast error of two runs the planner shapes, each after a 2% pilot like the main
    check: rationale fraction 0.3, and re-asking the rows whose answers failed to parse once
    the prompt is fixed (the relabel forecast is made from the first run's observed usage)."""
    prices = load_prices()
    plan = {"rationale_fraction": 0.3, "seed": 1}
    out = {}
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(responder=honest_responder) as fake:
        run = {"api_key": "bench", "base_url": fake.url, "concurrency": 16}
        store = Store(Path(tmp) / "fraction.duckdb")
        _bench_project(store, rows, decisive=True)
        TeacherRun(store, "bench", row_ids=pilot_rows(store, "bench", 0.02, floor=20), **run, **plan).run()
        before = store.spend("bench")
        fc = forecast(store, "bench", prices, **plan)
        summary = TeacherRun(store, "bench", **run, **plan).run()
        out["fraction"] = {"forecast": fc.cost_usd_p50, "p90": fc.cost_usd_p90,
                           "actual": store.spend("bench") - before,
                           "share": summary.rationale_requests / max(1, summary.requests)}

        store = Store(Path(tmp) / "relabel.duckdb")
        _bench_project(store, rows, decisive=False)
        TeacherRun(store, "bench", **run).run()  # every "parcel" ticket comes back unparseable
        project = store.get_project("bench")
        store.update_project("bench", template=project.template + "\nBe decisive.")
        before = store.spend("bench")
        fc = forecast(store, "bench", prices, relabel="failed")
        summary = TeacherRun(store, "bench", relabel="failed", **run).run()
        out["relabel"] = {"forecast": fc.cost_usd_p50, "p90": fc.cost_usd_p90, "actual": store.spend("bench") - before,
                          "rows": fc.rows, "sent": summary.requests}
    return out


def cqa_token_ratio() -> dict | None:
    if not (SHARED / "cqa" / "cqa_train.jsonl").exists():
        return None
    from core.prompt.tokens import request_tokens
    from core.prompt.templates import demonstrations, request_for

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cqa.duckdb")
        rows_file = SHARED / "cqa" / "cqa_train.jsonl"
        mapping = ColumnMapping(input_fields=["question"], id_field="id", label_field="answer", choices_field="choices")
        lines = [line for line in rows_file.read_bytes().splitlines(keepends=True) if line.strip()]
        lines = lines[:1000]  # tokens per row: 1,000 rows is plenty
        import_source(store, open_bytes(b"".join(lines), rows_file.name), "cqa", "multiple-choice", mapping,
                      template=mode_template("multiple-choice", ["question"]), model="claude-haiku-4-5")
        completions = json.loads((SHARED / "cqa" / "llm" / "train_CoT_0.json").read_text())[:1000]
        import_teacher_outputs(store, "cqa", [(None, t) for t in completions])
        items = store.items_by_order("cqa", None)[:500]
        project = store.get_project("cqa")
        zero = [request_tokens(request_for(project, it, project.model)) for it in items]
        store.update_project("cqa", mode="few-shot", shots=6,
                             template=mode_template("multiple-choice", ["question"], "few-shot"))
        few_project = store.get_project("cqa")
        examples = demonstrations(store, few_project)
        few = [request_tokens(request_for(few_project, it, project.model, examples)) for it in items]
        return {"zero_shot_tokens_per_row": sum(zero) / len(zero), "few_shot_tokens_per_row": sum(few) / len(few)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    r = invoice_check(args.rows)
    error = 100 * (r["forecast_p50"] - r["actual"]) / r["actual"]
    offline_error = 100 * (r["offline_p50"] - r["actual"]) / r["actual"]
    within = r["actual"] <= r["forecast_p90"]
    print(f"{r['rows']} rows on the fake server (its own token counting + per-message overhead)")
    print(f"  before any call (offline only): P50 ${r['offline_p50']:.4f}  P90 ${r['offline_p90']:.4f}  "
          f"error of P50 {offline_error:+.1f}%")
    print(f"  after a {r['pilot_rows']}-row pilot (${r['pilot_cost']:.4f}): P50 ${r['forecast_p50']:.4f}  "
          f"P90 ${r['forecast_p90']:.4f}")
    print(f"  billed in total: ${r['actual']:.4f}  -> forecast error {error:+.2f}%, within P90: {within}")
    plans = plan_check(args.rows)
    errors = {}
    for name, case in plans.items():
        errors[name] = 100 * (case["forecast"] - case["actual"]) / case["actual"]
        print(f"  {name:<9} run: forecast P50 ${case['forecast']:.4f} (P90 ${case['p90']:.4f}), billed "
              f"${case['actual']:.4f} -> error {errors[name]:+.2f}%"
              + (f"; rationale share sent {case['share']:.3f}" if name == "fraction" else
                 f"; priced {case['rows']} requests, sent {case['sent']}"))
    ratio = cqa_token_ratio()
    if ratio:
        q = ratio["zero_shot_tokens_per_row"] / ratio["few_shot_tokens_per_row"]
        print(f"CommonsenseQA prompt tokens per row: zero-shot {ratio['zero_shot_tokens_per_row']:.0f}, "
              f"6-shot CoT {ratio['few_shot_tokens_per_row']:.0f} -> ratio {q:.3f} ({100 * (1 - q):.0f}% fewer)")
    else:
        q = None
        print("CommonsenseQA ratio skipped: ../shared/data is absent")
    print(json.dumps({"rows": r["rows"], "pilot_rows": r["pilot_rows"], "forecast_error_pct": round(error, 3),
                      "offline_forecast_error_pct": round(offline_error, 3), "actual_within_p90": within,
                      "actual_usd": round(r["actual"], 6), "forecast_p50_usd": round(r["forecast_p50"], 6),
                      "forecast_p90_usd": round(r["forecast_p90"], 6),
                      "fraction_0_3_forecast_error_pct": round(errors["fraction"], 3),
                      "relabel_forecast_error_pct": round(errors["relabel"], 3),
                      "relabel_priced_requests": plans["relabel"]["rows"], "relabel_sent": plans["relabel"]["sent"],
                      "zero_vs_few_shot_token_ratio": round(q, 4) if q else None}))


if __name__ == "__main__":
    main()
