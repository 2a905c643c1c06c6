"""What the student saves: its cost per 1,000 predictions against the teacher's, and when
the money spent to make it is paid back. The Results page and the model card use these
definitions and the words below.

Student cost per 1,000 predictions
    1,000 / rows_per_s / 3,600 × threads × $ per CPU-hour.
    `rows_per_s` is MEASURED, never assumed: the run's student predicts labels (no rationale)
    for the run's held-out rows on this machine's CPU, in batches of 16, after one warm-up
    batch; `threads` is the number of CPU threads torch used. A CPU-hour is one vCPU (one such
    thread) for one hour; its default price is in data/compute_prices.toml with its source and
    date. A measurement is stored in the run's folder (`throughput.json`) and reused until it
    is measured again; nothing is measured unless asked (`measure_throughput`).

Teacher cost per 1,000 predictions
    1,000 × this project's billed teacher spend ÷ rows with a teacher answer. The spend is
    everything billed for the project in `teacher_calls` (pilots, tries, re-labels and failed
    calls included), so it is what an answered row really cost. A project with no billed spend
    (the recorded demo teacher, imported answers, answers served from the cache) has NO
    measured teacher cost: it is None and shown as such, never as $0 or an infinite saving.

Break-even (rows)
    The number of new rows the student must answer instead of the teacher before what was
    spent to make it is recovered by the per-row saving:
        ceil((teacher spend on the run's training rows + the run's training compute)
             ÷ (teacher cost per row − student cost per row))
    where the teacher spend on the training rows is the rows whose teacher label or
    rationale the run used × the teacher cost per row, and the training compute is the
    training loop's time (steps × batch ÷ its measured examples/s; loading and evaluations
    left out) priced per CPU-hour at the measurement's thread count for a CPU run, or per
    GPU-hour for a GPU run when the price file gives one (else left out, and said so).
    None when there is no measured teacher cost, no throughput measurement, or the student
    costs as much as the teacher per row or more (it never breaks even).

Quality on the same held-out rows (from `student_predictions`): the student's accuracy
against gold and its agreement with the teacher's label.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from core.kernel.errors import ConfigError, NotFound, PriceFileError
from core.kernel.prices import price_document
from core.student.predict import held_out_inputs, load_student_model
from core.train.evaluate import held_out_scores
from core.train.run import Run

DEFAULT_COMPUTE_PRICES = Path(__file__).resolve().parents[2] / "data" / "compute_prices.toml"
COMPUTE_PRICES_ENV = "DISTILL_COMPUTE_PRICES"
THROUGHPUT_FILE = "throughput.json"
MEASURE_ROWS = 200   # held-out rows timed at most
MEASURE_BATCH = 16   # rows per predict batch

HELP = {
    "student_per_1000": "What 1,000 predictions by the student cost on a CPU: measured rows per second on this "
                        "run's held-out rows (labels and their confidence), priced per CPU-hour (one vCPU for one hour) at the "
                        "number of threads used.",
    "teacher_per_1000": "What 1,000 answers by the teacher cost in this project: all billed teacher spend divided "
                        "by the rows with a teacher answer.",
    "saving_per_1000": "Teacher cost minus student cost, per 1,000 rows.",
    "break_even": "Rows the student must answer instead of the teacher before what it cost to make (the teacher "
                  "answers behind its training rows plus its training compute) is paid back by the per-row "
                  "saving.",
    "accuracy": "Share of this run's held-out rows with a gold label where the student's label is right.",
    "agreement": "Share of this run's held-out rows with a teacher label where the student gives the same label.",
    "cpu_price": "Dollars for one vCPU (one CPU thread) for one hour. The default comes from "
                 "data/compute_prices.toml, with its source and date.",
}


# ---- the price of compute (data/compute_prices.toml) -----------------------------------
@dataclass(frozen=True)
class ComputePrices:
    usd_per_cpu_hour: float
    usd_per_gpu_hour: float | None
    source: str
    date: str


def _price(value, name: str, origin: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1e6:
        raise PriceFileError(f"{origin}: {name} must be a positive number of dollars, got {value!r}.")
    return float(value)


def parse_compute_prices(text: str, origin: str = "compute price file") -> ComputePrices:
    doc, meta = price_document(text, origin)
    cpu = doc.get("cpu") if isinstance(doc.get("cpu"), dict) else {}
    gpu = doc.get("gpu") if isinstance(doc.get("gpu"), dict) else {}
    return ComputePrices(
        usd_per_cpu_hour=_price(cpu.get("usd_per_cpu_hour"), "cpu.usd_per_cpu_hour", origin),
        usd_per_gpu_hour=(_price(gpu["usd_per_gpu_hour"], "gpu.usd_per_gpu_hour", origin)
                          if "usd_per_gpu_hour" in gpu else None),
        source=str(meta["source"]), date=str(meta["date"]))


def load_compute_prices(path: str | os.PathLike | None = None) -> ComputePrices:
    path = Path(path or os.environ.get(COMPUTE_PRICES_ENV, DEFAULT_COMPUTE_PRICES))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"cannot read compute price file {path}: {exc.strerror}.") from exc
    return parse_compute_prices(text, str(path))


# ---- arithmetic (pure) ------------------------------------------------------------------
def student_usd_per_1000(rows_per_s: float, threads: int, usd_per_cpu_hour: float) -> float:
    """Dollars for 1,000 predictions at `rows_per_s` on `threads` CPU threads."""
    if not rows_per_s > 0 or threads < 1:
        raise ConfigError("A throughput needs a positive rows per second and at least one thread.")
    if not usd_per_cpu_hour >= 0 or not math.isfinite(usd_per_cpu_hour):
        raise ConfigError("The price of a CPU-hour must be zero or more dollars.")
    return 1000 / rows_per_s / 3600 * threads * usd_per_cpu_hour


def teacher_usd_per_row(spend_usd: float, rows_answered: int) -> float | None:
    """Billed teacher dollars per answered row; None when nothing was billed (no measured
    teacher cost) or no row has an answer."""
    if not spend_usd or spend_usd <= 0 or rows_answered <= 0:
        return None
    return spend_usd / rows_answered


def training_compute_usd(seconds: float | None, device: str | None, threads: int | None,
                         usd_per_cpu_hour: float, usd_per_gpu_hour: float | None) -> float | None:
    """The training loop's compute in dollars: CPU seconds × threads at the CPU-hour price, or
    GPU seconds at the GPU-hour price (one GPU); None when it cannot be priced."""
    if seconds is None or seconds < 0:
        return None
    if (device or "cpu").startswith("cpu"):
        return None if not threads else seconds / 3600 * threads * usd_per_cpu_hour
    return None if usd_per_gpu_hour is None else seconds / 3600 * usd_per_gpu_hour


def break_even_rows(investment_usd: float, teacher_per_row: float | None, student_per_row: float) -> int | None:
    """Rows after which the per-row saving has paid back `investment_usd`; None when there is
    no measured teacher cost or no saving per row (the student never breaks even)."""
    if teacher_per_row is None:
        return None
    saving = teacher_per_row - student_per_row
    if saving <= 0:
        return None
    return max(0, math.ceil(round(investment_usd / saving, 9)))  # round: 10.0000000001 rows is 10


def money(value: float | None) -> str:
    """Dollars as people read them: cents for a dollar or more, three significant digits below."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:.{digits}f}"


