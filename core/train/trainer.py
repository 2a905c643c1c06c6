"""Train a student seq2seq model by distilling step-by-step (Hsieh et al. 2023).

Reads top to bottom: config, data, helpers, the run (setup, one loop, final evaluation, save).
Generation and held-out evaluation live in core.train.generate and core.train.evaluate
(the student's predictions use the same ones), checkpoints in core.train.checkpoint.

Multi-task objective: every training row is shown twice, with a task prefix.
    "[label] <input>"     -> label
    "[rationale] <input>" -> rationale
    loss = alpha * label_loss + (1 - alpha) * rationale_loss
The encoder runs ONCE over both views stacked into one batch; the decoder then runs
twice, once per task, each padded only to its own longest target (labels are a few tokens,
rationales dozens), and the LM head (a vocabulary-wide projection) runs only at real
target tokens, never at padding. Each task's loss is the mean over its target tokens, as
in the reference code. Rows without a rationale are masked out of the rationale loss (not
trained on an empty target); when a batch has no rationale at all the loss is the label
loss alone. The "standard" objective trains on the label task only (gold or teacher labels).
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.kernel.errors import ConfigError
from core.kernel.tasks import get_task
from core.train.base_models import OFFLINE_DEFAULT, load_student
from core.train.calibration import calibrate, save_calibration
from core.train.checkpoint import CHECKPOINT, Best, load_checkpoint, restore, run_state, save_checkpoint
from core.train.distributed import Replicas
from core.train.evaluate import evaluate, save_evaluation
from core.train.data import (
    encode_examples,
    epoch_batches,
    make_batch,
    split_rows,
    training_examples,
    write_snapshot,
)

OBJECTIVES = ("multitask", "standard")           # label + rationale | label only
LABEL_SOURCES = ("reviewed", "teacher", "gold")  # reviewed = teacher labels with reviewer corrections
# Evaluation during training (TrainConfig.eval_every unset): about this many held-out
# evaluations per run, the last one being the final evaluation, but never more often than
# every EVAL_MIN_INTERVAL steps, so that short runs (and the tests' tiny ones) stay cheap.
EVAL_POINTS = 5
EVAL_MIN_INTERVAL = 10


@dataclass
class TrainConfig:
    project: str
    student: str = field(default=OFFLINE_DEFAULT, metadata={
        "help": "the student: a Hub id, a local folder, the offline default, or tiny-random"})
    objective: str = field(default="multitask", metadata={
        "choices": OBJECTIVES, "help": "multitask (label + rationale) or standard (label only)"})
    label_source: str = field(default="reviewed", metadata={
        "choices": LABEL_SOURCES, "help": "gold, teacher, or reviewed (teacher labels with reviewer corrections)"})
    alpha: float = field(default=0.5, metadata={
        "help": "weight of the label loss; (1 - alpha) goes to the rationale loss"})
    rationale_fraction: float = field(default=1.0, metadata={
        "help": "share of training rows that keep their rationale"})
    # "empty" trains on an empty rationale target, as the seed paper's code did.
    rationale_missing: str = field(default="mask", metadata={
        "choices": ("mask", "empty"),
        "help": "rows without a rationale: no rationale loss (mask) or an empty target (the seed code)"})
    approved_rationales_only: bool = field(default=False, metadata={
        "flag": "--approved-only", "help": "use only rationales a reviewer approved"})
    max_steps: int = field(default=120, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "rows per step (a multitask step sees 2x sequences)"})
    learning_rate: float = field(default=3e-4, metadata={"flag": "--lr", "help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={
        "help": "AdamW weight decay (matrices and embeddings; not biases or LayerNorm)"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warmup steps, then linear decay to 0"})
    max_input_len: int = field(default=128, metadata={"help": "input tokens, truncated"})
    max_label_len: int = field(default=16, metadata={"help": "label target tokens"})
    max_rationale_len: int = field(default=64, metadata={"help": "rationale target tokens"})
    test_fraction: float = field(default=0.2, metadata={"help": "held-out test share when the data has no test split"})
    # The checkpoint kept is the one best on these rows; the test rows are scored once, at the end.
    val_fraction: float = field(default=0.1, metadata={
        "help": "validation share for choosing the checkpoint when the data has no validation split (0: keep the last step)"})
    # Which rows are held out: fixed per project (not the training seed), so runs with different
    # seeds, as a sweep makes them, are graded on the same rows.
    split_seed: int = field(default=0, metadata={"help": "which rows are held out (the same for every training seed)"})
    log_every: int = field(default=5, metadata={"help": "steps between metric writes to the database"})
    # Unset: about EVAL_POINTS per run (every 24 steps of the default 120, never more often
    # than every EVAL_MIN_INTERVAL steps).
    eval_every: int | None = field(default=None, metadata={
        "help": "steps between held-out evaluations during training (default: automatic; 0: only at the end)"})
    eval_limit: int = field(default=200, metadata={"help": "test rows evaluated at most (the final evaluation)"})
    # The first rows of the final evaluation's: cheap, and comparable.
    step_eval_limit: int = field(default=200, metadata={
        "help": "test rows scored by each evaluation during training"})
    rationale_samples: int = field(default=50, metadata={
        "help": "test rows whose student rationale is generated for inspection"})
    checkpoint_every: int = field(default=50, metadata={
        "help": "steps between checkpoints (a killed run resumes from the last)"})
    # Off by default: where length predicts the label (the demo) a batch holds one or two labels
    # and trains worse per step (demo, 100 steps: mean training loss +30-45%, test accuracy the same).
    group_by_length: bool = field(default=False, metadata={
        "help": "batches of similar input length (less padding)"})
    precision: str = field(default="auto", metadata={
        "choices": ("auto", "fp32", "bf16"), "help": "auto: bf16 autocast on CUDA GPUs with bf16, else fp32"})
    seed: int = field(default=0, metadata={"help": "data order, rationale subset, init"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    # Set by the program, not on the command line: where the model and predictions are written.
    out_dir: str = field(default="", metadata={"cli": False})
    extra: dict = field(default_factory=dict, metadata={"cli": False})

    def eval_interval(self) -> int:
        """Steps between evaluations during training (0: none before the final one)."""
        if self.eval_every is not None:
            return self.eval_every
        return max(EVAL_MIN_INTERVAL, math.ceil(self.max_steps / EVAL_POINTS))

    def validate(self) -> TrainConfig:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be multitask or standard, not {self.objective!r}.")
        if self.label_source not in LABEL_SOURCES:
            raise ConfigError(f"label source must be gold, teacher or reviewed, not {self.label_source!r}.")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("alpha must be between 0 and 1.")
        if not 0.0 <= self.rationale_fraction <= 1.0:
            raise ConfigError("rationale fraction must be between 0 and 1.")
        if self.rationale_missing not in ("mask", "empty"):
            raise ConfigError("rationale_missing must be mask or empty.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError("precision must be auto, fp32 or bf16.")
        if self.max_steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch size must be at least 1.")
        if self.eval_every is not None and self.eval_every < 0:
            raise ConfigError("eval_every must be 0 (only at the end), a number of steps, or unset (automatic).")
        if not (0 <= self.test_fraction < 1 and 0 <= self.val_fraction < 1 and self.test_fraction + self.val_fraction < 1):
            raise ConfigError("test_fraction and val_fraction must be between 0 and 1 and leave rows to train on.")
        if self.eval_limit < 1 or self.step_eval_limit < 1:
            raise ConfigError("eval_limit and step_eval_limit must be at least 1.")
        return self

# ---- loss, optimizer and schedule ---------------------------------------------------
@contextmanager
def lm_head_at(model, keep):
    """Within this block the model's LM head (its output embedding, a hidden x vocabulary
    projection) sees only the decoder states where `keep` (batch x length, bool) is true, and
    the model's logits come back as (kept tokens x vocabulary). Whatever the model does before
    the head stays as it is (BERT's transform, T5's d_model**-0.5 scaling), so this works for
    any seq2seq model whose head is its output embedding."""
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _, args: (args[0][keep], *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def task_loss(model, hidden, mask, targets, sparse_head: bool = True):
    """Mean token cross-entropy of one task, given the encoder states of its rows."""
    import torch

    # Decoder inputs from the shifted targets; passing labels= would make the model
    # compute a second, unweighted loss of its own over full-vocabulary logits.
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=targets)
    keep = targets != -100
    sparse = sparse_head and model.get_output_embeddings() is not None
    with lm_head_at(model, keep) if sparse else nullcontext():
        # use_cache=False: training never reuses the decoder's key/value cache; building it costs copies
        logits = model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=decoder_input_ids,
                       use_cache=False).logits
    if sparse and logits.dim() == 2:  # the head ran at the target tokens only: no padding to ignore
        return torch.nn.functional.cross_entropy(logits.float(), targets[keep])
    return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100)


def batch_loss(model, batch: dict, alpha: float, bf16: bool, device):
    """(loss, label loss, rationale loss or None): the encoder once over both views, the decoder per task."""
    import torch

    n, mask = batch["n_label"], batch["attention_mask"]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        label_loss = task_loss(model, hidden[:n], mask[:n], batch["label_targets"])
        if batch["rationale_targets"] is None:
            return label_loss, label_loss.item(), None
        rationale_loss = task_loss(model, hidden[n:], mask[n:], batch["rationale_targets"])
    loss = alpha * label_loss + (1 - alpha) * rationale_loss
    return loss, label_loss.item(), rationale_loss.item()


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings, not biases or LayerNorm weights (as the HF Trainer and nanoGPT)."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup (the first step already at lr/warmup_steps), then linear decay to 0."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    remaining = max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.learning_rate * max(0.0, 1 - (step - cfg.warmup_steps) / remaining)


# ---- device and time ------------------------------------------------------------------
def native_bf16(device) -> bool:
    """Whether `auto` precision trains under bf16 autocast: on CUDA GPUs with bf16 units only.
    On CPUs with AVX512-BF16 it is 1.7x faster here, but the demo student then reached 0.35
    test accuracy instead of 0.89 (bench/train.py --bf16 times both); `precision="bf16"` opts in."""
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def pick_device(cfg: TrainConfig):
    """(device, replicas, bf16 autocast) for this process; torchrun / accelerate launch start one per device."""
    import torch

    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          (cfg.device if cfg.device != "auto" else "cpu"))
    replicas = Replicas(device.type)
    device = replicas.device(device)
    return device, replicas, cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16(device))


class Clock:
    """Training time: a resumed run's earlier seconds plus this process's, evaluations excluded."""

    def __init__(self, elapsed: float = 0.0):
        self.started, self.paused_for = time.monotonic() - elapsed, 0.0

    def seconds(self) -> float:
        return time.monotonic() - self.started - self.paused_for

    @contextmanager
    def paused(self):
        started = time.monotonic()
        try:
            yield
        finally:
            self.paused_for += time.monotonic() - started


# ---- the run ----------------------------------------------------------------------
@dataclass
class TrainingData:
    """What a run trains and evaluates on: the project's rows and its task."""

    task: str
    label_set: list[str] | None
    items: list[dict]   # rows as core.db returns them (inputs, choices, gold, labels, rationales, verdict)
    id_field: str | None = None  # the project's id column: predicted files carry it


