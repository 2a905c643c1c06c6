"""Importing from every kind of source: Hugging Face datasets, JSON arrays, JSON Lines, CSV, Parquet,
through core.ingest.files and the CLI, with line or row numbers in the messages."""

import json

import datasets
import pytest

from core.cli.main import main as cli_main
from core.kernel.errors import DataImportError
from core.ingest.limits import ImportLimits
from core.ingest.files import (
    ColumnMapping,
    import_source,
    open_bytes,
    open_file,
    open_hf,
    read_records,
)

TICKETS = {"id": ["a", "b", "c"], "text": ["card charged twice", "app crashes", "parcel lost"], "label": [0, 1, 2]}
NAMES = ["billing", "technical", "shipping"]


def tickets_dataset(**extra) -> datasets.Dataset:
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({**TICKETS, **extra}, features=features)


@pytest.fixture
def hf_folder(tmp_path):
    folder = tmp_path / "tickets_ds"
    tickets_dataset().save_to_disk(str(folder))
    return folder


@pytest.fixture
def hf_dict_folder(tmp_path):
    folder = tmp_path / "tickets_dict"
    ds = tickets_dataset()
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(folder))
    return folder


def mapping(**extra) -> ColumnMapping:
    return ColumnMapping(**{"input_fields": ["text"], "id_field": "id", "label_field": "label", **extra})


def test_a_save_to_disk_folder_imports_with_class_label_names(store, hf_folder):
    with open_hf(str(hf_folder)) as source:
        assert source.rows == 3 and source.columns == ["id", "text", "label"]
        assert list(source.preview(2)["label"]) == ["billing", "technical"]  # names, not numbers
    n, labels = import_source(store, open_hf(str(hf_folder)), "hf", "classification", mapping())
    assert n == 3 and labels == sorted(NAMES)
    rows = store.items_by_order("hf", None)
    assert (rows[0]["row_id"], rows[0]["inputs"], rows[0]["gold"]) == ("a", {"text": "card charged twice"}, "billing")


def test_a_dataset_dict_needs_one_of_its_splits(store, hf_dict_folder):
    with pytest.raises(DataImportError, match=r"several splits \(train, test\): choose one"):
        open_hf(str(hf_dict_folder))
    with pytest.raises(DataImportError, match="has no split 'dev'; its splits: train, test"):
        open_hf(str(hf_dict_folder), "dev")
    n, _ = import_source(store, open_hf(str(hf_dict_folder), "test"), "hf", "classification",
                         mapping(labels=NAMES), default_split="test")
    assert n == 1 and store.count_items("hf")["by_split"] == {"test": 1}


def test_a_hub_id_that_cannot_be_loaded_and_a_folder_that_is_no_dataset(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # offline as conftest says, though datasets was imported (and read the variable) before it said so
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataImportError, match="could not load 'nobody-here/no-such-dataset' from the Hugging Face Hub"):
        open_hf("nobody-here/no-such-dataset", "train")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataImportError, match="not a dataset folder written by datasets' save_to_disk"):
        open_hf(str(tmp_path / "plain"))


def test_a_json_array_of_objects_imports_and_names_rows(store):
    data = json.dumps([{"id": 1, "text": "a", "label": "x"}, {"id": 2, "text": "b", "label": "y",
                                                               "meta": {"k": [1, 2]}}]).encode()
    with open_bytes(data, "t.json") as source:
        assert source.rows == 2 and source.columns == ["id", "text", "label", "meta"]
        meta = source.preview()["meta"]
        assert meta.isna()[0] and meta[1] == '{"k":[1,2]}'
    n, labels = import_source(store, open_bytes(data, "t.json"), "arr", "classification", mapping())
    assert n == 2 and labels == ["x", "y"] and store.get_item("arr", "2")["inputs"] == {"text": "b"}
    bad = json.dumps([{"id": 1, "text": "a"}, {"id": 2, "text": "   "}]).encode()
    with pytest.raises(DataImportError, match=r"^row 2, column 'text': empty input text\.$"):
        open_bytes(bad, "t.json").items("classification", mapping(label_field=None, labels=["x", "y"]))


def test_json_lines_in_a_json_file_import_and_anything_else_is_refused(store):
    lines = b'{"id": "q1", "text": "a", "label": "x"}\n\n{"id": "q2", "text": "b", "label": "y"}\n'
    for name in ("t.json", "t.jsonl", "t.ndjson"):
        with open_bytes(lines, name) as source:
            assert source.rows == 2
    with pytest.raises(DataImportError, match=r"line 1: expected a JSON object, got int\. A \.json file holds"):
        open_bytes(b"42\n", "t.json")
    with pytest.raises(DataImportError, match="The file has no rows"):
        open_bytes(b"[ ]", "t.json")
    with pytest.raises(DataImportError, match=r"line 3: invalid JSON"):
        open_bytes(b'{"a": 1}\n\n{"a": \n', "t.jsonl")


def test_json_lines_errors_name_the_physical_line_past_blank_lines():
    data = b'{"id": "1", "text": "a"}\n\n\n{"id": "2", "text": ""}\n'
    with pytest.raises(DataImportError, match=r"^line 4, column 'text': empty input text\.$"):
        open_bytes(data, "t.jsonl").items("classification", mapping(label_field=None, labels=["x", "y"]))
    bad_utf8 = b'{"id": "1", "text": "a"}\n{"id": "2", "text": "\xff"}\n'
    with pytest.raises(DataImportError, match="line 2: the file is not valid UTF-8"):
        open_bytes(bad_utf8, "t.jsonl")


