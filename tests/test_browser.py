"""Real-browser smoke test: Debian chromium, driven by Playwright, against the app started
the way the README starts it (`make app`)."""

import os
import re

import pytest

from tests.helpers import CHROMIUM, TICKETS_CSV, chromium, running_app

PAGES = [("", "Distill"), ("Data", "Data"), ("Prompt_and_budget", "Prompt & budget"), ("Label", "Label"),
         ("Review", "Review"), ("Train", "Train"), ("Results", "Results"),
         ("Try_the_student", "Try the student")]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (make test installs it)")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("browser"), drop_key=True) as (url, _db):
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_every_page_renders_without_exception(app_url, browser):
    page = browser.new_page()
    for path, title in PAGES:
        page.goto(f"{app_url}/{path}")
        page.get_by_role("heading", name=title).first.wait_for(timeout=60000)
        page.wait_for_timeout(1500)  # let fragments and charts finish
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception on /{path}"
        assert page.get_by_text("Traceback").count() == 0
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_role("link", name="Home", exact=True).count() == 1  # not "app"
    assert nav.get_by_role("link", name="app", exact=True).count() == 0
    page.close()


def test_upload_map_and_import_in_the_browser(app_url, browser, tmp_path):
    data = tmp_path / "my_tickets.csv"
    data.write_text(TICKETS_CSV)
    page = browser.new_page()
    page.goto(f"{app_url}/Data")
    page.get_by_role("heading", name="Data").first.wait_for(timeout=60000)
    page.locator('input[type="file"]').set_input_files(str(data))
    page.get_by_text("6 rows, columns: id, text, label").wait_for(timeout=30000)

    # the mapping is guessed from the column names (id, text, label): shown, and left as it is
    page.get_by_text("'id' looks like the id column").wait_for(timeout=30000)
    page.get_by_text("'label' looks like the gold label column", exact=False).wait_for(timeout=30000)
    page.get_by_role("button", name="Import").click()
    page.get_by_text("Imported 6 rows into project 'my_tickets'.").wait_for(timeout=30000)
    page.get_by_text("Label set: billing, shipping, technical").wait_for(timeout=30000)  # the gold was mapped
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the rerun an interaction started."""
    page.wait_for_timeout(400)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60000)
    page.wait_for_timeout(200)


def _pick(page, label: str, option: str) -> None:
    box = page.get_by_label(label, exact=True).filter(visible=True).first
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).first.click()
    page.wait_for_timeout(300)


def _save(page, reviewer: str, rationale: str) -> None:
    page.get_by_label("Reviewer", exact=True).fill(reviewer)
    page.get_by_label("Rationale", exact=True).fill(rationale)
    page.keyboard.press("Tab")  # commit the text area before the form is submitted
    page.wait_for_timeout(300)
    page.get_by_role("button", name="Save review").click()


def _identify(page, reviewer: str) -> None:
    box = page.get_by_label("Reviewer", exact=True)
    box.fill(reviewer)
    box.press("Enter")
    _settle(page)
    page.wait_for_timeout(500)


def _open_parse_errors(page, app_url: str) -> str:
    """Open Review on the demo project, switch the queue to parse errors, return the open row id."""
    page.goto(f"{app_url}/Review?project=support-tickets-demo")
    page.get_by_role("heading", name="Review").first.wait_for(timeout=60000)
    _settle(page)
    # the input itself: with a help tooltip the label also names the "?" icon
    queue = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Queue filters").locator("input").first
    queue.click()
    page.keyboard.press("Backspace")  # drop the default "unreviewed"
    page.keyboard.type("parse errors")
    page.get_by_role("option", name="parse errors", exact=True).first.click()
    page.keyboard.press("Escape")
    _settle(page)
    heading = page.get_by_role("heading", name=re.compile(r"^Row ")).first
    heading.wait_for(timeout=30000)
    # the first queue's form can linger while the new one mounts: wait for one form only
    page.wait_for_function("document.querySelectorAll('textarea[aria-label=Rationale]').length === 1",
                           timeout=30000)
    return heading.inner_text().removeprefix("Row ").strip()


def test_review_edit_survives_reload_and_a_stale_edit_sees_a_conflict(app_url, browser):
    first = browser.new_context()
    page = first.new_page()
    row_id = _open_parse_errors(page, app_url)
    _pick(page, "Label", "returns")
    _save(page, "ana", "Edited in the browser: the customer wants to send the tent back.")
    page.get_by_text("Saved (").wait_for(timeout=30000)

    page.reload()
    assert _open_parse_errors(page, app_url) == row_id  # a reviewed parse error stays in that queue
    _identify(page, "ana")  # a new session: ana's own decision shows once she says who she is
    rationale = page.get_by_label("Rationale", exact=True)
    assert rationale.input_value() == "Edited in the browser: the customer wants to send the tent back."
    # the history is an st.dataframe (a canvas grid); its cells are also in the grid's accessible table
    history = page.locator('[data-testid="stDataFrame"]').last.locator("table").first.text_content()
    assert "ana" in history and "rationale" in history and "returns" in history

    # A second reviewer opens the same row; the first saves again; the second's save is stale.
    second = browser.new_context()
    other = second.new_page()
    assert _open_parse_errors(other, app_url) == row_id
    _save(page, "ana", "Second edit by ana.")
    page.get_by_text("Saved (").wait_for(timeout=30000)
    _pick(other, "Label", "returns")  # ben's form is empty (ana decided the row, the teacher gave no label)
    _save(other, "ben", "Ben's edit, made on a stale copy.")
    other.get_by_text("Conflict: row").first.wait_for(timeout=30000)
    other.reload()
    _open_parse_errors(other, app_url)
    # ben's form is independent (ana decided the row): it shows the teacher's rationale, not ana's
    assert other.get_by_label("Rationale", exact=True).input_value() != "Second edit by ana."
    _identify(page, "ana")
    page.reload()
    _open_parse_errors(page, app_url)
    _identify(page, "ana")
    assert page.get_by_label("Rationale", exact=True).input_value() == "Second edit by ana."  # nothing overwritten
    other.get_by_role("heading", name="Review").first.click()  # focus outside the form fields
    other.keyboard.press("j")  # keyboard: next row
    _settle(other)
    assert other.get_by_role("heading", name=re.compile(r"^Row ")).first.inner_text() != f"Row {row_id}"
    first.close()
    second.close()


def _import_in_the_browser(page, app_url: str, data) -> None:
    page.goto(f"{app_url}/Data")
    page.get_by_role("heading", name="Data").first.wait_for(timeout=60000)
    page.locator('input[type="file"]').set_input_files(str(data))
    page.get_by_text("6 rows, columns: id, text, label").wait_for(timeout=30000)
    page.get_by_text("'id' looks like the id column").wait_for(timeout=30000)  # id and gold guessed
    page.get_by_role("button", name="Import").click()
    page.get_by_text(f"Imported 6 rows into project '{data.stem}'.").wait_for(timeout=30000)


def _shown_project(page) -> str:
    """The project the sidebar picker shows, once the rerun has settled."""
    _settle(page)
    return page.locator('[data-testid="stSidebar"] input[aria-label="Project"]').first.input_value()


def _rows_metric(page) -> str:
    return page.locator('[data-testid="stMetric"]').filter(has_text="Rows").first.locator(
        '[data-testid="stMetricValue"]').inner_text()


def test_the_project_chosen_in_the_sidebar_survives_reload_page_switch_and_a_new_tab(app_url, browser, tmp_path):
    data = tmp_path / "url_tickets.csv"
    data.write_text(TICKETS_CSV)
    context = browser.new_context()
    page = context.new_page()
    _import_in_the_browser(page, app_url, data)

    page.goto(app_url)  # a new session without ?project=: the project last used (the import), not the demo
    page.get_by_role("heading", name=re.compile("^Distill")).first.wait_for(timeout=60000)
    assert _shown_project(page) == "url_tickets" and _rows_metric(page) == "6"
    _pick(page, "Project", "support-tickets-demo")
    assert _shown_project(page) == "support-tickets-demo" and _rows_metric(page) == "400"
    page.wait_for_url(re.compile(r"[?&]project=support-tickets-demo\b"), timeout=30000)

    page.reload()
    page.get_by_role("heading", name=re.compile("^Distill")).first.wait_for(timeout=60000)
    assert _shown_project(page) == "support-tickets-demo" and _rows_metric(page) == "400"

    # the sidebar's page links drop the query string; the page puts the project back
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Data").click()
    page.get_by_role("heading", name="Data").first.wait_for(timeout=60000)
    assert _shown_project(page) == "support-tickets-demo" and _rows_metric(page) == "400"
    page.wait_for_url(re.compile(r"/Data\?(.*&)?project=support-tickets-demo\b"), timeout=30000)

    tab = context.new_page()  # a new tab on the same URL: a new session, same project
    tab.goto(page.url)
    tab.get_by_role("heading", name="Data").first.wait_for(timeout=60000)
    assert _shown_project(tab) == "support-tickets-demo" and _rows_metric(tab) == "400"
    tab.goto(f"{app_url}/Review")  # a bookmark without ?project=: the project last used
    tab.get_by_role("heading", name="Review").first.wait_for(timeout=60000)
    assert _shown_project(tab) == "support-tickets-demo"

    tab.goto(f"{app_url}/Data?project=no-such-project")  # a stale link
    tab.get_by_role("heading", name="Data").first.wait_for(timeout=60000)
    tab.get_by_text("There is no project named 'no-such-project'").wait_for(timeout=30000)
    assert _shown_project(tab) == "support-tickets-demo"
    assert tab.locator('[data-testid="stException"]').count() == 0
    context.close()
