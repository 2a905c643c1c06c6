import json

import pytest

from core.review import rules as review
from core.student.predict import load_student_model
from core.label.teacher import label_project
from core.train.data import split_rows, training_examples
from core.train.trainer import Report, TrainConfig, TrainingData, train, train_project


@pytest.fixture
def labeled(tickets, fake):
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    return tickets


def cfg(**kw):
    base = dict(project="tickets", student="tiny-random", max_steps=6, batch_size=4, log_every=2, test_fraction=0.34)
    return TrainConfig(**{**base, **kw})


def test_tiny_multitask_run_streams_metrics_and_saves_a_loadable_model(labeled, tmp_path):
    result = train_project(labeled, cfg(out_dir=str(tmp_path / "run")), job_id="run-1")
    assert result["status"] == "completed" and result["steps"] == 6
    names = {m["name"] for m in labeled.metrics(["run-1"])}
    assert {"train_loss", "label_loss", "rationale_loss", "lr", "examples_per_s", "test_accuracy"} <= names
    steps = sorted({m["step"] for m in labeled.metrics(["run-1"]) if m["name"] == "train_loss"})
    assert steps == [1, 2, 3, 4, 5, 6]
    saved = json.loads((tmp_path / "run" / "model" / "train_config.json").read_text())
    assert saved["objective"] == "multitask" and saved["rows_with_rationale"] == saved["train_rows"]
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and all(p["gold"] is not None for p in preds)
    out = load_student_model(tmp_path / "run" / "model").predict(["my card was charged twice"], rationale=True)
    assert set(out[0]) == {"input", "label", "confidence", "probabilities", "rationale"}


def test_evaluation_during_training_is_on_by_default_and_bounded():
    default = TrainConfig(project="p")
    assert default.eval_every is None and default.eval_interval() == 24  # 4 evaluations + the final one
    assert TrainConfig(project="p", max_steps=1000).eval_interval() == 200
    assert TrainConfig(project="p", max_steps=6).eval_interval() == 10  # short runs: the final one only
    assert TrainConfig(project="p", eval_every=0).eval_interval() == 0
    assert default.step_eval_limit <= 200
    with pytest.raises(Exception, match="eval_every"):
        TrainConfig(project="p", eval_every=-1).validate()


def test_multitask_loss_combines_label_and_rationale_with_alpha(labeled, tmp_path):
    # One step, same seed: the logged total must equal alpha*label + (1-alpha)*rationale.
    train_project(labeled, cfg(max_steps=1, log_every=1, alpha=0.3, out_dir=str(tmp_path / "a")), job_id="a")
    m = {x["name"]: x["value"] for x in labeled.metrics(["a"]) if x["step"] == 1}
    assert m["train_loss"] == pytest.approx(0.3 * m["label_loss"] + 0.7 * m["rationale_loss"], rel=1e-5)


def test_rationale_fraction_zero_masks_rationale_loss_to_label_loss(labeled, tmp_path):
    train_project(labeled, cfg(max_steps=2, log_every=1, rationale_fraction=0.0, out_dir=str(tmp_path / "f0")), job_id="f0")
    train_project(labeled, cfg(max_steps=2, log_every=1, objective="standard", out_dir=str(tmp_path / "std")), job_id="std")
    f0 = {(x["step"], x["name"]): x["value"] for x in labeled.metrics(["f0"])}
    std = {(x["step"], x["name"]): x["value"] for x in labeled.metrics(["std"])}
    assert not any(name == "rationale_loss" for _, name in f0)
    for step in (1, 2):  # same data, same seed: identical to label-only training
        assert f0[(step, "train_loss")] == pytest.approx(f0[(step, "label_loss")])
        assert f0[(step, "train_loss")] == pytest.approx(std[(step, "train_loss")], rel=1e-5)


