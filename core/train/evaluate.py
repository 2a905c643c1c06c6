"""Held-out evaluation: the student's label for each held-out row, scored against gold and
against the teacher. Training evaluates with it; core.results.savings scores stored
predictions with the same `held_out_scores`.
"""

from __future__ import annotations

from core.kernel.tasks import student_input
from core.train.generate import LABEL_PREFIX, RATIONALE_PREFIX, generate

EVAL_BATCH = 32


def predict_rows(model, tokenizer, rows: list[dict], kind, label_set: list[str] | None, cfg,
                 rationale_rows: int = 0) -> list[dict]:
    """One prediction per row (label mapped onto the label space as `kind` maps it), with the
    student's rationale for the batches starting before `rationale_rows`."""
    predictions = []
    for start in range(0, len(rows), EVAL_BATCH):
        chunk = rows[start:start + EVAL_BATCH]
        texts = [student_input(it["inputs"], it.get("choices")) for it in chunk]
        rationales = [None] * len(chunk)
        if start < rationale_rows:
            rationales = generate(model, tokenizer, [RATIONALE_PREFIX + t for t in texts], cfg.max_rationale_len,
                                  cfg.max_input_len, EVAL_BATCH)
        labels = generate(model, tokenizer, [LABEL_PREFIX + t for t in texts], cfg.max_label_len,
                          cfg.max_input_len, EVAL_BATCH)
        for it, raw, rat in zip(chunk, labels, rationales):
            pred = kind.normalize_prediction(raw, it.get("choices"), label_set)
            predictions.append({
                "row_id": it["row_id"], "prediction": pred, "raw": raw, "rationale": rat,
                "gold": it["gold"], "teacher": it["teacher_label"],
                "correct": kind.labels_equal(pred, it["gold"]) if it["gold"] is not None else None,
                "agrees_teacher": (kind.labels_equal(pred, it["teacher_label"])
                                   if it["teacher_label"] is not None else None)})
    return predictions


def held_out_scores(predictions: list[dict]) -> dict:
    """Accuracy and macro-F1 (rows with gold) and agreement with the teacher (rows with a teacher label)."""
    graded = [p["correct"] for p in predictions if p["correct"] is not None]
    agreed = [p["agrees_teacher"] for p in predictions if p["agrees_teacher"] is not None]
    return {"held_out_rows": len(predictions),
            "accuracy": sum(graded) / len(graded) if graded else None, "graded_rows": len(graded),
            "macro_f1": class_scores(predictions)["macro_f1"],
            "agreement": sum(agreed) / len(agreed) if agreed else None, "agreement_rows": len(agreed)}


def evaluate(model, tokenizer, rows: list[dict], kind, label_set: list[str] | None, cfg,
             rationale_rows: int = 0, prefix: str = "test") -> tuple[list[dict], dict]:
    """(predictions, metrics) of the rows, the model in eval mode meanwhile. Metrics, where there
    is something to score: {prefix}_accuracy and {prefix}_macro_f1 (against gold), and the
    agreement with the teacher (teacher_agreement for the test, val_teacher_agreement)."""
    model.eval()
    try:
        predictions = predict_rows(model, tokenizer, rows, kind, label_set, cfg, rationale_rows)
    finally:
        model.train()
    scores = held_out_scores(predictions)
    agreement = "teacher_agreement" if prefix == "test" else f"{prefix}_teacher_agreement"
    names = ((f"{prefix}_accuracy", "accuracy"), (f"{prefix}_macro_f1", "macro_f1"), (agreement, "agreement"))
    return predictions, {name: scores[key] for name, key in names if scores[key] is not None}


def class_scores(predictions: list[dict]) -> dict:
    """Per class (over rows with a gold label): precision, recall, F1 and support; and macro-F1,
    the mean F1 over the classes that occur in gold (a class never right and never predicted
    scores 0). Free-text tasks (numeric answers) have no class list: None for macro-F1."""
    rows = [p for p in predictions if p["gold"] is not None]
    golds = sorted({_norm(p["gold"]) for p in rows})
    per_class = {}
    for label in golds:
        hit = sum(1 for p in rows if p["correct"] and _norm(p["gold"]) == label)
        # predicted as this class: right, or wrong and naming it
        predicted = hit + sum(1 for p in rows if not p["correct"] and _norm(p["prediction"]) == label)
        support = sum(1 for p in rows if _norm(p["gold"]) == label)
        precision = hit / predicted if predicted else 0.0
        recall = hit / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    classes_make_sense = rows and len(golds) <= max(20, len(rows) // 5)  # not one "class" per row (numeric)
    return {"per_class": per_class if classes_make_sense else {},
            "macro_f1": sum(c["f1"] for c in per_class.values()) / len(per_class) if classes_make_sense else None}


def _norm(label) -> str:
    return str(label).strip().lower()


def confusion_matrix(predictions: list[dict]) -> dict:
    """Gold x predicted counts, per-class accuracy (recall), precision, recall and F1, and
    macro-F1, over rows with a gold label."""
    rows = [p for p in predictions if p["gold"] is not None]
    labels = sorted({p["gold"] for p in rows} | {p["prediction"] for p in rows})
    counts = {g: {q: 0 for q in labels} for g in labels}
    for p in rows:
        counts[p["gold"]][p["prediction"]] += 1
    per_class = {g: (counts[g][g] / sum(counts[g].values())) for g in labels if sum(counts[g].values())}
    scores = class_scores(predictions)
    return {"labels": labels, "counts": counts, "per_class_accuracy": per_class,
            "per_class": scores["per_class"], "macro_f1": scores["macro_f1"]}


def save_evaluation(out_dir, predictions: list[dict], report) -> None:
    """The final evaluation's predictions and confusion matrix, in the run folder and the report."""
    import json

    (out_dir / "confusion.json").write_text(json.dumps(confusion_matrix(predictions), indent=2, ensure_ascii=False))
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    report.save_predictions(predictions)
