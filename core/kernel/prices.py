"""The price file (data/prices.toml): per-model USD prices per million tokens, with source and date."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.kernel.errors import PriceFileError

DEFAULT_PRICES = Path(__file__).resolve().parents[2] / "data" / "prices.toml"
PRICES_ENV = "DISTILL_PRICES"


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input: float
    output: float
    confirmed: bool
    note: str | None = None


@dataclass(frozen=True)
class PriceTable:
    source: str
    date: str
    batch_discount: float
    cache_write_multiplier: float
    cache_read_multiplier: float
    models: dict[str, ModelPrice]

    def get(self, model: str) -> ModelPrice | None:
        """Price for a model id; dated ids such as claude-haiku-4-5-20251001 fall back to their alias."""
        if model in self.models:
            return self.models[model]
        for name in sorted(self.models, key=len, reverse=True):
            if model.startswith(name + "-"):
                return self.models[name]
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int, batch: bool = False) -> float | None:
        """Dollars for one call, or None when the model has no price (never a silent $0)."""
        price = self.get(model)
        if price is None:
            return None
        factor = (1 - self.batch_discount) if batch else 1.0
        return factor * (input_tokens * price.input + output_tokens * price.output) / 1e6


def prices_path() -> Path:
    return Path(os.environ.get(PRICES_ENV, DEFAULT_PRICES))


def price_document(text: str, origin: str) -> tuple[dict, dict]:
    """A price file's TOML and its [meta] table, which must name a source and a date."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceFileError(f"{origin}: not valid TOML ({exc}).") from exc
    meta = doc.get("meta")
    if not isinstance(meta, dict) or not meta.get("source") or not meta.get("date"):
        raise PriceFileError(f"{origin}: the [meta] table must give a source and a date.")
    return doc, meta


def parse_prices(text: str, origin: str = "price file") -> PriceTable:
    doc, meta = price_document(text, origin)
    models = doc.get("models")
    if not isinstance(models, dict) or not models:
        raise PriceFileError(f"{origin}: no [models.<id>] entries.")
    table = {}
    for name, entry in models.items():
        for key in ("input", "output"):
            value = entry.get(key) if isinstance(entry, dict) else None
            # zero would make every call free and the budget cap meaningless; inf/nan would break it too
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1e6:
                raise PriceFileError(f"{origin}: models.{name}.{key} must be a positive number of dollars per "
                                     f"million tokens, got {value!r}.")
        table[name] = ModelPrice(
            name, float(entry["input"]), float(entry["output"]), bool(entry.get("confirmed", False)), entry.get("note")
        )
    try:
        return PriceTable(
            source=str(meta["source"]), date=str(meta["date"]),
            batch_discount=float(meta.get("batch_discount", 0.5)),
            cache_write_multiplier=float(meta.get("cache_write_multiplier", 1.25)),
            cache_read_multiplier=float(meta.get("cache_read_multiplier", 0.1)),
            models=table,
        )
    except (TypeError, ValueError) as exc:
        raise PriceFileError(f"{origin}: bad [meta] number ({exc}).") from exc


def load_prices(path: str | os.PathLike | None = None) -> PriceTable:
    path = Path(path or prices_path())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"cannot read price file {path}: {exc.strerror}.") from exc
    return parse_prices(text, str(path))


def save_prices(text: str, path: str | os.PathLike | None = None) -> PriceTable:
    """Validate then write; a bad edit never replaces a good file."""
    table = parse_prices(text, "edited price file")
    path = Path(path or prices_path())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return table
