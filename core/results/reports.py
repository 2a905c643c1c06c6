"""What is written about a run: its report (Markdown or HTML, every value escaped) and the
model card that goes with an exported student. Both are built from `run_facts`."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from core.db import Store
from core.kernel.errors import AppError, ConfigError, PriceFileError
from core.results.runs import (
    NOT_APPLICABLE,
    RATIONALE_SETTINGS,
    baselines,
    confusion,
    is_label_only,
    objective_name,
    run_rows,
    run_warnings,
)
from core.results.savings import fact_rows, run_savings
from core.train.generate import LABEL_PREFIX, RATIONALE_PREFIX
from core.train.run import Run


def run_facts(store: Store, run_id: str, throughput: dict | None = None) -> dict:
    """Everything a report or model card says about a run: config, provenance, metrics.
    `throughput`: a measurement to price the student by instead of the stored one."""
    run = Run.find(store, run_id)
    job = run.job
    project = store.get_project(job["project"])
    provenance = store.teacher_provenance(job["project"])
    row = run_rows(store, job["project"], [job])[0]
    reference = baselines(store, job["project"], [run_id])
    return {"job": job, "project": project, "config": run.config, "provenance": provenance,
            "metrics": store.latest_metrics(run_id), "summary": row, "confusion": confusion(job),
            "baseline": (reference or {}).get("runs", {}).get(run_id),
            "warnings": run_warnings(store, row, reference), **_savings_facts(store, run_id, throughput),
            "cascade": _cascade_facts(store, run_id, throughput)}


def _cascade_facts(store: Store, run_id: str, throughput: dict | None = None) -> dict | None:
    """The run's calibration and its cascade at the default target, the student priced as the
    savings are (`throughput`); None for a run without a calibration."""
    from core.results.cascade import cascade_report

    try:
        return cascade_report(store, run_id, measurement=throughput)
    except (AppError, PriceFileError):
        return None


def _savings_facts(store: Store, run_id: str, throughput: dict | None = None) -> dict:
    """What the student saves (core.results.savings), from the stored throughput measurement and the
    price file; a broken price file leaves the reason instead of failing the report."""
    try:
        return {"savings": run_savings(store, run_id, measurement=throughput)}
    except PriceFileError as exc:
        return {"savings": None, "savings_error": str(exc)}


def _sections(facts: dict) -> list[tuple[str, list[str], list[list]]]:
    """(title, header, rows) tables shared by the Markdown and HTML reports."""
    cfg, prov, job = facts["config"], facts["provenance"], facts["job"]
    baseline = facts.get("baseline")
    against = []
    if baseline:
        against.append([f"majority-class baseline (always {baseline['majority_label']!r}, same held-out rows)",
                        round(baseline["majority_baseline"], 4)])
        if baseline["teacher_accuracy"] is not None:
            against.append(["teacher accuracy against gold (same held-out rows)", round(baseline["teacher_accuracy"], 4)])
        against.append(["held-out rows with gold", baseline["rows"]])
    sections = [
        ("Run", ["field", "value"], [["run", job["id"]], ["status", job["status"]], ["project", job["project"]],
                                     ["task", facts["project"].task], ["finished", job["finished_at"]]]),
    ]
    if facts.get("warnings"):
        sections.append(("Warnings", ["warning"], [[w] for w in facts["warnings"]]))
    sections += [
        ("Config", ["setting", "value"], [[k, _config_value(cfg, k, v)] for k, v in cfg.items()
                                          if k not in ("extra", "project")]),
        ("Metrics", ["metric", "value"], [[k, round(v, 4)] for k, v in sorted(facts["metrics"].items())] + against),
        ("Teacher provenance", ["model", "template version", "calls", "cached", "errors", "billed $"],
         [[c["model"], c["template_version"], c["calls"], c["cached"], c["errors"], round(c["billed_usd"] or 0, 4)]
          for c in prov["calls"]]),
        ("Teacher answers", ["field", "value"],
         [["rows with a teacher answer", prov["rows"]], ["source", prov["source"]],
          ["cost of those answers $", round(prov["answer_cost_usd"], 4)],
          ["teacher $ behind this run's training rows", facts["summary"]["teacher_usd"]]]),
    ]
    if facts.get("savings"):
        sections.append(("What the student saves", ["field", "value"], fact_rows(facts["savings"])))
    elif facts.get("savings_error"):
        sections.append(("What the student saves", ["field", "value"], [["not computed", facts["savings_error"]]]))
    if facts.get("cascade"):
        sections.append(("Confidence and the cascade", ["field", "value"], _cascade_rows(facts["cascade"])))
    if facts["confusion"]:
        per_class = facts["confusion"]["per_class_accuracy"]
        sections.append(("Per-class accuracy", ["class", "accuracy"], [[k, round(v, 3)] for k, v in per_class.items()]))
    return sections


def _cascade_rows(report: dict) -> list[list]:
    cal = report["calibration"]
    ece = lambda v: "—" if v is None else round(v, 4)  # noqa: E731
    return [["temperature (fitted on validation rows)", f"{cal['temperature']:.3f} on {cal['fitted_on_rows']} rows"],
            ["expected calibration error, test rows, before / after", f"{ece(cal['ece_before'])} / {ece(cal['ece_after'])}"],
            ["cascade", report["sentence"]], ["teacher price per row", report["teacher_price"]],
            ["student price per row", report["student_price"]]]


def _config_value(cfg: dict, key: str, value):
    """A saved setting for the report: as stored (so a run can be repeated from it), except the
    objective's name and the rationale settings of a label-only run, which it does not use ("—")."""
    if key == "objective":
        return f"{objective_name(value)} (stored as {value})" if objective_name(value) != value else value
    if key in RATIONALE_SETTINGS and is_label_only(cfg):
        return NOT_APPLICABLE
    return value


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(sections) -> str:
    lines = []
    for name, header, rows in sections:
        lines += [f"## {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def run_report(store: Store, run_id: str, fmt: str = "md") -> str:
    """A self-contained run report in Markdown or HTML (every value escaped)."""
    facts = run_facts(store, run_id)
    sections = _sections(facts)
    title = f"Run report: {run_id}"
    if fmt == "md":
        return f"# {title}\n\n" + _markdown(sections)
    if fmt == "html":
        e = html.escape
        parts = [f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:60em}td,th{border:1px solid #ccc;padding:2px 6px}"
                 "table{border-collapse:collapse;margin-bottom:1em}</style>", f"<h1>{e(title)}</h1>"]
        for name, header, rows in sections:
            parts.append(f"<h2>{e(name)}</h2><table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in rows]
            parts.append("</table>")
        return "\n".join(parts)
    raise ConfigError(f"report format must be md or html, not {fmt!r}")


def _public(value):
    """A config value fit for a published card: local paths (a student folder, a data
    file) become their last component, so a card never shows the server's file layout."""
    if isinstance(value, str) and (value.startswith(("/", "~", "./", "../")) or re.match(r"^[A-Za-z]:[\\/]", value)
                                   or os.sep in value and Path(value).exists()):
        return f"<local>/{Path(value).name}"
    return value


def model_card(facts: dict) -> str:
    facts = {**facts, "config": {k: _public(v) for k, v in facts["config"].items()}}
    cfg = facts["config"]
    front = ["---", "library_name: transformers", "pipeline_tag: text2text-generation",
             "tags: [distillation, distilling-step-by-step]", "---", ""]
    usage = ["## Use", "", "```python", "from core.student.predict import load_student_model",
             "load_student_model('<this folder>').predict(['your input text'], rationale=True)", "```", "",
             "Or a whole file: `python -m core predict --model <this folder> --file rows.csv --out predictions.csv`.", "",
             f"Inputs carry a task prefix: `{LABEL_PREFIX}` for the label, `{RATIONALE_PREFIX}` for the rationale."]
    settings = (f"labels from {cfg['label_source']}" if cfg.get("objective") == "standard" else
                f"labels from {cfg['label_source']}, alpha {cfg['alpha']}, rationale fraction "
                f"{cfg['rationale_fraction']}, {cfg.get('rationale_loss', '')}")
    intro = [f"# Student distilled from a teacher LLM: {facts['job']['project']}", "",
             f"A {cfg['student']} student trained with the {objective_name(cfg.get('objective', ''))} objective "
             f"({settings}) by zero-shot step-by-step distillation (Vöge, Gurgul & Lessmann 2024; Hsieh et al. 2023).",
             ""]
    return "\n".join(front + intro + usage + [""]) + _markdown(_sections(facts))
