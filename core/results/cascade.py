"""What a cascade buys (accuracy and cost against the share sent to the teacher), from held-out rows.

The student answers, rows under a confidence threshold go to the
teacher. Computed from a run's held-out test rows, where the student's calibrated confidence,
its label, the teacher's stored label and the gold label are all known, so no call is made.

For each threshold t (0, 0.01, …, 1, and "every row"), the rows with confidence < t are the
teacher's, the rest the student's:
    share to teacher   = rows under t / rows
    accuracy           = share of rows with gold whose final label (the teacher's or the
                         student's) equals gold; without any gold on the held-out rows,
                         agreement with the teacher's label (the teacher then counts as right)
    cost per 1,000 rows = 1,000 × (student cost per row + share × teacher cost per row)
The student runs on every row (its confidence decides), so its cost is always paid.

The teacher's cost per row is the project's billed spend per answered row when there is one
(core.results.savings); otherwise its answers priced at list price from their mean tokens
(data/prices.toml), said so. The student's is its measured CPU throughput priced per CPU-hour;
unmeasured, it counts as $0 and a note says so.
"""

from __future__ import annotations

import math

from core.kernel.errors import ConfigError, NotFound
from core.kernel.prices import load_prices
from core.kernel.tasks import get_task
from core.results.savings import load_compute_prices, stored_throughput, student_usd_per_1000, teacher_usd_per_row
from core.train.calibration import read_calibration
from core.train.run import Run

THRESHOLDS = [round(i / 100, 2) for i in range(101)] + [math.inf]  # inf: every row to the teacher
KEEP_OF_TEACHER = 0.98  # the default target: this share of the teacher's held-out accuracy


# ---- a run's calibration ---------------------------------------------------------------------
def run_calibration(store, run_id: str, compute: bool = False) -> dict | None:
    """The run's calibration record (core.train.calibration), computed now for a run trained
    before runs calibrated themselves when `compute`; None when it has none and not asked."""
    run = Run.find(store, run_id)
    found = read_calibration(run.folder)
    if found is not None or not compute:
        return found
    return calibrate_saved_run(store, run)


def calibrate_saved_run(store, run: Run) -> dict:
    """Load the run's student and calibrate it on its own validation and test rows."""
    from core.student.predict import load_student_model
    from core.train.calibration import calibrate, save_calibration
    from core.train.evaluate import predict_rows
    from core.train.trainer import TrainConfig

    model_dir = run.model_dir()
    student = load_student_model(model_dir)
    project = store.get_project(run.project)
    items = store.items_by_order(run.project, None)
    cfg = TrainConfig(**{k: v for k, v in run.config.items() if k in TrainConfig.__dataclass_fields__})
    limit = run.config.get("eval_limit", TrainConfig.eval_limit)
    test = run.held_out_rows(limit)
    if not test:
        raise NotFound(f"Run {run.id} has no held-out rows to calibrate on.")
    kind = get_task(project.task)
    predictions = predict_rows(student.model, student.tokenizer, test, kind, project.label_set, cfg)
    result = calibrate(student.model, student.tokenizer, kind, project.label_set, cfg,
                       run.validation_rows(items)[:limit], test, predictions)
    save_calibration(run.require_folder(), result)
    return result


# ---- prices per row ---------------------------------------------------------------------------
def teacher_row_price(store, project, prices=None) -> tuple[float | None, str]:
    """(dollars per teacher answer, where the number comes from) for a project (core.db's)."""
    spent = store.spend(project.name)
    if spent > 0:  # rows are counted only when there is spend to share out
        by_status = store.count_items(project.name)["by_status"]
        answered = by_status.get("labeled", 0) + by_status.get("flagged", 0)
        billed = teacher_usd_per_row(spent, answered)
        if billed is not None:
            return billed, f"billed: {spent:.4f} USD over {answered:,} answered rows"
    usage = store.answer_usage(project.name)
    model = project.model
    prices = prices or load_prices()
    if not usage["answers"] or model is None or prices.get(model) is None:
        return None, "no billed spend, and no answer usage or price to estimate one from"
    cost = prices.cost(model, round(usage["input_tokens"]), round(usage["output_tokens"]))
    return cost, (f"estimated: nothing billed, so {model} at list price for the mean tokens of "
                  f"{usage['answers']:,} answers ({usage['input_tokens']:.0f} in, {usage['output_tokens']:.0f} out)")


