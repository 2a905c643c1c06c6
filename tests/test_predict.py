"""Batch prediction from files (core.student.batch) and the int8 export (core.results.model_export)."""

import json
import pickle
import shutil
from dataclasses import asdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import jobs
from core.kernel import paths
from core.kernel.errors import AppError
from core.results.model_export import compare, export_model, folder_bytes
from core.student.batch import predict_file
from core.student.int8 import INT8_MANIFEST, INT8_WEIGHTS
from core.student.predict import Student, _as_choices, load_student_model
from core.kernel.tasks import student_input
from core.label.teacher import label_project
from core.train.trainer import TrainConfig

TEXTS = ["My card was charged twice", "The app crashes when I open settings", "Where is my parcel?",
         "I was billed after cancelling", "Login page shows error 500", "The courier lost my package",
         'A quoted, "tricky" ticket\nover two lines', "Refund please"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, fake_module):
    """A tiny student trained on the tickets (label-only, enough steps to give real labels),
    exported as it is and as int8."""
    import torch

    from core.db import Store
    from tests.helpers import many_tickets

    base = tmp_path_factory.mktemp("predict")
    store = Store(base / "p.duckdb")
    many_tickets(store, 30)
    label_project(store, "tickets", api_key="k", base_url=fake_module.url)
    cfg = TrainConfig(project="tickets", student="tiny-random", objective="standard", max_steps=60, batch_size=8,
                      learning_rate=1e-2, warmup_steps=2, log_every=20, label_source="teacher", eval_every=0)
    job_id = store.create_job("tickets", "train", asdict(cfg))
    store.update_job(job_id, out_dir=str(paths.job_dir(store, job_id)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a busy machine: one thread trains it several times faster
    try:
        jobs.run_job(store, job_id)
    finally:
        torch.set_num_threads(threads)
    model = paths.run_dir(store.get_job(job_id)) / "model"
    # training names the task, label set and input fields in the model folder (older runs do not: see below)
    saved = json.loads((model / "train_config.json").read_text())
    assert (saved["task"], saved["label_set"], saved["input_fields"]) == (
        "classification", store.get_project("tickets").label_set, ["text"])
    int8 = export_model(store, job_id, str(base / "int8"), quantize="int8")
    return {"store": store, "job": job_id, "model": model, "int8": base / "int8", "export": int8}


@pytest.fixture(scope="module")
def student(run):
    return load_student_model(run["model"])


def write_csv(path, rows, header=("id", "text")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def chunked(student, texts, n, **kw):
    """Direct predictions, in the chunks a file prediction makes (the same batches)."""
    return [p for i in range(0, len(texts), n) for p in student.predict(texts[i:i + n], **kw)]


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".partial")]


def test_task_prefixes_are_the_ones_training_uses():
    from core.student import predict
    from core.train import data, generate

    assert (predict.LABEL_PREFIX, predict.RATIONALE_PREFIX) == (generate.LABEL_PREFIX, generate.RATIONALE_PREFIX)
    assert (data.LABEL_PREFIX, data.RATIONALE_PREFIX) == ("[label] ", "[rationale] ")


def test_input_text_is_built_as_training_built_it(student):
    mc = Student(student.model, student.tokenizer, student.path, "fp32",
                 {"task": "multiple-choice", "input_fields": ["question", "context"]})
    row = {"question": "Where do cows live?", "context": "farm animals", "choices": '["barn", "sea", "sky"]'}
    expected = student_input({"question": "Where do cows live?", "context": "farm animals"}, ["barn", "sea", "sky"])
    assert mc.input_text(row) == expected == ("question: Where do cows live?\ncontext: farm animals\n"
                                              "Answer Choices: (a) barn (b) sea (c) sky")
    assert mc.input_text({**row, "choices": ["barn", "sea", "sky"]}) == expected  # a list, as Parquet holds it
    with pytest.raises(AppError, match="choices"):
        mc.input_text({"question": "q", "context": "c"})
    # a generated label is mapped onto the row's choices (given as a list or as JSON), as evaluation maps it
    assert mc._label("(b) sea", _as_choices('["barn", "sea", "sky"]')) == "sea" == mc._label("b", ["barn", "sea"])
    assert mc._label(" whale ", ["barn", "sea"]) == "whale"  # maps to nothing: kept as written
    assert student._label(" Billing", None) == "billing"  # classification: onto the label set
    assert student.input_text({"text": "my card", "other": "ignored"}) == "my card"
    with pytest.raises(AppError, match="empty"):
        student.input_text({"text": "  "})


def test_csv_file_streams_in_chunks_keeps_ids_and_matches_direct_prediction(student, tmp_path):
    src = write_csv(tmp_path / "rows.csv", [[f"t{i}", t] for i, t in enumerate(TEXTS)])
    calls = []
    result = predict_file(student, src, tmp_path / "out.csv", chunk_rows=3,
                          on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 8), (6, 8), (8, 8)]  # after each chunk, with the file's row count
    assert result["rows"] == 8 and result["out"] == str(tmp_path / "out.csv")
    # rows_per_s comes from the unrounded time; seconds is rounded to the millisecond
    seconds = result["seconds"]
    assert seconds > 0 and 8 / (seconds + 0.0005) - 0.01 <= result["rows_per_s"] <= 8 / max(seconds - 0.0005, 1e-9) + 0.01
    rows = read_csv(tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "label", "confidence"] and [r["id"] for r in rows] == [f"t{i}" for i in range(8)]
    direct = chunked(student, TEXTS, 3)
    assert [r["label"] for r in rows] == [p["label"] for p in direct]
    assert [float(r["confidence"]) for r in rows] == pytest.approx([p["confidence"] for p in direct])
    assert all(p["label"] in student.label_set for p in direct)  # a trained student writes real labels
    assert leftovers(tmp_path) == []


