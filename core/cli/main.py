"""Command line: the same work as the app, headless, through the same core functions.

Each stage's commands live in their own module (core/cli/<stage>.py), declared next to their
code with @command; this module builds the parser from them, adds the options every
subcommand shares (--db, --json, --project), dispatches, and renders errors in one place."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli import ingest, jobs, label, prompt, results, review, student, train
from core.cli.commands import COMMANDS, Command
from core.db import Store, default_db_path
from core.kernel.errors import AppError

# --help lists the commands in stage order.
STAGES = (ingest, prompt, label, review, train, student, results, jobs)


def _out(args, payload: dict) -> None:
    """One JSON object with --json; else the command's own text (its "human" entry, never in
    the JSON), or one "key: value" line per entry."""
    human = payload.pop("human", None)
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(human if human is not None else "\n".join(f"{k}: {v}" for k, v in payload.items()))


def _add_command(sub, c: Command) -> None:
    p = sub.add_parser(c.name, help=c.help, description=c.help)
    p.add_argument("--db", default=default_db_path(),
                   help="DuckDB file (default: $DISTILL_DB or workspace/distill.duckdb)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if c.project:
        p.add_argument("--project", required=True)
    if c.flags:
        c.flags(p)
    p.set_defaults(func=c.func, **c.defaults)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Zero-shot step-by-step distillation.")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        for c in COMMANDS:
            if c.func.__module__ == stage.__name__:
                _add_command(sub, c)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = Store(args.db)
        result = args.func(args, store)
    except AppError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "kind": exc.kind}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _out(args, result)
    return 0