def student_row_price(run: Run, usd_per_cpu_hour: float | None = None,
                      measurement: dict | None = None) -> tuple[float | None, str]:
    """(dollars per student prediction, where the number comes from): the run's stored throughput,
    or `measurement` (an int8 export's own)."""
    measured = measurement or stored_throughput(run.folder)
    if measured is None:
        return None, "student CPU throughput not measured: its cost counts as $0"
    price = usd_per_cpu_hour if usd_per_cpu_hour is not None else load_compute_prices().usd_per_cpu_hour
    return (student_usd_per_1000(measured["rows_per_s"], measured["threads"], price) / 1000,
            f"measured: {measured['rows_per_s']:.1f} rows/s on {measured['threads']} CPU threads")


# ---- the frontier (pure) ------------------------------------------------------------------------
def frontier(rows: list[dict], task: str, teacher_row: float | None, student_row: float | None) -> dict:
    """One point per threshold over the held-out `rows` (calibration records: prediction,
    confidence, gold, teacher), and the teacher-only and student-only references."""
    kind = get_task(task)
    with_gold = [r for r in rows if r.get("gold") is not None]
    measure = "accuracy" if with_gold else "agreement with the teacher"
    graded = with_gold or [r for r in rows if r.get("teacher") is not None]
    ref = (lambda r: r["gold"]) if with_gold else (lambda r: r["teacher"])
    student_right = [kind.labels_equal(r["prediction"], ref(r)) for r in graded]
    teacher_right = [kind.labels_equal(r["teacher"], ref(r)) for r in graded]
    points = []
    for t in THRESHOLDS:
        deferred = [r["confidence"] < t for r in rows]
        share = sum(deferred) / len(rows) if rows else 0.0
        final = [tr if r["confidence"] < t else sr for r, sr, tr in zip(graded, student_right, teacher_right)]
        cost = None if teacher_row is None else 1000 * ((student_row or 0.0) + share * teacher_row)
        points.append({"threshold": t, "share_to_teacher": share, "accuracy": sum(final) / len(final) if final else None,
                       "usd_per_1000": cost})
    teacher_accuracy = sum(teacher_right) / len(teacher_right) if graded else None
    return {"measure": measure, "rows": len(rows), "graded_rows": len(graded), "points": points,
            "teacher_accuracy": teacher_accuracy,
            "student_accuracy": sum(student_right) / len(student_right) if graded else None,
            "teacher_usd_per_1000": None if teacher_row is None else 1000 * teacher_row,  # no student needed
            "student_usd_per_1000": None if student_row is None else 1000 * student_row}


def pick_threshold(front: dict, target_accuracy: float | None = None) -> dict | None:
    """The point that sends the fewest rows to the teacher while reaching `target_accuracy`
    (default: 98% of the teacher's); None when no threshold reaches it."""
    target = target_accuracy if target_accuracy is not None else (
        None if front["teacher_accuracy"] is None else KEEP_OF_TEACHER * front["teacher_accuracy"])
    if target is None:
        return None
    reaching = [p for p in front["points"] if p["accuracy"] is not None and p["accuracy"] >= target - 1e-12]
    return min(reaching, key=lambda p: (p["share_to_teacher"], -p["accuracy"]), default=None)


def point_at(front: dict, threshold: float) -> dict:
    """The frontier's point for a threshold the user chose (the nearest grid threshold not above it)."""
    return max((p for p in front["points"] if p["threshold"] <= threshold), key=lambda p: p["threshold"])


