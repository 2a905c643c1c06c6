"""The current project lives in the URL (?project=name): the sidebar picker switches it, and a
reload, a new tab or a link opens the project it names. Driven through the widgets, as a person
would, never by setting session state."""

import os

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.db import Store
from tests.helpers import REPO, import_csv, open_page

DEMO = "support-tickets-demo"


@pytest.fixture
def app_store():
    st.cache_resource.clear()  # each test gets its own database through get_store()
    os.chdir(REPO)
    store = Store(os.environ["DISTILL_DB"])
    AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()  # creates the demo project
    import_csv(store)  # and a second project, "tickets" (six rows)
    yield store
    st.cache_resource.clear()



def url_project(at: AppTest):
    value = at.query_params.get("project")
    return value[-1] if isinstance(value, list) else value


def picker(at: AppTest):
    return at.sidebar.selectbox(key="_project_widget")


def rows(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Rows"]


def test_switching_the_picker_changes_the_page_and_the_url(app_store):
    at = open_page("app.py")
    assert not at.exception and picker(at).value == DEMO and rows(at) == "400"
    assert url_project(at) == DEMO  # the first project is written to the URL too
    picker(at).set_value("tickets").run()
    assert not at.exception
    assert picker(at).value == "tickets" and rows(at) == "6"  # the choice wins on the same rerun
    assert url_project(at) == "tickets"
    at.run()  # any later rerun keeps it: the picker no longer snaps back
    assert picker(at).value == "tickets" and rows(at) == "6" and url_project(at) == "tickets"
    picker(at).set_value(DEMO).run()
    assert rows(at) == "400" and url_project(at) == DEMO


def test_the_choice_survives_a_page_switch_that_drops_the_query_string(app_store):
    at = open_page("app.py")
    picker(at).set_value("tickets").run()
    at.query_params.clear()  # the sidebar navigation drops query parameters
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception
    assert picker(at).value == "tickets" and rows(at) == "6"
    assert url_project(at) == "tickets"  # put back into the URL, so a reload keeps it
    at.switch_page("pages/4_Review.py").run()
    at.multiselect(key="review_filter").set_value(["all"]).run()
    assert not at.exception and picker(at).value == "tickets" and at.caption[0].value == "6 rows match."


def test_a_url_naming_a_project_opens_it_in_a_fresh_session(app_store):
    at = open_page("pages/1_Data.py", "tickets")  # a reload, a new tab or a shared link
    assert not at.exception and not at.warning
    assert picker(at).value == "tickets" and rows(at) == "6" and url_project(at) == "tickets"
    home = open_page("app.py", DEMO)
    assert picker(home).value == DEMO and rows(home) == "400"


def test_an_unknown_project_in_the_url_warns_and_falls_back_to_the_first(app_store):
    at = open_page("app.py", "no-such-[project](http://evil.example)")
    assert not at.exception
    warning = at.warning[0].value
    assert "There is no project named" in warning and "no-such-" in warning
    assert "\\[project\\]" in warning  # escaped (ui.plain): shown as text, not as a link
    assert picker(at).value == DEMO and rows(at) == "400"
    assert url_project(at) == DEMO  # the URL now names the project shown
    at.run()
    assert not at.warning and picker(at).value == DEMO


def test_a_project_made_current_by_the_page_wins_over_the_url(app_store):
    """The Data page makes an imported project current after the picker was drawn
    (ui.set_current_project): the next rerun shows it, in the sidebar and in the URL."""
    at = AppTest.from_function(_page_that_imports_tickets, default_timeout=60)
    at.query_params["project"] = DEMO
    at.run()
    assert not at.exception, at.exception
    assert picker(at).value == DEMO and url_project(at) == "tickets"
    at.run()
    assert picker(at).value == "tickets" and url_project(at) == "tickets"


def _page_that_imports_tickets():
    import streamlit as st

    from ui import get_store, project_picker, set_current_project

    project_picker(get_store())
    if not st.session_state.get("_imported"):  # the import happens once, after the picker is drawn
        st.session_state["_imported"] = True
        set_current_project("tickets")


def test_a_new_tab_without_a_project_in_the_url_opens_the_one_last_used(app_store):
    """A new tab, a bookmark without ?project= or a sidebar link in a fresh session: the project
    last opened in this workspace, not the demo created first."""
    used = open_page("pages/3_Label.py", "tickets")
    assert picker(used).value == "tickets"
    fresh = open_page("pages/1_Data.py")  # another tab: a new session, no query string
    assert not fresh.exception and not fresh.warning
    assert picker(fresh).value == "tickets" and rows(fresh) == "6" and url_project(fresh) == "tickets"
    picker(fresh).set_value(DEMO).run()
    assert open_page("app.py").sidebar.selectbox(key="_project_widget").value == DEMO  # the latest choice wins
