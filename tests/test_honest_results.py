"""Honest results: what a run must beat (the majority-class baseline and the teacher), warnings
for a student that learned one answer, label-only runs shown as such, and the Train page's live
curves. Runs are constructed (job rows, predictions and metrics written through the store), so
the numbers are known and no model is trained."""

import json
import os
import re
from dataclasses import asdict

import pytest
from streamlit.testing.v1 import AppTest

from core.jobs import processes

from core.results import charts, reports
from core.results import runs as results
from core.db import Store
from core.label.teacher import label_project
from core.train.trainer import TrainConfig
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import import_csv, open_page

# Training rows: billing 3, shipping 2 -> the majority class is billing. Held-out (test split):
# billing, shipping, shipping, technical -> always answering billing is right on 1 of 4.
# The teacher answers the word after "says": right on h1, h2, h4, wrong on h3 -> 3 of 4.
CSV = ("id,text,label,split\n"
       "t1,card charged says billing,billing,train\n"
       "t2,refund late says billing,billing,train\n"
       "t3,invoice wrong says billing,billing,train\n"
       "t4,parcel stuck says shipping,shipping,train\n"
       "t5,courier lost says shipping,shipping,train\n"
       "h1,double charge says billing,billing,test\n"
       "h2,late parcel says shipping,shipping,test\n"
       "h3,lost box says billing,shipping,test\n"
       "h4,app crash says technical,technical,test\n")
GOLD = {"h1": "billing", "h2": "shipping", "h3": "shipping", "h4": "technical"}
TEACHER = {"h1": "billing", "h2": "shipping", "h3": "billing", "h4": "technical"}
PROJECT = "honest"


def says(body: dict) -> str:
    label = re.search(r"says (\w+)", body["messages"][-1]["content"]).group(1)
    return f"Answer: {label}\nRationale: The ticket says {label}."


def constructed(store: Store) -> None:
    import_csv(store, CSV, project=PROJECT, split_field="split")
    server = FakeAnthropic(responder=says).start()
    try:
        label_project(store, PROJECT, api_key="k", base_url=server.url)
    finally:
        server.stop()


def finished_run(store: Store, predictions: dict[str, str], status: str = "completed", **config) -> str:
    """A training run as the store records it: config, held-out predictions, metrics, final status."""
    cfg = asdict(TrainConfig(project=PROJECT, student="tiny-random", **config)) | {"teacher_rows_used": 5}
    job_id = store.create_job(PROJECT, "train", cfg)
    rows = [{"row_id": r, "prediction": p, "raw": p, "rationale": None, "gold": GOLD[r], "teacher": TEACHER[r],
             "correct": p == GOLD[r], "agrees_teacher": p == TEACHER[r]} for r, p in predictions.items()]
    store.save_predictions(job_id, PROJECT, rows)
    accuracy = sum(r["correct"] for r in rows) / len(rows)
    store.add_metrics(job_id, [(5, "train_loss", 2.0), (5, "label_loss", 2.0), (5, "test_accuracy", accuracy / 2),
                               (10, "train_loss", 1.0), (10, "label_loss", 1.0), (10, "test_accuracy", accuracy),
                               (10, "teacher_agreement", sum(r["agrees_teacher"] for r in rows) / len(rows))])
    store.transition_job(job_id, status, ("queued",))
    return job_id


ONE_CLASS = {r: "billing" for r in GOLD}                                           # 0.25: the baseline
GOOD = {"h1": "billing", "h2": "shipping", "h3": "shipping", "h4": "billing"}     # 0.75


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("honest") / "h.duckdb")
    constructed(store)
    runs = {"one_class": finished_run(store, ONE_CLASS),
            "good": finished_run(store, GOOD),
            "label_only": finished_run(store, GOOD, objective="standard")}
    return store, runs


def test_baseline_and_teacher_accuracy_on_the_held_out_rows(honest):
    store, runs = honest
    ref = results.baselines(store, PROJECT)
    assert ref["majority_label"] == "billing" and ref["rows"] == 4 and ref["same_rows"]
    assert ref["majority_baseline"] == pytest.approx(0.25)
    assert ref["teacher_accuracy"] == pytest.approx(0.75)
    assert set(ref["runs"]) == set(runs.values())
    narrowed = results.baselines_of(ref, [runs["good"]])
    assert list(narrowed["runs"]) == [runs["good"]] and narrowed["majority_baseline"] == pytest.approx(0.25)