def saving_sentence(front: dict, point: dict, teacher_estimated: bool = False) -> str:
    """The cascade at `point` against the teacher alone, in plain words."""
    kept = 1 - point["share_to_teacher"]
    words = (f"At confidence threshold {_threshold_text(point['threshold'])}, the student answers {kept:.0%} of "
             f"rows and the teacher {point['share_to_teacher']:.0%}")
    teacher, mine = front["teacher_accuracy"], point["accuracy"]
    if teacher is not None and mine is not None:
        words += (f": {front['measure']} {mine:.3f} against {teacher:.3f} for the teacher alone "
                  f"({mine / teacher:.0%} of it)" if teacher else f": {front['measure']} {mine:.3f}")
    alone = front["teacher_usd_per_1000"]
    if alone and point["usd_per_1000"] is not None:
        saved = 1 - point["usd_per_1000"] / alone
        change = ("about the same" if abs(saved) < 0.005 else
                  f"{saved:.0%} less" if saved > 0 else f"{-saved:.0%} more")
        words += (f", for ${point['usd_per_1000']:.4f} per 1,000 rows instead of ${alone:.4f}"
                  + (" (the teacher priced at list price: nothing was billed)" if teacher_estimated else "")
                  + f": {change}")
    else:
        words += "; no teacher cost per row is known, so the saving in dollars cannot be stated"
    return words + f" (measured on {front['rows']} held-out rows)."


def short_of_target(front: dict, target: float | None) -> str:
    """Why no threshold was chosen, with the best the held-out rows allow."""
    best = max((p for p in front["points"] if p["accuracy"] is not None), key=lambda p: p["accuracy"], default=None)
    if best is None or target is None:
        return "No threshold can be chosen: no held-out row has a gold label or a teacher label to grade against."
    return (f"No threshold reaches {front['measure']} {target:.3f} on the held-out rows: the best is "
            f"{best['accuracy']:.3f}, at threshold {_threshold_text(best['threshold'])} "
            f"({best['share_to_teacher']:.0%} of rows to the teacher).")


def check_choice(threshold: float | None, target_accuracy: float | None) -> None:
    if threshold is not None and target_accuracy is not None:
        raise ConfigError("Give a threshold or a target accuracy, not both.")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ConfigError(f"The threshold is a confidence between 0 and 1, got {threshold}.")
    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise ConfigError(f"The target accuracy is a share between 0 and 1 (0.9 for 90%), got {target_accuracy}.")


def _threshold_text(t: float) -> str:
    return "above 1 (every row to the teacher)" if math.isinf(t) else f"{t:.2f}"


# ---- a run's cascade report --------------------------------------------------------------------
def cascade_report(store, run_id: str, threshold: float | None = None, target_accuracy: float | None = None,
                   usd_per_cpu_hour: float | None = None, compute: bool = False,
                   measurement: dict | None = None) -> dict:
    """Calibration, prices, the frontier, the chosen point and its sentence, for one run."""
    check_choice(threshold, target_accuracy)
    run = Run.find(store, run_id)
    calibration = read_calibration(run.folder) or (calibrate_saved_run(store, run) if compute else None)
    if calibration is None:
        raise NotFound(f"Run {run_id} has no confidence calibration yet (trained before runs calibrated "
                       "themselves); calibrate it first.")
    project = store.get_project(run.project)
    teacher_row, teacher_how = teacher_row_price(store, project)
    student_row, student_how = student_row_price(run, usd_per_cpu_hour, measurement)
    front = frontier(calibration["rows"], project.task, teacher_row, student_row)
    chosen = point_at(front, threshold) if threshold is not None else pick_threshold(front, target_accuracy)
    target = None if threshold is not None else (target_accuracy if target_accuracy is not None else (
        None if front["teacher_accuracy"] is None else KEEP_OF_TEACHER * front["teacher_accuracy"]))
    estimated = teacher_how.startswith("estimated")
    return {"run": run_id, "calibration": {k: v for k, v in calibration.items() if k != "rows"},
            "teacher_price": teacher_how, "teacher_price_estimated": estimated, "student_price": student_how,
            "frontier": front, "chosen": chosen, "target_accuracy": target,
            "sentence": saving_sentence(front, chosen, estimated) if chosen else short_of_target(front, target)}
