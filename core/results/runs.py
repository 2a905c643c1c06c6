"""Results: run comparison, charts, run reports and model export.

Functions return data (rows, Altair charts, report text); the Results page and the CLI
render them. A run's teacher cost is the cost of the teacher answers it trained on: rows
whose teacher label or teacher rationale it used, times the project's mean cost per answer.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from pathlib import Path

from core.db import Store
from core.kernel.errors import ConfigError, NotFound
from core.jobs import run_dir

LOSSES = {"train_loss": "total", "label_loss": "label", "rationale_loss": "rationale"}
# One name per objective in everything people read (tables, charts, reports); the stored
# value (`TrainConfig.objective`, the CLI's --objective) stays "multitask" | "standard".
OBJECTIVE_NAMES = {"multitask": "multi-task", "standard": "label-only"}
NOT_APPLICABLE = "—"
# Settings a label-only run ignores: it has no rationale task, so no rationale loss to weigh.
RATIONALE_SETTINGS = ("alpha", "rationale_fraction", "rationale_missing", "rationale_loss", "approved_rationales_only")
# A run whose accuracy is within this of the majority-class baseline does "no better" than it.
BASELINE_MARGIN = 1e-9

# Plain-language meaning of every number the Train and Results pages show (one sentence each).
HELP = {
    "objective": "multi-task: the student learns to give the label and to explain it (two tasks); "
                 "label-only: it learns the label alone.",
    "alpha": "How much the label task counts against the rationale task in the training loss "
             "(1 = labels only, 0 = rationales only); not used by label-only runs.",
    "rationale_fraction": "Share of training rows that keep the teacher's rationale (1 = every row, 0.5 = half); "
                          "not used by label-only runs.",
    "rationale_loss": "What happens to rows without a rationale: masked = they teach only the label; "
                      "empty = they also teach the student to explain nothing.",
    "label_source": "Where the training labels come from: gold (the data's own answers), teacher (the LLM's), "
                    "or reviewed (the teacher's with your reviewers' corrections).",
    "held_out": "Rows kept out of training (the data's test split, or a seeded share of the rows) so that "
                "accuracy measures answers the student has never seen.",
    "test_accuracy": "Share of held-out rows where the student's label matches the gold label.",
    "teacher_agreement": "Share of held-out rows where the student gives the same label as the teacher, "
                         "right or wrong.",
    "majority_baseline": "Accuracy of a model that always answers the most common label of the training rows, "
                         "on the same held-out rows: a student must beat this to have learned anything.",
    "teacher_accuracy": "Share of the same held-out rows where the teacher's label matches the gold label: "
                        "what the student is trying to copy.",
    "teacher_usd": "What the teacher answers behind this run's training rows cost (its labels or rationales).",
    "train_loss": "The training error of the last step (lower is better; compare runs, not absolute values).",
    "steps": "Optimizer steps: one step learns from one batch of rows.",
    "seed": "The random seed: same seed and settings give the same run.",
    "train_rows": "Rows the student trained on.",
    "rows_with_rationale": "Training rows that kept a rationale to learn from.",
    "student": "The small model being trained.",
    "batch_size": "Rows the student learns from in one step.",
}


# ---- runs ---------------------------------------------------------------------------
def resolved_config(job: dict) -> dict:
    """The config the run saved (with row counts and device), else the one it was started with."""
    out = run_dir(job)
    if out and (out / "train_config.json").exists():
        return json.loads((out / "train_config.json").read_text())
    return dict(job["config"])


def run_table(store: Store, project: str) -> list[dict]:
    """One row per training run: its settings, progress, metrics and teacher cost."""
    jobs = store.list_jobs(project, "train")
    return _rows(store, project, jobs)


def _rows(store: Store, project: str, jobs: list[dict]) -> list[dict]:
    cost_per_row = store.teacher_provenance(project)["cost_per_row_usd"]
    latest_of = store.latest_metrics_for([j["id"] for j in jobs])
    rows = []
    for job in jobs:
        cfg = resolved_config(job)
        latest = latest_of[job["id"]]
        teacher_rows = cfg.get("teacher_rows_used")
        label_only = is_label_only(cfg)
        rows.append({  # settings a label-only run ignores are None (shown as "—"), never a made-up number
            "run": job["id"], "status": job["status"], "sweep": job.get("parent_id"),
            "objective": cfg["objective"], "label_source": cfg["label_source"],
            "alpha": None if label_only else cfg["alpha"],
            "rationale_fraction": None if label_only else cfg["rationale_fraction"],
            "rationale_loss": None if label_only else cfg.get("rationale_missing", "mask"),
            "seed": cfg["seed"], "student": cfg["student"],
            "steps": cfg["max_steps"], "train_rows": cfg.get("train_rows"), "rows_with_rationale": cfg.get("rows_with_rationale"),
            "test_accuracy": latest.get("test_accuracy"), "teacher_agreement": latest.get("teacher_agreement"),
            "train_loss": latest.get("train_loss"),
            "teacher_usd": None if teacher_rows is None else round(teacher_rows * cost_per_row, 6),
        })
    return rows


def is_label_only(cfg: dict) -> bool:
    return cfg.get("objective") == "standard"


def objective_name(objective: str) -> str:
    return OBJECTIVE_NAMES.get(objective, objective)


def setting_text(cfg: dict, key: str):
    """A run setting as people read it: "—" for a rationale setting of a label-only run."""
    if key == "objective":
        return objective_name(cfg.get("objective", ""))
    if key in RATIONALE_SETTINGS and is_label_only(cfg):
        return NOT_APPLICABLE
    value = cfg.get(key)
    if key == "rationale_missing" and value is not None:
        return {"mask": "masked", "empty": "empty target"}.get(value, value)
    if key in ("alpha", "rationale_fraction") and isinstance(value, float):
        return f"{value:g}"  # 0.35, not a slider's 0.35000000000000003
    return NOT_APPLICABLE if value is None else value


def display_table(table: list[dict]) -> list[dict]:
    """run_table rows for a page: objective names, and "—" where a setting does not apply
    (the rationale settings of label-only runs), so a column never mixes in a made-up 0."""
    out = []
    for row in table:
        cfg = {**row, "rationale_missing": row["rationale_loss"]}
        out.append({**row, **{key: str(setting_text(cfg, key)) for key in ("objective", "alpha", "rationale_fraction")},
                    "rationale_loss": str(setting_text(cfg, "rationale_missing"))})
    return out


def confusion(job: dict) -> dict | None:
    out = run_dir(job)
    path = out / "confusion.json" if out else None
    return json.loads(path.read_text()) if path and path.exists() else None


# ---- what a run must beat: the majority-class baseline and the teacher -----------------
def _graded_rows(items: list[dict], cfg: dict) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows the run is graded on): the split train() makes, and of its
    held-out rows the ones the final evaluation scores that have a gold label."""
    from core.train.trainer import TrainConfig, split_rows

    train_rows, test_rows = split_rows(items, cfg.get("test_fraction", TrainConfig.test_fraction),
                                       cfg.get("seed", TrainConfig.seed))
    limit = cfg.get("eval_limit", TrainConfig.eval_limit)
    return train_rows, [it for it in test_rows[:limit] if it["gold"] is not None]


