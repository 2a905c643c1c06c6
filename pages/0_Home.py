"""Home: where the project stands, the steps in order, and a way in with your own data or the demo."""

import streamlit as st

from core.workflow import STEPS, Stage, project_stage
from ui import page_setup, project_picker, show_error

STEP_TEXT = {
    "Data": "upload CSV / JSONL / Parquet and map columns.",
    "Prompt & budget": "edit the zero-shot template, preview requests, see the cost estimate.",
    "Label": "run the teacher in the background; spend shows live.",
    "Review": "filter, check and correct labels and rationales (audited).",
    "Train": "train a student in a background process.",
    "Results": "loss curves and accuracy per run.",
}


# Streamlit's bundled icon font (emoji need a font the browser may lack)
DONE, NEXT, NOT_YET = (":green[:material/check_circle:]", ":blue[:material/arrow_forward:]",
                       ":material/radio_button_unchecked:")


def step_mark(step: str, stage: Stage) -> str:
    """A check mark for a step done, an arrow for the step the stage line points to, an empty circle for the rest."""
    if step == stage.page and step not in stage.done:
        return NEXT
    return DONE if step in stage.done else NOT_YET


def main() -> None:
    store = page_setup("Distill: zero-shot step-by-step distillation")
    try:
        project = project_picker(store)
    except Exception as exc:
        show_error(exc)
        return
    st.write(
        "Turn a large teacher model (Claude) into a small, cheap student for one task: "
        "import data, write a zero-shot prompt that asks for a label and a one-sentence rationale, "
        "check the cost, label, review, then train a student on labels and rationales together "
        "(Hsieh et al. 2023; Vöge, Gurgul & Lessmann 2024)."
    )
    own, demo = st.columns(2)
    own.page_link("pages/1_Data.py", label="Start with your own data: import a CSV, JSON Lines or Parquet file",
                  icon=":material/upload_file:")
    demo.caption("Or look around the bundled demo project (support tickets, a recorded teacher: no API key, "
                  "no cost). The sidebar switches projects.")
    if project is None:
        return
    if store.get_project(project).demo_teacher:
        st.caption(f"You are looking at the demo project. The steps below are about {project}; they follow "
                   "whichever project the sidebar shows.")
    counts = store.count_items(project)
    stats = store.teacher_stats(project)
    cols = st.columns(5)
    cols[0].metric("Rows", counts["total"])
    cols[1].metric("Teacher-labeled", counts["by_status"].get("labeled", 0) + counts["by_status"].get("flagged", 0))
    cols[2].metric("Reviewed", counts["reviewed"])
    cols[3].metric("Teacher spend", f"${stats['spend_usd']:.4f}")
    acc = stats["teacher_accuracy"]
    cols[4].metric("Teacher accuracy vs gold", "–" if acc is None else f"{acc:.1%}")
    st.subheader("Steps")
    stage = project_stage(store, project)
    # fixed strings only: the marks come from the stage, the text from STEP_TEXT
    st.markdown("\n".join(f"{i}. {step_mark(step, stage)} **{step}**: {STEP_TEXT[step]}"
                          for i, step in enumerate(STEPS, start=1)))
    st.caption(f"{DONE} done · {NEXT} do this next · {NOT_YET} not yet")


main()
