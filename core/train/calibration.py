"""Student confidence, and its calibration by temperature scaling on the validation rows.

A label's score is the sum of its token log-probabilities under the student, asked as it was
trained (the label prefix, the target ending in EOS). The confidence of a prediction is:

- with a label set (classification, NLI) or answer choices (multiple choice): the softmax of
  the candidates' scores divided by a temperature T, read at the predicted label. The
  probabilities sum to one over the label set. A greedy answer outside the label set has
  confidence 0 (the student did not name a label; it always defers).
- with open answers (numeric): there is nothing to normalise over, so it is the probability of
  the generated answer's tokens, p ** (1 / T).

T is fitted on the run's validation rows (never the test rows it is judged on): the value on a
log grid (T = 1 included) that minimises the log-loss of the confidence against whether the
label was right. Right means equal to the row's gold label, or to the teacher's label for a row
without gold. The expected calibration error (ECE, 10 equal-width bins, weighted by rows) is
reported on the test rows before (T = 1) and after.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from core.kernel.tasks import student_input
from core.train.generate import LABEL_PREFIX

CALIBRATION_FILE = "calibration.json"
BINS = 10
TEMPERATURES = sorted({1.0, *(round(math.exp(math.log(0.05) + i * (math.log(20) - math.log(0.05)) / 120), 6)
                              for i in range(121))})
PAIRS_PER_PASS = 64  # (row, candidate) pairs per decoder pass: bounds the full-vocabulary logits in memory
REFERENCE = "the gold label where a row has one, else the teacher's label"


# ---- scores (the model) ---------------------------------------------------------------
def candidates_for(task: str | None, label_set: list[str] | None, choices: list[str] | None) -> list[str] | None:
    """What a prediction is normalised over: the row's choices, the label set, or None (open answers)."""
    if task == "multiple-choice" or (task is None and choices):
        return list(choices) if choices else None
    return list(label_set) if label_set else None


def target_logprobs(model, tokenizer, texts: list[str], targets: list[list[str]], max_input_len: int,
                    max_label_len: int, batch_size: int = 16) -> list[list[float]]:
    """For each text, the summed token log-probability of each of its targets (the encoder runs
    once per text; targets are tokenised as training tokenised them)."""
    import torch

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    device = next(model.parameters()).device
    out: list[list[float]] = [[] for _ in texts]
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            idx = list(range(start, min(start + batch_size, len(texts))))
            enc = tokenizer([LABEL_PREFIX + texts[i] for i in idx], return_tensors="pt", padding=True,
                            truncation=True, max_length=max_input_len).to(device)
            hidden = model.get_encoder()(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
            pairs = [(j, t) for j, i in enumerate(idx) for t in targets[i]]
            for first in range(0, len(pairs), PAIRS_PER_PASS):
                part = pairs[first:first + PAIRS_PER_PASS]
                ids = [tokenizer(t, add_special_tokens=False, truncation=True,
                                 max_length=max(1, max_label_len - 1)).input_ids + [eos] for _, t in part]
                labels = torch.full((len(part), max(map(len, ids))), -100, dtype=torch.long)
                for n, row in enumerate(ids):
                    labels[n, :len(row)] = torch.tensor(row)
                labels = labels.to(device)
                rows = torch.tensor([j for j, _ in part], device=device)
                logits = model(encoder_outputs=(hidden[rows],), attention_mask=enc.attention_mask[rows],
                               decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels),
                               use_cache=False).logits.float()
                keep = labels != -100
                tokens = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                for (j, _), total in zip(part, (tokens * keep).sum(-1).tolist()):
                    out[idx[j]].append(total)
    return out


# ---- confidence (pure) ------------------------------------------------------------------
def softmax(scores: list[float], temperature: float) -> list[float]:
    scaled = [s / temperature for s in scores]
    top = max(scaled)
    weights = [math.exp(s - top) for s in scaled]
    total = sum(weights)
    return [w / total for w in weights]


def confidence(scores: list[float], index: int | None, open_answer: bool, temperature: float) -> float:
    """The probability of the predicted label: softmax at its index over the candidates, or for
    an open answer its sequence probability ** (1/T); 0 for an answer outside the label set."""
    if open_answer:
        return math.exp(min(0.0, scores[0]) / temperature)
    if index is None:
        return 0.0
    return softmax(scores, temperature)[index]


def predicted_index(kind, prediction: str, candidates: list[str] | None) -> int | None:
    return next((n for n, c in enumerate(candidates or []) if kind.labels_equal(prediction, c)), None)


def log_loss(records: list[dict], temperature: float) -> float:
    total = 0.0
    for r in records:
        p = min(max(confidence(r["scores"], r["index"], r["open"], temperature), 1e-6), 1 - 1e-6)
        total -= math.log(p if r["correct"] else 1 - p)
    return total / len(records)


