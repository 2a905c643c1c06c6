"""The Data page's Hugging Face path, driven through its widgets: folder and split, preview and row
count, the mapping form, the import; and a refused source shown as an error, the database unchanged."""


import datasets
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import REPO

HF = "Hugging Face dataset (folder or id)"


def save_dataset(path):
    ds = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "text": ["card charged twice", "app crashes", "lost"],
                                     "label": ["billing", "technical", "shipping"]})
    datasets.DatasetDict({"train": ds, "test": ds.select([2])}).save_to_disk(str(path))
    return path


@pytest.fixture
def folder(app_store, tmp_path):
    """A dataset folder inside the app's workspace (the folder of its database): the page reads there."""
    import shutil

    from core.kernel.paths import workspace_dir

    path = save_dataset(workspace_dir(app_store) / f"tickets_ds_{tmp_path.name}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def by_label(widgets, label: str):
    return next(w for w in widgets if w.label == label)


def open_dataset(folder, split: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages/1_Data.py"), default_timeout=60).run()
    at.radio(key="data_source").set_value(HF).run()
    at.text_input(key="hf_ref").set_value(str(folder)).run()
    return at.text_input(key="hf_split").set_value(split).run()


def test_a_dataset_folder_is_previewed_mapped_and_imported(app_store, folder):
    at = open_dataset(folder, "train")
    assert not at.exception and not at.error
    assert any(c.value == "3 rows, columns\\: id, text, label" for c in at.caption)
    preview = at.dataframe[0].value
    assert list(preview.columns) == ["id", "text", "label"] and len(preview) == 3
    by_label(at.text_input, "Project name").set_value("hf-tickets")
    by_label(at.selectbox, "Id column").set_value("id")
    by_label(at.selectbox, "Gold label column (optional)").set_value("label")
    assert by_label(at.multiselect, "Input columns").value == ["text"]
    by_label(at.button, "Import").click().run()
    assert not at.exception and not at.error
    assert any("Imported 3 rows into project" in s.value for s in at.success)
    assert app_store.count_items("hf-tickets")["total"] == 3
    assert app_store.get_project("hf-tickets").label_set == ["billing", "shipping", "technical"]


def test_a_refused_source_is_an_error_on_the_page_and_changes_nothing(app_store, folder):
    at = open_dataset(folder, "dev")
    assert not at.exception
    assert any("has no split 'dev'" in e.value for e in at.error)
    at = open_dataset(folder, "train")
    by_label(at.text_input, "Project name").set_value("../../tmp/x")
    by_label(at.selectbox, "Gold label column (optional)").set_value("label")
    before = app_store.list_projects()
    by_label(at.button, "Import").click().run()
    assert not at.exception and any("may hold letters" in e.value for e in at.error)
    assert app_store.list_projects() == before


def test_the_page_reads_no_dataset_folder_outside_its_workspace_unless_configured(app_store, tmp_path,
                                                                                  tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # beside the workspace (tmp_path), not in it
    outside = save_dataset(elsewhere / "ds")
    def previewed(at) -> bool:
        return any("3 rows, columns" in c.value for c in at.caption)

    at = open_dataset(outside, "train")
    assert not at.exception and not previewed(at)
    assert any("only inside its workspace" in e.value for e in at.error)
    link = __import__("core.kernel.paths", fromlist=["x"]).workspace_dir(app_store) / f"link_{tmp_path.name}"
    link.symlink_to(outside)  # a link inside the workspace to a folder outside: refused too
    try:
        at = open_dataset(link, "train")
        assert any("only inside its workspace" in e.value for e in at.error) and not previewed(at)
    finally:
        link.unlink()
    monkeypatch.setenv("DISTILL_DATA_DIRS", str(elsewhere))  # the operator allows that folder
    at = open_dataset(outside, "train")
    assert not at.error and previewed(at)
    assert "ds" not in app_store.list_projects()  # previewed, nothing imported


def test_the_mapping_is_guessed_shown_and_the_task_fields_follow_the_task(app_store, tmp_path):
    """A fact-checking file (case, passage, claim, judgement): the page guesses nli with the case
    as id, the passage and claim as inputs and the judgement as gold, says why, hides the choices
    column (not multiple-choice), says what is held out, and imports with the guess as it stands."""
    import shutil

    from core.kernel.paths import workspace_dir

    ds = datasets.Dataset.from_dict({
        "case": ["C-001", "C-002", "C-003", "C-004"],
        "passage": ["The bridge opened in 1932 after six years of work.", "Tea was first drunk in China.",
                    "The river floods every spring.", "The museum is closed on Mondays."],
        "claim": ["The bridge opened in 1932.", "Tea came from Peru.", "The river never floods.",
                  "The museum opens every day."],
        "judgement": ["supported", "refuted", "refuted", "refuted"]})
    folder = workspace_dir(app_store) / f"claims_{tmp_path.name}"
    ds.save_to_disk(str(folder))
    try:
        at = AppTest.from_file(str(REPO / "pages/1_Data.py"), default_timeout=60).run()
        at.radio(key="data_source").set_value(HF).run()
        at.text_input(key="hf_ref").set_value(str(folder)).run()
        assert not at.exception and not at.error
        assert at.selectbox(key="import_task").value == "nli"
        assert by_label(at.selectbox, "Id column").value == "case"
        assert by_label(at.multiselect, "Input columns").value == ["passage", "claim"]
        assert by_label(at.selectbox, "Gold label column (optional)").value == "judgement"
        assert not [s for s in at.selectbox if s.label.startswith("Choices column")]
        assert any("are a pair" in c.value for c in at.caption)
        assert any("kept out of training" in c.value for c in at.caption)
        at.selectbox(key="import_task").set_value("multiple-choice").run()
        assert [s for s in at.selectbox if s.label.startswith("Choices column")]  # follows the task at once
        at.selectbox(key="import_task").set_value("nli").run()
        by_label(at.text_input, "Project name").set_value("claims")
        by_label(at.button, "Import").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        item = app_store.get_item("claims", "C-002")
        assert item["gold"] == "contradiction" and item["inputs"] == {"passage": "Tea was first drunk in China.",
                                                                       "claim": "Tea came from Peru."}
        assert any("rows to train on" in c.value for c in at.caption)  # the project's split, after the import
    finally:
        shutil.rmtree(folder, ignore_errors=True)
