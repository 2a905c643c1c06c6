"""Multi-task training speed: ours against the reference recipe, same student and data.

Reference (the distilling-step-by-step code's recipe): HF Seq2SeqTrainer with a
TaskPrefix-style compute_loss that runs two forward passes (label view, rationale view)
and DataCollatorForSeq2Seq. Ours (core.train): both views stacked into one forward pass
with dynamic padding and a per-sequence masked loss. Same student (the offline MiniLM
bert2bert), same rows (the bundled demo), batch size, steps, learning rate and seed,
measured one after the other in this process on CPU.

    .venv/bin/python bench/train.py [--steps 30] [--batch-size 8]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.db import Store
from core.demo import ensure_demo
from core.students import OFFLINE_DEFAULT, load_student
from core.train import (
    LABEL_PREFIX,
    RATIONALE_PREFIX,
    Report,
    TrainConfig,
    split_rows,
    train,
    training_data,
    training_examples,
)


def reference(store: Store, project: str, steps: int, batch_size: int, lr: float, student: str, out: Path,
              bf16: bool = False) -> dict:
    import torch
    from datasets_free import ListDataset
    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    model, tokenizer = load_student(student, 0)
    cfg = TrainConfig(project=project, student=student)
    rows, _ = split_rows(store.items_by_order(project, None), cfg.test_fraction, cfg.seed)
    examples = training_examples(rows, cfg)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id

    def target(text, n):
        return tokenizer(text, add_special_tokens=False, truncation=True, max_length=n - 1).input_ids + [eos]

    features = []
    for e in examples:
        features.append({
            "input_ids": tokenizer(LABEL_PREFIX + e["text"], truncation=True, max_length=128).input_ids,
            "labels": target(e["label"], 16),
            "rat_input_ids": tokenizer(RATIONALE_PREFIX + e["text"], truncation=True, max_length=128).input_ids,
            "rat_labels": target(e["rationale"] or "", 64),
        })
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

    args = Seq2SeqTrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=lr,
        warmup_steps=10, lr_scheduler_type="linear", weight_decay=0.01, max_grad_norm=1.0, logging_steps=steps,
        save_strategy="no", report_to=[], seed=0, remove_unused_columns=False, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True, bf16=bf16,
    )
    trainer = TaskPrefixTrainer(model=model, args=args, train_dataset=ListDataset(features), data_collator=collate)
    started = time.monotonic()
    result = trainer.train()
    seconds = time.monotonic() - started
    return {"examples_per_s": steps * batch_size / seconds, "final_loss": result.training_loss,
            "last_loss": trainer.state.log_history[-2].get("loss") if len(trainer.state.log_history) > 1 else None}


def ours(store: Store, project: str, steps: int, batch_size: int, lr: float, student: str, out: Path,
         precision: str = "auto") -> dict:
    cfg = TrainConfig(project=project, student=student, max_steps=steps, batch_size=batch_size, learning_rate=lr,
                      log_every=steps, eval_limit=1, eval_every=0, rationale_samples=0, checkpoint_every=0, out_dir=str(out),
                      precision=precision)
    report = Report()  # metrics kept in memory: the loop needs no store
    result = train(cfg, training_data(store, project), report)
    losses = [value for _, name, value in report.rows if name == "train_loss"]
    speed = [value for _, name, value in report.rows if name == "examples_per_s"][-1]
    config = json.loads((out / "train_config.json").read_text())
    return {"examples_per_s": speed, "final_loss": sum(losses) / len(losses), "last_loss": losses[-1],
            "bf16": config["bf16_autocast"], "steps": result["steps"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--student", default=OFFLINE_DEFAULT)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        project = ensure_demo(store)
        common = (store, project, args.steps, args.batch_size, args.lr, args.student)
        ref = reference(*common, Path(tmp) / "ref")
        our = ours(*common, Path(tmp) / "ours-auto", precision="auto")  # fp32 on CPU, bf16 autocast on CUDA
        our_bf16 = ours(*common, Path(tmp) / "ours-bf16", precision="bf16")
        ref_bf16 = reference(*common, Path(tmp) / "ref-bf16", bf16=True)
    speedup = our["examples_per_s"] / ref["examples_per_s"]
    bf16_speedup = our_bf16["examples_per_s"] / ref_bf16["examples_per_s"]
    print(f"student {args.student}, {args.steps} steps x batch {args.batch_size}, demo tickets, one run")
    print(f"reference Seq2SeqTrainer, two forwards (its default precision): {ref['examples_per_s']:.2f} examples/s, "
          f"mean loss {ref['final_loss']:.4f}")
    print(f"ours (default precision, bf16 autocast: {our['bf16']})            : {our['examples_per_s']:.2f} examples/s, "
          f"mean loss {our['final_loss']:.4f}  -> {speedup:.2f}x")
    print(f"reference with bf16=True                                : {ref_bf16['examples_per_s']:.2f} examples/s, "
          f"mean loss {ref_bf16['final_loss']:.4f}")
    print(f"ours with precision=bf16                                : {our_bf16['examples_per_s']:.2f} examples/s, "
          f"mean loss {our_bf16['final_loss']:.4f}  -> {bf16_speedup:.2f}x (vs reference bf16), "
          f"{our_bf16['examples_per_s'] / ref['examples_per_s']:.2f}x (vs reference default)")
    print(f"speedup of the default recipes: {speedup:.2f}x")
    print(json.dumps({"speedup_vs_reference": round(speedup, 3), "loss_ours": round(our["final_loss"], 4),
                      "loss_reference": round(ref["final_loss"], 4), "bf16_autocast": our["bf16"],
                      "speedup_bf16_vs_reference_bf16": round(bf16_speedup, 3),
                      "loss_ours_bf16": round(our_bf16["final_loss"], 4), "loss_reference_bf16": round(ref_bf16["final_loss"], 4),
                      "examples_per_s_ours": round(our["examples_per_s"], 3),
                      "examples_per_s_reference": round(ref["examples_per_s"], 3), "steps": args.steps}))


if __name__ == "__main__":
    main()