def test_split_uses_test_split_or_seeded_holdout_and_label_sources():
    items = [{"row_id": str(i), "split": "train", "inputs": {"t": f"x{i}"}, "choices": None, "gold": "g",
              "teacher_label": "t", "label": "r", "rationale": "why"} for i in range(10)]
    test_rows = split_rows(items, 0.2, seed=1).test
    assert len(test_rows) == 2 and split_rows(items, 0.2, seed=1).test == test_rows
    items[0]["split"] = "test"
    assert [r["row_id"] for r in split_rows(items, 0.2, 1).test] == ["0"]
    for source, expected in [("gold", "g"), ("teacher", "t"), ("reviewed", "r")]:
        ex = training_examples(items, TrainConfig(project="p", label_source=source))
        assert {e["label"] for e in ex} == {expected}
    half = training_examples(items * 20, TrainConfig(project="p", rationale_fraction=0.5))
    share = sum(1 for e in half if e["rationale"]) / len(half)
    assert 0.35 < share < 0.65


def test_bad_config_is_rejected():
    from core.kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="alpha"):
        TrainConfig(project="p", alpha=1.5).validate()
    with pytest.raises(ConfigError, match="label source"):
        TrainConfig(project="p", label_source="crowd").validate()


def test_empty_target_option_trains_rowswithout_rationale_on_an_empty_rationale(labeled, tmp_path):
    train_project(labeled, cfg(max_steps=1, log_every=1, rationale_fraction=0.0, rationale_missing="empty",
                       out_dir=str(tmp_path / "e")), job_id="e")
    m = {x["name"]: x["value"] for x in labeled.metrics(["e"]) if x["step"] == 1}
    assert "rationale_loss" in m and m["train_loss"] != pytest.approx(m["label_loss"])
    saved = json.loads((tmp_path / "e" / "train_config.json").read_text())
    assert saved["rationale_loss"].startswith("empty target")


def test_rejected_rationales_are_never_trained_on(labeled):
    review.save_review(labeled, "tickets", "1", "ana", None, None, verdict="reject_rationale")
    rows = labeled.items_by_order("tickets", None)
    examples = {e["text"]: e for e in training_examples(rows, cfg())}
    rejected = labeled.get_item("tickets", "1")
    assert examples[rejected["inputs"]["text"]]["rationale"] is None
    assert sum(e["rationale"] is not None for e in examples.values()) == 5
    approved_only = training_examples(rows, cfg(approved_rationales_only=True))
    assert all(e["rationale"] is None for e in approved_only)


def test_evaluations_during_training_and_the_final_one_with_its_confusion_matrix(labeled, tmp_path):
    train_project(labeled, cfg(eval_every=2, step_eval_limit=1, out_dir=str(tmp_path / "c")), job_id="c")
    points = sorted(m["step"] for m in labeled.metrics(["c"]) if m["name"] == "val_accuracy")
    assert points == [2, 4, 6]  # every 2 steps on the validation row, and the last step
    from core.results.runs import evaluation_steps

    assert evaluation_steps(6, 2) == points  # what the Train page promises is what the run does
    assert [m["step"] for m in labeled.metrics(["c"]) if m["name"] == "test_accuracy"] == [6]  # the test: once
    chosen = json.loads((tmp_path / "c" / "train_config.json").read_text())["chosen_step"]
    assert chosen in (2, 4, 6)
    assert json.loads((tmp_path / "c" / "train_config.json").read_text())["eval_every"] == 2
    confusion = json.loads((tmp_path / "c" / "confusion.json").read_text())
    total = sum(sum(row.values()) for row in confusion["counts"].values())
    assert total == 2 and set(confusion["per_class_accuracy"]) <= set(confusion["labels"])  # final: all rows


def test_resuming_from_a_checkpoint_reproduces_the_next_steps(labeled, tmp_path):
    # Uninterrupted: 5 steps. Interrupted: stopped after step 2 (checkpoint), then resumed.
    train_project(labeled, cfg(max_steps=5, log_every=1, batch_size=2, out_dir=str(tmp_path / "whole")), job_id="whole")
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return "paused" if calls["n"] == 2 else None

    first = train_project(labeled, cfg(max_steps=5, log_every=1, batch_size=2, out_dir=str(tmp_path / "split")),
                  job_id="split", should_stop=stop_after_two)
    assert first["status"] == "paused" and first["steps"] == 2
    assert (tmp_path / "split" / "checkpoint.pt").exists() and not (tmp_path / "split" / "model").exists()
    second = train_project(labeled, cfg(max_steps=5, log_every=1, batch_size=2, out_dir=str(tmp_path / "split")),
                   job_id="split")
    assert second["status"] == "completed" and second["resumed_from"] == 2
    whole = {(m["step"], m["name"]): m["value"] for m in labeled.metrics(["whole"])}
    split = {(m["step"], m["name"]): m["value"] for m in labeled.metrics(["split"])}
    for step in (3, 4, 5):  # same batches, same dropout, same optimizer state
        assert split[(step, "train_loss")] == pytest.approx(whole[(step, "train_loss")], rel=1e-5)
    assert sorted(s for s, n in split if n == "train_loss") == [1, 2, 3, 4, 5]


