"""A million rows end to end: import, labeling plans, a Batches run, review, export, training set.

Generates a classification data set with a gold label and realistic text lengths (8 to 120 words,
mean ~45, with commas and quotes), then measures, side by side in one run:

  import          CSV and Parquet, each through `core import` in its own process: seconds and
                  peak RSS (VmHWM) as a ratio of the file size, and over an idle baseline process
  planning        the cost estimate at the default and at a 0.3 rationale fraction, and the plan
                  (which rows get a rationale) for that fraction, in seconds
  batches         a Batches-mode labeling run against the fake server on --label-rows of the rows:
                  requests per second of wall time, and requests the server billed twice
  review          with every row labeled: the queue's count and page (as the page asks them, through
                  the app's store) p50/p95 for each filter and each sort, one saved edit (in the
                  app's rerun), the Review page's render through AppTest
  export          the project to Parquet, and building the training set (rows, split, examples),
                  each in its own process: seconds and peak RSS

    .venv/bin/python bench/scale.py [--rows 1000000] [--label-rows 20000] [--keep DIR]

The last line is one JSON object. Takes about 10 minutes at 1,000,000 rows on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS = ["billing", "technical", "shipping", "account", "other"]
WORDS = ("card charged twice order app crashes settings parcel tracking moved billed after cancelling login "
         "error courier lost package refund please invoice password reset screen frozen delivery address "
         "subscription renewal discount coupon warehouse email verify payment declined bank statement").split()


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """The same rows as CSV and as Parquet: id, text, label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(11)
    ids, texts, labels = [], [], []
    for i in range(rows):
        words = [rng.choice(WORDS) for _ in range(min(120, max(8, int(rng.gauss(45, 20)))))]
        if i % 9 == 0:
            words[len(words) // 2] += ","
        if i % 13 == 0:
            words.append('"asap"')
        ids.append(f"T{i:07d}")
        texts.append(" ".join(words))
        labels.append(LABELS[rng.randrange(5)])
    table = pa.table({"id": ids, "text": texts, "label": labels})
    csv_path, parquet_path = folder / "tickets.csv", folder / "tickets.parquet"
    import pyarrow.csv as pcsv

    pcsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path, compression="zstd")
    return csv_path, parquet_path


def peak_rss_mb() -> float:
    kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith("VmHWM:"))
    return round(kb / 1024, 1)


# ---- steps that run in their own process, so each reports its own peak memory ------------------
def child(step: str, db: str, arg: str | None) -> None:
    from core.cli.main import main as cli_main
    from core.db import Store

    started = time.monotonic()
    out: dict = {}
    if step == "baseline":
        import core.ingest.files  # noqa: F401  (what every import process loads)
        Store(db)
    elif step == "import":
        code = cli_main(["import", "--db", db, "--project", "big", "--task", "classification", "--id-field", "id",
                         "--input-fields", "text", "--label-field", "label", "--json", arg])
        out["exit"] = code
    elif step == "export":
        from core.review.dataset_export import export_project

        out.update(export_project(Store(db), "big", "parquet", arg, force=True))
    elif step == "trainset":
        from core.train.trainer import TrainConfig
        from core.train.data import split_rows, training_examples
        from core.train.trainer import training_data

        data = training_data(Store(db), "big")
        cfg = TrainConfig(project="big")
        split = split_rows(data.items, cfg.test_fraction, cfg.split_seed, cfg.val_fraction, data.task)
        examples = training_examples(split.train, cfg)
        out.update({"rows": len(data.items), "train": len(examples), "validation": len(split.validation),
                    "test": len(split.test)})
    print(json.dumps({"seconds": round(time.monotonic() - started, 2), "peak_rss_mb": peak_rss_mb(), **out},
                     default=str))


def in_process(step: str, db: Path, arg: str | None = None) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", step, "--db", str(db), *(["--arg", arg] if arg else [])],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{step} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


