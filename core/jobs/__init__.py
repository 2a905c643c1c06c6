"""Jobs (labeling, training, sweeps) and their one lifecycle; `from core import jobs` is the
API the pages and the CLI use. Where each part lives:

  states.py     the statuses and the moves the state machine allows
  lifecycle.py  the only writer of a job's status: create, move, pause, cancel, refresh, wait
  lease.py      one labeling job per project (the lease rule)
  runner.py     spawning a job's process, resuming it, and `run_job` inside it
  processes.py  which process runs a job (pid + start time + command line)

What a job of each kind does lives with its stage (runner.KINDS): core.label.job, core.train.jobs.
"""

from core.jobs.lease import LabelingBusy
from core.jobs.lifecycle import (
    cancel_job,
    create_job,
    ensure_labeling_free,
    job_to_show,
    jobs_for,
    pause_job,
    progress_text,
    refresh,
    running_label_job,
    throughput,
    wait,
)
from core.jobs.runner import resume_job, run_foreground, run_job, start_job
from core.jobs.states import ACTIVE, RESUMABLE, STATUSES

__all__ = [
    "ACTIVE",
    "RESUMABLE",
    "STATUSES",
    "LabelingBusy",
    "cancel_job",
    "create_job",
    "ensure_labeling_free",
    "job_to_show",
    "jobs_for",
    "pause_job",
    "progress_text",
    "refresh",
    "resume_job",
    "run_foreground",
    "run_job",
    "running_label_job",
    "start_job",
    "throughput",
    "wait",
]
