"""Hugging Face datasets as import sources: a `save_to_disk` folder, or a Hub id through
`datasets.load_dataset`, narrowed to one split."""

from __future__ import annotations

import os
from pathlib import Path

from core.kernel.errors import DataImportError

DATA_DIRS_ENV = "DISTILL_DATA_DIRS"  # more folders the app may read datasets from (os.pathsep-separated)


def check_served_folder(ref: str, workspace: Path) -> None:
    """Refuse a dataset folder outside the app's workspace (the folder of its database) and the
    folders listed in DISTILL_DATA_DIRS: a visitor of the app must not read whatever folder the
    server can. A ref that is no local path is a Hub id and passes. The CLI is not limited: its
    user has the filesystem anyway."""
    path = Path(ref).expanduser()
    if not path.exists():
        return
    real = path.resolve()  # symlinks and .. resolved before the check
    roots = [workspace.resolve()] + [Path(p).expanduser().resolve()
                                     for p in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise DataImportError(f"The app reads dataset folders only inside its workspace ({roots[0]}). Move the "
                              f"folder there, import it with `python -m core import --hf FOLDER`, or list its parent "
                              f"folder in {DATA_DIRS_ENV} when starting the app.")


def load_hf(ref: str, split: str | None):
    """One split of a dataset as a datasets.Dataset (its Arrow data memory-mapped, indices flattened)."""
    import datasets

    path = Path(ref).expanduser()
    if path.exists():
        if not any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
            raise DataImportError(f"{ref} is not a dataset folder written by datasets' save_to_disk; import its "
                                  "data files instead.")
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise DataImportError(f"could not load the dataset folder {ref}: {exc}") from exc
    else:
        try:
            ds = datasets.load_dataset(ref, split=split or None)
        except Exception as exc:
            raise DataImportError(f"could not load {ref!r} from the Hugging Face Hub: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if isinstance(ds, dict):  # a DatasetDict
        ds = _pick_split(ds, split, ref)
    elif split and ds.split is not None and str(ds.split) != split:
        raise DataImportError(f"{ref} holds only the split {str(ds.split)!r}, not {split!r}.")
    if not isinstance(ds, datasets.Dataset):
        raise DataImportError(f"{ref} is not a dataset that can be imported ({type(ds).__name__}).")
    return ds.flatten_indices() if ds._indices is not None else ds


def _pick_split(splits: dict, split: str | None, ref: str):
    if split and split in splits:
        return splits[split]
    if not split and len(splits) == 1:
        return next(iter(splits.values()))
    named = ", ".join(splits)
    if split:
        raise DataImportError(f"{ref} has no split {split!r}; its splits: {named}.")
    raise DataImportError(f"{ref} has several splits ({named}): choose one.")