# ---- steps in this process ---------------------------------------------------------------------
def planning(store) -> dict:
    from core.kernel.prices import load_prices
    from core.prompt.forecast import forecast
    from core.prompt.planner import rationale_rows

    prices = load_prices()
    estimate_s = timed(lambda: forecast(store, "big", prices))
    fraction_s = timed(lambda: forecast(store, "big", prices, rationale_fraction=0.3))
    items = store.items_by_order("big", None)
    chosen: set = set()

    def plan():
        chosen.update(rationale_rows(items, 0.3, 0, "classification"))
    plan_s = timed(plan)
    return {"estimate_s": round(estimate_s, 2), "estimate_fraction_s": round(fraction_s, 2),
            "plan_fraction_s": round(plan_s, 2), "plan_rationale_rows": len(chosen),
            "plan_expected": round(0.3 * len(items))}


def batches_run(store, label_rows: int) -> dict:
    from core.label.teacher import TeacherRun
    from tests.fake_anthropic import FakeAnthropic
    from tests.helpers import correct_responder

    fake = FakeAnthropic(responder=correct_responder, batch_delay_s=1.0).start()
    try:
        started = time.monotonic()
        summary = TeacherRun(store, "big", api_key="bench", base_url=fake.url, batch=True, limit=label_rows,
                             poll_interval_s=0.5).run()
        seconds = time.monotonic() - started
        twice = sum(n - 1 for n in fake.billed.values() if n > 1)
        return {"requests": summary.labeled + summary.errors, "labeled": summary.labeled, "seconds": round(seconds, 1),
                "requests_per_s": round((summary.labeled + summary.errors) / seconds, 1), "billed_twice": twice}
    finally:
        fake.stop()


def label_everything(store) -> None:
    """The teacher's answers on every row, as a labeling run leaves them (10% disagreeing with gold,
    2.5% flagged), so every review filter has rows to find."""
    with store.transaction() as con:
        con.execute("UPDATE items SET status = CASE WHEN idx % 40 = 0 THEN 'flagged' ELSE 'labeled' END, "
                    "flag = CASE WHEN idx % 40 = 0 THEN 'ambiguous' END, "
                    "teacher_label = CASE WHEN idx % 10 = 0 THEN 'other' ELSE gold END, "
                    "label = CASE WHEN idx % 10 = 0 THEN 'other' ELSE gold END, "
                    "teacher_confidence = (idx % 100) / 100.0, "
                    "rationale = 'Because the ticket mentions ' || gold || ' in sentence ' || idx, "
                    "teacher_rationale = 'Because the ticket mentions ' || gold || ' in sentence ' || idx, "
                    "label_source = 'teacher' WHERE project = 'big'")


def review_queue(db: Path, repeats: int) -> dict:
    """What the Review page's queue costs: the count and one page of it, through the app's store
    (it keeps the file open across one rerun's queries), for every filter and every sort."""
    from core.db import REVIEW_FILTERS, REVIEW_SORTS, Store

    store = Store(db, hold_s=0.3)
    out = {}
    cases = [(f, "import order") for f in REVIEW_FILTERS] + [("unreviewed", s) for s in REVIEW_SORTS if s != "import order"]
    for name, sort in cases:
        times = []
        for r in range(repeats):
            def page():
                total = store.review_count("big", [name])
                store.review_page("big", [name], page=r * 7, sort=sort, total=total)
            times.append(timed(page))
        out[f"{name} | {sort}"] = {"p50_ms": round(1000 * statistics.median(times), 1),
                                   "p95_ms": round(1000 * p95(times), 1)}
    store.release()
    return out