def summarize(*, measurement: dict | None, usd_per_cpu_hour: float, usd_per_gpu_hour: float | None,
              teacher_spend_usd: float, rows_answered: int, teacher_rows_used: int | None,
              training_seconds: float | None, training_device: str | None, quality: dict) -> dict:
    """Every savings number of one run from its inputs (no I/O), with a sentence for each
    that cannot be computed saying why."""
    student_1000 = None if measurement is None else student_usd_per_1000(
        measurement["rows_per_s"], measurement["threads"], usd_per_cpu_hour)
    teacher_row = teacher_usd_per_row(teacher_spend_usd, rows_answered)
    teacher_1000 = None if teacher_row is None else 1000 * teacher_row
    data_usd = None if teacher_row is None or teacher_rows_used is None else teacher_rows_used * teacher_row
    compute_usd = training_compute_usd(training_seconds, training_device,
                                       measurement["threads"] if measurement else None,
                                       usd_per_cpu_hour, usd_per_gpu_hour)
    notes = []
    if measurement is None:
        notes.append("CPU throughput not measured yet: the student's cost per 1,000 predictions needs a measurement "
                     "on this run's held-out rows.")
    if teacher_row is None:
        notes.append("No measured teacher spend: nothing was billed for this project's teacher answers (a recorded "
                     "demo teacher, imported answers or cached answers), so there is no teacher cost to compare with.")
    break_even = None
    if student_1000 is not None and teacher_row is not None:
        if compute_usd is None:
            notes.append(f"Training compute on {training_device or 'an unknown device'} is not priced (no price for "
                         "it, or no training time recorded); the break-even counts the teacher spend alone.")
        if data_usd is None:
            notes.append("The run does not record how many teacher answers it trained on; the break-even counts "
                         "its training compute alone.")
        investment = (data_usd or 0.0) + (compute_usd or 0.0)
        break_even = break_even_rows(investment, teacher_row, student_1000 / 1000)
        if break_even is None:
            notes.append("The student costs as much per row as the teacher or more on this price: it never breaks "
                         "even.")
    return {
        "usd_per_cpu_hour": usd_per_cpu_hour, "throughput": measurement,
        "student_usd_per_1000": student_1000,
        "teacher_spend_usd": teacher_spend_usd, "teacher_rows_answered": rows_answered,
        "teacher_usd_per_1000": teacher_1000,
        "saving_usd_per_1000": None if student_1000 is None or teacher_1000 is None else teacher_1000 - student_1000,
        "teacher_rows_used": teacher_rows_used, "training_data_teacher_usd": data_usd,
        "training_seconds": training_seconds, "training_device": training_device,
        "training_compute_usd": compute_usd, "break_even_rows": break_even,
        **quality, "notes": notes,
    }


