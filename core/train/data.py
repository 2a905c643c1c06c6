"""A run's rows as training sees them: the held-out split, the training examples (label,
rationale, task prefixes), tokenised once, and batches drawn from them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.kernel.sampling import stratified_order
from core.kernel.tasks import get_task, student_input
from core.train.generate import LABEL_PREFIX, RATIONALE_PREFIX


# ---- data ---------------------------------------------------------------------------
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")  # a data set's own validation split names


@dataclass
class Split:
    """Which rows a run trains on, chooses its checkpoint on, and is graded on (once)."""
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    how: str  # in words, for the pages


def split_rows(items: list[dict], test_fraction: float, seed: int, val_fraction: float = 0.0,
               task: str = "classification") -> Split:
    """The project's train / validation / test split. The data's own test and validation splits
    are used when it has them; otherwise seeded shares, stratified by the task's classes (the
    gold label; a multiple-choice gold's position; a numeric gold's order of magnitude), so each
    class is held out in proportion. `seed` is the run's split_seed, not its training seed: runs
    with different seeds are graded on the same rows."""
    own_test = [it for it in items if it["split"] == "test"]
    own_val = [it for it in items if it["split"] in VALIDATION_SPLITS]
    rest = [it for it in items if it["split"] != "test" and it["split"] not in VALIDATION_SPLITS]
    order = stratified_order(rest, seed, get_task(task).stratum, salt="split:")
    n_test, n_val = held_out_sizes(len(rest), bool(own_test), bool(own_val), test_fraction, val_fraction)
    test_ids, val_ids = set(order[:n_test]), set(order[n_test:n_test + n_val])
    by_id = {it["row_id"]: it for it in rest}
    test = own_test or [by_id[r] for r in order[:n_test]]
    validation = own_val or [by_id[r] for r in order[n_test:n_test + n_val]]
    train = [it for it in rest if it["row_id"] not in test_ids and it["row_id"] not in val_ids]
    return Split(train, validation, test, split_text(bool(own_test), bool(own_val), len(test), len(validation),
                                                     test_fraction, val_fraction, seed))


def held_out_sizes(rest: int, own_test: bool, own_val: bool, test_fraction: float,
                   val_fraction: float) -> tuple[int, int]:
    """(test rows, validation rows) drawn from the `rest` rows outside the data's own splits."""
    n_test = 0 if own_test else (max(1, round(rest * test_fraction)) if rest > 1 else 0)
    n_val = 0 if own_val else round(rest * val_fraction)
    return n_test, (n_val if rest - n_test - n_val >= 1 else 0)  # never the last training row


def split_counts(by_split: dict[str, int], test_fraction: float, val_fraction: float,
                 seed: int) -> tuple[int, int, int, str]:
    """(train, validation, test, in words) from the row counts per data split alone: what
    split_rows gives, without reading the rows (the Train page, a million rows)."""
    own_test = by_split.get("test", 0)
    own_val = sum(n for name, n in by_split.items() if name in VALIDATION_SPLITS)
    rest = sum(by_split.values()) - own_test - own_val
    n_test, n_val = held_out_sizes(rest, bool(own_test), bool(own_val), test_fraction, val_fraction)
    test, validation = own_test or n_test, own_val or n_val
    return (rest - n_test - n_val, validation, test,
            split_text(bool(own_test), bool(own_val), test, validation, test_fraction, val_fraction, seed))


def describe_split(by_split: dict[str, int], test_fraction: float, val_fraction: float, seed: int) -> str:
    """The rows a run trains on, chooses its checkpoint on and is tested on, in words, from the
    row counts per data split (the same for every run with these fractions and split seed)."""
    train_n, val_n, test_n, how = split_counts(by_split, test_fraction, val_fraction, seed)
    return (f"{train_n} rows to train on, {val_n} validation rows (choose the checkpoint), "
            f"{test_n} test rows (scored once). Held out: {how}.")


def split_text(own_test: bool, own_val: bool, test: int, validation: int, test_fraction: float,
               val_fraction: float, seed: int) -> str:
    return (("the data's own test split" if own_test else f"{test} rows ({test_fraction:.0%}) held out for the test")
            + (", the data's own validation split" if own_val else
               f", {validation} ({val_fraction:.0%}) for choosing the checkpoint" if validation else
               ", no validation rows (the last step is kept)")
            + ("" if own_test and own_val else f": stratified by class, fixed by split seed {seed}"))


