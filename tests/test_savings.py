"""What the student saves: the arithmetic on hand-computed numbers, the price file, the
zero-spend case, a real throughput measurement, and the savings facts in the model card."""

import json
import math

import pytest

from core.kernel import paths

from core.results import savings
from core.kernel.errors import ConfigError, NotFound, PriceFileError
from core.results.reports import model_card, run_facts, run_report
from core.results.savings import (
    break_even_rows,
    money,
    student_usd_per_1000,
    summarize,
    teacher_usd_per_row,
    training_compute_usd,
)
from core.label.teacher import label_project

MEASURED = {"rows_per_s": 10, "threads": 4, "rows": 200, "seconds": 20.0, "batch_size": 16,
            "measured_at": "2026-11-20T10:00:00"}
QUALITY = {"held_out_rows": 10, "accuracy": 0.8, "graded_rows": 10, "agreement": 0.9, "agreement_rows": 10}


# ---- arithmetic ---------------------------------------------------------------------------
def test_student_cost_per_1000_from_throughput_threads_and_price():
    # 1,000 rows at 10 rows/s = 100 s on 4 threads = 400 thread-seconds = 1/9 CPU-hour; at $0.09 = $0.01
    assert student_usd_per_1000(10, 4, 0.09) == pytest.approx(0.01)
    # 50 rows/s on 2 threads at $0.0408: 20 s x 2 = 40 thread-seconds = $0.0408 * 40 / 3600
    assert student_usd_per_1000(50, 2, 0.0408) == pytest.approx(0.000453333, rel=1e-6)
    assert student_usd_per_1000(20, 4, 0.09) == pytest.approx(0.005)  # twice as fast: half the cost
    with pytest.raises(ConfigError):
        student_usd_per_1000(0, 2, 0.04)
    with pytest.raises(ConfigError):
        student_usd_per_1000(10, 2, -1)


def test_teacher_cost_per_row_is_spend_over_answered_rows_and_none_without_spend():
    assert teacher_usd_per_row(2.0, 500) == pytest.approx(0.004)
    assert teacher_usd_per_row(0.0, 400) is None      # the demo: nothing billed, no measured cost
    assert teacher_usd_per_row(1.0, 0) is None         # spend but no answered row: no per-row cost


def test_break_even_rows_on_hand_computed_numbers():
    # investment $1.29, saving per row $0.004 - $0.00001 = $0.00399: 1.29 / 0.00399 = 323.3 -> 324 rows
    assert break_even_rows(1.29, 0.004, 0.00001) == 324
    # exactly 100 rows (0.3 / 0.003 is 99.99999999999999 in floating point): not 101
    assert break_even_rows(0.3, 0.003, 0.0) == 100
    assert break_even_rows(0.0, 0.003, 0.001) == 0      # nothing to pay back
    assert break_even_rows(1.0, 0.001, 0.002) is None   # the student costs more per row: never
    assert break_even_rows(1.0, 0.001, 0.001) is None   # the same per row: never
    assert break_even_rows(1.0, None, 0.0) is None      # no measured teacher cost


def test_training_compute_is_priced_per_device():
    # 900 s on 4 CPU threads = 1 CPU-hour
    assert training_compute_usd(900, "cpu", 4, 0.09, None) == pytest.approx(0.09)
    assert training_compute_usd(1800, "cuda:0", 4, 0.09, 2.0) == pytest.approx(1.0)  # half a GPU-hour at $2
    assert training_compute_usd(1800, "cuda", 4, 0.09, None) is None                # no GPU price: not priced
    assert training_compute_usd(None, "cpu", 4, 0.09, None) is None


def test_summarize_puts_the_numbers_together():
    s = summarize(measurement=MEASURED, usd_per_cpu_hour=0.09, usd_per_gpu_hour=None,
                  teacher_spend_usd=2.0, rows_answered=500, teacher_rows_used=300, training_seconds=900,
                  training_device="cpu", quality=QUALITY)
    assert s["student_usd_per_1000"] == pytest.approx(0.01)
    assert s["teacher_usd_per_1000"] == pytest.approx(4.0)
    assert s["saving_usd_per_1000"] == pytest.approx(3.99)
    assert s["training_data_teacher_usd"] == pytest.approx(1.2)   # 300 rows x $0.004
    assert s["training_compute_usd"] == pytest.approx(0.09)       # 900 s x 4 threads at $0.09/h
    assert s["break_even_rows"] == 324                            # (1.2 + 0.09) / 0.00399 = 323.3
    assert s["notes"] == [] and s["accuracy"] == 0.8 and s["agreement"] == 0.9
    # a dearer CPU-hour raises the student's cost and moves the break-even later
    dear = summarize(measurement=MEASURED, usd_per_cpu_hour=9.0, usd_per_gpu_hour=None, teacher_spend_usd=2.0,
                     rows_answered=500, teacher_rows_used=300, training_seconds=900, training_device="cpu",
                     quality=QUALITY)
    assert dear["student_usd_per_1000"] == pytest.approx(1.0)
    # (1.2 + 9.0) / (0.004 - 0.001) = 3400
    assert dear["break_even_rows"] == 3400


