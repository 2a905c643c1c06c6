"""Train a student seq2seq model by distilling step-by-step (Hsieh et al. 2023).

Reads top to bottom: config, data, model, helpers, one loop, evaluation, save.

Multi-task objective: every training row is shown twice, with a task prefix.
    "[label] <input>"     -> label
    "[rationale] <input>" -> rationale
    loss = alpha * label_loss + (1 - alpha) * rationale_loss
Both tasks go through the model in ONE forward pass (the two views are stacked into one
batch) and the per-sequence losses are weighted afterwards. Rows without a rationale
are masked out of the rationale loss (not trained on an empty target); when a batch has
no rationale at all the loss is the label loss alone.
The "standard" objective trains on the label task only (gold or teacher labels).
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.parsing import labels_equal, match_choice, match_label, match_nli, numeric_value, format_number
from core.store import Store
from core.students import OFFLINE_DEFAULT, load_student
from core.tasks import student_input

LABEL_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "


@dataclass
class TrainConfig:
    project: str
    student: str = OFFLINE_DEFAULT     # hub id, local folder, offline default, or tiny-random
    objective: str = "multitask"       # multitask (label + rationale) | standard (label only)
    label_source: str = "teacher"      # gold | teacher | reviewed (teacher with reviewer corrections)
    alpha: float = 0.5                 # weight of the label loss; (1 - alpha) goes to the rationale loss
    rationale_fraction: float = 1.0    # share of training rows that keep their rationale
    rationale_missing: str = "mask"    # rows without a rationale: "mask" (no rationale loss) or "empty"
                                       # (trained on an empty rationale target, as the seed paper's code did)
    approved_rationales_only: bool = False  # use only rationales a reviewer accepted or corrected
    max_steps: int = 120               # optimizer steps
    batch_size: int = 8                # rows per step (a multitask step sees 2x sequences)
    learning_rate: float = 3e-4        # AdamW peak learning rate
    warmup_steps: int = 10             # linear warmup, then linear decay to 0
    max_input_len: int = 128           # input tokens, truncated
    max_label_len: int = 16            # label target tokens
    max_rationale_len: int = 64        # rationale target tokens
    test_fraction: float = 0.2         # held-out share when the data has no "test" split
    log_every: int = 5                 # steps between metric writes to DuckDB
    eval_every: int = 0                # steps between evaluations (0: only at the end)
    eval_limit: int = 200              # test rows evaluated at most
    seed: int = 0                      # data order, rationale subset, init
    device: str = "auto"               # auto | cpu | cuda
    out_dir: str = ""                  # where the model and predictions are written
    extra: dict = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        from core.errors import ConfigError

        if self.objective not in ("multitask", "standard"):
            raise ConfigError(f"objective must be multitask or standard, not {self.objective!r}.")
        if self.label_source not in ("gold", "teacher", "reviewed"):
            raise ConfigError(f"label source must be gold, teacher or reviewed, not {self.label_source!r}.")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("alpha must be between 0 and 1.")
        if not 0.0 <= self.rationale_fraction <= 1.0:
            raise ConfigError("rationale fraction must be between 0 and 1.")
        if self.rationale_missing not in ("mask", "empty"):
            raise ConfigError("rationale_missing must be mask or empty.")
        if self.max_steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch size must be at least 1.")
        return self


# ---- data ---------------------------------------------------------------------------
def split_rows(items: list[dict], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Use the data's own test split when it has one; otherwise hold out a seeded share."""
    test = [it for it in items if it["split"] == "test"]
    if test:
        return [it for it in items if it["split"] != "test"], test
    order = sorted(items, key=lambda it: it["row_id"])
    random.Random(seed).shuffle(order)
    n_test = max(1, int(round(len(order) * test_fraction))) if len(order) > 1 else 0
    return order[n_test:], order[:n_test]


def training_examples(rows: list[dict], cfg: TrainConfig) -> list[dict]:
    label_of = {"gold": "gold", "teacher": "teacher_label", "reviewed": "label"}[cfg.label_source]
    rng = random.Random(cfg.seed + 1)
    out = []
    for it in rows:
        label = it.get(label_of)
        if label is None:
            continue
        rationale = it.get("rationale") if cfg.objective == "multitask" else None
        if it.get("verdict") in ("reject_rationale",) or (
                cfg.approved_rationales_only and it.get("verdict") not in ("accept", "correct")):
            rationale = None  # a rejected (or, when asked, unapproved) rationale is never trained on
        if rationale and rng.random() >= cfg.rationale_fraction:
            rationale = None
        out.append({"text": student_input(it["inputs"], it.get("choices")), "label": label, "rationale": rationale})
    return out