def test_baselines_follow_the_runs_split_and_are_none_without_gold(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    lines = ["id,text,label"] + [f"{i},text {i},{'a' if i % 3 else 'b'}" for i in range(30)]
    import_csv(store, "\n".join(lines) + "\n", project="seeded")
    runs = []
    for seed in (0, 1):  # training seeds share the held-out rows; two split seeds hold out their own
        cfg = asdict(TrainConfig(project="seeded", seed=seed + 5, test_fraction=0.2))
        store.create_job("seeded", "train", cfg)
    assert results.baselines(store, "seeded")["same_rows"] is True
    import_csv(store, "\n".join(lines) + "\n", project="split")
    for seed in (0, 1):
        cfg = asdict(TrainConfig(project="split", seed=seed, split_seed=seed, test_fraction=0.2))
        runs.append(store.create_job("split", "train", cfg))
    ref = results.baselines(store, "split")
    # the majority is "a" (2 of 3 rows); each split seed holds out its own 6 rows
    assert {r["majority_label"] for r in ref["runs"].values()} == {"a"}
    assert all(r["rows"] == 6 for r in ref["runs"].values())
    assert ref["teacher_accuracy"] is None  # nothing labeled by a teacher
    # different seeds hold out different rows: the top-level numbers are the runs' mean, unlabelled
    assert ref["same_rows"] is False and ref["majority_label"] is None and ref["rows"] is None
    per_run = [r["majority_baseline"] for r in ref["runs"].values()]
    assert ref["majority_baseline"] == pytest.approx(sum(per_run) / 2)
    import_csv(store, "id,text\n1,x\n2,y\n3,z\n", project="nogold", label_field=None,
               labels=["x", "y"])
    store.create_job("nogold", "train", asdict(TrainConfig(project="nogold")))
    assert results.baselines(store, "nogold") is None


def test_one_class_student_and_no_better_than_baseline_are_warned(honest):
    store, runs = honest
    table = {r["run"]: r for r in results.run_table(store, PROJECT)}
    ref = results.baselines(store, PROJECT)
    warned = results.run_warnings(store, table[runs["one_class"]], ref)
    assert len(warned) == 2
    assert "same answer, 'billing', to all 4 held-out rows" in warned[0]
    assert "no better than always answering 'billing'" in warned[1]
    assert results.run_warnings(store, table[runs["good"]], ref) == []
    assert results.run_warnings(store, table[runs["good"]]) == []  # computes its own baseline
    md = reports.run_report(store, runs["one_class"], "md")
    assert "## Warnings" in md and "learned one answer" in md
    assert "| majority-class baseline (always 'billing', same held-out rows) | 0.25 |" in md
    assert "| teacher accuracy against gold (same held-out rows) | 0.75 |" in md
    assert "## Warnings" not in reports.run_report(store, runs["good"], "md")


def test_a_running_run_is_not_warned_about(honest):
    store, _ = honest
    row = {"run": "nope", "status": "running", "test_accuracy": 0.0}
    assert results.run_warnings(store, row) == []


def test_label_only_runs_show_no_rationale_settings(honest):
    store, runs = honest
    table = {r["run"]: r for r in results.run_table(store, PROJECT)}
    label_only, multi = table[runs["label_only"]], table[runs["good"]]
    assert label_only["objective"] == "standard"  # stored value kept for the CLI and old runs
    assert label_only["alpha"] is None and label_only["rationale_fraction"] is None
    assert label_only["rationale_loss"] is None
    assert multi["alpha"] == 0.5 and multi["rationale_fraction"] == 1.0 and multi["rationale_loss"] == "mask"
    shown = {r["run"]: r for r in results.display_table(list(table.values()))}
    assert shown[runs["label_only"]]["objective"] == "label-only"
    assert shown[runs["label_only"]]["alpha"] == shown[runs["label_only"]]["rationale_fraction"] == "—"
    assert shown[runs["good"]]["objective"] == "multi-task" and shown[runs["good"]]["alpha"] == "0.5"
    md = reports.run_report(store, runs["label_only"], "md")
    assert "| objective | label-only (stored as standard) |" in md
    assert "| alpha | — |" in md and "| rationale_fraction | — |" in md and "| rationale_missing | — |" in md
    assert "| alpha | 0.5 |" in reports.run_report(store, runs["good"], "md")
    assert results.setting_text({"objective": "multitask", "rationale_missing": "empty"}, "rationale_missing") == \
        "empty target"


def _spec_text(chart) -> str:
    return json.dumps(chart.to_dict())


def test_accuracy_charts_draw_the_baseline_and_teacher_as_labelled_rules(honest):
    store, runs = honest
    ids = list(runs.values())
    table = results.run_table(store, PROJECT)
    ref = results.baselines(store, PROJECT)
    for chart in (charts.accuracy_steps_chart(store, ids, ref), charts.fraction_chart(table, ref),
                  charts.cost_chart(table, ref)):
        spec = _spec_text(chart)
        assert '"type": "rule"' in spec or '"mark": "rule"' in spec
        assert "majority-class baseline (always 'billing'): 0.25" in spec
        assert "teacher accuracy against gold: 0.75" in spec
        assert b"majority-class baseline" in charts.chart_bytes(chart, "svg")
    fraction = _spec_text(charts.fraction_chart(table, ref))
    assert "label-only (1 run): 0.75" in fraction  # label-only runs: a line, not a point at fraction 0
    assert "multi-task" in fraction and '"standard"' not in fraction
    plain = _spec_text(charts.accuracy_steps_chart(store, ids))
    assert "majority-class baseline" not in plain  # no reference given, no rules


# ---- pages ------------------------------------------------------------------------------

def page_charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def chart_text(chart) -> str:
    """A chart element's spec and its datasets' bytes (labels live in the data)."""
    return chart.proto.spec + "".join(d.data.data.decode("utf-8", "replace") for d in chart.proto.datasets)


def test_results_page_shows_baseline_rules_and_warnings(app_store):
    constructed(app_store)
    one_class = finished_run(app_store, ONE_CLASS)
    label_only = finished_run(app_store, GOOD, objective="standard")
    at = open_page("pages/6_Results.py", PROJECT)
    assert not at.exception, at.exception
    metrics = {m.label: m for m in at.metric}
    assert metrics["Majority-class baseline"].value == "0.250" and metrics["Majority-class baseline"].proto.help
    assert metrics["Teacher accuracy (vs gold)"].value == "0.750"
    warnings = [w.value for w in at.warning]
    assert any("same answer" in w and one_class in w.replace("\\", "") for w in warnings), warnings
    assert any("no better than always answering" in w for w in warnings)
    assert len(warnings) == len(set(warnings))  # each warning once (the run's detail points to it)
    steps = next(c for c in page_charts(at) if "Accuracy over steps: validation rows" in c.proto.spec)
    assert '"rule"' in steps.proto.spec and "majority-class baseline (always 'billing'): 0.25" in chart_text(steps)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc[label_only, "alpha"] == "—" and table.loc[label_only, "objective"] == "label-only"
    assert table.loc[one_class, "rationale_fraction"] == "1"
    assert all(s.proto.help for s in at.subheader if s.value.startswith("Accuracy"))


def test_train_page_shows_live_curves_of_a_running_job(app_store):
    constructed(app_store)
    cfg = asdict(TrainConfig(project=PROJECT, student="tiny-random", max_steps=50, objective="standard"))
    job_id = app_store.create_job(PROJECT, "train", cfg, **processes.identity(os.getpid()))  # "runs" in this process
    app_store.transition_job(job_id, "running", ("queued",))
    app_store.add_metrics(job_id, [(s, name, 2.0 / s) for s in range(1, 6) for name in ("train_loss", "label_loss")]
                          + [(5, "test_accuracy", 0.5), (5, "examples_per_s", 4.0)])
    at = open_page("pages/5_Train.py", PROJECT)
    assert not at.exception, at.exception
    assert "Live training curves" in [s.value for s in at.subheader]
    specs = [c.proto.spec for c in page_charts(at)]
    assert any("Training loss per task" in s for s in specs)
    assert any("Accuracy over steps: validation rows" in s for s in specs)  # the accuracy point at step 5
    runs = at.dataframe[0].value.set_index("run")
    assert runs.loc[job_id, "alpha"] == runs.loc[job_id, "rationale_fraction"] == "—"
    assert runs.loc[job_id, "objective"] == "label-only"
    assert runs.loc[job_id, "finishes in"] == "about 2 min"  # 45 steps x 8 rows at 4 rows/s: 90 s

    app_store.transition_job(job_id, "completed", ("running",))
    at.run()
    assert not at.exception
    assert "Live training curves" not in [s.value for s in at.subheader]  # nothing runs: no live area
