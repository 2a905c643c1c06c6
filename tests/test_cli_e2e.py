"""The whole loop through the command line, as a user would run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, TICKETS_CSV


def cli(*args, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "core", *args, "--json"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def test_import_label_review_train_runs_export(tmp_path, fake):
    db = str(tmp_path / "cli.duckdb")
    data = tmp_path / "tickets.csv"
    data.write_text(TICKETS_CSV)
    out, _ = cli("import", "--db", db, "--project", "t", "--task", "classification", "--id-field", "id",
                 "--input-fields", "text", "--label-field", "label", str(data))
    assert out["rows"] == 6 and out["labels"] == ["billing", "shipping", "technical"]

    est, _ = cli("estimate", "--db", db, "--project", "t")
    assert est["rows"] == 6 and 0 < est["cost_usd_p50"] < est["cost_usd_p90"] and est["input_tokens_p50"] > 0
    for key in ("input_tokens_per_row", "output_tokens_per_row", "output_tokens_p50", "assumptions"):
        assert key in est
    few, _ = cli("estimate", "--db", db, "--project", "t", "--mode", "few-shot", "--shots", "3", "--batch")
    assert few["input_tokens_per_row"] > 1.4 * est["input_tokens_per_row"] and few["batch"] is True

    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fake.url}
    fake.script("429", "529")
    lab, _ = cli("label", "--db", db, "--project", "t", "--concurrency", "2", env=env)
    assert (lab["rows"], lab["labeled"], lab["errors"]) == (6, 6, 0) and lab["cost_usd"] > 0
    again, _ = cli("label", "--db", db, "--project", "t", env=env)
    assert again["rows"] == 0 and again["requests"] == 0
    assert sum(fake.billed.values()) == 6  # nothing billed twice

    rev, _ = cli("review", "--db", db, "--project", "t", "--row-id", "3", "--reviewer", "ana",
                 "--label", "billing", "--rationale", "Reviewer says billing.")
    assert rev["changes"] == 4  # label, rationale, verdict, reviewed
    undo, _ = cli("undo", "--db", db, "--project", "t", "--reviewer", "ana")
    assert undo["fields"] == 4
    cli("review", "--db", db, "--project", "t", "--row-id", "3", "--reviewer", "ana",
        "--label", "billing", "--rationale", "Reviewer says billing.")

    run, _ = cli("train", "--db", db, "--project", "t", "--student", "tiny-random", "--max-steps", "4",
                 "--batch-size", "3", "--label-source", "reviewed", "--alpha", "0.5")
    assert run["status"] == "completed" and run["steps"] == 4
    runs, _ = cli("runs", "--db", db, "--project", "t")
    assert len(runs["runs"]) == 1
    assert runs["runs"][0]["status"] == "completed" and "train_loss" in runs["runs"][0]["metrics"]
    assert runs["runs"][0]["config"]["label_source"] == "reviewed"
    config = runs["runs"][0]["config"]  # as resolved: the split, the chosen step, what it trained on
    assert "held out for the test" in config["split"] and config["data_snapshot"]["rows"] == config["train_rows"]
    assert config["chosen_step"] is not None  # a 4-step tiny student learns nothing: the page's warning says so
    assert any("not learned anything useful" in w for w in runs["runs"][0]["warnings"])
    assert not any("changed since" in w for w in runs["runs"][0]["warnings"])
    cli("review", "--db", db, "--project", "t", "--row-id", "1", "--reviewer", "ana", "--label", "shipping")
    changed = cli("runs", "--db", db, "--project", "t")[0]["runs"][0]["warnings"]
    if "1" in (json.loads(line)["row_id"] for line in open(Path(config["out_dir"]) / "training_rows.jsonl")):
        assert any("changed since it trained" in w for w in changed), changed

    export_path = tmp_path / "out.jsonl"
    exp, _ = cli("export", "--db", db, "--project", "t", "--format", "jsonl", str(export_path))
    rows = [json.loads(line) for line in export_path.read_text().splitlines()]
    assert exp["rows"] == 6 == len(rows)
    row3 = next(r for r in rows if r["row_id"] == "3")
    assert (row3["label"], row3["label_source"], row3["reviewer"], row3["teacher_model"]) == (
        "billing", "reviewer", "ana", "claude-haiku-4-5")
    assert all(r["template_hash"] and r["template_version"] == 1 for r in rows)
    assert "test-key" not in export_path.read_text()
    import pandas as pd
    from datasets import load_from_disk

    cli("export", "--db", db, "--project", "t", "--format", "hf", str(tmp_path / "hf"))
    dataset = load_from_disk(str(tmp_path / "hf"))
    assert len(dataset) == 6 and {"label_source", "reviewer", "template_version", "teacher_model",
                                  "teacher_cost_usd"} <= set(dataset.column_names)
    assert next(r for r in dataset if r["row_id"] == "3")["reviewer"] == "ana"
    cli("export", "--db", db, "--project", "t", "--format", "parquet", str(tmp_path / "out.parquet"))
    cli("export", "--db", db, "--project", "t", "--format", "csv", str(tmp_path / "out.csv"))
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == len(pd.read_csv(tmp_path / "out.csv")) == 6
    assert not list(tmp_path.glob("*.partial"))

    cli("report", "--db", db, "--run", run["job_id"], "--format", "md", str(tmp_path / "report.md"))
    assert "## Teacher provenance" in (tmp_path / "report.md").read_text()
    exported, _ = cli("export-model", "--db", db, "--run", run["job_id"], str(tmp_path / "student"))
    assert "README.md" in exported["files"]

    pred, _ = cli("predict", "--model", os.path.join(run["out_dir"], "model"), "my card was charged twice")
    assert len(pred["predictions"]) == 1


def test_bad_input_gives_clear_error_and_exit_code(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label\n1,a,x\n2,b,y,extra\n")
    out, proc = cli("import", "--db", db, "--project", "t", "--task", "classification", "--input-fields", "text",
                    "--label-field", "label", str(bad), check=False)
    assert proc.returncode == 2 and "line 3" in out["error"]
    out, proc = cli("label", "--db", db, "--project", "missing", check=False)
    assert proc.returncode == 2 and "No project" in out["error"]


def test_import_teacher_aligns_list_files_and_jsonl_by_id(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"q{i}", "q": f"question {i}", "choices": ["red", "blue", "green"],
                                          "answer": "blue"}) for i in range(3)))
    cli("import", "--db", db, "--project", "mc", "--task", "multiple-choice", "--id-field", "id",
        "--input-fields", "q", "--label-field", "answer", "--choices-field", "choices", str(data))
    part1, part2 = tmp_path / "c0.json", tmp_path / "c1.json"
    part1.write_text(json.dumps(["It is blue. So the answer is (b) blue.\n\nQ: next?", "So the answer is (a)."]))
    part2.write_text(json.dumps(["So the answer is either (a) red or (b) blue."]))
    out, _ = cli("import-teacher", "--db", db, "--project", "mc", str(part1), str(part2))
    checks = out.pop("rationale_checks")  # the two parsed answers are checked at once
    assert checks["rows"] == 2 and set(checks["per_check"]) == {"leakage", "contradiction", "ungrounded",
                                                                "boilerplate", "length"}
    why = out.pop("why_unread")  # the one unread answer names two options; imported, so no prompt change helps
    assert [(s["shape"], s["count"]) for s in why["shapes"]] == [("several", 1)]
    assert why["fix"] is None and "imported" in why["note"]
    assert out == {"rows": 3, "parsed": 2, "flagged": 1, "teacher_accuracy": round(1 / 3, 4)}
    fix = tmp_path / "fix.jsonl"
    fix.write_text(json.dumps({"id": "q2", "response": "Answer: (b) blue"}) + "\n")
    out, _ = cli("import-teacher", "--db", db, "--project", "mc", str(fix))
    assert out["rows"] == 1 and out["parsed"] == 1 and out["teacher_accuracy"] == 1.0


def test_help_lists_subcommands():
    proc = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, cwd=REPO)
    for sub in ["import", "import-teacher", "estimate", "label", "review", "export", "train", "runs", "predict",
                "sweep", "pause", "resume", "cancel", "export-model", "report"]:
        assert sub in proc.stdout


def test_label_in_batch_mode_from_the_command_line(tmp_path, fake):
    db = str(tmp_path / "cli.duckdb")
    data = tmp_path / "tickets.csv"
    data.write_text(TICKETS_CSV)
    cli("import", "--db", db, "--project", "t", "--task", "classification", "--id-field", "id",
        "--input-fields", "text", "--label-field", "label", str(data))
    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fake.url}
    lab, _ = cli("label", "--db", db, "--project", "t", "--batch", "--poll-interval", "0.05", env=env)
    assert (lab["labeled"], lab["flagged"], lab["errors"], lab["batches"], lab["requests"]) == (6, 0, 0, 1, 6)
    assert lab["cost_usd"] > 0 and lab["seconds"] >= 0 and fake.batches_created == 1