def _reference_for(kind, train_rows: list[dict], graded: list[dict]) -> dict | None:
    from collections import Counter

    counts = Counter(it["gold"] for it in train_rows if it["gold"] is not None)
    if not graded or not counts:
        return None
    majority = max(sorted(counts), key=lambda g: counts[g])  # ties: the first in sort order
    # rows the teacher answered (a flagged, unparseable answer counts as wrong, as in teacher_accuracy)
    answered = [it for it in graded if it["status"] in ("labeled", "flagged")]
    return {
        "majority_label": majority,
        "majority_baseline": sum(kind.labels_equal(majority, it["gold"]) for it in graded) / len(graded),
        "teacher_accuracy": (sum(kind.labels_equal(it["teacher_label"], it["gold"]) for it in answered) / len(answered)
                             if answered else None),
        "rows": len(graded), "teacher_rows": len(answered),
        # which rows: runs with the same fingerprint were graded on the same held-out rows
        "held_out": hashlib.sha256("\n".join(sorted(it["row_id"] for it in graded)).encode()).hexdigest()[:16],
    }


def baselines(store: Store, project: str, run_ids: list[str] | None = None) -> dict | None:
    """What the chosen runs (default: all the project's runs) must beat, on the held-out rows
    they are graded on: the **majority-class baseline** (always answering the most frequent gold
    label of the training rows) and the **teacher's accuracy** against gold. None when no run has
    gold-labeled held-out rows (or no training row has gold).

    Returns {"majority_baseline", "teacher_accuracy", "majority_label", "rows", "same_rows",
    "runs": {run_id: the same numbers for that run}}. Runs graded on the same rows (the data's
    test split, or the same seed and held-out share) share one exact value; otherwise the
    top-level numbers are the mean over the runs and "same_rows" is False."""
    from core.kernel.tasks import get_task

    jobs = [_job(store, r) for r in run_ids] if run_ids is not None else store.list_jobs(project, "train")
    if not jobs:
        return None
    kind = get_task(store.get_project(project).task)
    items = store.items_by_order(project, None)
    per_split: dict[tuple, dict | None] = {}
    per_run = {}
    for job in jobs:
        cfg = resolved_config(job)
        key = (cfg.get("test_fraction"), cfg.get("seed"), cfg.get("eval_limit"))
        if key not in per_split:
            per_split[key] = _reference_for(kind, *_graded_rows(items, cfg))
        if per_split[key] is not None:
            per_run[job["id"]] = per_split[key]
    return _combine(per_run)


