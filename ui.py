"""App-layer helpers shared by the pages: the one cached Store getter, the project
picker, the API key lookup, and the single place where typed errors are rendered."""

from __future__ import annotations

import logging
import os
import re

import streamlit as st

from core.db import Store, default_db_path
from core.demo import ensure_demo
from core.errors import AppError

log = logging.getLogger("distill.app")


@st.cache_resource
def get_store() -> Store:
    """One Store per app process. It keeps the database open for 0.3 s after the last
    query, so one page rerun opens the file once; background jobs wait that long at most."""
    store = Store(default_db_path(), hold_s=0.3)
    ensure_demo(store)
    return store


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#|~$:])")


def plain(text: object) -> str:
    """Escape Markdown so that text from data or the teacher shows as typed, never as
    links, images, HTML or colour directives, in the elements that render Markdown."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def show_error(exc: Exception) -> None:
    """Render an error. AppErrors carry a message meant for the user; anything else is a bug."""
    if isinstance(exc, AppError):
        st.error(plain(exc))
    else:  # the traceback goes to the server's log only: visitors never see code or paths
        log.error("unexpected error on a page", exc_info=exc)
        st.error(f"Unexpected error ({type(exc).__name__}). Details are in the app log.")


def api_key() -> str | None:
    """ANTHROPIC_API_KEY from the environment or Streamlit secrets; never stored or shown."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return os.environ["ANTHROPIC_API_KEY"]
    try:
        return st.secrets.get("ANTHROPIC_API_KEY")  # type: ignore[no-any-return]
    except (FileNotFoundError, st.errors.StreamlitAPIException, KeyError):
        return None
    except Exception:  # no secrets file at all
        return None


def job_env() -> dict | None:
    """Environment for a background job: the key goes to the child process only, never to a job row."""
    key = api_key()
    return {"ANTHROPIC_API_KEY": key} if key else None


def auth_configured() -> bool:
    """Streamlit's built-in login (OIDC) is on when secrets hold an [auth] section."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file
        return False


def signed_in_user() -> str | None:
    """Who signed in through Streamlit's login, when [auth] is configured; else None."""
    if not auth_configured() or not st.user.get("is_logged_in", False):
        return None
    return str(st.user.get("email") or st.user.get("name"))


def require_sign_in() -> None:
    """With [auth] configured, a signed-out visitor sees only the sign-in, on every page:
    no data, no typed reviewer name, no paid actions. Signed in, the sidebar offers log-out."""
    if not auth_configured():
        return
    if not st.user.get("is_logged_in", False):
        st.info("This app requires signing in.")
        st.button("Log in", on_click=st.login, key="login", type="primary")
        st.stop()
    st.sidebar.caption(plain(f"Signed in as {st.user.get('name') or st.user.get('email')}"))
    st.sidebar.button("Log out", on_click=st.logout, key="logout")


def project_picker(store: Store) -> str | None:
    projects = store.list_projects()
    if not projects:
        st.sidebar.info("No project yet. Import data on the Data page.")
        return None
    # "project" is the durable choice; the widget key is re-seeded from it on every run
    # because Streamlit drops widget state when the user switches pages.
    if st.session_state.get("project") not in projects:
        st.session_state["project"] = projects[0]
    st.session_state["_project_widget"] = st.session_state["project"]
    choice = st.sidebar.selectbox("Project", projects, key="_project_widget")
    st.session_state["project"] = choice
    project = store.get_project(choice)
    if project.demo_teacher:
        st.sidebar.caption("Demo project: teacher answers come from a **recorded demo teacher** (no API calls).")
    return choice


def page_setup(title: str) -> Store:
    st.set_page_config(page_title=f"{title} · Distill", layout="wide")
    st.title(title)
    require_sign_in()
    return get_store()
