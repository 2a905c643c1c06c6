"""The code's layout, read from the folder tree: the stage order, who may import whom, and the
README's "Where things live" table, generated from each module's docstring.

    python -m tests.layout_doc           print the table
    python -m tests.layout_doc --write   write it into README.md (tests/test_stage_layout.py checks it)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "core"

# The pipeline, bottom up: a folder may import only itself and the folders before it.
STAGES = ("kernel", "db", "jobs", "ingest", "prompt", "label", "review", "train", "student", "results")
# Entry points read every stage, so they may import anything (nothing in a stage imports them).
ENTRY_POINTS = ("cli", "workflow", "__main__")
# Each page works in one stage (it may import others, but this is where its logic lives).
PAGE_STAGES = {"1_Data.py": "ingest", "2_Prompt_and_budget.py": "prompt", "3_Label.py": "label",
               "4_Review.py": "review", "5_Train.py": "train", "6_Results.py": "results",
               "7_Try_the_student.py": "student"}
START, END = "<!-- where-things-live:start -->", "<!-- where-things-live:end -->"


def folder_of(path: Path) -> str:
    """The stage folder (or entry point) a file under core/ belongs to."""
    return path.relative_to(CORE).with_suffix("").parts[0]


def core_imports(path: Path) -> list[tuple[int, str]]:
    """Every `core.X...` module a file imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module))
            if module == "core":  # `from core import label` names a folder
                found += [(node.lineno, f"core.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.startswith("core.")]


def may_import(importer: str, imported: str) -> bool:
    if importer in ENTRY_POINTS or importer == "__init__":
        return True
    if imported in ENTRY_POINTS:
        return False
    return STAGES.index(imported) <= STAGES.index(importer)


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    return text.replace("|", "\\|")


def modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def where_things_live() -> str:
    """One row per folder (its __init__ docstring), then one per module, in pipeline order."""
    rows = ["| folder / module | what it holds |", "|---|---|"]
    order = [*STAGES, *ENTRY_POINTS]
    by_folder: dict[str, list[Path]] = {}
    for path in modules():
        if path.parent == CORE and path.name == "__init__.py":
            continue
        by_folder.setdefault(folder_of(path), []).append(path)
    for folder in sorted(by_folder, key=order.index):
        paths = by_folder[folder]
        init = CORE / folder / "__init__.py"
        if init in paths:
            rows.append(f"| **`core/{folder}/`** | {first_line(init)} |")
        for path in paths:
            if path.name != "__init__.py":
                rows.append(f"| `{path.relative_to(REPO).as_posix()}` | {first_line(path)} |")
    return "\n".join(rows) + "\n"


def readme_section(readme: str) -> str:
    return readme.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme() -> None:
    readme_path = REPO / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    head, rest = readme.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme_path.write_text(f"{head}{START}\n{where_things_live()}{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme()
    else:
        print(where_things_live(), end="")
