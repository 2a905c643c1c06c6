"""Labeling throughput at the rate limit, against the fake Anthropic server.

Setup (as issue 4 asks): 1,200 requests per minute, 300 ms mean latency, 3,000 rows,
3% injected 429s (retry-after 1 s) and 3% injected 529s. Our engine (async, SDK retries,
adaptive limiter reading anthropic-ratelimit-* headers) against a naive sequential loop
over the same server. The sequential loop runs on a slice of the rows (at ~3 rows/s
all 3,000 would take a quarter of an hour); throughput is a rate, so the fractions compare.

A third run starts two labeling processes at once on one project, on disjoint halves of
its rows, under one project budget cap: what the server billed (its own ledger) against the
cap, requests billed twice, and their combined throughput until the cap stopped them.

    .venv/bin/python bench/labeling.py [--rows 3000] [--rpm 1200] [--sequential-rows 150] [--cap 0.1]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.db import Store
from core.kernel.prices import load_prices
from core.prompt.templates import build_request
from core.label.teacher import TeacherRun
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, many_tickets


def server(rpm: int, seed: int) -> FakeAnthropic:
    return FakeAnthropic(responder=correct_responder, latency_s=0.3, latency_jitter_s=0.15, rpm=rpm,
                         fault_rates={"429": 0.03, "529": 0.03}, retry_after_s=1, seed=seed).start()


def double_billed(fake: FakeAnthropic) -> int:
    return sum(n - 1 for n in fake.billed.values() if n > 1)


def run_engine(rows: int, rpm: int, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        many_tickets(store, rows, project="bench")
        fake = server(rpm, seed=1)
        try:
            started = time.monotonic()
            summary = TeacherRun(store, "bench", api_key="bench", base_url=fake.url, concurrency=concurrency,
                                 max_retries=6).run()
            seconds = time.monotonic() - started
            lost = store.scalar("SELECT count(*) FROM items WHERE project = 'bench' AND status <> 'labeled'")
            return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(summary.labeled / seconds, 2),
                    "fraction": summary.labeled / seconds / (rpm / 60), "lost": lost, "double_billed": double_billed(fake),
                    "server_429_real": fake.rate_limited,
                    "injected": sum(1 for r in fake.requests if r["fault"] in ("429", "529"))}
        finally:
            fake.stop()


def run_sequential(rows: int, rpm: int) -> dict:
    """What a first script does: one request after another with the SDK's default retries."""
    import anthropic

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "seq.duckdb")
        many_tickets(store, rows, project="bench")
        project = store.get_project("bench")
        fake = server(rpm, seed=2)
        client = anthropic.Anthropic(api_key="bench", base_url=fake.url)
        done = lost = 0
        try:
            started = time.monotonic()
            for item in store.items_by_order("bench", None):
                request = build_request(project.template, item, project.label_set, project.model, project.max_tokens)
                try:
                    client.messages.create(**request)
                    done += 1
                except anthropic.APIError:
                    lost += 1
            seconds = time.monotonic() - started
            return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(done / seconds, 2),
                    "fraction": done / seconds / (rpm / 60), "lost": lost, "double_billed": double_billed(fake)}
        finally:
            client.close()
            fake.stop()


_HALF = """
import sys, time
from core.db import Store
from core.label.teacher import TeacherRun
rows = sys.argv[2].split(",")
t = time.monotonic()
s = TeacherRun(Store(sys.argv[1]), "bench", concurrency=int(sys.argv[3]), row_ids=rows, max_retries=6).run()
print(s.stopped, s.labeled, time.monotonic() - t)
"""


def run_two_under_cap(rows: int, rpm: int, concurrency: int, cap: float) -> dict:
    """Two processes, one project, one cap (each process half the rows and half the concurrency)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "two.duckdb")
        many_tickets(store, rows, project="bench")
        store.update_project("bench", budget_usd=cap)
        fake = server(rpm, seed=3)
        env = {**os.environ, "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": fake.url,
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        ids = [r["row_id"] for r in store.items_by_order("bench", None)]
        try:
            started = time.monotonic()
            procs = [subprocess.Popen([sys.executable, "-c", _HALF, store.path, ",".join(half),
                                       str(max(1, concurrency // 2))], env=env, stdout=subprocess.PIPE, text=True)
                     for half in (ids[: rows // 2], ids[rows // 2:])]
            outs = [p.communicate()[0].split() for p in procs]
            seconds = time.monotonic() - started  # both processes, from start to the last one done
            labeled = sum(int(o[1]) for o in outs)
            return {"cap": cap, "billed": fake.billed_usd(load_prices()), "recorded": store.spend("bench"),
                    "double_billed": double_billed(fake), "stopped": [o[0] for o in outs], "labeled": labeled,
                    "seconds": round(seconds, 1), "fraction": labeled / seconds / (rpm / 60)}
        finally:
            fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential-rows", type=int, default=150)
    parser.add_argument("--cap", type=float, default=0.1, help="project cap for the two-process run, USD")
    args = parser.parse_args()

    print(f"fake server: {args.rpm} RPM, 300 ms mean latency, 3% 429 + 3% 529 injected")
    engine = run_engine(args.rows, args.rpm, args.concurrency)
    print(f"engine     : {engine['rows']} rows in {engine['seconds']} s = {engine['rows_per_s']} rows/s "
          f"= {engine['fraction']:.3f} of the limit; lost {engine['lost']}, billed twice {engine['double_billed']}, "
          f"real 429s {engine['server_429_real']}, injected faults {engine['injected']}")
    seq = run_sequential(args.sequential_rows, args.rpm)
    print(f"sequential : {seq['rows']} rows in {seq['seconds']} s = {seq['rows_per_s']} rows/s "
          f"= {seq['fraction']:.3f} of the limit; lost {seq['lost']}, billed twice {seq['double_billed']}")
    print(f"engine / sequential throughput: {engine['fraction'] / seq['fraction']:.1f}x")
    two = run_two_under_cap(args.rows, args.rpm, args.concurrency, args.cap)
    print(f"two runs   : billed ${two['billed']:.4f} (server) / ${two['recorded']:.4f} (ours) under a ${two['cap']} cap "
          f"= {two['billed'] / two['cap']:.3f} of it; billed twice {two['double_billed']}; stopped {two['stopped']}; "
          f"{two['labeled']} rows in {two['seconds']} s = {two['fraction']:.3f} of the limit")
    print(json.dumps({
        "rows": engine["rows"], "rpm_limit": args.rpm,
        "throughput_fraction_of_limit": round(engine["fraction"], 4), "rows_lost": engine["lost"],
        "double_billed": engine["double_billed"], "real_429s": engine["server_429_real"],
        "sequential_throughput_fraction": round(seq["fraction"], 4), "sequential_rows_lost": seq["lost"],
        "sequential_double_billed": seq["double_billed"],
        "speedup_vs_sequential": round(engine["fraction"] / seq["fraction"], 2),
        "two_runs_cap_usd": two["cap"], "two_runs_billed_usd": round(two["billed"], 6),
        "two_runs_billed_over_cap": round(two["billed"] / two["cap"], 4),
        "two_runs_double_billed": two["double_billed"], "two_runs_throughput_fraction": round(two["fraction"], 4),
    }))


if __name__ == "__main__":
    main()