def test_zero_spend_says_there_is_no_measured_teacher_cost():
    s = summarize(measurement=MEASURED, usd_per_cpu_hour=0.09, usd_per_gpu_hour=None,
                  teacher_spend_usd=0.0, rows_answered=400, teacher_rows_used=300, training_seconds=900,
                  training_device="cpu", quality=QUALITY)
    assert s["student_usd_per_1000"] == pytest.approx(0.01)
    assert s["teacher_usd_per_1000"] is None and s["saving_usd_per_1000"] is None and s["break_even_rows"] is None
    assert any(n.startswith("No measured teacher spend") for n in s["notes"])
    rows = {k: v for k, v in savings.fact_rows(s) if k != "note"}
    assert rows["teacher cost per 1,000 answers"] == "no measured teacher spend"
    assert rows["break-even (rows)"] == "—" and rows["saving per 1,000 rows"] == "—"
    text = json.dumps(savings.fact_rows(s))
    assert "inf" not in text and "nan" not in text.lower()


def test_a_gpu_run_without_a_gpu_price_breaks_even_on_teacher_spend_alone_and_says_so():
    s = summarize(measurement=MEASURED, usd_per_cpu_hour=0.09, usd_per_gpu_hour=None,
                  teacher_spend_usd=2.0, rows_answered=500, teacher_rows_used=300, training_seconds=900,
                  training_device="cuda", quality=QUALITY)
    assert s["training_compute_usd"] is None
    assert s["break_even_rows"] == math.ceil(1.2 / 0.00399)  # 301
    assert any("not priced" in n for n in s["notes"])


def test_money_reads_like_money():
    assert money(4.0) == "$4.00" and money(1234.5) == "$1,234.50"
    assert money(0.01) == "$0.0100" and money(0.000453333) == "$0.000453"
    assert money(None) == "—" and money(0) == "$0"


def test_compute_price_file_gives_a_source_a_date_and_a_positive_price(tmp_path, monkeypatch):
    prices = savings.load_compute_prices()
    assert prices.usd_per_cpu_hour > 0 and prices.source.startswith("https://") and prices.date
    with pytest.raises(PriceFileError, match="source and a date"):
        savings.parse_compute_prices("[cpu]\nusd_per_cpu_hour = 0.04\n")
    with pytest.raises(PriceFileError, match="positive"):
        savings.parse_compute_prices('[meta]\nsource = "x"\ndate = "2026"\n[cpu]\nusd_per_cpu_hour = 0\n')
    moved = tmp_path / "compute.toml"
    moved.write_text('[meta]\nsource = "mine"\ndate = "2026-01-01"\n[cpu]\nusd_per_cpu_hour = 0.5\n'
                     '[gpu]\nusd_per_gpu_hour = 3.0\n')
    monkeypatch.setenv(savings.COMPUTE_PRICES_ENV, str(moved))
    assert savings.load_compute_prices() == savings.ComputePrices(0.5, 3.0, "mine", "2026-01-01")


# ---- a real run ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory, fake_module):
    from core.db import Store
    from tests.helpers import many_tickets

    store = Store(tmp_path_factory.mktemp("savings") / "s.duckdb")
    many_tickets(store, 30)
    label_project(store, "tickets", api_key="k", base_url=fake_module.url)
    from tests.helpers import trained_run

    return store, trained_run(store, "tickets")