def test_jsonl_file_with_rationale_to_parquet(student, tmp_path):
    src = tmp_path / "rows.jsonl"
    lines = [json.dumps({"row_id": i if i % 2 else f"r{i}", "text": t, "extra": [1, 2]}) for i, t in enumerate(TEXTS)]
    src.write_text("\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n")  # a blank line is skipped
    result = predict_file(student, src, tmp_path / "out.parquet", rationale=True, chunk_rows=5)
    table = pq.read_table(tmp_path / "out.parquet")
    assert result["rows"] == 8 and table.column_names == ["row_id", "label", "confidence", "rationale"]
    assert table.column("row_id").to_pylist() == [str(i) if i % 2 else f"r{i}" for i in range(8)]
    assert all(isinstance(r, str) for r in table.column("rationale").to_pylist())
    assert table.column("label").to_pylist() == [p["label"] for p in chunked(student, TEXTS, 5)]


def test_parquet_file_to_jsonl_without_an_id_column(student, tmp_path):
    pq.write_table(pa.table({"text": TEXTS[:5], "n": list(range(5))}), tmp_path / "rows.parquet", row_group_size=2)
    result = predict_file(student, tmp_path / "rows.parquet", tmp_path / "out.jsonl", chunk_rows=2)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert result["rows"] == 5 and [set(o) for o in out] == [{"label", "confidence"}] * 5


