"""A training run as the later stages find it: its job, its folder, the config it resolved
and the held-out rows it was graded on. core.student and core.results reach a run through
`Run.find` and nothing else."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from core.kernel.paths import run_dir
from core.kernel.errors import NotFound
from core.train.data import legacy_split_rows, read_snapshot, split_rows
from core.train.trainer import TrainConfig


class Run:
    def __init__(self, job: dict, store=None):
        self.job, self.store = job, store  # the store: only for the held-out rows
        self.id: str = job["id"]
        self.project: str = job["project"]
        self.folder: Path | None = run_dir(job)  # model, predictions, checkpoint and saved config

    @classmethod
    def find(cls, store, run_id: str) -> Run:
        job = store.get_job(run_id)
        if job["kind"] != "train":
            raise NotFound(f"{run_id} is a {job['kind']} job, not a training run.")
        return cls(job, store)

    def require_folder(self) -> Path:
        if self.folder is None:
            raise NotFound(f"Run {self.id} has no output folder.")
        return self.folder

    def model_dir(self) -> Path:
        """The saved student (NotFound while the run has none)."""
        model = self.folder / "model" if self.folder else None
        if model is None or not (model / "config.json").exists():
            raise NotFound(f"Run {self.id} has no saved model yet (status {self.job['status']}).")
        return model

    @functools.cached_property
    def config(self) -> dict:
        """The config the run saved (with row counts and device), else the one it was started with."""
        saved = self.folder / "train_config.json" if self.folder else None
        if saved and saved.exists():
            return json.loads(saved.read_text())
        return dict(self.job["config"])

    def split(self, items: list[dict]) -> tuple[list[dict], list[dict]]:
        """(training rows, held-out test rows) of `items` as train() split them."""
        cfg = self.config
        test_fraction = cfg.get("test_fraction", TrainConfig.test_fraction)
        if "val_fraction" not in cfg:  # a run from before the three-way split
            # (and from before split_seed, it held out rows by its training seed)
            split_seed = cfg["split_seed"] if "split_seed" in cfg else cfg.get("seed", TrainConfig.seed)
            return legacy_split_rows(items, test_fraction, split_seed)
        split = split_rows(items, test_fraction, cfg["split_seed"], cfg["val_fraction"],
                           cfg.get("task") or (self.store.get_project(self.project).task if self.store else "classification"))
        return split.train, split.test

    def validation_rows(self, items: list[dict]) -> list[dict]:
        """The validation rows of `items` as train() split them ([] for a run from before the split had them)."""
        cfg = self.config
        if "val_fraction" not in cfg:
            return []
        return split_rows(items, cfg.get("test_fraction", TrainConfig.test_fraction), cfg["split_seed"],
                          cfg["val_fraction"], cfg.get("task") or self.store.get_project(self.project).task).validation

    def rows_changed_since(self) -> int | None:
        """How many of the rows this run trained on were changed since (a review, a new teacher
        answer): what it learned is no longer what the project holds. None without a snapshot."""
        trained = read_snapshot(self.folder) if self.folder else None
        return None if trained is None else self.store.rows_changed_since(self.project, trained)

    def evaluated_rows(self, test_rows: list[dict]) -> list[dict]:
        """The held-out rows the final evaluation scores (the first eval_limit)."""
        return test_rows[:self.config.get("eval_limit", TrainConfig.eval_limit)]

    def held_out_rows(self, limit: int = 200) -> list[dict]:
        """The run's held-out rows in the order its final evaluation predicted them (for a run
        without stored predictions, its split recomputed), at most `limit`."""
        wanted = [p["row_id"] for p in self.store.predictions(self.id, "all", limit=limit)]
        if wanted:
            by_id = {it["row_id"]: it for it in self.store.get_items(self.project, wanted)}
            return [by_id[r] for r in wanted if r in by_id]
        return self.split(self.store.items_by_order(self.project, None))[1][:limit]
