"""Results: the run table, what a run must beat (baselines), and warnings about a run.

Functions return data; the Results page and the CLI render them (charts in
core.results.charts, the run report and model card in core.results.reports, the model export
in core.results.model_export). A run's teacher cost is the cost of the teacher answers it
trained on: rows whose teacher label or teacher rationale it used, times the project's mean
cost per answer.
"""

from __future__ import annotations

import hashlib
import json

from core.db import Store
from core.kernel.tasks import get_task
from core.train.run import Run
from core.train.trainer import TrainConfig

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
    "held_out": "Rows kept out of training (the data's test split, or a seeded share of the rows, stratified by "
                "class and the same for every run of the project) so that accuracy measures answers the student "
                "has never seen. They are scored once, with the checkpoint chosen on the validation rows.",
    "test_accuracy": "Share of held-out test rows where the student's label matches the gold label (scored once, "
                     "at the step chosen on the validation rows).",
    "val_accuracy": "Share of the validation rows (held out from training, apart from the test rows) where the "
                    "student's label matches gold: what picks the checkpoint kept.",
    "test_macro_f1": "The mean over the classes of each class's F1 (precision and recall together): a student "
                     "that ignores a rare class scores low here even when its accuracy is high.",
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
def run_table(store: Store, project: str) -> list[dict]:
    """One row per training run: its settings, progress, metrics and teacher cost."""
    jobs = store.list_jobs(project, "train")
    return run_rows(store, project, jobs)


def run_rows(store: Store, project: str, jobs: list[dict]) -> list[dict]:
    cost_per_row = store.teacher_provenance(project)["cost_per_row_usd"]
    latest_of = store.latest_metrics_for([j["id"] for j in jobs])
    rows = []
    for job in jobs:
        cfg = Run(job).config
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
            "test_accuracy": latest.get("test_accuracy"), "test_macro_f1": latest.get("test_macro_f1"),
            "teacher_agreement": latest.get("teacher_agreement"), "chosen_step": latest.get("chosen_step"),
            "train_loss": latest.get("train_loss"),
            "teacher_usd": None if teacher_rows is None else round(teacher_rows * cost_per_row, 6),
        })
    return rows


def evaluation_steps(max_steps: int, eval_every: int | None = None) -> list[int]:
    """The steps at which a run scores its validation rows (the points of its accuracy curve)."""
    every = TrainConfig(project="", max_steps=max_steps, eval_every=eval_every).eval_interval()
    return sorted({*(range(every, max_steps, every) if every else []), max_steps})


def training_eta_s(cfg: dict, latest: dict) -> float | None:
    """Seconds a running run still needs for its remaining steps, at the pace it has kept so far
    (examples per second, logged every few steps); None before the first measure. Evaluations on the
    validation rows and the final test add to it."""
    pace, step = latest.get("examples_per_s"), latest.get("step")
    if not pace or step is None:
        return None
    return max(0.0, (cfg["max_steps"] - step) * cfg["batch_size"] / pace)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


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
    out = Run(job).folder
    path = out / "confusion.json" if out else None
    return json.loads(path.read_text()) if path and path.exists() else None


# ---- what a run must beat: the majority-class baseline and the teacher -----------------
def _graded_rows(items: list[dict], run: Run) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows the run is graded on): the split train() makes, and of its
    held-out rows the ones the final evaluation scores that have a gold label."""
    train_rows, test_rows = run.split(items)
    return train_rows, [it for it in run.evaluated_rows(test_rows) if it["gold"] is not None]


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
    runs = ([Run.find(store, r) for r in run_ids] if run_ids is not None
            else [Run(job, store) for job in store.list_jobs(project, "train")])
    if not runs:
        return None
    kind = get_task(store.get_project(project).task)
    items = store.items_by_order(project, None)
    per_split: dict[tuple, dict | None] = {}
    per_run = {}
    for run in runs:
        cfg = run.config
        key = (cfg.get("test_fraction"), cfg.get("seed"), cfg.get("eval_limit"))
        if key not in per_split:
            per_split[key] = _reference_for(kind, *_graded_rows(items, run))
        if per_split[key] is not None:
            per_run[run.id] = per_split[key]
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
    run = Run.find(store, row["run"])
    changed = run.rows_changed_since()
    if changed:
        trained = run.config.get("data_snapshot", {}).get("rows")
        warnings.append(
            f"{changed} of the {trained or 'its'} rows run {row['run']} trained on have changed since it trained "
            "(a review, a corrected label or rationale, a new teacher answer): its numbers describe the data as it "
            "was. Train again to learn from the rows as they are now.")
    if reference is None:
        reference = baselines(store, run.project, [row["run"]])
    mine = (reference or {}).get("runs", {}).get(row["run"])
    accuracy = row.get("test_accuracy")
    if mine and accuracy is not None and accuracy <= mine["majority_baseline"] + BASELINE_MARGIN:
        warnings.append(
            f"Run {row['run']} is right on {accuracy:.0%} of the held-out rows, no better than always answering "
            f"{mine['majority_label']!r} ({mine['majority_baseline']:.0%} on the same rows): it has not learned "
            "anything useful yet.")
    return warnings