def test_length_grouped_batches_cover_every_example_once_per_epoch():
    import random

    from core.train.data import epoch_batches

    lengths = [random.Random(i).randint(5, 120) for i in range(203)]
    batches = epoch_batches(lengths, 8, random.Random(0), group_by_length=True)
    assert sorted(i for b in batches for i in b) == list(range(203))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    plain = epoch_batches(lengths, 8, random.Random(0), group_by_length=False)
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / 3


def test_final_evaluation_stores_predictions_and_student_rationales(labeled, tmp_path):
    train_project(labeled, cfg(out_dir=str(tmp_path / "p")), job_id="p")
    rows = labeled.predictions("p")
    assert len(rows) == 2 and all(r["student_rationale"] is not None for r in rows)
    assert all(r["correct"] is not None and r["agrees_teacher"] is not None for r in rows)
    disagree = labeled.review_count("tickets", ["teacher ≠ student"])
    assert disagree == sum(1 for r in rows if not r["agrees_teacher"])


def test_train_needs_no_store_and_reports_through_a_callback(labeled, tmp_path):
    project = labeled.get_project("tickets")
    data = TrainingData(project.task, project.label_set, labeled.items_by_order("tickets", None))
    report = Report()  # in memory: a notebook or a bench script needs no database
    result = train(cfg(out_dir=str(tmp_path / "free")), data, report)
    assert result["status"] == "completed" and result["steps"] == 6
    assert sorted({step for step, name, _ in report.rows if name == "train_loss"}) == [1, 2, 3, 4, 5, 6]
    assert "test_accuracy" in {name for _, name, _ in report.rows}
    assert report.predictions and {p["row_id"] for p in report.predictions} <= {"1", "2", "3", "4", "5", "6"}
    assert labeled.metrics(["adhoc"]) == []  # nothing was written to the store


def _tiny_seq2seq_model(name):
    """The tiny random bert2bert (BERT's head has a transform before its vocabulary projection),
    or a tiny random T5 (tied embeddings: hidden state scaled by d_model**-0.5) or BART
    (final_logits_bias added after the head), built from configs: no download."""
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    from core.train.base_models import load_student

    if name == "bert2bert":
        return load_student("tiny-random", 0)[0]
    if name == "t5":
        return T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                                   num_heads=2, decoder_start_token_id=0, pad_token_id=0))
    return BartForConditionalGeneration(BartConfig(
        vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64))