def baselines_of(reference: dict | None, run_ids: list[str]) -> dict | None:
    """baselines() narrowed to some of its runs, without reading the rows again."""
    if not reference:
        return None
    return _combine({r: v for r, v in reference["runs"].items() if r in set(run_ids)})


def _combine(per_run: dict[str, dict]) -> dict | None:
    if not per_run:
        return None
    refs = list(per_run.values())
    same = all(r["held_out"] == refs[0]["held_out"] and r["majority_label"] == refs[0]["majority_label"] for r in refs)
    teacher = [r["teacher_accuracy"] for r in refs if r["teacher_accuracy"] is not None]
    return {
        "majority_baseline": sum(r["majority_baseline"] for r in refs) / len(refs),
        "teacher_accuracy": sum(teacher) / len(teacher) if teacher else None,
        "majority_label": refs[0]["majority_label"] if same else None,
        "rows": refs[0]["rows"] if same else None, "same_rows": same,
        "runs": dict(per_run),
    }


def run_warnings(store: Store, row: dict, reference: dict | None = None) -> list[str]:
    """Plain-language warnings about one finished run (a run_table row): a student that gives
    one answer to every held-out row, or that does no better than the majority-class baseline.
    `reference` is baselines() for a set holding this run (computed when not given)."""
    if row["status"] not in ("completed", "cancelled"):
        return []
    warnings = []
    preds = [p["prediction"] for p in store.predictions(row["run"], "all", limit=10**7)]
    if len(preds) > 1 and len(set(preds)) == 1:
        answer = repr(preds[0]) if preds[0] else "an empty answer"
        warnings.append(
            f"Run {row['run']} gives the same answer, {answer}, to all {len(preds)} held-out rows: it has learned "
            "one answer, not the task. Train longer, check that the training labels vary, or try another student.")
    if reference is None:
        reference = baselines(store, _job(store, row["run"])["project"], [row["run"]])
    mine = (reference or {}).get("runs", {}).get(row["run"])
    accuracy = row.get("test_accuracy")
    if mine and accuracy is not None and accuracy <= mine["majority_baseline"] + BASELINE_MARGIN:
        warnings.append(
            f"Run {row['run']} is right on {accuracy:.0%} of the held-out rows, no better than always answering "
            f"{mine['majority_label']!r} ({mine['majority_baseline']:.0%} on the same rows): it has not learned "
            "anything useful yet.")
    return warnings