def normalize_prediction(text: str, item: dict, task: str, label_set: list[str] | None) -> str:
    """Map a generated label onto the label space (choice text, NLI label, number)."""
    text = text.strip()
    if task == "multiple-choice":
        return match_choice(text, item.get("choices") or []) or text
    if task == "nli":
        return match_nli(text) or text
    if task == "numeric":
        value = numeric_value(text)
        return format_number(value) if value is not None else text
    return match_label(text, label_set or []) or text


# ---- the run ----------------------------------------------------------------------
def train(store: Store, cfg: TrainConfig, job_id: str | None = None, should_stop=lambda: False) -> dict:
    import torch

    cfg.validate()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    project = store.get_project(cfg.project)
    out_dir = Path(cfg.out_dir or f"workspace/runs/{job_id or 'adhoc'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          (cfg.device if cfg.device != "auto" else "cpu"))

    items = store.items_by_order(cfg.project, None)
    train_rows, test_rows = split_rows(items, cfg.test_fraction, cfg.seed)
    examples = training_examples(train_rows, cfg)
    if not examples:
        from core.errors import ConfigError

        raise ConfigError(f"No training rows have a {cfg.label_source} label.")
    n_rationales = sum(1 for e in examples if e["rationale"])

    model, tokenizer = load_student(cfg.student, cfg.seed)
    model.to(device)
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    pad_id = tokenizer.pad_token_id

    def encode_target(text: str, max_len: int) -> list[int]:
        return tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_len - 1).input_ids + [eos_id]

    for e in examples:  # tokenise once, up front
        e["label_in"] = tokenizer(LABEL_PREFIX + e["text"], truncation=True, max_length=cfg.max_input_len).input_ids
        e["label_out"] = encode_target(e["label"], cfg.max_label_len)
        if e["rationale"] or cfg.rationale_missing == "empty":
            e["rat_in"] = tokenizer(RATIONALE_PREFIX + e["text"], truncation=True, max_length=cfg.max_input_len).input_ids
            e["rat_out"] = encode_target(e["rationale"], cfg.max_rationale_len) if e["rationale"] else [eos_id]

    def pad(seqs: list[list[int]], value: int) -> "torch.Tensor":
        width = max(len(s) for s in seqs)  # dynamic padding: to the longest in this batch
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs], device=device)

    def make_batch(batch: list[dict]) -> dict:
        """Stack the label view of every row and the rationale view of rows that have one."""
        inputs = [e["label_in"] for e in batch]
        targets = [e["label_out"] for e in batch]
        n_label = len(batch)
        if cfg.objective == "multitask":
            with_rat = [e for e in batch if "rat_in" in e]
            inputs += [e["rat_in"] for e in with_rat]
            targets += [e["rat_out"] for e in with_rat]
        input_ids = pad(inputs, pad_id)
        return {
            "input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(),
            "labels": pad(targets, -100), "n_label": n_label,
        }

    def batch_loss(batch: dict) -> tuple["torch.Tensor", float, float | None]:
        labels = batch["labels"]
        # Decoder inputs from the shifted targets; passing labels= would make the model
        # compute a second, unweighted loss over the whole batch.
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=decoder_input_ids)
        token_loss = torch.nn.functional.cross_entropy(
            out.logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
        per_seq = token_loss.sum(1) / (labels != -100).sum(1).clamp(min=1)
        n = batch["n_label"]
        label_loss = per_seq[:n].mean()
        if per_seq.shape[0] > n:
            rationale_loss = per_seq[n:].mean()
            loss = cfg.alpha * label_loss + (1 - cfg.alpha) * rationale_loss
            return loss, label_loss.item(), rationale_loss.item()
        return label_loss, label_loss.item(), None

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        remaining = max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.learning_rate * max(0.0, 1 - (step - cfg.warmup_steps) / remaining)

    def evaluate(step: int, write_predictions: bool = False) -> dict:
        model.eval()
        rows = test_rows[: cfg.eval_limit]
        right = agree = with_gold = with_teacher = 0
        predictions = []
        with torch.no_grad():
            for start in range(0, len(rows), 32):
                chunk = rows[start:start + 32]
                texts = [LABEL_PREFIX + student_input(it["inputs"], it.get("choices")) for it in chunk]
                enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=cfg.max_input_len).to(device)
                generated = model.generate(**enc, max_new_tokens=cfg.max_label_len, num_beams=1, do_sample=False)
                for it, raw in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                    pred = normalize_prediction(raw, it, project.task, project.label_set)
                    if it["gold"] is not None:
                        with_gold += 1
                        right += labels_equal(pred, it["gold"], project.task)
                    if it["teacher_label"] is not None:
                        with_teacher += 1
                        agree += labels_equal(pred, it["teacher_label"], project.task)
                    predictions.append({"row_id": it["row_id"], "prediction": pred, "raw": raw,
                                        "gold": it["gold"], "teacher": it["teacher_label"]})
        model.train()
        result = {}
        if write_predictions:
            confusion = confusion_matrix(predictions)
            (out_dir / "confusion.json").write_text(json.dumps(confusion, indent=2, ensure_ascii=False))
        if with_gold:
            result["test_accuracy"] = right / with_gold
        if with_teacher:
            result["teacher_agreement"] = agree / with_teacher
        if write_predictions:
            with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
                for p in predictions:
                    f.write(json.dumps(p, ensure_ascii=False) + "\n")
        store.add_metrics(job_id or "adhoc", [(step, k, v) for k, v in result.items()])
        return result

    resolved = asdict(cfg) | {"out_dir": str(out_dir), "device": str(device), "train_rows": len(examples),
                              "test_rows": len(test_rows), "rows_with_rationale": n_rationales,
                              "rationale_loss": ("masked (rows without a rationale add no rationale loss)"
                                                 if cfg.rationale_missing == "mask" else
                                                 "empty target (rows without a rationale learn to emit nothing)")}
    (out_dir / "train_config.json").write_text(json.dumps(resolved, indent=2))

    # ---- the loop ---------------------------------------------------------------
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    rng = random.Random(cfg.seed)
    order: list[dict] = []
    model.train()
    pending_metrics: list[tuple[int, str, float]] = []
    t0, seen, status = time.monotonic(), 0, "completed"
    for step in range(cfg.max_steps):
        if len(order) < cfg.batch_size:
            fresh = examples[:]
            rng.shuffle(fresh)
            order += fresh
        batch_rows, order = order[: cfg.batch_size], order[cfg.batch_size:]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss, label_loss, rationale_loss = batch_loss(make_batch(batch_rows))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seen += len(batch_rows)

        pending_metrics += [(step + 1, "train_loss", loss.item()), (step + 1, "label_loss", label_loss)]
        if rationale_loss is not None:
            pending_metrics.append((step + 1, "rationale_loss", rationale_loss))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            pending_metrics += [(step + 1, "lr", lr_at(step)),
                                (step + 1, "examples_per_s", seen / (time.monotonic() - t0))]
            store.add_metrics(job_id or "adhoc", pending_metrics)
            pending_metrics = []
            if stop["flag"] or should_stop():
                status = "cancelled"
                break
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.max_steps:
            evaluate(step + 1)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step + 1}")

    final = evaluate(step + 1, write_predictions=True)
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    (out_dir / "model" / "train_config.json").write_text(json.dumps(resolved, indent=2))
    return {"status": status, "steps": step + 1, "out_dir": str(out_dir), "final_loss": loss.item(), **final}