@pytest.mark.parametrize("name", ["bert2bert", "t5", "bart"])
def test_sparse_head_loss_and_gradients_equal_the_dense_logits_ones(name):
    import torch

    from core.train.trainer import lm_head_at, task_loss

    model = _tiny_seq2seq_model(name).train()
    gen = torch.Generator().manual_seed(1)
    # both views of 3 rows stacked (as in training), inputs padded; label targets short,
    # rationale targets of three lengths, padded with -100
    input_ids = torch.randint(5, 60, (6, 9), generator=gen)
    mask = torch.ones_like(input_ids)
    mask[1, 6:] = mask[2, 4:] = mask[4, 7:] = mask[5, 3:] = 0
    labels = torch.randint(5, 60, (3, 2), generator=gen)
    labels[2, 1:] = -100
    rationales = torch.randint(5, 60, (3, 7), generator=gen)
    rationales[0, 4:] = rationales[2, 1:] = -100

    def run(sparse):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same dropout masks in both runs
        hidden = model.get_encoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
        losses = [task_loss(model, hidden[:3], mask[:3], labels, sparse_head=sparse),
                  task_loss(model, hidden[3:], mask[3:], rationales, sparse_head=sparse)]
        (0.3 * losses[0] + 0.7 * losses[1]).backward()
        return [x.item() for x in losses], {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    sparse_losses, sparse_grads = run(True)
    dense_losses, dense_grads = run(False)
    assert sparse_losses == pytest.approx(dense_losses, abs=1e-5)
    assert sparse_grads.keys() == dense_grads.keys() and len(sparse_grads) > 10
    for key, grad in dense_grads.items():
        assert torch.allclose(sparse_grads[key], grad, atol=1e-6, rtol=1e-4), key
    # and the sparse path did skip the padding: one row of logits per real target token
    keep = rationales != -100
    with torch.no_grad(), lm_head_at(model, keep):
        logits = model(input_ids=input_ids[3:], attention_mask=mask[3:], use_cache=False,
                       decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=rationales)).logits
    assert logits.shape[0] == int(keep.sum()) == 4 + 7 + 1 and logits.dim() == 2
    assert model.get_output_embeddings()._forward_pre_hooks == {}  # the hook is gone after the block


