"""Two processes on CPU (gloo), started the way the README documents for several GPUs."""

import json
import os
import subprocess
import sys

from core.db import Store
from tests.helpers import REPO, many_tickets


def test_torchrun_two_cpu_processes_train_one_run_with_replicas_in_sync(tmp_path):
    db = tmp_path / "ddp.duckdb"
    store = Store(db)
    many_tickets(store, 40, project="more")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "core",
         "train", "--db", str(db), "--project", "more", "--student", "tiny-random", "--label-source", "gold",
         "--objective", "standard", "--max-steps", "4", "--batch-size", "2", "--device", "cpu", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2 and all(r["replicas_in_sync"] for r in results)
    main = next(r for r in results if "rank" not in r)
    assert main["status"] == "completed" and main["steps"] == 4 and main["processes"] == 2
    jobs = store.list_jobs("more", "train")
    assert len(jobs) == 1 and jobs[0]["status"] == "completed"  # one run, owned by rank 0
    steps = [m["step"] for m in store.metrics([jobs[0]["id"]]) if m["name"] == "train_loss"]
    assert steps == [1, 2, 3, 4]  # written once, by rank 0
    saved = json.loads((tmp_path / "jobs" / jobs[0]["id"] / "output" / "train_config.json").read_text())
    assert saved["global_batch_size"] == 4
