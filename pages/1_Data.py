"""Data: upload a file or name a Hugging Face dataset, map its columns, choose the task, import in
one transaction. The source is read by the same streaming path as the CLI (core.ingest.files)."""

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.ingest.files import ColumnMapping, import_source, open_file, open_hf
from core.ingest.guess import guess_mapping
from core.ingest.hf import check_served_folder
from core.kernel.paths import workspace_dir
from core.kernel.tasks import TASK_TYPES, TASKS
from core.train.data import describe_split
from core.train.trainer import TrainConfig
from ui import page_setup, plain, project_picker, set_current_project, show_error

NONE = "(none)"
UPLOAD, HF = "Upload a file", "Hugging Face dataset (folder or id)"


def _default(options: list[str], value: str | None) -> int:
    return options.index(value) if value in options else 0


def mapping_form(columns: list[str], default_project: str, guess) -> tuple[str, str, ColumnMapping] | None:
    """The mapping, pre-filled with the guess (core.ingest.guess): shown, and every part editable.
    The task is chosen outside the form, so the fields it needs (choices) follow it at once."""
    st.caption(plain("Guessed from the column names and the first rows (change anything that is wrong): "
                     + "; ".join(guess.why) + "."))
    task = st.selectbox("Task type", TASKS, index=_default(TASKS, guess.task), key="import_task",
                        format_func=lambda t: f"{t}: {TASK_TYPES[t].help}", help=TASK_HELP)
    with st.form("mapping"):
        project = st.text_input("Project name", value=default_project)
        options = [NONE] + columns
        id_field = st.selectbox("Id column", options, index=_default(options, guess.id_field),
                                help="Kept with every row, in exports and in predicted files, to join them back.")
        input_fields = st.multiselect("Input columns", columns, default=guess.input_fields)
        label_field = st.selectbox("Gold label column (optional)", options, index=_default(options, guess.label_field),
                                   help=GOLD_HELP[task])
        choices_field = (st.selectbox("Choices column (a list per row)", options,
                                      index=_default(options, guess.choices_field))
                         if task == "multiple-choice" else NONE)
        split_field = st.selectbox("Split column (optional)", options, index=_default(options, guess.split_field),
                                   help="Rows named 'test' are the held-out test rows, rows named 'validation' (or "
                                        "'dev') choose the checkpoint; without it both are drawn from the rows.")
        labels = (st.text_input("Label set (comma-separated; empty = from the gold column)")
                  if task == "classification" else "")
        st.caption(plain(f"Held out for the student: {HELD_OUT_TEXT}"))
        submitted = st.form_submit_button("Import", type="primary")
    if not submitted:
        return None
    pick = lambda v: None if v == NONE else v  # noqa: E731
    mapping = ColumnMapping(
        input_fields=input_fields, id_field=pick(id_field), label_field=pick(label_field),
        choices_field=pick(choices_field), split_field=pick(split_field),
        labels=[x.strip() for x in labels.split(",") if x.strip()] or None,
    )
    return project.strip(), task, mapping


TASK_HELP = ("classification: one label per row from a set (billing, shipping, ...). multiple-choice: each row "
             "has its own answer choices. nli: two texts (premise and hypothesis, passage and claim): does the "
             "first support the second? Gold words entailment / neutral / contradiction, also true / false, yes / "
             "no, supported / refuted, not enough info. numeric: a number (word problems).")
GOLD_HELP = {
    "classification": "The right label per row, if you have it: it measures the teacher and the student.",
    "multiple-choice": "The right choice per row (its text or letter).",
    "nli": "entailment / neutral / contradiction, or true / false, yes / no, supported / refuted, not enough info.",
    "numeric": "The right number per row (an arithmetic expression is read as its value).",
}
HELD_OUT_TEXT = ("20% of the rows are kept out of training to test the student once, and 10% more choose its "
                 "checkpoint, drawn per class and the same for every run (or the data's own test and validation "
                 "splits). The Train page shows the counts.")


