"""A run's student exported as a folder with its model card: as trained (fp32), or int8 for
CPU serving with its size, speed and agreement against fp32 measured on the run's held-out
rows; optionally pushed to the Hugging Face Hub (private unless asked)."""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from pathlib import Path

from core.db import Store
from core.kernel.paths import workspace_dir
from core.kernel.errors import AppError, ConfigError
from core.kernel.names import inside
from core.kernel.tasks import get_task
from core.results.reports import model_card, run_facts
from core.student.int8 import INT8_MANIFEST, INT8_WEIGHTS, write_int8
from core.student.predict import Student, held_out_inputs, load_student_model
from core.train.run import Run


# ---- the export ------------------------------------------------------------------------
def models_folder(store: Store, typed: str) -> str:
    """`typed` confined to the workspace's models folder (for a shared app): a relative name,
    or a path already inside it; anything that would leave it is refused."""
    base = workspace_dir(store) / "models"
    typed = typed.strip()
    relative = Path(typed).relative_to(base) if Path(typed).is_absolute() and Path(typed).is_relative_to(base) \
        else Path(typed.removeprefix("workspace/models/"))
    return str(inside(base, str(relative)))


def export_model(store: Store, run_id: str, out: str, push_to: str | None = None, public: bool = False,
                 quantize: str | None = None) -> dict:
    """Copy the run's save_pretrained folder (weights, config, tokenizer) to `out` with a model
    card carrying the provenance; optionally push it to the Hugging Face Hub, into a private
    repo unless `public` (an existing public repo is refused unless `public`).
    `quantize="int8"` writes the dynamically quantized student instead (core.student.int8: CPU
    serving, loads without unpickling), its card stating its size, speed and agreement against
    the fp32 student, measured here on the run's held-out rows."""
    if quantize not in (None, "int8"):
        raise ConfigError(f"quantize must be int8 (or nothing), not {quantize!r}.")
    facts = run_facts(store, run_id)
    model_dir = Run.find(store, run_id).model_dir()
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not empty; choose a new folder.")
    # a fresh hidden name: a failed export leaves no folder behind, and never touches another one
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    measured = None
    try:
        if quantize:
            shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "*.pth"))
            texts, choices = held_out_inputs(store, run_id)
            measured = export_int8(model_dir, tmp, texts, choices)
            if measured.get("rows"):  # the card prices the student it describes: this export, as measured
                facts = run_facts(store, run_id, throughput=int8_throughput(measured))
            card = model_card(facts) + int8_card(measured)
        else:
            shutil.copytree(model_dir, tmp)
            card = model_card(facts)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)  # all or nothing: no half-written export folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = {"run": run_id, "out": str(dest), "files": sorted(p.name for p in dest.iterdir()), "pushed": None}
    if measured is not None:
        result |= {"quantize": quantize, **measured}
    if push_to:
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        if not token:
            raise ConfigError("Pushing to the Hub needs HF_TOKEN in the environment; the folder was saved locally.")
        push_folder(dest, push_to, token, public)
        result["pushed"] = push_to
    return result