def save_and_render(db: Path, rows: int) -> dict:
    from core.db import Store
    from core.review import rules

    app_store = Store(db, hold_s=0.3)
    saves = []
    for i in range(15):
        spec = app_store.get_project("big")
        row = app_store.get_item("big", f"T{(i * 65537) % rows:07d}")
        saves.append(timed(lambda: rules.save_review(app_store, "big", row["row_id"], "bench", "billing", "edited",
                                                     row=row, spec=spec)))
        time.sleep(0.4)
    os.environ["DISTILL_DB"] = str(db)
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    def render():
        at = AppTest.from_file(str(ROOT / "pages/4_Review.py"), default_timeout=300)
        at.query_params["project"] = "big"
        at.run()
        assert not at.exception, at.exception
    render()
    renders = [timed(render) for _ in range(3)]
    return {"save_ms": round(1000 * statistics.median(saves), 1), "render_s": round(statistics.median(renders), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--label-rows", type=int, default=20_000, help="rows the Batches run labels")
    parser.add_argument("--repeats", type=int, default=12, help="queue pages timed per filter or sort")
    parser.add_argument("--keep", help="work in this folder (and keep it) instead of a temporary one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.db, args.arg)
    from core.db import Store

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        csv_path, parquet_path = write_files(folder, args.rows)
        print(f"{args.rows:,} rows written in {time.monotonic() - started:.1f} s "
              f"(CSV {csv_path.stat().st_size / 2**20:.0f} MB, Parquet {parquet_path.stat().st_size / 2**20:.0f} MB); "
              f"load average {load[0]:.2f}", flush=True)
        result: dict = {"rows": args.rows, "load_avg_1m": round(load[0], 2), "import": {}}
        baseline = in_process("baseline", folder / "baseline.duckdb")
        result["baseline_rss_mb"] = baseline["peak_rss_mb"]
        for name, path in (("parquet", parquet_path), ("csv", csv_path)):
            db = folder / f"{name}.duckdb"
            for old in folder.glob(f"{name}.duckdb*"):
                old.unlink()
            measured = in_process("import", db, str(path))
            if measured.get("exit"):
                raise SystemExit(f"import {name} failed: {measured}")
            size = path.stat().st_size / 2**20
            measured.update(file_mb=round(size, 1), rss_over_file=round(measured["peak_rss_mb"] / size, 2),
                            above_baseline_over_file=round((measured["peak_rss_mb"] - baseline["peak_rss_mb"]) / size, 2))
            result["import"][name] = measured
            print(f"import {name:8} {size:6.0f} MB  {measured['seconds']:6.1f} s  peak RSS {measured['peak_rss_mb']:7.1f} MB "
                  f"= {measured['rss_over_file']:.2f}x the file ({measured['above_baseline_over_file']:.2f}x over the "
                  f"{baseline['peak_rss_mb']:.0f} MB baseline)", flush=True)
        db = folder / "csv.duckdb"
        store = Store(db)
        result["planning"] = planning(store)
        print(f"planning: {result['planning']}", flush=True)
        result["batches"] = batches_run(store, args.label_rows)
        print(f"Batches run on {args.label_rows:,} rows: {result['batches']}", flush=True)
        label_everything(store)
        result["queue"] = review_queue(db, args.repeats)
        worst = max(result["queue"].items(), key=lambda kv: kv[1]["p95_ms"])
        all_times = [v["p95_ms"] for v in result["queue"].values()]
        print(f"review queue: {len(all_times)} filters and sorts; worst p95 {worst[1]['p95_ms']} ms ({worst[0]}); "
              f"median of the p95s {statistics.median(all_times):.1f} ms", flush=True)
        for case, t in result["queue"].items():
            print(f"  {case:<60} p50 {t['p50_ms']:7.1f} ms  p95 {t['p95_ms']:7.1f} ms")
        result.update(save_and_render(db, args.rows))
        print(f"save one edit: median {result['save_ms']} ms; Review page render: median {result['render_s']} s", flush=True)
        result["export_parquet"] = in_process("export", db, str(folder / "export.parquet"))
        result["training_set"] = in_process("trainset", db)
        for step in ("export_parquet", "training_set"):
            print(f"{step}: {result[step]['seconds']} s, peak RSS {result[step]['peak_rss_mb']} MB", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
