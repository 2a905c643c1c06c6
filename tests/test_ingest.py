import io

import pandas as pd
import pytest

from core.kernel.errors import DataImportError
from core.ingest.files import ColumnMapping, open_bytes


def read_records(data: bytes, name: str):
    """Open (and so parse and count) the data; the errors are those of reading it."""
    with open_bytes(data, name) as source:
        return source.rows


def items(data: bytes, name: str, task="classification", **mapping):
    with open_bytes(data, name) as source, source.items(task, ColumnMapping(**mapping)) as out:
        return out.to_frame(), out.label_set


def test_csv_with_extra_cell_names_the_line():
    with pytest.raises(DataImportError, match="line 3"):
        read_records(b"id,text\n1,ok\n2,too,many\n", "x.csv")


def test_jsonl_invalid_line_is_reported():
    with pytest.raises(DataImportError, match="line 2: invalid JSON"):
        read_records(b'{"a": 1}\n{"a": \n', "x.jsonl")


def test_missing_column_lists_available_columns():
    with pytest.raises(DataImportError, match="'body' is not in the file. Columns: id, text"):
        items(b"id,text\n1,a\n", "x.csv", input_fields=["body"])


def test_duplicate_id_and_empty_input():
    with pytest.raises(DataImportError, match="id '1' repeats line 2"):
        items(b"id,text,label\n1,a,x\n1,b,y\n", "x.csv", input_fields=["text"], id_field="id", label_field="label")
    with pytest.raises(DataImportError, match="line 3, column 'text': empty input"):
        items(b"id,text,label\n1,a,x\n2,,y\n", "x.csv", input_fields=["text"], id_field="id", label_field="label")


def test_classification_needs_a_label_set():
    with pytest.raises(DataImportError, match="label set"):
        items(b"text\na\nb\n", "x.csv", input_fields=["text"])
    frame, labels = items(b"text\na\nb\n", "x.csv", input_fields=["text"], labels=["pos", "neg"])
    assert labels == ["pos", "neg"] and list(frame["row_id"]) == ["0", "1"]


def test_multiple_choice_jsonl_maps_letter_gold_to_choice_text():
    data = b'{"id": "q1", "question": "Where do fish live?", "choices": ["desert", "water"], "answer": "(b)"}\n'
    frame, labels = items(data, "x.jsonl", task="multiple-choice", input_fields=["question"], id_field="id",
                          label_field="answer", choices_field="choices")
    assert frame.iloc[0]["gold"] == "water" and labels is None
    bad = b'{"id": "q1", "question": "?", "choices": ["a1", "b1"], "answer": "zebra"}\n'
    with pytest.raises(DataImportError, match="not one of the choices"):
        items(bad, "x.jsonl", task="multiple-choice", input_fields=["question"], id_field="id",
              label_field="answer", choices_field="choices")


def test_numeric_gold_expression_is_evaluated_and_nli_synonyms_map():
    frame, _ = items(b'{"input": "2 boxes of 3", "label": "( 2.0 * 3.0 )"}\n', "x.jsonl", task="numeric",
                     input_fields=["input"], label_field="label")
    assert frame.iloc[0]["gold"] == "6"
    frame, labels = items(b"premise,hypothesis,label\nA,B,true\nC,D,inconclusive\n", "x.csv", task="nli",
                          input_fields=["premise", "hypothesis"], label_field="label")
    assert list(frame["gold"]) == ["entailment", "neutral"] and labels == ["entailment", "neutral", "contradiction"]


def test_parquet_and_split_column():
    buf = io.BytesIO()
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"], "part": ["train", "test"]}).to_parquet(buf)
    frame, labels = items(buf.getvalue(), "x.parquet", input_fields=["text"], label_field="label", split_field="part")
    assert list(frame["split"]) == ["train", "test"] and labels == ["x", "y"]


def test_unsupported_type_and_bad_encoding():
    with pytest.raises(DataImportError, match="Unsupported"):
        read_records(b"", "x.xlsx")
    with pytest.raises(DataImportError, match="line 2: the file is not valid UTF-8"):
        read_records(b"text\n\xff\xfe\n", "x.csv")