def confusion_matrix(predictions: list[dict]) -> dict:
    """Gold x predicted counts and per-class accuracy (recall) over rows with a gold label."""
    rows = [p for p in predictions if p["gold"] is not None]
    labels = sorted({p["gold"] for p in rows} | {p["prediction"] for p in rows})
    counts = {g: {q: 0 for q in labels} for g in labels}
    for p in rows:
        counts[p["gold"]][p["prediction"]] += 1
    per_class = {g: (counts[g][g] / sum(counts[g].values())) for g in labels if sum(counts[g].values())}
    return {"labels": labels, "counts": counts, "per_class_accuracy": per_class}


def predict(model_dir: str, texts: list[str], max_new_tokens: int = 16, rationale: bool = False) -> list[dict]:
    """Labels (and optionally rationales) from a trained student folder for new inputs."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            row = {"input": text}
            for key, prefix, limit in [("label", LABEL_PREFIX, max_new_tokens), ("rationale", RATIONALE_PREFIX, 64)]:
                if key == "rationale" and not rationale:
                    continue
                enc = tokenizer([prefix + text], return_tensors="pt", truncation=True, max_length=128)
                generated = model.generate(**enc, max_new_tokens=limit, num_beams=1, do_sample=False)
                row[key] = tokenizer.decode(generated[0], skip_special_tokens=True).strip()
            out.append(row)
    return out
