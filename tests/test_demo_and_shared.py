import json

import pytest

from core.label.answers import import_teacher_outputs
from core.label.demo import ensure_demo
from core.ingest.files import ColumnMapping, import_source, open_file
from tests.helpers import SHARED


def test_demo_is_labeled_entirely_from_the_recorded_cache_without_a_key(store):
    name = ensure_demo(store)
    counts = store.count_items(name)
    assert counts["total"] == 400 and counts["by_status"].get("unlabeled", 0) == 0
    stats = store.teacher_stats(name)
    assert stats["cache_hits"] == 400 and stats["billed_calls"] == 0 and stats["spend_usd"] == 0
    assert 0.85 < stats["teacher_accuracy"] < 0.97  # a realistic, imperfect teacher
    assert store.get_project(name).demo_teacher
    sources = store.query("SELECT DISTINCT source FROM teacher_cache")
    assert sources == [{"source": "recorded-demo"}]
    assert ensure_demo(store) == name and store.count_items(name)["total"] == 400  # idempotent


def _import_shared(store, name, rows_file, task, mapping, llm_files):
    import_source(store, open_file(rows_file), name, task, mapping, template="{" + mapping.input_fields[0] + "}",
                  model="m")
    completions = []
    for path in llm_files:
        completions += [(None, text) for text in json.loads(path.read_text())]
    return import_teacher_outputs(store, name, completions)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_palm_completions_on_commonsenseqa_and_svamp(store):
    cqa = _import_shared(store, "cqa", SHARED / "cqa" / "cqa_train.jsonl", "multiple-choice",
                         ColumnMapping(input_fields=["question"], id_field="id", label_field="answer",
                                       choices_field="choices"),
                         [SHARED / "cqa" / "llm" / f"train_CoT_{i}.json" for i in range(10)])
    svamp = _import_shared(store, "svamp", SHARED / "svamp" / "svamp_train.jsonl", "numeric",
                           ColumnMapping(input_fields=["input"], label_field="label"),
                           [SHARED / "svamp" / "llm" / f"train_CoT_{i}.json" for i in range(2)])
    print(f"\nCQA: {cqa}\nSVAMP: {svamp}")
    assert cqa["rows"] == 9741 and svamp["rows"] == 800
    # the parser must read real teacher text well: these are far above chance (0.2 for CQA)
    assert cqa["teacher_accuracy"] >= 0.75 and cqa["flagged"] / cqa["rows"] <= 0.03
    assert svamp["teacher_accuracy"] >= 0.74 and svamp["flagged"] / svamp["rows"] <= 0.04


@pytest.mark.shared
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_paper_bench_imports_cqa_splits_and_grades_a_student_on_the_gold_test_split(store, tmp_path):
    from bench.paper import import_cqa
    from core.train.trainer import TrainConfig, train_project

    summary = import_cqa(store, train_rows=40)
    assert summary["rows"] == 40
    counts = store.count_items("cqa")
    assert counts["total"] == 40 + 1221
    out = train_project(store, TrainConfig(project="cqa", student="tiny-random", label_source="teacher", max_steps=2,
                                   batch_size=4, eval_limit=10, out_dir=str(tmp_path / "run")), job_id="paper")
    assert out["status"] == "completed" and 0 <= out["test_accuracy"] <= 1
    graded = store.predictions("paper")
    assert len(graded) == 10 and all(p["gold"] for p in graded)  # the test split, graded against gold