def test_run_savings_uses_the_projects_billed_spend_and_held_out_predictions(run):
    store, job_id = run
    s = savings.run_savings(store, job_id, usd_per_cpu_hour=0.05)
    spend = store.spend("tickets")
    assert spend > 0 and s["teacher_rows_answered"] == 30
    assert s["teacher_usd_per_1000"] == pytest.approx(1000 * spend / 30)
    preds = store.predictions(job_id, "all", limit=1000)
    assert s["held_out_rows"] == len(preds) == 6  # 20% of 30 rows held out
    assert s["accuracy"] == pytest.approx(sum(p["correct"] for p in preds) / 6)
    assert s["agreement"] == pytest.approx(sum(p["agrees_teacher"] for p in preds) / 6)
    assert s["training_device"] == "cpu" and s["training_seconds"] > 0


def test_model_card_holds_the_savings_facts_before_and_after_a_measurement(run):
    store, job_id = run
    (paths.run_dir(store.get_job(job_id)) / savings.THROUGHPUT_FILE).unlink(missing_ok=True)
    card = model_card(run_facts(store, job_id))
    assert "## What the student saves" in card
    assert "| CPU throughput (rows/s) | not measured |" in card
    assert "| student cost per 1,000 predictions | not measured |" in card
    assert "CPU throughput not measured yet" in card
    measured = savings.measure_throughput(store, job_id)
    assert measured["rows"] == 6 and measured["rows_per_s"] > 0 and measured["threads"] >= 1
    assert savings.stored_throughput(paths.run_dir(store.get_job(job_id))) == measured  # stored, and reused
    facts = run_facts(store, job_id)
    s = facts["savings"]
    price = savings.load_compute_prices().usd_per_cpu_hour
    expected = 1000 / measured["rows_per_s"] / 3600 * measured["threads"] * price
    assert s["student_usd_per_1000"] == pytest.approx(expected)
    card = model_card(facts)
    assert f"| student cost per 1,000 predictions | {money(expected)} |" in card
    assert f"| teacher cost per 1,000 answers | {money(s['teacher_usd_per_1000'])} |" in card
    assert f"{measured['rows_per_s']:.1f} rows/s measured" in card
    assert s["break_even_rows"] is not None and f"| break-even (rows) | {s['break_even_rows']:,} |" in card
    assert "student agreement with the teacher" in run_report(store, job_id, "html")


def test_measuring_a_run_without_predictions_is_a_clear_error(run):
    store, _ = run
    empty = store.create_job("tickets", "train", {"project": "tickets"})
    store.update_job(empty, out_dir=str(paths.job_dir(store, empty)))
    with pytest.raises(NotFound, match="no saved model"):
        savings.measure_throughput(store, empty)


# ---- the Results page ---------------------------------------------------------------------
def test_results_page_measures_throughput_prices_it_and_says_the_demo_has_no_spend(app_store):
    from streamlit.testing.v1 import AppTest

    from core.label.demo import ensure_demo
    from tests.helpers import REPO

    ensure_demo(app_store)
    from tests.helpers import trained_run

    job_id = trained_run(app_store, "support-tickets-demo", max_steps=2, eval_limit=8)
    at = AppTest.from_file(str(REPO / "pages/6_Results.py"), default_timeout=120)
    at.query_params["project"] = "support-tickets-demo"
    at.run()
    assert not at.exception, at.exception
    def metric(label: str) -> str:
        return next(m.value for m in at.metric if m.label == label)

    assert metric("Student, per 1,000 rows") == "not measured"
    assert metric("Teacher, per 1,000 rows") == "no measured spend"   # the recorded demo teacher bills nothing
    assert metric("Break-even (rows)") == "—"
    assert any("No measured teacher spend" in i.value for i in at.info)
    preds = app_store.predictions(job_id, "all", limit=100)
    assert metric("Student accuracy") == f"{sum(p['correct'] for p in preds) / len(preds):.3f}"

    at.button(key="measure_throughput").click().run()
    assert not at.error, [e.value for e in at.error]
    measured = savings.stored_throughput(paths.run_dir(app_store.get_job(job_id)))
    assert measured["rows"] == 8
    default = savings.load_compute_prices().usd_per_cpu_hour
    assert at.number_input(key="cpu_hour_usd").value == default
    def per_1000(price: float) -> float:
        return 1000 / measured["rows_per_s"] / 3600 * measured["threads"] * price

    assert metric("Student, per 1,000 rows") == money(per_1000(default))
    at.number_input(key="cpu_hour_usd").set_value(1.0).run()
    assert metric("Student, per 1,000 rows") == money(per_1000(1.0))
    assert any("set on the Results page" in c.value for c in at.caption)
