"""`core serve` under load: 20 concurrent clients against the served demo student, alone and
with the cascade to a fake teacher (tests/fake_anthropic.py, with its own billing ledger),
and once more with a budget cap the load must run into. Measured side by side in one run.

    .venv/bin/python bench/serve.py [--clients 20] [--requests 10] [--rows 1] [--student offline:minilm-bert2bert]

Each client sends --requests requests of --rows rows (new tickets, so the teacher cache never
answers). For each scenario: latency p50 / p95 per request, rows/s over the whole load, the
requests that failed or came back with the wrong number of rows (must be 0), the share of rows
the teacher answered, and what the teacher billed (the fake's own ledger) against the cap.
The server is a separate `python -m core serve` process, as a user runs it.
Last line: one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core import jobs  # noqa: E402
from core.db import Store  # noqa: E402
from core.kernel import paths  # noqa: E402
from core.kernel.prices import load_prices  # noqa: E402
from core.label.demo import ensure_demo  # noqa: E402
from core.train.calibration import read_calibration  # noqa: E402
from core.train.run import Run  # noqa: E402
from core.train.trainer import TrainConfig  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.helpers import free_port  # noqa: E402

WORDS = ["I was charged twice for order", "The app crashes when I open settings, build", "My parcel is late, tracking",
         "I cannot log in to my account, user", "I want to return the shoes from order", "Refund not received for"]
CATEGORY = {0: "billing", 1: "technical", 2: "shipping", 3: "account", 4: "returns", 5: "billing"}


def demo_teacher(body: dict) -> str:
    """A teacher that reads the ticket the way the demo's categories do."""
    text = body["messages"][-1]["content"]
    n = next((i for i, w in enumerate(WORDS) if w in text), 2)
    return f"Answer: {CATEGORY[n]}\nRationale: The ticket is about {CATEGORY[n]}."


def post(url: str, rows: list[dict]) -> tuple[float, dict | None, str | None]:
    body = json.dumps({"rows": rows}).encode()
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return time.perf_counter() - started, json.loads(response.read()), None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return time.perf_counter() - started, None, repr(exc)


def load(url: str, clients: int, requests: int, rows: int, tag: str) -> dict:
    latencies, failures, answers = [], [], []
    lock = threading.Lock()

    def client(c: int) -> None:
        for r in range(requests):
            batch = [{"subject": "help", "body": f"{WORDS[(c + r + k) % len(WORDS)]} {tag}-{c}-{r}-{k}"}
                     for k in range(rows)]
            seconds, body, error = post(url, batch)
            with lock:
                if error or body is None or len(body.get("predictions", [])) != rows:
                    failures.append(error or "wrong number of rows")
                else:
                    latencies.append(seconds)
                    answers.extend(body["predictions"])

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": clients * requests, "failed": len(failures), "rows": len(answers),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
            "rows_per_s": round(len(answers) / wall, 2), "seconds": round(wall, 1),
            "to_teacher": round(sum(a["answered_by"] == "teacher" for a in answers) / max(1, len(answers)), 3),
            "deferred": sum(a["deferred"] for a in answers),
            "refused_by_cap": sum(1 for a in answers if a["teacher_error"] and "budget cap" in a["teacher_error"])}


def serving(db: Path, run_id: str, extra: list[str], env: dict):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--run", run_id, "--port", str(port),
                             "--db", str(db), *extra], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"core serve exited: {proc.stderr.read()}") from None
            time.sleep(0.3)
    raise SystemExit("core serve did not start in 120 s")


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--student", default="offline:minilm-bert2bert")
    parser.add_argument("--steps", type=int, default=10, help="training steps (serving speed does not depend on them)")
    parser.add_argument("--teacher-latency", type=float, default=0.5, help="seconds the fake teacher takes per answer")
    parser.add_argument("--cap", type=float, help="the capped scenario's budget, dollars (default: half of what "
                        "the uncapped cascade billed, so the load runs into it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "serve.duckdb"
        store = Store(db)
        project = ensure_demo(store)
        cfg = TrainConfig(project=project, student=args.student, max_steps=args.steps, batch_size=8,
                          label_source="teacher")
        run_id = store.create_job(project, "train", asdict(cfg))
        store.update_job(run_id, out_dir=str(paths.job_dir(store, run_id)))
        jobs.run_job(store, run_id)
        rows = read_calibration(Run.find(store, run_id).folder)["rows"]
        # a threshold that defers about 30% of the held-out rows: a realistic cascade's share
        threshold = sorted(r["confidence"] for r in rows)[int(0.3 * len(rows))] + 1e-9
        fake = FakeAnthropic(responder=demo_teacher, latency_s=args.teacher_latency).start()
        env = {"ANTHROPIC_API_KEY": "bench-key", "ANTHROPIC_BASE_URL": fake.url}
        out = {"clients": args.clients, "requests_per_client": args.requests, "rows_per_request": args.rows,
               "student": args.student, "threshold": round(threshold, 4), "teacher_latency_s": args.teacher_latency}
        scenarios = [("student", [], "s"), ("cascade", ["--cascade", f"{threshold:.6f}"], "c"),
                     ("cascade_capped", ["--cascade", f"{threshold:.6f}", "--budget", "CAP"], "k")]
        prices = load_prices()
        for name, extra, tag in scenarios:  # one-letter tags: rows alike, never the same request twice
            billed_before = fake.billed_usd(prices)
            cap = args.cap if args.cap is not None else round(out.get("cascade", {}).get("fake_billed_usd", 0) / 2, 6)
            extra = [str(cap) if x == "CAP" else x for x in extra]
            proc, url = serving(db, run_id, extra, env)
            try:
                result = load(url, args.clients, args.requests, args.rows, tag)
                result["teacher_spent_usd"] = health(url)["teacher_spent_usd"]
            finally:
                proc.terminate()
                proc.wait(30)
            result["fake_billed_usd"] = round(fake.billed_usd(prices) - billed_before, 6)
            if name == "cascade_capped":
                result["cap_usd"] = cap
                result["cap_held"] = result["fake_billed_usd"] <= cap + 1e-9
            out[name] = result
            print(f"{name:15s} p50 {result['p50_s']}s  p95 {result['p95_s']}s  {result['rows_per_s']} rows/s  "
                  f"failed {result['failed']}/{result['requests']}  to teacher {result['to_teacher']:.1%}  "
                  f"billed ${result['fake_billed_usd']:.4f}"
                  + (f" (cap ${cap}, refused {result['refused_by_cap']} rows)" if name == "cascade_capped" else ""),
                  flush=True)
        fake.stop()
        out["rows_per_s_cascade_vs_student"] = round(out["cascade"]["rows_per_s"] / out["student"]["rows_per_s"], 3)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
