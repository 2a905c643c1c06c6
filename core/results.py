"""Results: run comparison, charts, run reports and model export.

Functions return data (rows, Altair charts, report text); the Results page and the CLI
render them. A run's teacher cost is the cost of the teacher answers it trained on: rows
whose teacher label or teacher rationale it used, times the project's mean cost per answer.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

from core.db import Store
from core.errors import ConfigError, NotFound
from core.jobs import run_dir

LOSSES = {"train_loss": "total", "label_loss": "label", "rationale_loss": "rationale"}


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
        rows.append({
            "run": job["id"], "status": job["status"], "sweep": job.get("parent_id"),
            "objective": cfg["objective"], "label_source": cfg["label_source"], "alpha": cfg["alpha"],
            "rationale_fraction": cfg["rationale_fraction"] if cfg["objective"] == "multitask" else 0.0,
            "rationale_loss": cfg.get("rationale_missing", "mask"), "seed": cfg["seed"], "student": cfg["student"],
            "steps": cfg["max_steps"], "train_rows": cfg.get("train_rows"), "rows_with_rationale": cfg.get("rows_with_rationale"),
            "test_accuracy": latest.get("test_accuracy"), "teacher_agreement": latest.get("teacher_agreement"),
            "train_loss": latest.get("train_loss"),
            "teacher_usd": None if teacher_rows is None else round(teacher_rows * cost_per_row, 6),
        })
    return rows


def confusion(job: dict) -> dict | None:
    out = run_dir(job)
    path = out / "confusion.json" if out else None
    return json.loads(path.read_text()) if path and path.exists() else None


# ---- charts -------------------------------------------------------------------------
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


def accuracy_steps_chart(store: Store, run_ids: list[str]):
    import altair as alt

    rows = [{"run": m["job_id"], "step": m["step"], "metric": m["name"], "value": m["value"]}
            for m in store.metrics(run_ids) if m["name"] in ("test_accuracy", "teacher_agreement")]
    if not rows:
        return None
    return alt.Chart(_frame(rows), title="Held-out accuracy over steps").mark_line(point=True).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="share"), color="run:N",
        strokeDash="metric:N", tooltip=["run", "metric", "step", alt.Tooltip("value:Q", format=".3f")])


def _finished(table: list[dict]) -> list[dict]:
    return [r for r in table if r["test_accuracy"] is not None and r["status"] in ("completed", "cancelled")]


def fraction_chart(table: list[dict]):
    """Accuracy against rationale fraction: one point per run, the mean per objective as a line."""
    import altair as alt

    rows = _finished(table)
    if not rows:
        return None
    base = alt.Chart(_frame(rows), title="Accuracy against rationale fraction")
    points = base.mark_point(filled=True, size=70).encode(
        x=alt.X("rationale_fraction:Q", scale=alt.Scale(domain=[0, 1]), title="rationale fraction"),
        y=alt.Y("test_accuracy:Q", title="test accuracy", scale=alt.Scale(domain=[0, 1])), color="objective:N",
        tooltip=["run", "objective", "rationale_fraction", "seed", alt.Tooltip("test_accuracy:Q", format=".3f")])
    mean = base.mark_line().encode(x="rationale_fraction:Q", y="mean(test_accuracy):Q", color="objective:N")
    return points + mean


def cost_chart(table: list[dict]):
    """The cost-quality frontier: accuracy against the teacher dollars a run trained on."""
    import altair as alt

    rows = [r for r in _finished(table) if r["teacher_usd"] is not None]
    if not rows:
        return None
    return alt.Chart(_frame(rows), title="Accuracy against teacher spend").mark_point(filled=True, size=70).encode(
        x=alt.X("teacher_usd:Q", title="teacher $ behind the training rows"),
        y=alt.Y("test_accuracy:Q", title="test accuracy", scale=alt.Scale(domain=[0, 1])),
        color="objective:N", shape="label_source:N",
        tooltip=["run", "objective", "label_source", "rationale_fraction", alt.Tooltip("teacher_usd:Q", format="$.4f"),
                 alt.Tooltip("test_accuracy:Q", format=".3f")])


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
    return {"job": job, "project": project, "config": resolved_config(job), "provenance": provenance,
            "metrics": store.latest_metrics(run_id), "summary": row, "confusion": confusion(job)}


def _sections(facts: dict) -> list[tuple[str, list[str], list[list]]]:
    """(title, header, rows) tables shared by the Markdown and HTML reports."""
    cfg, prov, job = facts["config"], facts["provenance"], facts["job"]
    sections = [
        ("Run", ["field", "value"], [["run", job["id"]], ["status", job["status"]], ["project", job["project"]],
                                     ["task", facts["project"].task], ["finished", job["finished_at"]]]),
        ("Config", ["setting", "value"], [[k, v] for k, v in cfg.items() if k not in ("extra", "project")]),
        ("Metrics", ["metric", "value"], [[k, round(v, 4)] for k, v in sorted(facts["metrics"].items())]),
        ("Teacher provenance", ["model", "template version", "calls", "cached", "errors", "billed $"],
         [[c["model"], c["template_version"], c["calls"], c["cached"], c["errors"], round(c["billed_usd"] or 0, 4)]
          for c in prov["calls"]]),
        ("Teacher answers", ["field", "value"],
         [["rows with a teacher answer", prov["rows"]], ["source", prov["source"]],
          ["cost of those answers $", round(prov["answer_cost_usd"], 4)],
          ["teacher $ behind this run's training rows", facts["summary"]["teacher_usd"]]]),
    ]
    if facts["confusion"]:
        per_class = facts["confusion"]["per_class_accuracy"]
        sections.append(("Per-class accuracy", ["class", "accuracy"], [[k, round(v, 3)] for k, v in per_class.items()]))
    return sections


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
    usage = ["## Use", "", "```python", "from core.train import predict",
             "predict('<this folder>', ['your input text'], rationale=True)", "```", "",
             "Inputs carry a task prefix: `[label] ` for the label, `[rationale] ` for the rationale."]
    intro = [f"# Student distilled from a teacher LLM: {facts['job']['project']}", "",
             f"A {cfg['student']} student trained with the {cfg['objective']} objective "
             f"(labels from {cfg['label_source']}, alpha {cfg['alpha']}, rationale fraction {cfg['rationale_fraction']}, "
             f"{cfg.get('rationale_loss', '')}) by zero-shot step-by-step distillation "
             "(Vöge, Gurgul & Lessmann 2024; Hsieh et al. 2023).", ""]
    return "\n".join(front + intro + usage + [""]) + _markdown(_sections(facts))


def models_folder(store: Store, typed: str) -> str:
    """`typed` confined to the workspace's models folder (for a shared app): a relative name,
    or a path already inside it; anything that would leave it is refused."""
    from core.jobs import workspace_dir
    from core.names import inside

    base = workspace_dir(store) / "models"
    typed = typed.strip()
    relative = Path(typed).relative_to(base) if Path(typed).is_absolute() and Path(typed).is_relative_to(base) \
        else Path(typed.removeprefix("workspace/models/"))
    return str(inside(base, str(relative)))


def export_model(store: Store, run_id: str, out: str, push_to: str | None = None, public: bool = False) -> dict:
    """Copy the run's save_pretrained folder (weights, config, tokenizer) to `out` with a model
    card carrying the provenance; optionally push it to the Hugging Face Hub, into a private
    repo unless `public` (an existing public repo is refused unless `public`)."""
    facts = run_facts(store, run_id)
    src = run_dir(facts["job"])
    if not src or not (src / "model" / "config.json").exists():
        raise NotFound(f"Run {run_id} has no saved model yet (status {facts['job']['status']}).")
    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} exists and is not empty; choose a new folder.")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src / "model", tmp)
    (tmp / "README.md").write_text(model_card(facts), encoding="utf-8")
    if dest.exists():
        dest.rmdir()
    tmp.rename(dest)  # all or nothing: no half-written export folder
    result = {"run": run_id, "out": str(dest), "files": sorted(p.name for p in dest.iterdir()), "pushed": None}
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
