"""Multi-task training speed: ours against the reference recipe, same student, data and batches.

Reference (the distilling-step-by-step code's recipe): HF Seq2SeqTrainer with a
TaskPrefix-style compute_loss that runs two forward passes (label view, rationale view), each
given labels= (full-vocabulary logits at every target position, padding included, and the
model's own loss), and DataCollatorForSeq2Seq. Ours (core.train.trainer): both views stacked into one
encoder pass, the LM head only at real target tokens, no decoder key/value cache.

Made equal, so that the two losses compare (each is the mean training loss over the run):
- the same batches in the same order: the reference's DataLoader yields exactly the batches
  core.train.trainer draws (which rows a step sees moves a 30-step mean loss by several percent);
- the same learning rate at every step: core.train.trainer's schedule (the HF linear schedule starts
  its warmup at lr 0, so its first step changes nothing and it trains one step less);
- the same student and initial weights, seed, steps, batch size, weight decay (none on biases
  and LayerNorm weights), gradient clipping, fused AdamW and threads.
A held-out loss (test rows, eval mode, one loss function for both) checks that both learned
the same. On a shared machine noise only ever slows a run down, so the two alternate
(reference, ours, reference, ours, ...) and each keeps its fastest run.

    .venv/bin/python bench/train.py [--steps 30] [--batch-size 8] [--repeats 2] [--bf16]

--bf16 adds the pair under bf16 autocast (opt-in: over ten minutes for the reference on a
CPU without native bf16 speed). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.db import Store
from core.label.demo import ensure_demo
from core.train.base_models import OFFLINE_DEFAULT, load_student
from core.train.generate import LABEL_PREFIX, RATIONALE_PREFIX
from core.train.data import epoch_batches, split_rows, training_examples
from core.train.trainer import Report, TrainConfig, lr_at, task_loss, train, training_data


def bench_config(project: str, steps: int, batch_size: int, lr: float, student: str, out: Path, **kw) -> TrainConfig:
    return TrainConfig(project=project, student=student, max_steps=steps, batch_size=batch_size, learning_rate=lr,
                       log_every=steps, eval_limit=1, eval_every=0, rationale_samples=0, checkpoint_every=0,
                       out_dir=str(out), **kw)


def core_batches(lengths: list[int], cfg: TrainConfig) -> list[list[int]]:
    """The batches core.train.trainer draws, in its order: the same seeded rng, epoch after epoch."""
    rng, batches = random.Random(cfg.seed), []
    while len(batches) < cfg.max_steps:
        batches += epoch_batches(lengths, cfg.batch_size, rng, cfg.group_by_length)
    return batches[:cfg.max_steps]


def encode_views(tokenizer, text: str, label: str, rationale: str | None, cfg: TrainConfig) -> dict:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id

    def target(t, n):
        return tokenizer(t, add_special_tokens=False, truncation=True, max_length=n - 1).input_ids + [eos]

    return {"input_ids": tokenizer(LABEL_PREFIX + text, truncation=True, max_length=cfg.max_input_len).input_ids,
            "labels": target(label, cfg.max_label_len),
            "rat_input_ids": tokenizer(RATIONALE_PREFIX + text, truncation=True, max_length=cfg.max_input_len).input_ids,
            "rat_labels": target(rationale or "", cfg.max_rationale_len)}


def heldout_loss(model, tokenizer, store: Store, project: str, cfg: TrainConfig) -> float:
    """0.5 * label + 0.5 * rationale loss on the held-out rows (eval mode, full logits), for either model."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    _, test = split_rows(store.items_by_order(project, None), cfg.test_fraction, cfg.split_seed)
    rows = [encode_views(tokenizer, e["text"], e["label"], e["rationale"], cfg) for e in training_examples(test, cfg)]
    collator = DataCollatorForSeq2Seq(tokenizer)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            chunk = rows[start:start + 32]
            for ids, labels in (("input_ids", "labels"), ("rat_input_ids", "rat_labels")):
                b = collator([{"input_ids": r[ids], "labels": r[labels]} for r in chunk])
                hidden = model.get_encoder()(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
                total += 0.5 * len(chunk) * task_loss(model, hidden, b["attention_mask"], b["labels"], sparse_head=False).item()
    return total / len(rows)


def reference(store: Store, project: str, steps: int, batch_size: int, lr: float, student: str, out: Path,
              bf16: bool = False) -> dict:
    import torch
    from datasets_free import ListDataset
    from torch.optim.lr_scheduler import LambdaLR
    from torch.utils.data import DataLoader
    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    model, tokenizer = load_student(student, 0)
    cfg = bench_config(project, steps, batch_size, lr, student, out)
    rows, _ = split_rows(store.items_by_order(project, None), cfg.test_fraction, cfg.split_seed)
    examples = training_examples(rows, cfg)
    features = [encode_views(tokenizer, e["text"], e["label"], e["rationale"], cfg) for e in examples]
    batches = core_batches([len(f["input_ids"]) for f in features], cfg)
    collator = DataCollatorForSeq2Seq(tokenizer, model=model)

    def collate(batch):
        # TaskPrefixDataCollator: collate each view separately, as the reference code does
        pred = collator([{"input_ids": b["input_ids"], "labels": b["labels"]} for b in batch])
        expl = collator([{"input_ids": b["rat_input_ids"], "labels": b["rat_labels"]} for b in batch])
        return {"pred": pred, "expl": expl}

    class TaskPrefixTrainer(Seq2SeqTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            pred = model(**inputs["pred"])
            expl = model(**inputs["expl"])
            loss = 0.5 * pred.loss + 0.5 * expl.loss
            return (loss, {"pred": pred, "expl": expl}) if return_outputs else loss

        def get_train_dataloader(self):
            # core.train.trainer's batches instead of the Trainer's own shuffle: the same rows at every step
            return self.accelerator.prepare(DataLoader(self.train_dataset, batch_sampler=batches, collate_fn=collate))

        def create_scheduler(self, num_training_steps, optimizer=None):
            # core.train.trainer's learning rate at every step (HF's linear warmup would start at 0)
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: lr_at(step, cfg) / cfg.learning_rate)
            return self.lr_scheduler

    args = Seq2SeqTrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=lr,
        weight_decay=cfg.weight_decay, max_grad_norm=1.0, logging_steps=steps,
        save_strategy="no", report_to=[], seed=0, remove_unused_columns=False, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True, bf16=bf16,
    )
    trainer = TaskPrefixTrainer(model=model, args=args, train_dataset=ListDataset(features), data_collator=collate)
    started = time.monotonic()
    result = trainer.train()
    seconds = time.monotonic() - started
    return {"examples_per_s": steps * batch_size / seconds, "final_loss": result.training_loss,
            "heldout_loss": heldout_loss(trainer.model, tokenizer, store, project, cfg)}


