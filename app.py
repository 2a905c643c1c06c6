"""Distill: turn a large language model into a small task-specific model.

Start with `make app` (see README). The pages, in the order of the work: Home, Data, Prompt & budget,
Label, Review, Train, Results, Try the student. Each page file is thin (it reads widgets, calls
core, renders); this entry point only names them, so that the sidebar says "Home", not "app"."""

import streamlit as st

PAGES = ["pages/0_Home.py", "pages/1_Data.py", "pages/2_Prompt_and_budget.py", "pages/3_Label.py",
         "pages/4_Review.py", "pages/5_Train.py", "pages/6_Results.py", "pages/7_Try_the_student.py"]

st.navigation([st.Page(path, title="Home", default=True) if path.endswith("0_Home.py") else st.Page(path)
               for path in PAGES]).run()
