"""Peak memory of an import: a 100 MB CSV, a 100 MB JSON Lines file and Parquet bombs.

Each case runs `python -m core import` (through core.cli.main.main) in its own process against a
fresh database, and that process reports its own peak RSS (VmHWM), so the numbers are per case.
The bombs must be refused before they inflate:

  parquet-bomb       one repeated 500-character string, 2,000,000 rows (~3 MB, 1 GB of text): over
                     the row limit, refused from the footer
  parquet-bomb-text  one repeated 5,000-character string, 900,000 rows: 4.5 GB of text, over the
                     text limit, found by a streaming pre-scan (strlen reads no string)

    .venv/bin/python bench/import.py [--mb 100] [--keep DIR]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ["card", "charged", "twice", "order", "app", "crashes", "settings", "parcel", "tracking", "moved",
         "billed", "after", "cancelling", "login", "error", "courier", "lost", "package", "refund", "please"]
LABELS = ["billing", "technical", "shipping"]


def write_text_files(folder: Path, mb: int) -> tuple[Path, Path]:
    """A CSV and a JSON Lines file of about `mb` MB each: id, text (5-60 words, some with a comma
    or a quote), label."""
    rng = random.Random(7)
    csv_path, jsonl_path = folder / "tickets.csv", folder / "tickets.jsonl"
    with open(csv_path, "w", encoding="utf-8") as c, open(jsonl_path, "w", encoding="utf-8") as j:
        c.write("id,text,label\n")
        size_c = size_j = i = 0
        while size_c < mb * 1024 * 1024 or size_j < mb * 1024 * 1024:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60)))
            text = text + ', "urgent"' if i % 7 == 0 else text
            label = LABELS[i % 3]
            if size_c < mb * 1024 * 1024:
                line = f'{i},"{text.replace(chr(34), chr(34) * 2)}",{label}\n'
                size_c += c.write(line)
            if size_j < mb * 1024 * 1024:
                size_j += j.write(json.dumps({"id": str(i), "text": text, "label": label}) + "\n")
            i += 1
    return csv_path, jsonl_path


def write_bomb(path: Path, rows: int, chars: int) -> Path:
    """One repeated string, dictionary-encoded, next to integer ids (zstd): about 3 MB on disk for
    2,000,000 rows, rows * chars of text when decoded."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def repeated(values: list[str], codes) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))

    pq.write_table(pa.table({"id": pa.array(np.arange(rows)), "text": repeated(["x" * chars], np.zeros(rows)),
                             "label": repeated(LABELS, np.arange(rows) % 3)}),
                   path, row_group_size=500_000, compression="zstd")
    return path


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM)."""
    kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith("VmHWM:"))
    return round(kb / 1024, 1)


def child(args) -> None:
    """Run one import like the CLI does (no file: only what every CLI process does, the imports and
    opening the store), then report this process's own peak RSS."""
    from core.cli.main import main as cli_main
    from core.db import Store

    started = time.monotonic()
    if args.file:
        code = cli_main(["import", "--db", args.db, "--project", "bench", "--task", "classification", "--id-field",
                         "id", "--input-fields", "text", "--label-field", "label", "--json", args.file])
    else:
        import core.ingest.files  # noqa: F401  (imported by every import)

        code = 0 if Store(args.db) else 1
        print("{}")
    seconds = time.monotonic() - started
    print(json.dumps({"exit": code, "seconds": round(seconds, 2), "peak_rss_mb": peak_rss_mb()}))


def run_case(name: str, file: Path | None, folder: Path) -> dict:
    db = folder / f"{name}.duckdb"
    for old in folder.glob(f"{name}.duckdb*"):  # a fresh store per case (--keep reuses the folder)
        old.unlink()
    proc = subprocess.run([sys.executable, __file__, "--child", "--db", str(db), *(["--file", str(file)] if file else [])],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(lines) < 2:
        raise SystemExit(f"{name} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    outcome, measured = json.loads(lines[-2]), json.loads(lines[-1])
    size_mb = file.stat().st_size / 1024 ** 2 if file else 0.0
    return {"case": name, "file_mb": round(size_mb, 1), **measured,
            "rss_over_file": round(measured["peak_rss_mb"] / size_mb, 2) if file else None,
            "rows": outcome.get("rows"), "refused": outcome.get("error")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100, help="size of the CSV and JSON Lines files")
    parser.add_argument("--keep", help="write the files here (and keep them) instead of a temporary folder")
    parser.add_argument("--only", help="comma-separated cases to run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        csv_path, jsonl_path = write_text_files(folder, args.mb)
        cases = {"csv": csv_path, "jsonl": jsonl_path,
                 "parquet-bomb": write_bomb(folder / "bomb.parquet", 2_000_000, 500),
                 "parquet-bomb-text": write_bomb(folder / "bomb_text.parquet", 900_000, 5_000)}
        print(f"files written in {time.monotonic() - started:.1f} s", flush=True)
        baseline = run_case("baseline", None, folder)
        print(f"baseline (imports + opening the store, no import): peak RSS {baseline['peak_rss_mb']:.1f} MB", flush=True)
        results = []
        for name, file in cases.items():
            if args.only and name not in args.only.split(","):
                continue
            result = run_case(name, file, folder)
            results.append(result)
            outcome = f"{result['rows']:,} rows" if result["rows"] is not None else f"refused: {result['refused']}"
            result["above_baseline_mb"] = round(result["peak_rss_mb"] - baseline["peak_rss_mb"], 1)
            print(f"{name:18} {result['file_mb']:7.1f} MB  {result['seconds']:7.2f} s  peak RSS "
                  f"{result['peak_rss_mb']:7.1f} MB  ({result['rss_over_file']:.2f}x file, "
                  f"+{result['above_baseline_mb']:.1f} MB over the baseline)  {outcome}", flush=True)
    print(json.dumps({"bench": "import", "baseline_rss_mb": baseline["peak_rss_mb"], "cases": results}))


if __name__ == "__main__":
    main()
