"""Validated items waiting for the store: a temporary Parquet file that Store.import_items
reads with INSERT ... SELECT."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Self

import pandas as pd
import pyarrow as pa

from core.ingest.limits import DEFAULT_LIMITS

ITEM_FIELDS = ("row_id", "split", "inputs", "choices", "gold")
ITEMS_SCHEMA = pa.schema([(f, pa.string()) for f in ITEM_FIELDS] + [("_ord", pa.int64())])


class Items:
    """Validated items in a temporary Parquet file (`path`: row_id, split, inputs as JSON text,
    choices as JSON text, gold, and _ord, the row's 1-based place in the source, which orders the
    rows: the file itself may not be in order), with `rows` and the project's `label_set`.
    Store.import_items reads it with INSERT ... SELECT. Close it (or use `with`) to delete the file."""

    def __init__(self, memory_mb: int = DEFAULT_LIMITS.insert_memory_mb, max_memory_mb: int = DEFAULT_LIMITS.max_memory_mb):
        self._tmp = Path(tempfile.mkdtemp(prefix="distill-items-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self.path = self._tmp / "items.parquet"
        self.rows = 0
        self.label_set: list[str] | None = None
        self.memory_mb = memory_mb  # the store's memory cap for the insert, doubled when its key index needs more
        self.max_memory_mb = max(memory_mb, max_memory_mb)  # ... up to this

    def to_frame(self) -> pd.DataFrame:
        """As a pandas frame: for small imports and tests."""
        frame = pd.read_parquet(self.path).sort_values("_ord")[list(ITEM_FIELDS)].astype(object).reset_index(drop=True)
        return frame.where(frame.notna(), None)  # missing is None, as in the rows the store returns

    def close(self) -> None:
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