# ---- charts -------------------------------------------------------------------------
def _reference_layers(reference: dict | None, title: str):
    """Labelled horizontal rules (majority-class baseline, teacher accuracy) for an accuracy
    chart whose y axis is a share from 0 to 1; [] when there is nothing to draw."""
    import altair as alt

    if not reference:
        return []
    lines = []
    if reference.get("majority_baseline") is not None:
        always = f" (always {reference['majority_label']!r})" if reference.get("majority_label") is not None else ""
        lines.append({"line": "majority-class baseline", "value": reference["majority_baseline"],
                      "label": f"majority-class baseline{always}: {reference['majority_baseline']:.2f}"})
    if reference.get("teacher_accuracy") is not None:
        lines.append({"line": "teacher accuracy", "value": reference["teacher_accuracy"],
                      "label": f"teacher accuracy against gold: {reference['teacher_accuracy']:.2f}"})
    if not lines:
        return []
    base = alt.Chart(_frame(lines)).encode(
        y=alt.Y("value:Q", title=title, scale=alt.Scale(domain=[0, 1])))
    rule = base.mark_rule(color="#666", strokeDash=[5, 4]).encode(
        tooltip=["line", alt.Tooltip("value:Q", format=".3f")])
    text = base.mark_text(align="left", baseline="bottom", dx=3, dy=-2, color="#444").encode(
        x=alt.value(0), text="label:N")
    return [rule, text]


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)


def loss_chart(store: Store, run_ids: list[str]):
    import altair as alt

    rows = [{"run": m["job_id"], "step": m["step"], "task": LOSSES[m["name"]], "loss": m["value"]}
            for m in store.metrics(run_ids) if m["name"] in LOSSES]
    if not rows:
        return None
    return alt.Chart(_frame(rows), title="Training loss per task").mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", scale=alt.Scale(zero=False)), color="run:N", strokeDash="task:N",
        tooltip=["run", "task", "step", alt.Tooltip("loss:Q", format=".4f")])


def accuracy_steps_chart(store: Store, run_ids: list[str], reference: dict | None = None):
    """Held-out accuracy (against gold) and teacher agreement at each evaluation, with the
    majority-class baseline and the teacher's accuracy as labelled rules (`reference`: baselines())."""
    import altair as alt

    names = {"test_accuracy": "accuracy (vs gold)", "teacher_agreement": "agreement with teacher"}
    rows = [{"run": m["job_id"], "step": m["step"], "metric": names[m["name"]], "value": m["value"]}
            for m in store.metrics(run_ids) if m["name"] in names]
    if not rows:
        return None
    lines = alt.Chart(_frame(rows)).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="share of held-out rows"), color="run:N",
        strokeDash="metric:N", tooltip=["run", "metric", "step", alt.Tooltip("value:Q", format=".3f")])
    return alt.layer(lines, *_reference_layers(reference, "share of held-out rows"),
                     title="Held-out accuracy over steps")


def _finished(table: list[dict]) -> list[dict]:
    return [r for r in table if r["test_accuracy"] is not None and r["status"] in ("completed", "cancelled")]


def _named(rows: list[dict]) -> list[dict]:
    return [{**r, "objective": objective_name(r["objective"])} for r in rows]


def fraction_chart(table: list[dict], reference: dict | None = None):
    """Accuracy against rationale fraction: one point per multi-task run, their mean as a line;
    label-only runs (no rationales, so no fraction) as a labelled rule at their mean accuracy,
    with the majority-class baseline and the teacher's accuracy (`reference`)."""
    import altair as alt

    rows = _finished(table)
    multi = _named([r for r in rows if not is_label_only(r)])
    label_only = [r for r in rows if is_label_only(r)]
    if not rows:
        return None
    title = "test accuracy"
    layers = []
    if multi:
        base = alt.Chart(_frame(multi))
        layers.append(base.mark_point(filled=True, size=70).encode(
            x=alt.X("rationale_fraction:Q", scale=alt.Scale(domain=[0, 1]), title="rationale fraction"),
            y=alt.Y("test_accuracy:Q", title=title, scale=alt.Scale(domain=[0, 1])), color="objective:N",
            tooltip=["run", "objective", "rationale_fraction", "seed", alt.Tooltip("test_accuracy:Q", format=".3f")]))
        layers.append(base.mark_line().encode(x="rationale_fraction:Q", y=alt.Y("mean(test_accuracy):Q", title=title),
                                              color="objective:N"))
    if label_only:
        mean = sum(r["test_accuracy"] for r in label_only) / len(label_only)
        runs = f"{len(label_only)} runs, mean" if len(label_only) > 1 else "1 run"
        line = alt.Chart(_frame([{"line": "label-only", "value": mean, "label": f"label-only ({runs}): {mean:.2f}"}]))
        enc = line.encode(y=alt.Y("value:Q", title=title, scale=alt.Scale(domain=[0, 1])))
        layers += [enc.mark_rule(color="#d62728").encode(tooltip=["line", alt.Tooltip("value:Q", format=".3f")]),
                   enc.mark_text(align="left", baseline="top", dx=3, dy=3, color="#d62728").encode(
                       x=alt.value(0), text="label:N")]
    if not multi:  # only label-only runs: give the x axis its meaning anyway
        layers.insert(0, alt.Chart(_frame([{"rationale_fraction": 0.0}, {"rationale_fraction": 1.0}])).mark_point(
            opacity=0).encode(x=alt.X("rationale_fraction:Q", scale=alt.Scale(domain=[0, 1]), title="rationale fraction")))
    return alt.layer(*layers, *_reference_layers(reference, title), title="Accuracy against rationale fraction")


