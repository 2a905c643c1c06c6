"""Hostile and over-limit sources: each is refused with a message that names the limit and the value
found (or the line), and the database is left exactly as it was: no project, no items."""

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.kernel.errors import AppError, DataImportError
from core.ingest.limits import ImportLimits
from core.ingest.files import (
    ColumnMapping,
    import_source,
    open_bytes,
    open_file,
)

MAPPING = ColumnMapping(input_fields=["text"], id_field="id", label_field="label")
CSV = b"id,text,label\n1,a,x\n2,b,y\n3,c,x\n4,d,y\n5,e,x\n"


def state(store) -> tuple:
    return store.list_projects(), store.scalar("SELECT count(*) FROM items")


def refused(store, opener, match: str, project: str = "p") -> None:
    """Opening and importing fails with `match`, and the database is unchanged."""
    before = state(store)
    with pytest.raises(AppError, match=match):
        import_source(store, opener(), project, "classification", MAPPING)
    assert state(store) == before


def bomb(path, rows: int, chars: int, **write) -> str:
    """One repeated string in a Parquet file: small on disk, rows * chars when decoded."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * chars]))
    labels = pa.array(np.where(np.arange(rows) % 2 == 0, "x", "y"))
    pq.write_table(pa.table({"id": pa.array(np.arange(rows).astype(str)), "text": text, "label": labels}), path, **write)
    return str(path)


def test_over_the_row_limit(store, tmp_path):
    limits = ImportLimits(max_rows=3)
    refused(store, lambda: open_bytes(CSV, "t.csv", limits), r"^t\.csv has 5 rows; the limit is 3\.$")
    path = bomb(tmp_path / "b.parquet", 5, 10)
    refused(store, lambda: open_file(path, limits=limits), r"^b\.parquet has 5 rows; the limit is 3\.$")


def test_an_over_long_field_names_its_line_and_the_limit(store):
    data = b"id,text,label\n1,short,x\n2," + b"z" * 11 + b",y\n"
    refused(store, lambda: open_bytes(data, "t.csv", ImportLimits(max_field_chars=10)),
            r"^line 3, column 'text': 11 characters; the limit is 10 per field\.$")


def test_over_the_file_size_and_total_text_limits(store):
    refused(store, lambda: open_bytes(CSV, "t.csv", ImportLimits(max_file_bytes=20)),
            r"^t\.csv is 44 bytes; the limit is 20 bytes\.$")
    refused(store, lambda: open_bytes(CSV, "t.csv", ImportLimits(max_text_bytes=12)),
            r"^The mapped columns hold 15 bytes of text; the limit is 12 bytes\.$")


def test_parquet_bombs_are_refused_before_they_inflate(store, tmp_path):
    # dictionary-encoded: ~1 KB on disk, 20 MB of text; caught by the streaming pre-scan (strlen reads no string)
    dictionary = bomb(tmp_path / "dict.parquet", 20_000, 1_000)
    refused(store, lambda: open_file(dictionary, limits=ImportLimits(max_text_bytes=1_000_000)),
            r"^The mapped columns hold 19\.\d MB of text; the limit is 1,000,000 bytes\.$")
    # compressed pages: caught from the footer alone, before a page is read
    pages = bomb(tmp_path / "zstd.parquet", 20_000, 1_000, use_dictionary=False, compression="zstd")
    refused(store, lambda: open_file(pages, limits=ImportLimits(max_text_bytes=1_000_000)),
            r"^zstd\.parquet decompresses to 19\.\d MB; the limit is 1,000,000 bytes\.$")
    over_rows = bomb(tmp_path / "rows.parquet", 20_000, 500)
    refused(store, lambda: open_file(over_rows, limits=ImportLimits(max_rows=10_000)),
            r"^rows\.parquet has 20,000 rows; the limit is 10,000\.$")


def test_compressed_text_files_are_refused(store, tmp_path):
    refused(store, lambda: open_bytes(gzip.compress(CSV), "t.csv"), r"t\.csv is gzip-compressed: decompress it first")
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(CSV))
    refused(store, lambda: open_file(path), r"t\.csv\.gz is compressed \(gz\): decompress it first")


def test_duplicate_ids_and_empty_ids(store):
    refused(store, lambda: open_bytes(b"id,text,label\n1,a,x\n2,b,y\n1,c,x\n", "t.csv"), r"^line 4: id '1' repeats line 2\.$")
    refused(store, lambda: open_bytes(b"id,text,label\n1,a,x\n ,b,y\n", "t.csv"), r"^line 3, column 'id': empty id\.$")


def test_ids_already_in_the_project_leave_it_unchanged(store):
    import_source(store, open_bytes(CSV, "t.csv"), "p", "classification", MAPPING)
    refused(store, lambda: open_bytes(b"id,text,label\n9,new,x\n3,again,y\n", "t.csv"),
            "These ids already exist in the project: 3")


def test_a_project_name_that_is_a_path_is_refused_before_reading(store):
    refused(store, lambda: open_bytes(CSV, "t.csv"), "may hold letters, digits, spaces and . _ - only", "../../tmp/x")
    with pytest.raises(AppError, match="may hold letters"):  # the store refuses it too
        store.import_items("../../tmp/x", "classification", ["text"], None, None, "t", "m")
    assert state(store) == ([], 0)


def test_invalid_utf8_ragged_rows_and_bad_json_name_the_line(store):
    refused(store, lambda: open_bytes(b"id,text,label\n1,a,x\n2,\xc3\x28,y\n", "t.csv"),
            r"^line 3: the file is not valid UTF-8")
    refused(store, lambda: open_bytes(b'id,text,label\n1,"a\nb",x\n2,b,y,z\n', "t.csv"),
            r"^line 4: 4 cells but the header has 3 columns\.$")
    refused(store, lambda: open_bytes(b'{"id": 1, "text": "a", "label": "x"}\n[1]\n', "t.jsonl"),
            r"^line 2: expected a JSON object, got list\.$")
    with pytest.raises(DataImportError, match="Unsupported file type 'exe'"):
        open_bytes(b"MZ", "t.exe")


PEAK = """
import json, sys
from pathlib import Path
from core.cli.main import main
code = main(["import", "--db", sys.argv[1], "--project", "bomb", "--task", "classification", "--id-field", "id",
             "--input-fields", "text", "--label-field", "label", "--json", sys.argv[2]])
