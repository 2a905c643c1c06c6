"""Data: upload a file, map its columns, choose the task, import in one transaction."""

import pandas as pd
import streamlit as st

from core.ingest import ColumnMapping, build_items, columns_of, read_records
from core.prompts import preset_template
from core.tasks import TASK_TYPES, TASKS
from ui import page_setup, plain, project_picker, show_error

NONE = "(none)"


def mapping_form(columns: list[str], default_project: str) -> tuple[str, str, ColumnMapping] | None:
    with st.form("mapping"):
        project = st.text_input("Project name", value=default_project)
        task = st.selectbox("Task type", TASKS, help=" · ".join(f"{t}: {TASK_TYPES[t].help}" for t in TASKS))
        id_field = st.selectbox("Id column", [NONE] + columns)
        input_fields = st.multiselect("Input columns", columns, default=[c for c in columns if c in ("text", "question", "input", "premise", "hypothesis", "body", "subject")][:2])
        label_field = st.selectbox("Gold label column (optional)", [NONE] + columns)
        choices_field = st.selectbox("Choices column (multiple-choice)", [NONE] + columns)
        split_field = st.selectbox("Split column (optional)", [NONE] + columns)
        labels = st.text_input("Label set (classification, comma-separated; empty = from the gold column)")
        submitted = st.form_submit_button("Import", type="primary")
    if not submitted:
        return None
    pick = lambda v: None if v == NONE else v
    mapping = ColumnMapping(
        input_fields=input_fields, id_field=pick(id_field), label_field=pick(label_field),
        choices_field=pick(choices_field), split_field=pick(split_field),
        labels=[x.strip() for x in labels.split(",") if x.strip()] or None,
    )
    return project.strip(), task, mapping


def main() -> None:
    store = page_setup("Data")
    current = project_picker(store)
    upload = st.file_uploader("Upload data", type=["csv", "tsv", "jsonl", "json", "parquet"])
    if upload is not None:
        try:
            records = read_records(upload.getvalue(), upload.name)
            columns = columns_of(records)
            st.caption(plain(f"{len(records)} rows, columns: {', '.join(columns)}"))
            st.dataframe(pd.DataFrame([r for _, r in records[:10]]).astype(str), hide_index=True)
            form = mapping_form(columns, upload.name.rsplit(".", 1)[0])
            if form:
                project, task, mapping = form
                if not project:
                    st.error("Enter a project name.")
                    return
                frame, labels = build_items(records, task, mapping)
                n = store.import_items(project, task, mapping.input_fields, labels, frame,
                                       preset_template(task, mapping.input_fields), "claude-haiku-4-5")
                st.session_state["project"] = project
                st.success(plain(f"Imported {n} rows into project {project!r}."))
                current = project
        except Exception as exc:
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
        rows, _ = store.review_page(current, "all", page_size=10)
        st.dataframe(
            pd.DataFrame([{"row_id": r["row_id"], **r["inputs"], "gold": r["gold"], "split": r["split"]} for r in rows]),
            hide_index=True,
        )


main()