def push_folder(folder: Path, repo_id: str, token: str, public: bool = False) -> None:
    """Upload to a Hub repo: created private unless `public`; an existing public repo is
    refused unless `public` (a student trained on private data must not go public by accident)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        info = api.repo_info(repo_id)
    except RepositoryNotFoundError:
        api.create_repo(repo_id, private=not public)
    else:
        if not info.private and not public:
            raise ConfigError(f"The Hub repo {repo_id} is public; pushing there would publish the student. "
                              "Choose a private repo, or confirm a public push (--public).")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)


# ---- the int8 export, measured against fp32 -----------------------------------------------
def folder_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def compare(fp32: Student, int8: Student, texts: list[str], choices: list[list[str] | None] | None = None,
            batch_size: int = 16, rounds: int = 2) -> dict:
    """Label-only throughput of both students on the same inputs, and the share of inputs where
    they give the same label. One untimed warm-up batch each; then `rounds` alternating timed
    passes, the faster pass of each counting (a busy machine slows a pass, never speeds it up)."""
    if not texts:
        return {"rows": 0, "rows_per_s_fp32": None, "rows_per_s_int8": None, "agreement": None}
    students = {"fp32": fp32, "int8": int8}
    best: dict[str, float] = {}
    labels: dict[str, list[str]] = {}
    for student in students.values():
        student.predict(texts[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations
    for _ in range(max(1, rounds)):
        for name, student in students.items():
            started = time.perf_counter()
            labels[name] = [p["label"] for p in student.predict(texts, batch_size=batch_size, choices=choices)]
            best[name] = min(best.get(name, math.inf), time.perf_counter() - started)
    kind = None
    if fp32.task:
        try:
            kind = get_task(fp32.task)
        except AppError:
            kind = None
    same = [a == b or (kind is not None and kind.labels_equal(a, b)) for a, b in zip(labels["fp32"], labels["int8"])]
    return {"rows": len(texts), "rows_per_s_fp32": round(len(texts) / best["fp32"], 2),
            "rows_per_s_int8": round(len(texts) / best["int8"], 2), "speedup": round(best["fp32"] / best["int8"], 3),
            "agreement": round(sum(same) / len(same), 4), "batch_size": batch_size}


def int8_throughput(measured: dict) -> dict:
    """An int8 export's measurement in the shape core.results.savings prices a student by."""
    import datetime as dt

    return {"rows": measured["rows"], "rows_per_s": measured["rows_per_s_int8"], "threads": measured["threads"],
            "batch_size": measured["batch_size"], "source": "int8 export",
            "measured_at": dt.datetime.now().isoformat(timespec="seconds")}


def int8_card(measured: dict) -> str:
    """The model card section of an int8 export: size, speed and agreement against fp32."""
    def mb(n: int) -> str:
        return f"{n / 1e6:.1f} MB"

    lines = ["", "## Compact export (int8)", "",
             ("Every Linear layer is dynamically quantized to int8 (a scale per output channel; activations are "
              "quantized at run time) and the vocabulary embeddings are stored as int8 with a scale per row, for CPU "
              f"serving. The weights are plain tensors in `{INT8_WEIGHTS}` with `{INT8_MANIFEST}` describing them: "
              "loading runs no pickled code. `transformers` cannot load this folder by itself; this app can:"), "",
             "```bash", "python -m core predict --model <this folder> --file rows.csv --out predictions.csv --json",
             "```", "",
             "```python", "from core.student.predict import load_student_model",
             "load_student_model('<this folder>').predict(['your input text'])", "```", "",
             "| measure | fp32 | int8 |", "|---|---|---|",
             (f"| size on disk (whole folder) | {mb(measured['fp32_bytes'])} | {mb(measured['int8_bytes'])} "
              f"({measured['size_ratio']:.2f}×) |")]
    if measured.get("rows"):
        threads = f"{measured['threads']} thread{'s' if measured['threads'] != 1 else ''}"
        lines += [(f"| labels per second (CPU, {threads}, batch {measured['batch_size']}, "
                   f"{measured['rows']} held-out rows) | {measured['rows_per_s_fp32']} | {measured['rows_per_s_int8']} |"),
                  f"| same label as fp32 on those rows | — | {measured['agreement']:.4f} |"]
    else:
        lines.append("| speed and agreement | not measured: the run has no held-out rows | |")
    lines += ["", "Measured when this folder was exported, on the exporting machine; other machines and loads differ."]
    return "\n".join(lines) + "\n"


def export_int8(model_dir: str | Path, dest: str | Path, texts: list[str], choices: list | None = None,
                batch_size: int = 16) -> dict:
    """Write the int8 export of `model_dir` into `dest` (a folder holding the rest of the fp32
    folder but its weights) and measure it against fp32 on `texts`, both on the CPU."""
    import torch

    write_int8(model_dir, dest)
    measured = {"fp32_bytes": folder_bytes(model_dir), "int8_bytes": folder_bytes(dest),
                "threads": torch.get_num_threads()}
    measured["size_ratio"] = round(measured["int8_bytes"] / measured["fp32_bytes"], 4)
    measured |= compare(load_student_model(model_dir), load_student_model(dest), texts, choices, batch_size)
    return measured
