"""What a Label or Prompt page rerun pays for its forecast: planning and pricing every row's
request (forecast) against reading the fingerprint that tells the page its kept forecast still
holds (forecast_fingerprint), side by side on one project.

    .venv/bin/python bench/forecast_rerun.py [--rows 20000]

The last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.db import Store
from core.prompt.forecast import forecast, forecast_fingerprint
from core.kernel.prices import load_prices
from tests.helpers import many_tickets


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    store = Store(Path(tempfile.mkdtemp()) / "forecast.duckdb")
    many_tickets(store, args.rows)
    prices = load_prices()
    full = median_s(lambda: forecast(store, "tickets", prices, rationale_fraction=0.5), 3)
    kept = median_s(lambda: forecast_fingerprint(store, "tickets"), 10)
    print(f"{args.rows:,} unlabeled rows, rationale fraction 0.5")
    print(f"forecast (plan + price every request): median {full * 1000:.0f} ms")
    print(f"fingerprint (the kept forecast still holds): median {kept * 1000:.1f} ms  -> {full / kept:.0f}x less per rerun")
    print(json.dumps({"rows": args.rows, "forecast_ms": round(full * 1000, 1), "fingerprint_ms": round(kept * 1000, 2),
                      "ratio": round(full / kept, 1)}))


if __name__ == "__main__":
    main()