def test_no_weight_decay_on_biases_and_layernorm_and_warmup_starts_above_zero():
    from core.train.base_models import load_student
    from core.train.trainer import lr_at, param_groups

    model = load_student("tiny-random", 0)[0]
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert any("word_embeddings" in names[id(p)] for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    c = TrainConfig(project="p", learning_rate=1e-3, warmup_steps=10, max_steps=30)
    assert lr_at(0, c) == pytest.approx(1e-4) and lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(20, c) == pytest.approx(5e-4) and lr_at(30, c) == 0.0


def test_batches_are_random_by_default_so_each_mixes_labels():
    # Length-sorted batches on data whose length predicts the label hold one label each.
    import random

    from core.train.data import epoch_batches

    lengths = [10 + (i % 4) * 20 + random.Random(i).randint(0, 3) for i in range(64)]  # label i % 4 sets the length
    assert TrainConfig(project="p").group_by_length is False
    mixed = epoch_batches(lengths, 8, random.Random(0), TrainConfig(project="p").group_by_length)
    sorted_ = epoch_batches(lengths, 8, random.Random(0), group_by_length=True)
    assert min(len({i % 4 for i in b}) for b in mixed) > 1
    assert max(len({i % 4 for i in b}) for b in sorted_) == 1


def test_train_config_names_the_task_label_set_and_input_fields(tmp_path):
    # Batch prediction reads these to know which columns of a file to read.
    items = [{"row_id": str(i), "split": "test" if i < 2 else "train",
              "inputs": {"subject": f"order {i}", "body": f"where is parcel {i}?"}, "choices": None,
              "gold": "shipping" if i % 2 else "billing", "teacher_label": "shipping", "label": "shipping",
              "rationale": "It asks about a parcel.", "verdict": None} for i in range(6)]
    data = TrainingData("classification", ["billing", "shipping"], items)
    train(cfg(max_steps=1, out_dir=str(tmp_path / "r")), data)
    for path in (tmp_path / "r" / "train_config.json", tmp_path / "r" / "model" / "train_config.json"):
        saved = json.loads(path.read_text())
        assert saved["task"] == "classification" and saved["label_set"] == ["billing", "shipping"]
        assert saved["input_fields"] == ["subject", "body"]  # the rows' order, not sorted


def test_the_split_is_three_way_stratified_fixed_and_uses_the_datas_own_splits():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    items = [{"row_id": f"r{i}", "split": "train", "inputs": {"t": f"x{i}"}, "choices": None, "gold": g}
             for i, g in enumerate(labels)]
    split = split_rows(items, 0.2, seed=3, val_fraction=0.1)
    assert (len(split.train), len(split.validation), len(split.test)) == (70, 10, 20)
    ids = [{it["row_id"] for it in part} for part in (split.train, split.validation, split.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # disjoint
    count = lambda rows, g: sum(it["gold"] == g for it in rows)  # noqa: E731
    assert [count(split.test, g) for g in "abc"] == [12, 6, 2]  # each class in proportion
    assert [count(split.validation, g) for g in "abc"] == [6, 3, 1]
    again = split_rows(list(reversed(items)), 0.2, seed=3, val_fraction=0.1)  # fixed: not the rows' order
    assert {it["row_id"] for it in again.test} == ids[2] and {it["row_id"] for it in again.validation} == ids[1]
    assert "stratified" in split.how and "split seed 3" in split.how
    for i, it in enumerate(items[:5]):
        it["split"] = "validation" if i < 3 else "test"
    own = split_rows(items, 0.2, seed=3, val_fraction=0.1)
    assert [it["row_id"] for it in own.validation] == ["r0", "r1", "r2"]
    assert [it["row_id"] for it in own.test] == ["r3", "r4"] and len(own.train) == 95
    assert split_rows(items[5:], 0.2, seed=3, val_fraction=0.0).validation == []


def test_macro_f1_and_per_class_precision_and_recall():
    from core.train.evaluate import class_scores, confusion_matrix

    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("b", "a"), ("c", "a")]  # (gold, prediction)
    preds = [{"gold": g, "prediction": p, "correct": g == p} for g, p in pairs]
    scores = class_scores(preds)
    a, b, c = (scores["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    f1_a = 2 * (0.5 * 2 / 3) / (0.5 + 2 / 3)
    assert scores["macro_f1"] == pytest.approx((f1_a + 0.5 + 0.0) / 3)
    assert confusion_matrix(preds)["macro_f1"] == pytest.approx(scores["macro_f1"])


def test_the_checkpoint_kept_is_the_one_best_on_validation(tmp_path):
    import torch

    from core.train.checkpoint import Best

    model = torch.nn.Linear(2, 1)
    best = Best(tmp_path)
    for step, score in ((10, 0.5), (20, 0.8), (30, 0.6)):
        with torch.no_grad():
            model.weight.fill_(step)
        best.consider(step, {"val_accuracy": score}, model)
    assert (best.step, best.score) == (20, 0.8)
    assert Best(tmp_path).step == 20  # a resumed run still knows it
    best.restore(model)
    assert float(model.weight.detach()[0, 0]) == 20.0  # the weights of step 20, not the last step's


def test_the_split_counts_without_reading_the_rows_agree_with_the_split():
    from core.train.data import split_counts

    for splits in (["train"] * 97, ["train"] * 90 + ["test"] * 7, ["train"] * 80 + ["dev"] * 9 + ["test"] * 8, ["x"] * 2):
        items = [{"row_id": str(i), "split": s, "inputs": {}, "choices": None, "gold": "ab"[i % 2]}
                 for i, s in enumerate(splits)]
        split = split_rows(items, 0.2, 0, 0.1)
        by_split = {s: splits.count(s) for s in set(splits)}
        assert split_counts(by_split, 0.2, 0.1, 0) == (len(split.train), len(split.validation), len(split.test),
                                                        split.how)


def test_a_run_records_what_it_trained_on_and_results_say_when_that_changed(labeled, tmp_path):
    from core import jobs
    from core.results import runs as results
    from core.train.data import read_snapshot

    job_id = jobs.create_job(labeled, "tickets", "train", {})
    out = tmp_path / "snap"
    train_project(labeled, cfg(out_dir=str(out)), job_id=job_id)
    labeled.transition_job(job_id, "completed", ("queued",), message=json.dumps({"out_dir": str(out)}))
    saved = json.loads((out / "train_config.json").read_text())
    trained = read_snapshot(out)
    assert saved["data_snapshot"]["rows"] == len(trained) == saved["train_rows"]
    assert len(saved["data_snapshot"]["sha256"]) == 64
    row = {"run": job_id, "status": "completed", "test_accuracy": None}
    assert not any("changed since" in w for w in results.run_warnings(labeled, row))
    first = next(iter(trained))
    review.save_review(labeled, "tickets", first, "ana", "shipping", None)  # a correction after training
    warned = [w for w in results.run_warnings(labeled, row) if "changed since" in w]
    assert warned and warned[0].startswith(f"1 of the {len(trained)} rows run {job_id} trained on")
