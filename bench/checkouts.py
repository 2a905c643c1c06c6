"""The same benchmark on two checkouts of this repository, alternated, side by side in one run:
a refactor's "behaviour and speed stay the same" as numbers.

    .venv/bin/python bench/checkouts.py --base ../base-checkout --rounds 3 \\
        "bench/teacher_writes.py --rows 5000" "bench/forecast_rerun.py --rows 5000"

Each command runs in each checkout (its own working directory and imports, this venv's Python),
base then here, `--rounds` times; the last JSON line of each run is read, and for every numeric
key the median per side and the ratio here/base are printed. The last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no JSON line in the output:\n{text[-2000:]}")


def run_in(checkout: Path, command: str) -> dict:
    proc = subprocess.run([sys.executable, *shlex.split(command)], cwd=checkout, capture_output=True, text=True,
                          env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        raise SystemExit(f"{command} failed in {checkout}:\n{proc.stderr[-3000:]}")
    return last_json(proc.stdout)


def numbers(result: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = float(value)
    return flat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the other checkout (e.g. a git worktree of main before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("commands", nargs="+")
    args = parser.parse_args()
    base = Path(args.base).resolve()
    summary = {}
    for command in args.commands:
        runs = {"base": [], "here": []}
        for _ in range(args.rounds):
            runs["base"].append(numbers(run_in(base, command)))
            runs["here"].append(numbers(run_in(HERE, command)))
        print(f"\n{command}  ({args.rounds} rounds, alternated; median of each side)")
        rows = {}
        for key in runs["here"][0]:
            b = sorted(r[key] for r in runs["base"] if key in r)
            h = sorted(r[key] for r in runs["here"] if key in r)
            if not b:
                continue
            mb, mh = b[len(b) // 2], h[len(h) // 2]
            ratio = mh / mb if mb else None
            rows[key] = {"base": mb, "here": mh, "ratio": ratio}
            print(f"  {key:40s} base {mb:12.4f}  here {mh:12.4f}  ratio {ratio if ratio is None else round(ratio, 3)}")
        summary[command] = rows
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