def cost_chart(table: list[dict], reference: dict | None = None):
    """The cost-quality frontier: accuracy against the teacher dollars a run trained on, with
    the majority-class baseline and the teacher's accuracy (`reference`) as labelled rules."""
    import altair as alt

    rows = _named([r for r in _finished(table) if r["teacher_usd"] is not None])
    if not rows:
        return None
    title = "test accuracy"
    points = alt.Chart(_frame(rows)).mark_point(filled=True, size=70).encode(
        x=alt.X("teacher_usd:Q", title="teacher $ behind the training rows"),
        y=alt.Y("test_accuracy:Q", title=title, scale=alt.Scale(domain=[0, 1])),
        color="objective:N", shape="label_source:N",
        tooltip=["run", "objective", "label_source", "rationale_fraction", alt.Tooltip("teacher_usd:Q", format="$.4f"),
                 alt.Tooltip("test_accuracy:Q", format=".3f")])
    return alt.layer(points, *_reference_layers(reference, title), title="Accuracy against teacher spend")


def confusion_chart(matrix: dict):
    import altair as alt

    rows = [{"gold": g, "predicted": p, "count": n} for g, row in matrix["counts"].items() for p, n in row.items()]
    if not rows:
        return None
    base = alt.Chart(_frame(rows), title="Confusion matrix (held-out rows with gold)").encode(
        x=alt.X("predicted:N"), y=alt.Y("gold:N"))
    return base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"))) + \
        base.mark_text().encode(text="count:Q")