def uploaded_copy(upload) -> Path:
    """The upload written once to a temporary file (reruns reuse it; a new upload replaces it), so
    that it is read like any file: streamed, never parsed whole in Python."""
    saved = st.session_state.get("upload_copy")
    if saved and saved[0] == upload.file_id and Path(saved[1]).exists():
        return Path(saved[1])
    if saved:
        shutil.rmtree(Path(saved[1]).parent, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix="distill-upload-")) / ("upload" + Path(upload.name).suffix.lower())
    path.write_bytes(upload.getbuffer())
    st.session_state["upload_copy"] = (upload.file_id, str(path))
    return path


def choose_source(store):
    """(a function that opens the chosen source, a default project name), or (None, None)."""
    kind = st.radio("Source", [UPLOAD, HF], horizontal=True, key="data_source")
    if kind == UPLOAD:
        upload = st.file_uploader("Upload data", type=["csv", "tsv", "jsonl", "ndjson", "json", "parquet"])
        if upload is None:
            return None, None
        return (lambda: open_file(uploaded_copy(upload), upload.name)), upload.name.rsplit(".", 1)[0]
    ref = st.text_input("Dataset folder or Hub id", placeholder="a save_to_disk folder, or e.g. ag_news", key="hf_ref").strip()
    split = st.text_input("Split (for a dataset with several splits)", placeholder="e.g. train", key="hf_split").strip()
    if not ref:
        return None, None

    def opener():
        check_served_folder(ref, workspace_dir(store))  # a visitor reads no folder outside the workspace
        return open_hf(ref, split or None)
    return opener, Path(ref).name


def import_section(store, opener, default_project: str) -> str | None:
    """Summary, preview and the mapping form for one source; the imported project's name."""
    source = opener()
    try:
        st.caption(plain(f"{source.rows:,} rows, columns: {', '.join(source.columns)}"))
        preview = source.preview(10)
        st.dataframe(preview, hide_index=True)
        guess = guess_mapping(source.columns, preview.to_dict("records"))
        form = mapping_form(source.columns, default_project, guess)
        if not form:
            return None
        project, task, mapping = form
        n, _ = import_source(store, source, project, task, mapping)  # closes the source first
        set_current_project(project)
        # rerun so that the sidebar, drawn before the import, lists and shows the new project
        st.session_state["_imported"] = plain(f"Imported {n:,} rows into project {project!r}.")
        st.rerun()
        return project
    finally:
        source.close()


def main() -> None:
    store = page_setup("Data")
    current = project_picker(store)
    if "_imported" in st.session_state:
        st.success(st.session_state.pop("_imported"))
    opener, default_project = choose_source(store)
    if opener is not None:
        try:
            current = import_section(store, opener, default_project) or current
        except Exception as exc:  # noqa: BLE001 (show_error renders any error; a bug as 'unexpected')
            show_error(exc)
    if current:
        st.subheader(plain(f"Project {current}"))
        project = store.get_project(current)
        counts = store.count_items(current)
        cols = st.columns(4)
        cols[0].metric("Rows", counts["total"])
        cols[1].metric("With gold label", counts["with_gold"])
        cols[2].metric("Task", project.task)
        cols[3].metric("Splits", ", ".join(f"{k}: {v}" for k, v in counts["by_split"].items()))
        if project.label_set:
            st.caption(plain("Label set: " + ", ".join(project.label_set)))
        st.caption(plain(describe_split(counts["by_split"], TrainConfig.test_fraction, TrainConfig.val_fraction,
                                        TrainConfig.split_seed)))
        rows, _ = store.review_page(current, "all", page_size=10)
        st.dataframe(
            pd.DataFrame([{"row_id": r["row_id"], **r["inputs"], "gold": r["gold"], "split": r["split"]} for r in rows]),
            hide_index=True,
        )


main()
