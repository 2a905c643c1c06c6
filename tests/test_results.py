"""Results: run table, charts as PNG/SVG, run reports, model export, sweeps."""

import json
from dataclasses import asdict

import pytest

from core import jobs
from core.kernel import paths
from core.train import jobs as train_jobs
from core.kernel.errors import ConfigError
from core.results.charts import chart_bytes, confusion_chart, cost_chart, fraction_chart, loss_chart
from core.results.model_export import export_model
from core.results.reports import run_report
from core.results.runs import run_table
from core.label.teacher import label_project
from core.student.predict import load_student_model
from core.train.trainer import TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fake_module):
    from core.db import Store
    from tests.helpers import many_tickets

    store = Store(tmp_path_factory.mktemp("results") / "r.duckdb")
    many_tickets(store, 30)
    label_project(store, "tickets", api_key="k", base_url=fake_module.url)
    run_ids = []
    for objective, fraction in [("multitask", 1.0), ("multitask", 0.5), ("standard", 0.0)]:
        cfg = TrainConfig(project="tickets", student="tiny-random", objective=objective, rationale_fraction=fraction,
                          max_steps=3, batch_size=4, log_every=1, label_source="teacher")
        job_id = store.create_job("tickets", "train", asdict(cfg))
        store.update_job(job_id, out_dir=str(paths.job_dir(store, job_id)))
        jobs.run_job(store, job_id)
        run_ids.append(job_id)
    return store, run_ids


def test_run_table_compares_runs_with_accuracy_and_teacher_cost(trained):
    store, run_ids = trained
    table = {r["run"]: r for r in run_table(store, "tickets")}
    assert set(table) == set(run_ids)
    full, half, standard = (table[r] for r in run_ids)
    assert all(r["status"] == "completed" and 0 <= r["test_accuracy"] <= 1 for r in table.values())
    assert full["rows_with_rationale"] == full["train_rows"] > half["rows_with_rationale"] > 0
    # a label-only run has no rationale task: its rationale settings do not apply (None, shown as "—")
    assert standard["rationale_fraction"] is None and standard["alpha"] is None and standard["rows_with_rationale"] == 0
    # every run used teacher labels for all its rows, so all three paid for the same answers
    assert full["teacher_usd"] == standard["teacher_usd"] > 0


def test_charts_export_as_svg_and_png(trained):
    store, run_ids = trained
    table = run_table(store, "tickets")
    for chart in (loss_chart(store, run_ids), fraction_chart(table), cost_chart(table)):
        assert chart_bytes(chart, "svg").lstrip().startswith(b"<svg")
    assert chart_bytes(loss_chart(store, run_ids), "png")[:8] == b"\x89PNG\r\n\x1a\n"
    matrix = json.loads((paths.job_dir(store, run_ids[0]) / "output" / "confusion.json").read_text())
    assert b"<svg" in chart_bytes(confusion_chart(matrix), "svg")
    with pytest.raises(ConfigError):
        chart_bytes(loss_chart(store, run_ids), "gif")


def test_run_report_holds_config_provenance_and_metrics(trained):
    store, run_ids = trained
    md = run_report(store, run_ids[1], "md")
    assert f"# Run report: {run_ids[1]}" in md
    assert "| rationale_fraction | 0.5 |" in md and "test_accuracy" in md
    assert "## Teacher provenance" in md and "claude" in md
    page = run_report(store, run_ids[1], "html")
    assert page.startswith("<!doctype html>") and "<td>rationale_fraction</td>" in page
    assert "<script" not in page


def test_export_model_writes_a_loadable_folder_with_a_model_card(trained, tmp_path, monkeypatch):
    store, run_ids = trained
    result = export_model(store, run_ids[0], str(tmp_path / "student"))
    assert {"README.md", "config.json", "train_config.json"} <= set(result["files"])
    card = (tmp_path / "student" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "Teacher provenance" in card
    assert load_student_model(tmp_path / "student").predict(["my card was charged twice"])[0]["label"] is not None
    with pytest.raises(ConfigError, match="not empty"):
        export_model(store, run_ids[0], str(tmp_path / "student"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        export_model(store, run_ids[0], str(tmp_path / "again"), push_to="me/student")
    assert (tmp_path / "again" / "config.json").exists()  # saved locally before the push was refused


def test_sweep_grid_skips_duplicate_label_only_runs():
    configs = train_jobs.sweep_configs({"project": "p"}, {"objective": ["multitask", "standard"],
                                                    "rationale_fraction": [0.25, 0.5, 1.0], "seed": [0, 1]})
    assert len(configs) == 3 * 2 + 1 * 2
    with pytest.raises(Exception, match="cannot sweep"):
        train_jobs.sweep_configs({}, {"learning_rate": [1e-3]})


def test_sweep_runs_its_grid_one_after_another_in_the_background(tickets, fake):
    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    base = {"project": "tickets", "student": "tiny-random", "max_steps": 2, "batch_size": 2, "log_every": 1,
            "label_source": "teacher"}
    sweep_id = train_jobs.start_sweep(tickets, "tickets", base, {"objective": ["multitask", "standard"],
                                                           "rationale_fraction": [0.5, 1.0]})
    job = jobs.wait(tickets, sweep_id, timeout_s=300)
    assert job["status"] == "completed", job["error"]
    children = tickets.child_jobs(sweep_id)
    assert len(children) == 3 and all(c["status"] == "completed" for c in children)
    assert job["done"] == 3
    starts = sorted(c["started_at"] for c in children)
    finishes = sorted(c["finished_at"] for c in children)
    assert all(finishes[i] <= starts[i + 1] for i in range(2))  # sequential, not concurrent
    table = run_table(tickets, "tickets")
    assert {r["sweep"] for r in table} == {sweep_id}