def chart_bytes(chart, fmt: str) -> bytes:
    """PNG or SVG of a chart, rendered offline (vl-convert, no browser)."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=2)
    raise ConfigError(f"chart format must be png or svg, not {fmt!r}")


# ---- run report and model card -------------------------------------------------------
def _job(store: Store, run_id: str) -> dict:
    job = store.get_job(run_id)
    if job["kind"] != "train":
        raise NotFound(f"{run_id} is a {job['kind']} job, not a training run.")
    return job


def run_facts(store: Store, run_id: str) -> dict:
    """Everything a report or model card says about a run: config, provenance, metrics."""
    job = _job(store, run_id)
    project = store.get_project(job["project"])
    provenance = store.teacher_provenance(job["project"])
    row = _rows(store, job["project"], [job])[0]
    reference = baselines(store, job["project"], [run_id])
    return {"job": job, "project": project, "config": resolved_config(job), "provenance": provenance,
            "metrics": store.latest_metrics(run_id), "summary": row, "confusion": confusion(job),
            "baseline": (reference or {}).get("runs", {}).get(run_id),
            "warnings": run_warnings(store, row, reference), **_savings_facts(store, run_id)}


def _savings_facts(store: Store, run_id: str) -> dict:
    """What the student saves (core.results.savings), from the stored throughput measurement and the
    price file; a broken price file leaves the reason instead of failing the report."""
    from core.results import savings
    from core.kernel.errors import PriceFileError

    try:
        return {"savings": savings.run_savings(store, run_id)}
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
        from core.results.savings import fact_rows

        sections.append(("What the student saves", ["field", "value"], fact_rows(facts["savings"])))
    elif facts.get("savings_error"):
        sections.append(("What the student saves", ["field", "value"], [["not computed", facts["savings_error"]]]))
    if facts["confusion"]:
        per_class = facts["confusion"]["per_class_accuracy"]
        sections.append(("Per-class accuracy", ["class", "accuracy"], [[k, round(v, 3)] for k, v in per_class.items()]))
    return sections


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
             "Inputs carry a task prefix: `[label] ` for the label, `[rationale] ` for the rationale."]
    settings = (f"labels from {cfg['label_source']}" if cfg.get("objective") == "standard" else
                f"labels from {cfg['label_source']}, alpha {cfg['alpha']}, rationale fraction "
                f"{cfg['rationale_fraction']}, {cfg.get('rationale_loss', '')}")
    intro = [f"# Student distilled from a teacher LLM: {facts['job']['project']}", "",
             f"A {cfg['student']} student trained with the {objective_name(cfg.get('objective', ''))} objective "
             f"({settings}) by zero-shot step-by-step distillation (Vöge, Gurgul & Lessmann 2024; Hsieh et al. 2023).",
             ""]
    return "\n".join(front + intro + usage + [""]) + _markdown(_sections(facts))


def models_folder(store: Store, typed: str) -> str:
    """`typed` confined to the workspace's models folder (for a shared app): a relative name,
    or a path already inside it; anything that would leave it is refused."""
    from core.jobs import workspace_dir
    from core.kernel.names import inside

    base = workspace_dir(store) / "models"
    typed = typed.strip()
    relative = Path(typed).relative_to(base) if Path(typed).is_absolute() and Path(typed).is_relative_to(base) \
        else Path(typed.removeprefix("workspace/models/"))
    return str(inside(base, str(relative)))


def export_model(store: Store, run_id: str, out: str, push_to: str | None = None, public: bool = False,
                 quantize: str | None = None) -> dict:
    """Copy the run's save_pretrained folder (weights, config, tokenizer) to `out` with a model
    card carrying the provenance; optionally push it to the Hugging Face Hub, into a private
    repo unless `public` (an existing public repo is refused unless `public`).
    `quantize="int8"` writes the dynamically quantized student instead (core.student.predict: CPU
    serving, loads without unpickling), its card stating its size, speed and agreement against
    the fp32 student, measured here on the run's held-out rows."""
    import uuid

    if quantize not in (None, "int8"):
        raise ConfigError(f"quantize must be int8 (or nothing), not {quantize!r}.")
    facts = run_facts(store, run_id)
    src = run_dir(facts["job"])
    if not src or not (src / "model" / "config.json").exists():
        raise NotFound(f"Run {run_id} has no saved model yet (status {facts['job']['status']}).")
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not empty; choose a new folder.")
    # a fresh hidden name: a failed export leaves no folder behind, and never touches another one
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    measured = None
    try:
        if quantize:
            from core.student.int8 import export_int8, int8_card
            from core.student.predict import held_out_inputs

            shutil.copytree(src / "model", tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "*.pth"))
            texts, choices = held_out_inputs(store, run_id)
            measured = export_int8(src / "model", tmp, texts, choices)
            card = model_card(facts) + int8_card(measured)
        else:
            shutil.copytree(src / "model", tmp)
            card = model_card(facts)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)  # all or nothing: no half-written export folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = {"run": run_id, "out": str(dest), "files": sorted(p.name for p in dest.iterdir()), "pushed": None}
    if measured is not None:
        result |= {"quantize": quantize, **measured}
    if push_to:
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        if not token:
            raise ConfigError("Pushing to the Hub needs HF_TOKEN in the environment; the folder was saved locally.")
        push_folder(dest, push_to, token, public)
        result["pushed"] = push_to
    return result


def push_folder(folder: Path, repo_id: str, token: str, public: bool = False) -> None:
    """Upload to a Hub repo: created private unless `public`; an existing public repo is
    refused unless `public` (a student trained on private data must not go public by accident)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        info = api.repo_info(repo_id)
    except RepositoryNotFoundError:
        api.create_repo(repo_id, private=not public)
    else:
        if not info.private and not public:
            raise ConfigError(f"The Hub repo {repo_id} is public; pushing there would publish the student. "
                              "Choose a private repo, or confirm a public push (--public).")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)
