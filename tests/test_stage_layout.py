"""The folder tree is the pipeline (kernel < db < jobs < ingest < prompt < label < review < train <
student < results), and the code keeps to it: checked on the source, imports inside functions included."""

import ast
import re

from tests.layout_doc import (CORE, ENTRY_POINTS, PAGE_STAGES, REPO, STAGES, core_imports, first_line,
                              folder_of, may_import, modules, readme_section, where_things_live)

SQL = re.compile(r"\b(SELECT\s.+?\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
                 re.IGNORECASE | re.DOTALL)
MAX_LINES = 450


def test_every_core_module_sits_in_a_stage_folder_or_is_an_entry_point():
    loose = [p.name for p in CORE.glob("*.py") if p.stem not in (*ENTRY_POINTS, "__init__")]
    assert not loose, f"modules outside a stage folder: {loose}"
    folders = {p.name for p in CORE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(STAGES) | set(ENTRY_POINTS), folders - set(STAGES) - set(ENTRY_POINTS)


def test_a_stage_imports_only_the_stages_before_it():
    wrong = []
    for path in modules():
        importer = folder_of(path)
        for line, name in core_imports(path):
            imported = name.split(".")[1]
            if not may_import(importer, imported):
                wrong.append(f"{path.relative_to(REPO)}:{line} ({importer}) imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_import_rule_is_not_vacuous():
    assert may_import("label", "prompt") and may_import("results", "kernel")
    assert not may_import("kernel", "db") and not may_import("prompt", "label")
    assert not may_import("student", "results") and not may_import("label", "cli")
    assert may_import("cli", "results") and may_import("workflow", "train")
    imports = [name for _, name in core_imports(CORE / "label" / "teacher.py")]
    assert any(name.startswith("core.prompt") for name in imports), imports


def sql_strings(path) -> list[tuple[int, str]]:
    """String literals (f-string parts included, docstrings not) that read as SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
            and SQL.search(node.value)]


def test_no_sql_outside_core_db():
    hits = [f"{p.relative_to(REPO)}:{line}: {' '.join(text.split())[:80]}" for p in modules()
            if folder_of(p) != "db" for line, text in sql_strings(p)]
    assert not hits, "\n".join(hits)


def test_the_sql_check_sees_sql_in_any_string():
    assert sql_strings(CORE / "db" / "items.py"), "the store's own SQL must be found"


def test_no_module_is_long():
    files = [*modules(), *(REPO / "ui").glob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py"]
    long = {p.relative_to(REPO).as_posix(): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_every_module_says_what_it_holds():
    silent = [p.relative_to(REPO).as_posix() for p in modules()
              if p != CORE / "__init__.py" and p.name != "__main__.py" and not first_line(p)]
    assert not silent, silent


def test_each_page_has_its_stage_folder():
    pages = {p.name for p in (REPO / "pages").glob("*.py")}
    assert pages == set(PAGE_STAGES) | {"0_Home.py"}  # Home reads core.workflow, the overview of every stage
    for page, stage in PAGE_STAGES.items():
        assert (CORE / stage).is_dir(), stage
        text = (REPO / "pages" / page).read_text(encoding="utf-8")
        assert f"core.{stage}" in text or f"core import {stage}" in text, f"{page} uses nothing from core/{stage}"


def test_readme_where_things_live_is_the_folder_tree():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_section(readme) == where_things_live(), "run: python -m tests.layout_doc --write"


def test_every_path_the_readme_names_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![/\w.])((?:core|ui|pages|bench|tests|data)/[\w/.-]*\w)", readme))
    missing = sorted(p for p in named if not (REPO / p).exists() and "*" not in p and "NNNN" not in p)
    assert not missing, missing