kb = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"exit": code, "peak_mb": kb / 1024}))
"""


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_memory_bomb_is_refused_at_the_real_limits_before_memory_grows(store, tmp_path, kind):
    """With the default limits, in its own process as the CLI runs it: a small Parquet file that
    inflates to 4.5 GB of text, and a CSV whose one field is 300 MB, are refused with a clear
    message while the process stays under 1.5 GB, and the database is unchanged."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO

    if kind == "parquet":
        path = bomb(tmp_path / "bomb.parquet", 900_000, 5_000, compression="zstd")
        message = "of text; the limit is 1.0 GB"
    else:
        path = tmp_path / "bomb.csv"
        with open(path, "wb") as f:
            f.write(b"id,text,label\n1,")
            for _ in range(300):
                f.write(b"z" * (1024 * 1024))
            f.write(b",x\n")
        message = "line 2: a cell longer than 4.0 MB; the limit is 100,000 characters per field."
    before = state(store)
    out = subprocess.run([sys.executable, "-c", PEAK, str(store.path), str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=600, check=False)
    lines = out.stdout.strip().splitlines()
    refusal, measured = json.loads(lines[-2]), json.loads(lines[-1])
    assert measured["exit"] != 0 and message in refusal["error"], refusal
    assert measured["peak_mb"] < 1536, measured
    assert state(store) == before