def fit_temperature(records: list[dict]) -> float:
    """The grid temperature with the lowest log-loss on `records` (rows with a reference); 1.0 when none."""
    graded = [r for r in records if r["correct"] is not None]
    if not graded:
        return 1.0
    return min(TEMPERATURES, key=lambda t: (round(log_loss(graded, t), 12), abs(math.log(t))))


def reliability(confidences: list[float], correct: list[bool], bins: int = BINS) -> list[dict]:
    """Per confidence bin: its rows, their mean confidence and their accuracy (empty bins left out)."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, k) for c, k in zip(confidences, correct) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if inside:
            out.append({"lo": lo, "hi": hi, "rows": len(inside),
                        "confidence": sum(c for c, _ in inside) / len(inside),
                        "accuracy": sum(k for _, k in inside) / len(inside)})
    return out


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = BINS) -> float | None:
    """Σ over bins of (rows in bin / rows) × |accuracy − mean confidence|; None without rows."""
    if not confidences:
        return None
    return sum(b["rows"] / len(confidences) * abs(b["accuracy"] - b["confidence"])
               for b in reliability(confidences, correct, bins))


# ---- a run's calibration (model + rows) ---------------------------------------------------
def score_rows(model, tokenizer, kind, label_set, cfg, rows: list[dict], predictions: list[dict]) -> list[dict]:
    """One record per row: its candidate scores, the predicted candidate, and whether it is right."""
    texts = [student_input(it["inputs"], it.get("choices")) for it in rows]
    cands = [candidates_for(kind.name, label_set, it.get("choices")) for it in rows]
    targets = [[kind.student_target(c) for c in cs] if cs else [p["raw"].strip()]
               for cs, p in zip(cands, predictions)]
    scores = target_logprobs(model, tokenizer, texts, targets, cfg.max_input_len, cfg.max_label_len)
    records = []
    for it, p, cs, s in zip(rows, predictions, cands, scores):
        reference = it["gold"] if it["gold"] is not None else it.get("teacher_label")
        records.append({"row_id": it["row_id"], "prediction": p["prediction"], "scores": s, "open": cs is None,
                        "index": predicted_index(kind, p["prediction"], cs),
                        "gold": it["gold"], "teacher": it.get("teacher_label"),
                        "correct": None if reference is None else kind.labels_equal(p["prediction"], reference)})
    return records


def calibrate(model, tokenizer, kind, label_set, cfg, val_rows: list[dict], test_rows: list[dict],
              test_predictions: list[dict]) -> dict:
    """Fit T on the validation rows and report ECE before and after on the test rows, with each
    test row's confidence (the cascade's frontier is computed from them)."""
    from core.train.evaluate import predict_rows

    model.eval()
    val = score_rows(model, tokenizer, kind, label_set, cfg, val_rows,
                     predict_rows(model, tokenizer, val_rows, kind, label_set, cfg))
    test = score_rows(model, tokenizer, kind, label_set, cfg, test_rows, test_predictions)
    temperature = fit_temperature(val)
    graded = [r for r in test if r["correct"] is not None]
    before = [confidence(r["scores"], r["index"], r["open"], 1.0) for r in graded]
    after = [confidence(r["scores"], r["index"], r["open"], temperature) for r in graded]
    correct = [bool(r["correct"]) for r in graded]
    rows = [{"row_id": r["row_id"], "prediction": r["prediction"], "gold": r["gold"], "teacher": r["teacher"],
             "correct": r["correct"], "confidence_raw": confidence(r["scores"], r["index"], r["open"], 1.0),
             "confidence": confidence(r["scores"], r["index"], r["open"], temperature)} for r in test]
    return {"temperature": temperature, "method": "temperature scaling", "reference": REFERENCE,
            "answers": "open" if test and test[0]["open"] else "label set",
            "fitted_on_rows": sum(r["correct"] is not None for r in val), "test_rows": len(graded),
            "ece_before": expected_calibration_error(before, correct),
            "ece_after": expected_calibration_error(after, correct),
            "reliability_before": reliability(before, correct), "reliability_after": reliability(after, correct),
            "rows": rows}


def save_calibration(out_dir: Path, result: dict) -> None:
    """The full record in the run folder; the temperature (and its ECE) beside the saved model,
    so a model folder predicts calibrated confidences wherever it is copied."""
    (out_dir / CALIBRATION_FILE).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    brief = {k: result[k] for k in ("temperature", "method", "fitted_on_rows", "ece_before", "ece_after")}
    (out_dir / "model" / CALIBRATION_FILE).write_text(json.dumps(brief, indent=2))


def read_calibration(folder: Path | None) -> dict | None:
    path = folder / CALIBRATION_FILE if folder else None
    if not path or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if float(data.get("temperature", 0)) > 0 else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