def test_missing_input_column_is_refused_by_name_and_nothing_is_written(student, tmp_path):
    src = write_csv(tmp_path / "rows.csv", [["1", "hello"]], header=("id", "body"))
    with pytest.raises(AppError, match="no column 'text'"):
        predict_file(student, src, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and leftovers(tmp_path) == []
    # the model folder names no input fields (an older run) and none are given: refused, with the way out
    older = Student(student.model, student.tokenizer, student.path, "fp32", {})
    with pytest.raises(AppError, match="input-columns"):
        predict_file(older, src, tmp_path / "out.csv")
    assert predict_file(older, src, tmp_path / "out.csv", input_columns=["body"])["rows"] == 1


def test_existing_output_is_not_overwritten_without_force(student, tmp_path):
    src = write_csv(tmp_path / "rows.csv", [["1", "hello"], ["2", "my card"]])
    (tmp_path / "out.csv").write_text("keep me")
    with pytest.raises(AppError, match="already exists"):
        predict_file(student, src, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "keep me"
    with pytest.raises(AppError, match="being read"):
        predict_file(student, src, src, force=True)
    with pytest.raises(AppError, match="must end in"):
        predict_file(student, src, tmp_path / "out.xlsx")
    assert predict_file(student, src, tmp_path / "out.csv", force=True)["rows"] == 2
    assert len(read_csv(tmp_path / "out.csv")) == 2


def test_a_bad_row_midway_leaves_no_partial_output(student, tmp_path):
    src = write_csv(tmp_path / "rows.csv", [["1", "hello"], ["2", "my card"], ["3", ""], ["4", "late"]])
    calls = []
    with pytest.raises(AppError, match="row 3.*empty"):
        predict_file(student, src, tmp_path / "out.csv", chunk_rows=2, on_progress=lambda d, t: calls.append(d))
    assert calls == [2]  # the first chunk was predicted and written to the temporary file, then removed
    assert not (tmp_path / "out.csv").exists() and leftovers(tmp_path) == []


def test_int8_export_loads_without_unpickling_and_agrees_with_fp32(run, student, monkeypatch):
    folder = run["int8"]
    files = {p.name for p in folder.iterdir()}
    assert {INT8_WEIGHTS, INT8_MANIFEST, "config.json", "README.md", "train_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) or name == "model.safetensors" for name in files)

    def refuse(*args, **kwargs):
        raise AssertionError("loading an int8 export must not unpickle anything")

    import torch

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    int8 = load_student_model(folder)
    monkeypatch.undo()
    assert int8.format == "int8" and student.format == "fp32"
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    modules = list(int8.model.modules())
    assert not any(type(m) in (torch.nn.Linear, torch.nn.Embedding) and m.weight.numel() >= 30522 * 32 or
                   type(m) is torch.nn.Linear for m in modules)  # every Linear and the vocabularies are int8
    assert sum(isinstance(m, DynamicQuantizedLinear) for m in modules) >= 10
    assert sum(type(m).__name__ == "Int8Embedding" for m in modules) == 2  # encoder and decoder vocabularies
    assert folder_bytes(folder) / folder_bytes(run["model"]) <= 0.6

    texts = [f"Ticket {i}: {w}" for i in range(100, 106) for w in
             ("charged twice", "app crash", "parcel lost", "billed after cancel", "error 500", "courier late")]
    measured = compare(student, int8, texts)
    assert measured["rows"] == 36 and measured["agreement"] >= 0.9
    with torch.no_grad():
        # every int8 weight is its fp32 weight to within half a step of its row's scale
        emb, emb8 = student.model.encoder.get_input_embeddings(), int8.model.encoder.get_input_embeddings()
        ids = torch.arange(emb.num_embeddings)
        error = (emb8(ids) - emb(ids)).abs().amax(dim=1)
        assert (error <= emb8.scale / 2 + 1e-6).all() and error.max() > 0
        head, head8 = student.model.get_output_embeddings(), int8.model.get_output_embeddings()
        weight8 = head8.weight().dequantize()
        assert ((weight8 - head.weight).abs().amax(dim=1) <= head8.weight().q_per_channel_scales().float() / 2 + 1e-6).all()
        # the decoder's embedding is tied to its output layer: both read the same int8 rows
        assert torch.allclose(int8.model.decoder.get_input_embeddings()(ids), weight8, atol=1e-6)
        # and the logits stay close (0.003 here; wrong scales anywhere, e.g. word embeddings off by 30%, give 0.018)
        enc = student.tokenizer(["[label] " + t for t in texts[:8]], return_tensors="pt", padding=True)
        decoder_ids = torch.full((8, 3), student.model.generation_config.decoder_start_token_id)
        a = student.model(**enc, decoder_input_ids=decoder_ids).logits
        b = int8.model(**enc, decoder_input_ids=decoder_ids).logits
    assert ((a - b).norm() / a.norm()).item() < 0.01


def test_export_model_int8_card_states_size_speed_and_agreement(run, tmp_path):
    result = run["export"]
    card = (run["int8"] / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "Teacher provenance" in card
    assert "## Compact export (int8)" in card and "size on disk" in card
    held_out = len((paths.run_dir(run["store"].get_job(run["job"])) / "predictions.jsonl").read_text().splitlines())
    assert result["rows"] == held_out > 0 and 0 <= result["agreement"] <= 1
    assert f"{held_out} held-out rows" in card and f"| {result['rows_per_s_int8']} |" in card
    assert result["size_ratio"] == pytest.approx(result["int8_bytes"] / result["fp32_bytes"], abs=1e-4)
    # the savings the card states price the student it describes, by the speed it measured
    assert "CPU throughput not measured" not in card and "rows/s of this int8 export, measured when it was exported" in card
    with pytest.raises(AppError, match="not empty"):
        export_model(run["store"], run["job"], str(run["int8"]), quantize="int8")
    with pytest.raises(AppError, match="int8"):
        export_model(run["store"], run["job"], str(tmp_path / "x"), quantize="int4")
    assert not (tmp_path / "x").exists() and leftovers(run["int8"].parent) == []
    # an export that is not what it claims is refused with a message, not loaded
    broken = tmp_path / "broken"
    shutil.copytree(run["int8"], broken)
    (broken / INT8_MANIFEST).write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(AppError, match="not an int8 export"):
        load_student_model(broken)


def test_cli_predicts_a_file_with_the_int8_export(run, tmp_path):
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    src = write_csv(tmp_path / "rows.csv", [[str(i), t] for i, t in enumerate(TEXTS)])
    out = tmp_path / "preds.jsonl"
    proc = subprocess.run([sys.executable, "-m", "core", "predict", "--db", str(tmp_path / "cli.duckdb"),
                           "--model", str(run["int8"]), "--file", str(src), "--out", str(out), "--chunk-rows", "3",
                           "--rationale", "--json"], check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 8 and payload["out"] == str(out) and payload["model_format"] == "int8"
    assert payload["rows_per_s"] > 0 and payload["seconds"] > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(8)] and all(set(r) == {"id", "label", "confidence", "rationale"}
                                                                         for r in rows)
    expected = chunked(load_student_model(run["int8"]), TEXTS, 3)
    assert [r["label"] for r in rows] == [p["label"] for p in expected]


def test_the_files_own_id_column_is_kept_under_its_name(student, tmp_path):
    src = write_csv(tmp_path / "tickets.csv", [[f"T-{i}", t] for i, t in enumerate(TEXTS)], header=("ticket_no", "text"))
    result = predict_file(student, src, tmp_path / "out.csv", id_column="ticket_no")
    rows = read_csv(tmp_path / "out.csv")
    assert result["columns"] == ["ticket_no", "label", "confidence"] and [r["ticket_no"] for r in rows] == [f"T-{i}" for i in range(8)]
    with pytest.raises(AppError, match="no column 'case'"):
        predict_file(student, src, tmp_path / "out2.csv", id_column="case")
    assert not (tmp_path / "out2.csv").exists()


def test_the_projects_id_column_is_kept_by_default_and_the_inputs_on_request(student, tmp_path):
    """A student knows the id column its project was imported with: a file that has it gets it
    back without naming it; --keep-inputs writes the input columns too, so the file joins back."""
    src = write_csv(tmp_path / "cases.csv", [[f"C-{i}", t, "x"] for i, t in enumerate(TEXTS)],
                    header=("case", "text", "other"))
    student.id_field = "case"  # as a run of a project imported with --id-field case saves it
    try:
        result = predict_file(student, src, tmp_path / "out.csv", keep_inputs=True)
    finally:
        student.id_field = None
    rows = read_csv(tmp_path / "out.csv")
    assert result["columns"] == ["case", "text", "label", "confidence"]
    assert [(r["case"], r["text"]) for r in rows] == [(f"C-{i}", t) for i, t in enumerate(TEXTS)]


def test_a_run_records_its_projects_id_column(tickets, tmp_path):
    from core.train.trainer import training_data

    assert tickets.get_project("tickets").id_field == "id"  # imported with --id-field id
    assert training_data(tickets, "tickets").id_field == "id"
