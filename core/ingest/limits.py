"""What an import accepts, and the buffer sizes that keep its memory small."""

from __future__ import annotations

from dataclasses import dataclass

CSV_BUFFER = 4 * 1024 * 1024  # DuckDB's CSV buffer and longest line; small buffers keep memory low
JSON_MAX_LINE = 16 * 1024 * 1024  # DuckDB's maximum_object_size default
BATCH_BYTES = 8 * 1024 * 1024  # per chunk of rows Python sees, and per row group of the Parquet files written here


@dataclass(frozen=True)
class ImportLimits:
    """What an import accepts. Each refusal names the limit and the value found."""

    # A file on disk (the CLI). The browser's uploads stop at server.maxUploadSize (200 MB) in
    # .streamlit/config.toml, since Streamlit holds an upload in memory. What protects memory is
    # the row, field and text limits below, not the file's size: a million rows of real text is
    # about 350 MB of CSV.
    max_file_bytes: int = 2 * 1024 ** 3
    max_rows: int = 1_000_000
    max_field_chars: int = 100_000  # one mapped cell
    max_text_bytes: int = 1024 ** 3  # all mapped cells together, decoded (a Parquet file can inflate)
    memory_mb: int = 64  # DuckDB memory while parsing; beyond it DuckDB spills to a temporary folder
    insert_memory_mb: int = 32  # the store's memory while inserting the items (it spills too)
    max_memory_mb: int = 1024  # wide rows need more (DuckDB works on 2,048 rows at a time): doubled up to this


DEFAULT_LIMITS = ImportLimits()


def size_text(n: int) -> str:
    """A byte count for people: 1.5 GB, 3.2 MB, 1,234 bytes."""
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.1f} GB"
    if n >= 1024 * 1024:
        return f"{n / 1024 ** 2:.1f} MB"
    return f"{n:,} bytes"
