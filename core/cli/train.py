"""Training students: one run (foreground, background, or one process per device), or a sweep."""

from __future__ import annotations

import os
from dataclasses import asdict

from core.cli.commands import command
from core.cli.flags import add_config_flags, config_from_args
from core.db import Store
from core.train.trainer import OBJECTIVES, TrainConfig


def train_flags(p) -> None:
    add_config_flags(p, TrainConfig)  # every TrainConfig field a person sets
    p.add_argument("--background", action="store_true")


@command("train", "Train a student (foreground, or --background as a job).", train_flags)
def cmd_train(args, store: Store) -> dict:
    from core import jobs

    cfg = config_from_args(TrainConfig, args).validate()
    store.get_project(args.project)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun / accelerate launch
        return _train_distributed(store, cfg)
    if args.background:
        job_id = jobs.start_job(store, args.project, "train", asdict(cfg))
        return {"job_id": job_id, "status": "started", "config": asdict(cfg)}
    job_id, result = jobs.run_foreground(store, args.project, "train", asdict(cfg))
    return {"job_id": job_id, **result}


def _train_distributed(store: Store, cfg: TrainConfig) -> dict:
    """One process per device: rank 0 owns the job row; every rank trains its share."""
    import torch
    import torch.distributed as dist

    from core import jobs
    from core.kernel.paths import run_dir
    from core.train.trainer import train_project

    dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
    job = [None]
    if dist.get_rank() == 0:
        job[0] = jobs.create_job(store, cfg.project, "train", asdict(cfg))
    dist.broadcast_object_list(job, src=0)
    job_id = job[0]
    if dist.get_rank() == 0:
        result = jobs.run_job(store, job_id)
    else:
        cfg.out_dir = str(run_dir(store.get_job(job_id)))
        result = train_project(store, cfg, job_id=job_id)
    if dist.is_initialized():
        dist.destroy_process_group()
    return {"job_id": job_id, **result}


# A sweep varies these (one or more values each) and holds the rest at one value.
SWEEP_GRID = ("objective", "rationale_fraction", "seed", "alpha", "label_source")
SWEEP_FIXED = ("student", "max_steps", "batch_size", "learning_rate", "device")


def sweep_flags(p) -> None:
    add_config_flags(p, TrainConfig, only=SWEEP_GRID + SWEEP_FIXED, many=SWEEP_GRID,
                     overrides={"objective": {"default": list(OBJECTIVES)}})  # both objectives unless told
    p.add_argument("--background", action="store_true", help="return at once; the sweep runs on")


@command("sweep", "Run a grid of training runs one after another in one background process.", sweep_flags)
def cmd_sweep(args, store: Store) -> dict:
    from core import jobs
    from core.train.jobs import start_sweep

    store.get_project(args.project)
    base = {"project": args.project, "label_source": args.label_source[0], "alpha": args.alpha[0],
            **{name: getattr(args, name) for name in SWEEP_FIXED}}
    grid = {name: getattr(args, name) for name in SWEEP_GRID}
    sweep_id = start_sweep(store, args.project, base, grid)
    children = store.child_jobs(sweep_id)
    if args.background:
        return {"sweep_id": sweep_id, "status": "started", "runs": [c["id"] for c in children]}
    job = jobs.wait(store, sweep_id, timeout_s=7 * 24 * 3600)
    return {"sweep_id": sweep_id, "status": job["status"], "error": job["error"],
            "runs": [{"id": c["id"], "status": c["status"], "config": c["config"],
                      "metrics": store.latest_metrics(c["id"])} for c in store.child_jobs(sweep_id)]}