def throughput_text(measurement: dict | None) -> str:
    if measurement is None:
        return "not measured"
    if measurement.get("source") == "int8 export":
        return (f"{measurement['rows_per_s']:.1f} rows/s of this int8 export, measured when it was exported on "
                f"{measurement['rows']} held-out rows of this run (labels and confidence, batch {measurement['batch_size']}, "
                f"{measurement['threads']} CPU threads)")
    return (f"{measurement['rows_per_s']:.1f} rows/s measured {measurement['measured_at']} on "
            f"{measurement['rows']} held-out rows of this run (labels and confidence, batch {measurement['batch_size']}, "
            f"{measurement['threads']} CPU threads); stored with the run and reused until measured again")


def fact_rows(s: dict) -> list[list]:
    """(field, value) rows for the run report and the model card."""
    quality = "—" if s.get("accuracy") is None else f"{s['accuracy']:.4f} on {s['graded_rows']} rows with gold"
    agreement = "—" if s.get("agreement") is None else f"{s['agreement']:.4f} on {s['agreement_rows']} rows"
    teacher_1000 = (money(s["teacher_usd_per_1000"]) if s["teacher_usd_per_1000"] is not None else
                    "no measured teacher spend")
    rows = [
        ["CPU throughput (rows/s)", throughput_text(s["throughput"])],
        ["price of a CPU-hour (one vCPU)", money(s["usd_per_cpu_hour"]) + (f" ({s['price_source']})" if s.get("price_source") else "")],
        ["student cost per 1,000 predictions", money(s["student_usd_per_1000"])
         if s["student_usd_per_1000"] is not None else "not measured"],
        ["teacher cost per 1,000 answers", teacher_1000],
        ["teacher spend (billed) / rows answered",
         f"{money(s['teacher_spend_usd']) if s['teacher_spend_usd'] else 'none billed'} / {s['teacher_rows_answered']}"],
        ["saving per 1,000 rows", money(s["saving_usd_per_1000"])],
        ["break-even (rows)", "—" if s["break_even_rows"] is None else f"{s['break_even_rows']:,}"],
        ["student accuracy (held-out)", quality],
        ["student agreement with the teacher (same held-out rows)", agreement],
    ]
    return rows + [["note", n] for n in s["notes"]]


