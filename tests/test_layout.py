"""The layout's promises, checked on the source: each rule has one home."""

import re

from core import jobs
from core.db import Store
from tests.helpers import REPO

APP_FILES = [REPO / "app.py", *sorted((REPO / "ui").glob("*.py")), *sorted((REPO / "pages").glob("*.py"))]
CORE_FILES = sorted((REPO / "core").rglob("*.py"))
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
                 re.IGNORECASE)


def test_pages_hold_no_sql_and_core_never_imports_streamlit():
    for path in APP_FILES:
        hits = [line for line in path.read_text(encoding="utf-8").splitlines() if SQL.search(line)]
        assert not hits, f"SQL in {path.name}: {hits}"
    for path in CORE_FILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import streamlit|from streamlit)", text, re.MULTILINE), path


def test_job_status_is_written_only_by_core_jobs(store: Store):
    callers = [p.relative_to(REPO).as_posix() for p in [*CORE_FILES, *APP_FILES]
               if "transition_job(" in p.read_text(encoding="utf-8")]
    assert sorted(callers) == ["core/db/jobs.py", "core/jobs/lifecycle.py"]
    writes = [p.relative_to(REPO).as_posix() for p in CORE_FILES
              if re.search(r"UPDATE\s+jobs\s+SET[^\"]*\bstatus\s*=", p.read_text(encoding="utf-8"))]
    assert writes == ["core/db/jobs.py"]  # the one statement transition_job runs
    job_id = jobs.create_job(store, "p", "label", {})
    try:
        store.update_job(job_id, status="completed")
    except ValueError as exc:
        assert "status" in str(exc)
    else:
        raise AssertionError("update_job must not set a status")


def test_the_run_folder_is_computed_in_one_place():
    defining = [p.relative_to(REPO).as_posix() for p in CORE_FILES
                if re.search(r'["/]\s*"output"|/ "output"', p.read_text(encoding="utf-8"))]
    assert defining == ["core/kernel/paths.py"], defining