def ours(store: Store, project: str, steps: int, batch_size: int, lr: float, student: str, out: Path,
         precision: str = "auto") -> dict:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    cfg = bench_config(project, steps, batch_size, lr, student, out, precision=precision)
    report = Report()  # metrics kept in memory: the loop needs no store
    result = train(cfg, training_data(store, project), report)
    losses = [value for _, name, value in report.rows if name == "train_loss"]
    speed = [value for _, name, value in report.rows if name == "examples_per_s"][-1]
    config = json.loads((out / "train_config.json").read_text())
    model = AutoModelForSeq2SeqLM.from_pretrained(out / "model")
    return {"examples_per_s": speed, "final_loss": sum(losses) / len(losses), "last_loss": losses[-1],
            "bf16": config["bf16_autocast"], "steps": result["steps"],
            "heldout_loss": heldout_loss(model, AutoTokenizer.from_pretrained(out / "model"), store, project, cfg)}


def fastest(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["examples_per_s"]) | {"runs_examples_per_s": [round(r["examples_per_s"], 3) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--student", default=OFFLINE_DEFAULT)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating; the fastest counts")
    parser.add_argument("--bf16", action="store_true", help="also measure both under bf16 autocast (slow on most CPUs)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        project = ensure_demo(store)
        common = (store, project, args.steps, args.batch_size, args.lr, args.student)
        refs, ourss = [], []
        for i in range(args.repeats):
            refs.append(reference(*common, Path(tmp) / f"ref-{i}"))
            ourss.append(ours(*common, Path(tmp) / f"ours-{i}", precision="auto"))  # fp32 on CPU, bf16 autocast on CUDA
        ref, our = fastest(refs), fastest(ourss)
        if args.bf16:
            our_bf16 = ours(*common, Path(tmp) / "ours-bf16", precision="bf16")
            ref_bf16 = reference(*common, Path(tmp) / "ref-bf16", bf16=True)
    speedup = our["examples_per_s"] / ref["examples_per_s"]
    print(f"student {args.student}, {args.steps} steps x batch {args.batch_size}, demo tickets, the same batches and "
          f"learning rates, fastest of {args.repeats} alternating runs each")
    print(f"reference Seq2SeqTrainer, two forwards: {ref['examples_per_s']:.2f} examples/s {ref['runs_examples_per_s']}, "
          f"mean loss {ref['final_loss']:.4f}, held-out loss {ref['heldout_loss']:.4f}")
    print(f"ours (bf16 autocast: {our['bf16']})          : {our['examples_per_s']:.2f} examples/s {our['runs_examples_per_s']}, "
          f"mean loss {our['final_loss']:.4f}, held-out loss {our['heldout_loss']:.4f}  -> {speedup:.2f}x")
    summary = {"speedup_vs_reference": round(speedup, 3), "loss_ours": round(our["final_loss"], 4),
               "loss_reference": round(ref["final_loss"], 4), "bf16_autocast": our["bf16"],
               "speedup_bf16_vs_reference_bf16": None, "loss_ours_bf16": None, "loss_reference_bf16": None,
               "examples_per_s_ours": round(our["examples_per_s"], 3),
               "examples_per_s_reference": round(ref["examples_per_s"], 3), "steps": args.steps,
               "loss_ratio": round(our["final_loss"] / ref["final_loss"], 4),
               "heldout_loss_ours": round(our["heldout_loss"], 4), "heldout_loss_reference": round(ref["heldout_loss"], 4),
               "runs_examples_per_s_ours": our["runs_examples_per_s"],
               "runs_examples_per_s_reference": ref["runs_examples_per_s"]}
    if args.bf16:
        bf16_speedup = our_bf16["examples_per_s"] / ref_bf16["examples_per_s"]
        print(f"reference with bf16=True   : {ref_bf16['examples_per_s']:.2f} examples/s, mean loss {ref_bf16['final_loss']:.4f}")
        print(f"ours with precision=bf16   : {our_bf16['examples_per_s']:.2f} examples/s, mean loss {our_bf16['final_loss']:.4f}"
              f"  -> {bf16_speedup:.2f}x (vs reference bf16)")
        summary |= {"speedup_bf16_vs_reference_bf16": round(bf16_speedup, 3),
                    "loss_ours_bf16": round(our_bf16["final_loss"], 4), "loss_reference_bf16": round(ref_bf16["final_loss"], 4)}
    print(f"speedup: {speedup:.2f}x at a loss ratio of {summary['loss_ratio']:.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