# ---- reading a run (I/O) -----------------------------------------------------------------
def stored_throughput(out_dir: Path | None) -> dict | None:
    """The run's stored measurement, or None (none yet, or unreadable)."""
    path = out_dir / THROUGHPUT_FILE if out_dir else None
    if not path or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return data if data.get("rows_per_s", 0) > 0 and data.get("threads", 0) >= 1 else None
    except (OSError, ValueError, AttributeError):
        return None


def held_out_quality(store, run_id: str) -> dict:
    """Student accuracy (rows with gold) and agreement with the teacher (rows with a teacher
    label) on the run's held-out predictions."""
    return held_out_scores(store.predictions(run_id, "all", limit=10**7))


def measure_throughput(store, run_id: str, rows: int = MEASURE_ROWS, batch_size: int = MEASURE_BATCH) -> dict:
    """Time the run's student on CPU over its held-out rows (labels and their confidence, after one warm-up
    batch) and store the result in the run folder, replacing an earlier one."""
    import time

    import torch

    run = Run.find(store, run_id)
    out = run.require_folder()
    if not (out / "model").exists():
        raise NotFound(f"Run {run_id} has no saved model yet (status {run.job['status']}).")
    texts, choices = held_out_inputs(store, run_id, rows)
    if not texts:
        raise NotFound(f"Run {run_id} has no held-out predictions to measure on (it has not finished its evaluation).")
    student = load_student_model(str(out / "model"), device="cpu")
    student.predict(texts[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations
    started = time.perf_counter()
    student.predict(texts, batch_size=batch_size, choices=choices)
    seconds = time.perf_counter() - started
    measurement = {"rows": len(texts), "seconds": round(seconds, 4), "rows_per_s": len(texts) / seconds,
                   "threads": torch.get_num_threads(), "batch_size": batch_size, "rationale": False, "confidence": True,
                   "device": "cpu", "torch": torch.__version__,
                   "measured_at": dt.datetime.now().isoformat(timespec="seconds")}
    tmp = out / (THROUGHPUT_FILE + ".tmp")
    tmp.write_text(json.dumps(measurement, indent=2))
    os.replace(tmp, out / THROUGHPUT_FILE)
    return measurement


def training_seconds(store, run_id: str, cfg: dict) -> float | None:
    """The training loop's time: rows seen (steps × global batch) ÷ its last logged examples/s."""
    latest = store.latest_metrics_for([run_id])[run_id]
    rate, step = latest.get("examples_per_s"), latest.get("step")
    if not rate or not step:
        return None
    return step * cfg.get("global_batch_size", cfg.get("batch_size", 0)) / rate


def run_savings(store, run_id: str, usd_per_cpu_hour: float | None = None, prices: ComputePrices | None = None,
                measurement: dict | None = None) -> dict:
    """summarize() for one run from what is stored: its throughput measurement (if any), the
    project's billed spend and answered rows, its training rows and time, and its held-out
    predictions. `usd_per_cpu_hour` overrides the price file's; `measurement` the stored
    throughput (an int8 export measures its own)."""
    run = Run.find(store, run_id)  # a run that never wrote a folder: nothing measured
    prices = prices or load_compute_prices()
    cfg = run.config
    by_status = store.count_items(run.project)["by_status"]
    price = prices.usd_per_cpu_hour if usd_per_cpu_hour is None else float(usd_per_cpu_hour)
    result = summarize(
        measurement=measurement or stored_throughput(run.folder), usd_per_cpu_hour=price, usd_per_gpu_hour=prices.usd_per_gpu_hour,
        teacher_spend_usd=store.spend(run.project),
        rows_answered=by_status.get("labeled", 0) + by_status.get("flagged", 0),
        teacher_rows_used=cfg.get("teacher_rows_used"), training_seconds=training_seconds(store, run_id, cfg),
        training_device=cfg.get("device"), quality=held_out_quality(store, run_id))
    result["price_source"] = (f"{prices.source}, {prices.date}" if usd_per_cpu_hour is None
                              else "set on the Results page")
    return result