def test_csv_line_numbers_count_quoted_newlines_and_blank_lines():
    data = b'id,text,label\n1,"two\nlines",x\n\n2,ok,y\n3,"",x\n'
    with pytest.raises(DataImportError, match=r"^line 6, column 'text': empty input text\.$"):
        open_bytes(data, "t.csv").items("classification", mapping())
    with pytest.raises(DataImportError, match=r"line 4: 4 cells but the header has 3 columns"):
        open_bytes(b'id,text,label\n1,"a\nb",x\n2,b,y,extra\n', "t.csv")
    with pytest.raises(DataImportError, match=r"line 3: 2 cells but the header has 3 columns"):
        open_bytes(b"id,text,label\n1,a,x\n2,b\n", "t.csv")
    with pytest.raises(DataImportError, match=r"line 2: malformed CSV"):
        open_bytes(b'id,text\n1,"a"b\n', "t.csv")


def test_gold_errors_name_the_line_of_the_first_bad_row():
    data = b"premise,hypothesis,label\nA,B,true\n\"C\nD\",E,maybe\nF,G,banana\nH,I,banana\n"
    with pytest.raises(DataImportError, match=r"^line 5, column 'label': 'banana' is not an NLI label"):
        open_bytes(data, "t.csv").items("nli", ColumnMapping(["premise", "hypothesis"], label_field="label"))
    mc = b'{"q": "?", "choices": ["a1", "b1"], "answer": "a1"}\n\n{"q": "?", "choices": ["a1", "b1"], "answer": "z"}\n'
    with pytest.raises(DataImportError, match=r"^line 3, column 'answer': 'z' is not one of the choices"):
        open_bytes(mc, "t.jsonl").items("multiple-choice", ColumnMapping(["q"], label_field="answer",
                                                                         choices_field="choices"))


def test_parquet_rows_keep_their_order_and_a_second_import_extends_the_project(store, tmp_path):
    import pandas as pd

    path = tmp_path / "t.parquet"
    pd.DataFrame({"id": [f"r{i}" for i in range(50)], "text": [f"t{i}" for i in range(50)],
                  "label": ["x", "y"] * 25}).to_parquet(path)
    assert import_source(store, open_file(path), "pq", "classification", mapping())[0] == 50
    more = tmp_path / "more.csv"
    more.write_text("id,text,label\nz1,new,x\n")
    assert import_source(store, open_file(more), "pq", "classification", mapping(labels=["x", "y"]))[0] == 1
    assert [r["row_id"] for r in store.items_by_order("pq", None)] == [f"r{i}" for i in range(50)] + ["z1"]


def test_read_records_keeps_the_small_in_memory_api():
    assert read_records(b'{"id": 1, "t": "a"}\n\n{"id": 2}\n', "x.jsonl") == [(1, {"id": "1", "t": "a"}),
                                                                              (3, {"id": "2"})]


def test_limits_are_passed_in_and_wide_rows_get_more_memory(store):
    wide = "id,text,label\n" + "".join(f"{i},{'w' * 60_000},{'xy'[i % 2]}\n" for i in range(40))
    limits = ImportLimits(memory_mb=8, insert_memory_mb=8, max_memory_mb=512)
    n, _ = import_source(store, open_bytes(wide.encode(), "w.csv", limits), "wide", "classification", mapping())
    assert n == 40


def test_the_cli_imports_a_dataset_folder_and_a_file_by_option(tmp_path, hf_dict_folder, capsys):
    db = str(tmp_path / "cli.duckdb")
    code = cli_main(["import", "--db", db, "--project", "hf", "--task", "classification", "--id-field", "id",
                     "--input-fields", "text", "--label-field", "label", "--hf", str(hf_dict_folder),
                     "--hf-split", "train", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out == {"project": "hf", "rows": 3, "task": "classification", "labels": sorted(NAMES)}
    data = tmp_path / "more.csv"
    data.write_text("id,text,label\nz,new ticket,billing\n")
    assert cli_main(["import", "--db", db, "--project", "hf", "--task", "classification", "--id-field", "id",
                     "--input-fields", "text", "--label-field", "label", "--labels", ",".join(NAMES), "--file", str(data),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["rows"] == 1
    code = cli_main(["import", "--db", db, "--project", "hf", "--task", "classification", "--input-fields", "text",
                     "--hf", str(hf_dict_folder), str(data), "--json"])
    assert code == 2 and "exactly one source" in json.loads(capsys.readouterr().out.strip())["error"]


def test_the_cli_split_flag_picks_the_dataset_split_and_names_the_rows(tmp_path, hf_dict_folder, capsys):
    from core.db import Store

    db = str(tmp_path / "cli.duckdb")
    code = cli_main(["import", "--db", db, "--project", "hf", "--task", "classification", "--id-field", "id",
                     "--input-fields", "text", "--label-field", "label", "--labels", ",".join(NAMES),
                     "--hf", str(hf_dict_folder), "--split", "test", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["rows"] == 1
    assert Store(db).count_items("hf")["by_split"] == {"test": 1}


def test_a_600000_row_csv_imports_whole(store, tmp_path):
    """114 MB of ordinary text was refused once: the insert ran under a fixed 32 MB cap that the
    table's key index (which cannot spill) outgrew. Now the cap doubles when the index needs it."""
    import random

    rng = random.Random(0)
    words = "order parcel card charged twice app crash login error courier lost refund invoice late".split()
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("id,text,label\n")
        for i in range(600_000):
            f.write(f"{i},{' '.join(rng.choices(words, k=30))},{('billing', 'technical', 'shipping')[i % 3]}\n")
    from core.ingest.files import ColumnMapping, import_source, open_file

    n, _ = import_source(store, open_file(path), "big", "classification",
                         ColumnMapping(input_fields=["text"], id_field="id", label_field="label"))
    assert n == 600_000 == store.count_items("big")["total"]
    assert store.get_item("big", "599999")["gold"] == "shipping"  # 599999 % 3 == 2
