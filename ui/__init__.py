"""App-layer helpers shared by the pages: the one cached Store getter, the project
picker, the API key lookup, and the single place where typed errors are rendered."""

from __future__ import annotations

import logging
import os
import re

import streamlit as st

from core.db import Store, default_db_path
from core.label.demo import ensure_demo
from core.kernel.errors import AppError

log = logging.getLogger("distill.app")


@st.cache_resource
def get_store() -> Store:
    """One Store per app process. It keeps the database open for 0.3 s after the last
    query, so one page rerun opens the file once; background jobs wait that long at most."""
    store = Store(default_db_path(), hold_s=0.3)
    ensure_demo(store)
    return store


@st.cache_resource(max_entries=2, show_spinner="Loading the student…")
def get_student(model_dir: str, stamp: float = 0.0):
    """A loaded student (core.student.predict) per model folder, kept across reruns and sessions; at
    most two in memory. `stamp` (the folder's modification time) reloads a folder written again."""
    from core.student.predict import load_student_model

    return load_student_model(model_dir)


_AUTOLINK = re.compile(r"://|(?i:www)\.|@")  # what starts a GFM autolink: cut after its first mark
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#|~$:])")


@st.cache_data(max_entries=64, show_spinner="Pricing the requests…")
def _forecast(_store: Store, db: str, name: str, fingerprint: tuple, settings: tuple):
    from core.prompt.forecast import forecast
    from core.kernel.prices import load_prices

    return forecast(_store, name, load_prices(), **dict(settings))


def planned_forecast(store: Store, name: str, **settings):
    """core.prompt.forecast.forecast, kept while nothing it depends on changes (its fingerprint): a
    rerun that only moves another widget does not plan every row's request again."""
    from core.prompt.forecast import forecast_fingerprint

    return _forecast(store, str(store.path), name, forecast_fingerprint(store, name), tuple(sorted(settings.items())))


def plain(text: object) -> str:
    """Escape Markdown so that text from data or the teacher shows as typed, never as
    links, images, HTML or colour directives, in the elements that render Markdown. Bare
    addresses (https://…, www.…, name@host) would still become live links (GFM autolinks),
    so a zero-width space breaks each one: it reads the same and links nowhere."""
    text = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\u200b" + m.group(0)[-1], str(text))
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


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


PROJECT_PARAM = "project"  # ?project=<name>: the durable choice, so a reload, a new tab or a link keeps it
_PROJECT_WIDGET = "_project_widget"
_PROJECT_SHOWN = "_project_shown"  # the project the picker settled on in the last rerun


def set_current_project(name: str) -> None:
    """Make `name` the current project: in the URL (?project=name), which survives reloads and
    new tabs, and in st.session_state["project"], which other code reads. Safe to call after the
    picker has rendered (the Data page after an import): the sidebar follows on the next rerun."""
    st.session_state["project"] = name
    if st.query_params.get(PROJECT_PARAM) != name:
        st.query_params[PROJECT_PARAM] = name


def _picked() -> None:
    """on_change of the sidebar picker: runs before the script, so the new choice wins this rerun."""
    choice = st.session_state.get(_PROJECT_WIDGET)
    if choice:
        set_current_project(choice)


def current_project(projects: list[str], last_opened: str | None = None) -> tuple[str, str | None]:
    """The project to show and, when the URL names a project that does not exist, that name.

    A project that code made current since the last rerun (st.session_state["project"] set
    directly, as an import does) comes first; then the URL's ?project=; then this session's
    choice (switching pages through the sidebar drops query parameters, so the session restores
    it); then the project last opened in this workspace (a new tab, a bookmark); then the first."""
    wanted = st.query_params.get(PROJECT_PARAM)
    session = st.session_state.get("project")
    if session in projects and session != st.session_state.get(_PROJECT_SHOWN):
        return session, None
    if wanted in projects:
        return wanted, None
    fallback = session if session in projects else last_opened if last_opened in projects else projects[0]
    return fallback, (wanted or None)


def project_picker(store: Store) -> str | None:
    projects = store.list_projects()
    if not projects:
        st.sidebar.info("No project yet. Import data on the Data page.")
        return None
    current, missing = current_project(projects, store.last_opened_project())
    if missing is not None:
        st.warning(plain(f"There is no project named {missing!r}; showing {current!r} instead."))
    if st.session_state.get("_opened_recorded") != current:  # once per switch, not every rerun
        store.mark_opened(current)
        st.session_state["_opened_recorded"] = current
    set_current_project(current)  # also puts it back in the URL after a page switch dropped it
    st.session_state[_PROJECT_SHOWN] = current
    # Streamlit drops widget state when the user switches pages, so the widget is seeded from the
    # current project before it renders; a choice made in it reaches the URL through _picked first.
    st.session_state[_PROJECT_WIDGET] = current
    choice = st.sidebar.selectbox("Project", projects, key=_PROJECT_WIDGET, on_change=_picked)
    project = store.get_project(choice)
    if project.demo_teacher:
        st.sidebar.caption("Demo project: teacher answers come from a **recorded demo teacher** (no API calls).")
    where_am_i(store, choice)
    return choice


def where_am_i(store: Store, project: str) -> None:
    """The line at the top of every page: where the project stands and what to do next
    (core.workflow, two aggregate queries). It is advice: a failure to compute it is shown and
    the page goes on."""
    from core.workflow import project_stage

    try:
        stage = project_stage(store, project)
    except Exception as exc:
        show_error(exc)
        return
    st.info(plain(f"{stage.line} {stage.next_step}"))


def page_setup(title: str) -> Store:
    st.set_page_config(page_title=f"{title} · Distill", layout="wide")
    st.title(title)
    require_sign_in()
    return get_store()


def quote_metrics(what: str, requests: int, p50: float | None, p90: float | None, over_budget: str | None,
                  key: str) -> bool:
    """A priced run before it is sent: requests, cost P50 and P90 (unknown, never $0, without a
    price), and the cap's warning with its override. Returns whether the user overrides."""
    m = st.columns(3)
    m[0].metric(f"{what} requests" if what != "Try" else "Requests to send", f"{requests:,}")
    m[1].metric(f"{what} cost P50", "unknown" if p50 is None else f"${p50:,.4f}")
    m[2].metric(f"{what} cost P90", "unknown" if p90 is None else f"${p90:,.4f}")
    if not over_budget:
        return False
    st.warning(plain(over_budget))
    return st.checkbox(f"{what} anyway (the budget cap still stops spending at its limit)", key=key)