class Report:
    """Where a run reports: metrics as (step, name, value), the final held-out predictions, and
    a rewind to a checkpoint's step on resume. This one keeps them in memory (bench, notebooks)."""

    def __init__(self):
        self.rows: list[tuple[int, str, float]] = []
        self.predictions: list[dict] = []

    def metrics(self, rows: list[tuple[int, str, float]]) -> None:
        self.rows += rows

    def save_predictions(self, rows: list[dict]) -> None:
        self.predictions = rows

    def rewind(self, after_step: int) -> None:
        self.rows = [r for r in self.rows if r[0] <= after_step]


def train(cfg: TrainConfig, data: TrainingData, report: Report | None = None, should_stop=lambda: None) -> dict:
    """Train (or resume, when out_dir holds a checkpoint) and evaluate. `should_stop()` returns
    a truthy reason ("cancelled" or "paused") to stop at the next logging step."""
    import torch

    # ---- setup ----------------------------------------------------------------------
    cfg.validate()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    report = report if report is not None else Report()
    kind = get_task(data.task)
    out_dir = Path(cfg.out_dir or "workspace/runs/adhoc")
    out_dir.mkdir(parents=True, exist_ok=True)
    device, replicas, bf16 = pick_device(cfg)

    split = split_rows(data.items, cfg.test_fraction, cfg.split_seed, cfg.val_fraction, data.task)
    train_rows, val_rows, test_rows = split.train, split.validation, split.test
    examples = training_examples(train_rows, cfg)
    if not examples:
        raise ConfigError(f"No training rows have a {cfg.label_source} label.")
    model, tokenizer = load_student(cfg.student, cfg.seed)
    model.to(device)
    lengths = encode_examples(examples, tokenizer, cfg)
    # fused AdamW: one kernel over all parameters (the HF Trainer's default optimizer too)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate, fused=True)

    eval_every = cfg.eval_interval()
    resolved = asdict(cfg) | {"out_dir": str(out_dir), "device": str(device), "bf16_autocast": bf16,
                              "eval_every": eval_every,
                              # what batch prediction needs to read a file of new rows like the training rows
                              "task": data.task, "label_set": data.label_set, "id_field": data.id_field,
                              "input_fields": list(dict.fromkeys(k for it in train_rows for k in it["inputs"])),
                              "train_rows": len(examples), "validation_rows": len(val_rows),
                              "test_rows": len(test_rows), "split": split.how,
                              "rows_with_rationale": sum(1 for e in examples if e["rationale"]),
                              "teacher_rows_used": sum(1 for e in examples if e["uses_teacher"]),
                              "rationale_loss": ("masked (rows without a rationale add no rationale loss)"
                                                 if cfg.rationale_missing == "mask" else
                                                 "empty target (rows without a rationale learn to emit nothing)")}
    if replicas.world > 1:
        resolved |= {"processes": replicas.world, "global_batch_size": cfg.batch_size * replicas.world}
    if replicas.main:
        resolved["data_snapshot"] = write_snapshot(out_dir, examples)
        (out_dir / "train_config.json").write_text(json.dumps(resolved, indent=2))

    # ---- resume -------------------------------------------------------------------
    rng = random.Random(cfg.seed)
    batches: list[list[int]] = []   # the rest of the current epoch, as example indices
    first_step, seen, elapsed = 0, 0, 0.0
    ckpt_path = out_dir / CHECKPOINT
    best = Best(out_dir)  # the step best on the validation rows so far (kept across a resume)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None:
        batches, first_step, seen, elapsed = restore(ckpt, model, optimizer, rng)
        if replicas.main:
            report.rewind(first_step)  # steps after the checkpoint are logged again

    # ---- the loop ---------------------------------------------------------------
    model.train()
    clock = Clock(elapsed)
    pending_metrics: list[tuple[int, str, float]] = []
    status, step = "completed", first_step
    for step in range(first_step, cfg.max_steps):
        if not batches:
            batches = epoch_batches(lengths, cfg.batch_size * replicas.world, rng, cfg.group_by_length)
        batch_rows = [examples[i] for i in replicas.shard(batches.pop(0))]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        optimizer.zero_grad(set_to_none=True)
        if batch_rows:  # a rank can draw nothing from the last, short batch of an epoch
            batch = make_batch(batch_rows, cfg, tokenizer.pad_token_id, device)
            loss, label_loss, rationale_loss = batch_loss(model, batch, cfg.alpha, bf16, device)
            loss.backward()
        replicas.average_gradients(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seen += len(batch_rows) * replicas.world
        if batch_rows:
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {step + 1}")
            # losses of this rank's share (rank 0 writes them): the whole batch when single-process
            pending_metrics += [(step + 1, "train_loss", loss.item()), (step + 1, "label_loss", label_loss)]
            if rationale_loss is not None:
                pending_metrics.append((step + 1, "rationale_loss", rationale_loss))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            pending_metrics += [(step + 1, "lr", lr_at(step, cfg)), (step + 1, "examples_per_s", seen / clock.seconds())]
            if replicas.main:
                report.metrics(pending_metrics)
            pending_metrics = []
            reason = replicas.agree(should_stop() if replicas.main else None)
            if reason:
                status = reason if reason in ("cancelled", "paused") else "cancelled"
                step += 1
                if replicas.main:
                    save_checkpoint(ckpt_path, run_state(step, model, optimizer, rng, batches, seen, clock.seconds(),
                                                         resolved))
                break
        if replicas.main and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.max_steps:
            save_checkpoint(ckpt_path, run_state(step + 1, model, optimizer, rng, batches, seen, clock.seconds(),
                                                 resolved))
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < cfg.max_steps and replicas.main and val_rows:
            with clock.paused():  # evaluate runs on rank 0 only
                _, metrics = evaluate(model, tokenizer, val_rows[:cfg.step_eval_limit], kind, data.label_set, cfg,
                                      prefix="val")
                report.metrics([(step + 1, k, v) for k, v in metrics.items()])
                best.consider(step + 1, metrics, model)
    else:
        step = cfg.max_steps

    # ---- final evaluation and save ------------------------------------------------
    in_sync = replicas.in_sync(model)
    replicas.close()
    if status == "paused":  # resumes later from the checkpoint; nothing to evaluate yet
        return {"status": status, "steps": step, "out_dir": str(out_dir)}
    if not replicas.main:
        return {"status": status, "steps": step, "out_dir": str(out_dir), "rank": replicas.rank,
                "replicas_in_sync": in_sync}
    if val_rows:  # the last step against the best one on validation; the test is scored once, on the choice
        _, metrics = evaluate(model, tokenizer, val_rows[:cfg.step_eval_limit], kind, data.label_set, cfg, prefix="val")
        report.metrics([(step, k, v) for k, v in metrics.items()])
        best.consider(step, metrics, model)
        best.restore(model)
    resolved["chosen_step"] = best.step if val_rows else step
    predictions, final = evaluate(model, tokenizer, test_rows[:cfg.eval_limit], kind, data.label_set, cfg,
                                  rationale_rows=cfg.rationale_samples if cfg.objective == "multitask" else 0)
    save_evaluation(out_dir, predictions, report)
    final["chosen_step"] = resolved["chosen_step"]
    report.metrics([(step, k, v) for k, v in final.items()])
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    for folder in (out_dir / "model", out_dir):  # with the chosen step
        (folder / "train_config.json").write_text(json.dumps(resolved, indent=2))
    save_calibration(out_dir, calibrate(model, tokenizer, kind, data.label_set, cfg, val_rows[:cfg.eval_limit],
                                        test_rows[:cfg.eval_limit], predictions))
    return {"status": status, "steps": step, "out_dir": str(out_dir), "final_loss": loss.item() if step > first_step else None,
            "resumed_from": first_step or None, "processes": replicas.world, "replicas_in_sync": in_sync, **final}


# ---- running on a project's rows ------------------------------------------------------
class StoreReport(Report):
    """Reports into DuckDB: run_metrics and student_predictions of one job."""

    def __init__(self, store, job_id: str, project: str):
        super().__init__()
        self.store, self.job_id, self.project = store, job_id, project

    def metrics(self, rows):
        self.store.add_metrics(self.job_id, rows)

    def save_predictions(self, rows):
        self.store.save_predictions(self.job_id, self.project, rows)

    def rewind(self, after_step):
        self.store.truncate_metrics(self.job_id, after_step)


def training_data(store, project_name: str) -> TrainingData:
    project = store.get_project(project_name)
    return TrainingData(project.task, project.label_set, store.items_by_order(project_name, None), project.id_field)


def train_project(store, cfg: TrainConfig, job_id: str | None = None, should_stop=lambda: None) -> dict:
    """train() on a project's rows, reporting into the store under `job_id`."""
    job_key = job_id or "adhoc"
    if not cfg.out_dir:
        cfg.out_dir = f"workspace/runs/{job_key}"
    return train(cfg, training_data(store, cfg.project), StoreReport(store, job_key, cfg.project), should_stop)