def legacy_split_rows(items: list[dict], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test) as runs before the stratified three-way split held rows out: a seeded
    shuffle by row id (kept to recompute those runs' held-out rows)."""
    test = [it for it in items if it["split"] == "test"]
    if test:
        return [it for it in items if it["split"] != "test"], test
    order = sorted(items, key=lambda it: it["row_id"])
    random.Random(seed).shuffle(order)
    n_test = max(1, int(round(len(order) * test_fraction))) if len(order) > 1 else 0
    return order[n_test:], order[:n_test]


def training_examples(rows: list[dict], cfg) -> list[dict]:
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
        out.append({"row_id": it["row_id"], "version": it.get("version"),
                    "text": student_input(it["inputs"], it.get("choices")), "label": label, "rationale": rationale,
                    # the teacher's answer was paid for and used: its label, or its rationale
                    "uses_teacher": cfg.label_source != "gold" or rationale is not None})
    return out


def encode_examples(examples: list[dict], tokenizer, cfg) -> list[int]:
    """Tokenise every example once, up front (both task views and their targets, ending in
    EOS); returns each example's label-view input length."""
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id

    def encode_target(text: str, max_len: int) -> list[int]:
        return tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_len - 1).input_ids + [eos_id]

    for e in examples:
        e["label_in"] = tokenizer(LABEL_PREFIX + e["text"], truncation=True, max_length=cfg.max_input_len).input_ids
        e["label_out"] = encode_target(e["label"], cfg.max_label_len)
        if e["rationale"] or cfg.rationale_missing == "empty":
            e["rat_in"] = tokenizer(RATIONALE_PREFIX + e["text"], truncation=True, max_length=cfg.max_input_len).input_ids
            e["rat_out"] = encode_target(e["rationale"], cfg.max_rationale_len) if e["rationale"] else [eos_id]
    return [len(e["label_in"]) for e in examples]


# ---- batching -------------------------------------------------------------------------
def epoch_batches(lengths: list[int], batch_size: int, rng: random.Random, group_by_length: bool) -> list[list[int]]:
    """One epoch of batches as example indices. Length grouping: shuffle, sort each window of
    50 batches by length, cut into batches, shuffle the batches. Every example once per epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        order = [i for w in range(0, len(order), window)
                 for i in sorted(order[w:w + window], key=lambda i: lengths[i], reverse=True)]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def pad(seqs: list[list[int]], value: int, device):
    import torch

    width = max(len(s) for s in seqs)  # dynamic padding: to the longest in this batch
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], device=device)


def make_batch(batch: list[dict], cfg, pad_id: int, device) -> dict:
    """Both views' inputs stacked for one encoder pass; each task's targets padded apart."""
    with_rat = [e for e in batch if "rat_in" in e] if cfg.objective == "multitask" else []
    input_ids = pad([e["label_in"] for e in batch] + [e["rat_in"] for e in with_rat], pad_id, device)
    return {
        "input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "n_label": len(batch),
        "label_targets": pad([e["label_out"] for e in batch], -100, device),
        "rationale_targets": pad([e["rat_out"] for e in with_rat], -100, device) if with_rat else None,
    }


# ---- the snapshot: what a run trained on ---------------------------------------------------
SNAPSHOT_FILE = "training_rows.jsonl"


def write_snapshot(out_dir, examples: list[dict]) -> dict:
    """Record exactly which rows, at which version, with which label and rationale the run trains
    on (one line each, in the run folder), and return their count and content hash: a later
    review cannot silently change what a finished run claims it learned."""
    import hashlib
    import json
    from pathlib import Path

    digest = hashlib.sha256()
    path = Path(out_dir) / SNAPSHOT_FILE
    with open(path, "w", encoding="utf-8") as f:
        for e in examples:
            line = json.dumps({"row_id": e["row_id"], "version": e["version"], "label": e["label"],
                               "rationale": e["rationale"]}, ensure_ascii=False, sort_keys=True)
            digest.update(line.encode())
            f.write(line + "\n")
    return {"rows": len(examples), "sha256": digest.hexdigest()}


def read_snapshot(out_dir) -> dict[str, int] | None:
    """row id -> version of the rows a run trained on (None for runs from before snapshots)."""
    import json
    from pathlib import Path

    path = Path(out_dir) / SNAPSHOT_FILE
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        return {r["row_id"]: r["version"] for r in map(json.loads, f)}
